"""``preflight``: everything a training run needs, checked in a minute before hours of training are spent.

Checks, in order (each ``ok``, ``warn`` or ``fail`` with one line of detail; a failure says what to do):

1. ``config``: paths in the config exist; ``cache``: the cache exists and was built with this config's
   preprocessing, labels and dtype;
2. ``train windows`` / ``dev windows``: categories per split; train needs partial or full windows (> 0),
   dev without any gets a warning (AUROC undefined, early stopping falls back to the dev loss);
3. ``splits``: no patient in two cached splits, and none in two corpus splits when ``data.data_dir`` is here;
4. ``sampler``: what an epoch holds and its seizure ratio;
5. ``device`` and ``precision`` in use, ``run folder`` writable;
6. ``forward/backward``: one training step on a real batch (loss and gradients finite), then timed steps:
   a throughput estimate (windows/s), an epoch-time estimate and peak memory.

>>> report = run_preflight(load_config("configs/smoke.yaml"))
>>> report.ok, report.failures()
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from ictal.errors import IctalError

if TYPE_CHECKING:
    from ictal.config.schema import IctalConfig
    from ictal.data.windows import WindowDataset

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    """One preflight check: ``name``, ``status`` and one line of ``detail``."""

    name: str
    status: Status
    detail: str


@dataclass
class PreflightReport:
    """All checks run, and the figures measured (``windows_per_s``, ``epoch_s``, ``peak_rss_mb``, ...)."""

    checks: list[Check] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings allowed)."""
        return all(c.status != "fail" for c in self.checks)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    def status_of(self, name: str) -> Status | None:
        """The status of check ``name`` (None when it has not run)."""
        return next((c.status for c in self.checks if c.name == name), None)

    def add(self, name: str, status: Status, detail: str) -> Check:
        check = Check(name, status, detail)
        self.checks.append(check)
        return check


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def patient_of(rec: Any) -> str:
    """A cached recording's patient: from its ``.json`` (``patient``), else its TUSZ name, else its name."""
    from ictal.data.corpus import parse_stem

    return str(rec.meta.get("patient") or parse_stem(rec.bname)[0] or rec.bname)


def cached_split_overlaps(cache_dir: str | Path) -> dict[str, tuple[str, ...]]:
    """Patients with cached recordings in more than one split -> those splits."""
    from ictal.data.cache import cached_splits, list_cached

    splits_of: dict[str, set[str]] = defaultdict(set)
    names = cached_splits(cache_dir)
    for split in names:
        good, _ = list_cached(cache_dir, split)
        for rec in good:
            splits_of[patient_of(rec)].add(split)
    return {p: tuple(s for s in names if s in found) for p, found in splits_of.items() if len(found) > 1}


def _check_splits(cfg: IctalConfig, report: PreflightReport) -> None:
    from ictal.data.corpus import CorpusError, SplitLeakageError, discover_corpus

    overlaps = cached_split_overlaps(cfg.data.cache_dir)  # type: ignore[arg-type]
    if overlaps:
        shown = ", ".join(f"{p} ({'+'.join(s)})" for p, s in sorted(overlaps.items())[:20])
        report.add(
            "splits",
            "fail",
            f"{len(overlaps)} patient(s) have cached recordings in more than one split: {shown}. Dev results on "
            "such splits are invalid; rebuild the cache from a patient-disjoint corpus (official TUSZ splits)",
        )
        return
    data_dir = cfg.data.data_dir
    if data_dir is not None and Path(data_dir).is_dir():
        try:
            discover_corpus(data_dir).check_disjoint()
        except SplitLeakageError as exc:
            report.add("splits", "fail", str(exc))
            return
        except CorpusError as exc:
            report.add("splits", "warn", f"cache splits are patient-disjoint; corpus not checked: {exc}")
            return
        report.add("splits", "ok", f"patient-disjoint in the cache and in the corpus at {data_dir}")
    else:
        report.add("splits", "ok", "patient-disjoint in the cache (corpus not here: data.data_dir not found)")


def _windows(cfg: IctalConfig, split: str, report: PreflightReport, *, need_seizure: bool) -> WindowDataset | None:
    from ictal.data.windows import WindowDataset

    name = f"{split} windows"
    try:
        ds = WindowDataset.from_config(cfg, split)
    except IctalError as exc:
        report.add(name, "fail", str(exc))
        return None
    counts = ds.table.counts()
    detail = ds.describe()
    if counts["partial"] + counts["full"] == 0:
        if need_seizure:
            report.add(
                name,
                "fail",
                f"no seizure window (partial 0, full 0): every batch would be background. {detail}. Check the "
                f"labels with `ictal scan-cache --cache-dir {cfg.data.cache_dir}`, data.label_source, and that the "
                "split has seizures",
            )
        else:
            report.add(
                name, "warn", f"no seizure window: dev AUROC is undefined, early stopping uses the dev loss. {detail}"
            )
    else:
        report.add(name, "ok", detail)
    return ds


def _time_steps(
    cfg: IctalConfig, train_ds: WindowDataset, device: torch.device, precision: Any, steps: int, report: PreflightReport
) -> None:
    """One checked training step on a real batch, then ``steps`` timed ones (fresh model, thrown away)."""
    from ictal.data.sampling import make_loader, make_sampler
    from ictal.models.debug import describe_non_finite
    from ictal.models.v3 import build_v3
    from ictal.train.losses import make_loss
    from ictal.train.optim import make_optimizer

    t = cfg.training
    torch.manual_seed(t.seed)
    model = build_v3(cfg.model).to(device).train()
    optimizer = make_optimizer(model, t)
    scaler = precision.make_scaler()
    loss_fn = make_loss(t)
    sampler = make_sampler(train_ds.categories, cfg.data)
    loader = make_loader(train_ds, cfg.data, batch_size=t.batch_size, sampler=sampler)
    steps_per_epoch = len(loader) if t.max_steps_per_epoch is None else min(len(loader), t.max_steps_per_epoch)
    batches = iter(loader)
    durations: list[float] = []
    windows = 0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(1 + steps):
        batch = next(batches, None)
        if batch is None:  # a tiny split: go round again
            batches = iter(loader)
            batch = next(batches)
        x = batch["x"].to(device)  # (B, 19, L) z-units at 256 Hz
        y = batch["y_frames"].to(device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        with precision.autocast():
            logits = model(x)
        loss = loss_fn(logits, y, None)
        if not torch.isfinite(loss):
            problem = describe_non_finite(x)
            where = f"the input batch is not finite ({problem})" if problem else "ICTAL_NAN_DEBUG=1 names the module"
            report.add("forward/backward", "fail", f"non-finite loss on the first batch: {where}")
            return
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        bad = [n for n, p in model.named_parameters() if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
        no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
        if bad and scaler is None:
            report.add("forward/backward", "fail", f"non-finite gradients in {len(bad)} tensor(s), first {bad[0]}")
            return
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - t0
        if i == 0:
            unused = f"; {len(no_grad)} parameter tensor(s) got no gradient (first {no_grad[0]})" if no_grad else ""
            report.add(
                "forward/backward",
                "ok" if not no_grad else "warn",
                f"one step on a real batch of {x.shape[0]} x {tuple(x.shape[1:])}: loss {float(loss.detach()):.4f}, "
                f"finite gradients, {elapsed:.2f} s (first step, includes start-up){unused}",
            )
        else:
            durations.append(elapsed)
            windows += int(x.shape[0])
    if not durations:
        return
    step_s = sum(durations) / len(durations)
    rate = windows / sum(durations)
    epoch_s = step_s * steps_per_epoch
    report.figures.update(
        {
            "windows_per_s": rate,
            "step_s": step_s,
            "steps_per_epoch": steps_per_epoch,
            "epoch_s": epoch_s,
            "run_s": epoch_s * t.epochs,
            "peak_rss_mb": peak_rss_mb(),
        }
    )
    memory = f"peak RSS {peak_rss_mb():.0f} MiB"
    if device.type == "cuda":
        gpu_mb = torch.cuda.max_memory_allocated(device) / 2**20
        report.figures["peak_gpu_mb"] = gpu_mb
        memory += f", peak GPU memory {gpu_mb:.0f} MiB"
    from ictal.train.progress import format_duration

    report.add(
        "throughput",
        "ok",
        f"{rate:.2f} windows/s ({step_s:.2f} s per step of {t.batch_size}, mean of {len(durations)}); epoch of "
        f"{steps_per_epoch} steps ~{format_duration(epoch_s)}, {t.epochs} epochs "
        f"~{format_duration(epoch_s * t.epochs)} on one process (divide by the number of GPUs under DDP); {memory}",
    )


def run_preflight(cfg: IctalConfig, *, steps: int = 2) -> PreflightReport:
    """Run every check (see the module docstring) on ``cfg``; ``steps`` timed training steps after the first.

    Never raises for a problem it checks: each becomes a ``fail`` line. Checks that need an earlier one
    (the forward pass needs the cache) are skipped when it failed.
    """
    from ictal.config.schema import check_config_paths
    from ictal.data.cache import CacheParams, check_cache
    from ictal.data.sampling import make_sampler
    from ictal.devices import resolve_device
    from ictal.models.mamba.mamba2 import mamba_backend
    from ictal.train.precision import resolve_precision
    from ictal.train.trainer import default_run_dir

    report = PreflightReport()
    t = cfg.training
    if t.num_threads is not None:
        torch.set_num_threads(t.num_threads)
    problems = check_config_paths(cfg)
    report.add("config", "fail" if problems else "ok", "; ".join(problems) if problems else "valid")
    if cfg.data.cache_dir is None:
        report.add("cache", "fail", "data.cache_dir is not set; set it to the folder `ictal build-cache` wrote")
        return report
    try:
        check_cache(cfg.data.cache_dir, CacheParams.from_configs(cfg.preprocess, cfg.data))
    except IctalError as exc:
        report.add("cache", "fail", str(exc))
        return report
    report.add("cache", "ok", f"{cfg.data.cache_dir}: built with this config's preprocessing, labels and dtype")
    train_ds = _windows(cfg, "train", report, need_seizure=True)
    _windows(cfg, "dev", report, need_seizure=False)
    _check_splits(cfg, report)
    if train_ds is not None and report.status_of("train windows") != "fail":
        try:
            sampler = make_sampler(train_ds.categories, cfg.data)
            report.add("sampler", "ok", sampler.describe())
        except IctalError as exc:
            report.add("sampler", "fail", str(exc))
    try:
        device = resolve_device(t.device)
        precision = resolve_precision(t.mixed_precision, device)
    except IctalError as exc:
        report.add("device", "fail", str(exc))
        return report
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} CPU threads"
    report.add("device", "ok", f"{device} ({name}); Mamba: {mamba_backend(device)}")
    report.add("precision", "ok", precision.describe())
    report.figures.update({"device": str(device), "precision": precision.name})
    run_dir = default_run_dir(cfg)
    existing = next(p for p in (run_dir.absolute(), *run_dir.absolute().parents) if p.exists())
    if existing.is_dir() and os.access(existing, os.W_OK | os.X_OK):
        report.add("run folder", "ok", f"{run_dir} can be written ({existing} is writable)")
    else:
        report.add(
            "run folder", "fail", f"{run_dir}: {existing} is not a writable folder; set training.run_dir or --run-dir"
        )
    if train_ds is None or not report.ok:
        report.add("forward/backward", "fail", "skipped: an earlier check failed")
        return report
    try:
        _time_steps(cfg, train_ds, device, precision, max(1, steps), report)
    except torch.OutOfMemoryError as exc:
        report.add("forward/backward", "fail", f"out of memory: lower training.batch_size or data.window_s ({exc})")
    except (IctalError, RuntimeError) as exc:
        report.add("forward/backward", "fail", f"{type(exc).__name__}: {exc}")
    return report
