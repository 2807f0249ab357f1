"""The training loop: balanced windows, focal loss, AdamW, warm-up + cosine, mixed precision,
non-finite steps skipped and diagnosed, validation and early stopping, atomic checkpoints, exact resume, DDP.

>>> cfg = load_config("configs/smoke.yaml")
>>> result = Trainer(cfg).fit()                  # or train(cfg, resume=True)
>>> result.best_checkpoint                       # runs/smoke/best.pt -> ictal.train.checkpoint.load_model

One optimizer step per batch of ``training.batch_size`` windows per rank. Started by ``torchrun`` with several
processes, each trains on its shard of every epoch inside ``DistributedDataParallel`` and only rank 0 writes
files. Everything a run needs to continue exactly is in ``last.pt``: ``Trainer(cfg, resume=True)`` picks it up
in the run folder and, in deterministic CPU mode, ends with the same weights as a run never interrupted.

Files in the run folder (rank 0): ``config.yaml`` (the effective config), ``run.json`` (device, precision,
Mamba path, world size, versions), ``last.pt``, ``best.pt``, ``epoch_NNN.pt`` (``save_every_epochs``),
``history.json`` (one row per validation) and ``tensorboard/``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ictal.config.env import SANITIZE_GRADS, env_flag
from ictal.config.schema import IctalConfig, with_overrides
from ictal.data.sampling import LOADER_TIMEOUT_S, EpochSampler, make_loader, make_sampler
from ictal.data.windows import WindowDataset
from ictal.errors import IctalError
from ictal.io.atomic import write_text_atomic
from ictal.io.json_files import write_json_atomic
from ictal.models.debug import NonFiniteError, describe_non_finite, detect_non_finite
from ictal.models.mamba.mamba2 import mamba_backend
from ictal.models.v3 import V3Detector, build_v3
from ictal.provenance import training_facts
from ictal.train.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from ictal.train.distributed import DistContext, init_distributed
from ictal.train.losses import make_loss
from ictal.train.optim import WarmupCosineSchedule, make_optimizer
from ictal.train.precision import Precision, resolve_precision
from ictal.train.progress import ProgressReporter, StepInfo
from ictal.train.validation import EarlyStopping, FrameValidator, ValidationContext, Validator

if TYPE_CHECKING:
    from torch.utils.data import DataLoader

log = logging.getLogger("ictal.train")


class TrainingDivergedError(IctalError):
    """Too many non-finite steps in a row; ``module`` names the first module with a non-finite output when the
    diagnosis found one."""

    def __init__(self, message: str, module: str | None = None) -> None:
        self.module = module
        super().__init__(message)


def sanitize_grads_enabled(config_flag: bool) -> bool:
    """Whether gradients are sanitised now: ``ICTAL_SANITIZE_GRADS`` (or ``BGB_SANITIZE_GRADS``) overrides the
    config."""
    return env_flag(SANITIZE_GRADS, config_flag)


def default_run_dir(cfg: IctalConfig) -> Path:
    """``training.run_dir``, else ``runs/<name>``."""
    return Path(cfg.training.run_dir) if cfg.training.run_dir is not None else Path("runs") / cfg.name


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002  (code outside ictal may draw from the legacy global)
    torch.manual_seed(seed)


def configure_determinism(deterministic: bool, device: torch.device) -> None:
    """Deterministic kernels when asked (``training.deterministic``); cuDNN autotuning otherwise on CUDA."""
    if deterministic:
        if device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic cuBLAS
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


class TrainCallback:
    """Hooks into the loop (subclass and override). Called on every rank."""

    def on_batch_start(self, trainer: Trainer, batch: dict[str, Any]) -> None:
        """Before the forward pass; may change ``batch`` in place."""

    def on_step_end(self, trainer: Trainer, info: StepInfo) -> None:
        """After the batch (and after ``last.pt`` when one was due at this step)."""


@dataclasses.dataclass
class TrainResult:
    """How a run ended. ``stopped``: ``completed``, ``max_steps``, ``early_stopping`` or ``time_budget``."""

    run_dir: Path
    last_checkpoint: Path
    best_checkpoint: Path | None
    epochs_completed: int
    steps: int
    stopped: str
    best_monitor: float
    monitor_name: str
    history: list[dict[str, Any]]
    nonfinite_steps: int
    device: str
    precision: str
    world_size: int


@dataclasses.dataclass
class Counters:
    """Skipped-step counts and the epoch's running loss, saved in checkpoints (so a resumed epoch's
    ``train_loss`` averages every batch of the epoch, as an uninterrupted run's does)."""

    nonfinite_total: int = 0
    nonfinite_consecutive: int = 0
    fp16_overflow: int = 0
    #: Steps whose non-finite gradients ``sanitize_grads`` zeroed.
    sanitized_steps: int = 0
    epoch_loss_sum: float = 0.0
    epoch_loss_batches: int = 0


class LoaderError(IctalError):
    """The data loader's workers stopped delivering batches."""


def next_batch(batches: Iterator[dict[str, Any]], num_workers: int) -> dict[str, Any] | None:
    """The next batch, None at the end of the epoch; a loader whose workers went silent is one line that says what
    to try (PyTorch raises a bare RuntimeError after its timeout)."""
    try:
        return next(batches, None)
    except RuntimeError as exc:
        if "timed out" not in str(exc):
            raise
        raise LoaderError(
            f"the data loader's {num_workers} worker(s) delivered no batch for {LOADER_TIMEOUT_S:g} s ({exc}); "
            "rerun with data.num_workers: 0 to see the underlying error in the main process"
        ) from None


class Trainer:
    """Trains ``cfg.model`` on the cached ``train`` split and validates on ``dev``.

    Args:
        cfg: the whole config (``training``, ``data``, ``model``, ``preprocess`` sections are used).
        run_dir: where checkpoints and logs go (default: ``training.run_dir``, else ``runs/<name>``).
        resume: continue from ``run_dir/last.pt`` exactly where it stopped.
        train_dataset: the training windows (default: ``WindowDataset.from_config(cfg, "train")``).
        validator: scores dev (default: :class:`~ictal.train.validation.FrameValidator`); see
            :class:`~ictal.train.validation.Validator` to plug in another one.
        callbacks: :class:`TrainCallback` hooks.
        progress: show a progress bar (default: when stderr is a terminal); heartbeat lines otherwise.
    """

    def __init__(
        self,
        cfg: IctalConfig,
        *,
        run_dir: str | Path | None = None,
        resume: bool = False,
        train_dataset: WindowDataset | None = None,
        validator: Validator | None = None,
        callbacks: Sequence[TrainCallback] = (),
        progress: bool | None = None,
    ) -> None:
        self.run_dir = Path(run_dir) if run_dir is not None else default_run_dir(cfg)
        # The effective config (with the resolved run folder) is the one stored in every checkpoint.
        self.cfg = with_overrides(cfg, {"training.run_dir": str(self.run_dir)})
        self.resume = resume
        self.callbacks = list(callbacks)
        self._train_dataset = train_dataset
        self._validator = validator
        self._progress_flag = progress
        # Set up in fit():
        self.dist = DistContext()
        self.device = torch.device("cpu")
        self.epoch = 0  # the epoch in progress (0-based)
        self.epoch_step = 0  # batches done in it
        self.samples_in_epoch = 0  # windows done in it on this rank
        self.step = 0  # batches done in the run
        self.counters = Counters()
        self.history: list[dict[str, Any]] = []
        self.last_metrics: dict[str, float] = {}
        self._nonfinite_where = "loss"  # what was non-finite at the last skipped step (for the diagnosis)

    # ----------------------------------------------------------------------------------------------- setup

    def _setup(self) -> None:
        t = self.cfg.training
        self.dist, self.device = init_distributed(t.device)
        earlier = self.dist.is_main and (self.run_dir / "last.pt").is_file()
        if not self.resume and self.dist.any(earlier, self.device):
            # Every rank raises (rank 0 alone sees rank 0's disk): none is left waiting in a collective.
            raise CheckpointError(
                f"{self.run_dir} already holds last.pt from an earlier run; continue it with --resume, or start a "
                "new run in another folder (--run-dir / training.run_dir) or after moving that one away"
            )
        if t.num_threads is not None:
            torch.set_num_threads(t.num_threads)
        configure_determinism(t.deterministic, self.device)
        self.precision: Precision = resolve_precision(t.mixed_precision, self.device)
        seed_everything(t.seed)  # the same initial weights on every rank
        self.model: V3Detector = build_v3(self.cfg.model).to(self.device)
        self.train_dataset = self._train_dataset or WindowDataset.from_config(self.cfg, "train")
        self.sampler: EpochSampler = make_sampler(
            self.train_dataset.categories, self.cfg.data, rank=self.dist.rank, world_size=self.dist.world_size
        )
        self.loader: DataLoader[Any] = make_loader(
            self.train_dataset,
            self.cfg.data,
            batch_size=t.batch_size,
            sampler=self.sampler,
            pin_memory=self.device.type == "cuda",
        )
        # A private generator for worker seeds: creating an iterator then leaves the global RNG alone.
        self.loader.generator = torch.Generator().manual_seed(t.seed)
        self.loss_fn = make_loss(t)
        self.validator: Validator = self._validator or self._default_validator()
        self.steps_per_epoch = len(self.loader)
        if t.max_steps_per_epoch is not None:
            self.steps_per_epoch = min(self.steps_per_epoch, t.max_steps_per_epoch)
        self.optimizer = make_optimizer(self.model, t)
        self.total_steps = t.epochs * self.steps_per_epoch
        if t.max_steps is not None:
            self.total_steps = min(self.total_steps, t.max_steps)
        self.schedule = WarmupCosineSchedule.from_config(self.optimizer, t, self.total_steps)
        self.scaler = self.precision.make_scaler()
        self.early_stopping = EarlyStopping(t.early_stopping_patience, t.early_stopping_min_delta)
        self._pending_rng: dict[str, Any] | None = None
        # Each rank its own dropout masks; exact resume restores every rank's generators.
        seed_everything(t.seed + 1_000_003 * self.dist.rank)
        if self.resume:
            self._load_resume_state()
        self.ddp_model: nn.Module = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp_model = DistributedDataParallel(self.model, device_ids=ids)
        self.writer: Any = None
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            effective = yaml.safe_dump(self.cfg.model_dump(mode="json"), sort_keys=False)
            write_text_atomic(self.run_dir / "config.yaml", effective)
            write_json_atomic(self.run_dir / "run.json", self._run_info())
            if t.tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.step or None)
        self._log_start()

    def _default_validator(self) -> Validator:
        """``training.validation``: events on dev (stitched OVLP sensitivity at 10 FA/24h), else frame level."""
        from ictal.data.cache import list_cached
        from ictal.train.event_validation import EventValidator

        if self.cfg.training.validation == "events" and self.cfg.data.cache_dir is not None:
            dev, _problems = list_cached(self.cfg.data.cache_dir, "dev")
            if any(r.seizure_intervals for r in dev):
                return EventValidator(self.cfg)
            log.warning("validation: the dev split holds no seizure; scoring frames (loss) instead of events")
        return FrameValidator.from_config(self.cfg, self.loss_fn)

    def _run_info(self) -> dict[str, Any]:
        facts = training_facts(self.model, self.precision.name, self.device, self.dist.world_size)
        return {
            "name": self.cfg.name,
            **facts,
            "device_name": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu",
            "precision_requested": self.precision.requested,
            "backend": self.dist.backend,
            "threads": torch.get_num_threads(),
            "deterministic": self.cfg.training.deterministic,
            "resumed_from_step": self.step if self.resume else None,
            "started": facts["created"],
        }

    def _log_start(self) -> None:
        if not self.dist.is_main:
            return
        t = self.cfg.training
        groups = self.optimizer.param_groups
        n_params = sum(p.numel() for p in self.model.parameters())
        log.info("run folder: %s%s", self.run_dir, f" (resumed at epoch {self.epoch + 1}, step {self.step})"
                 if self.resume else "")  # fmt: skip
        log.info(
            "device: %s x %d process(es)%s; %s; Mamba: %s; %d threads per process",
            self.device, self.dist.world_size, f" ({self.dist.backend})" if self.dist.enabled else "",
            self.precision.describe(), mamba_backend(self.model), torch.get_num_threads(),
        )  # fmt: skip
        log.info("training windows: %s", self.train_dataset.describe())
        describe = getattr(self.validator, "describe", None)
        log.info("%s", describe() if callable(describe) else f"validation: {type(self.validator).__name__}")
        log.info(
            "model: V3 preset %s, %s parameters; AdamW lr %g, weight decay %g on %d tensors, none on %d "
            "(norms, biases, A_log, D, dt_bias); loss %s; %d steps per epoch x %d epochs, %d warm-up",
            self.cfg.model.preset, f"{n_params:,}", t.learning_rate, t.weight_decay, len(groups[0]["params"]),
            len(groups[1]["params"]), t.loss + (f" (alpha {t.focal_alpha}, gamma {t.focal_gamma})"
                                                 if t.loss == "focal" else ""),
            self.steps_per_epoch, t.epochs, self.schedule.warmup_steps,
        )  # fmt: skip

    # ----------------------------------------------------------------------------------------------- resume

    def _load_resume_state(self) -> None:
        path = self.run_dir / "last.pt"
        if not path.is_file():
            raise CheckpointError(
                f"--resume: no last.pt in {self.run_dir}; start without --resume, or point --run-dir "
                "(training.run_dir) at the folder of the run to continue"
            )
        state = load_checkpoint(path, map_location=self.device)
        needed = ("optimizer", "schedule", "sampler", "early_stopping", "counters", "rng")
        missing = [k for k in needed if k not in state]
        if missing:
            raise CheckpointError(f"{path}: has no {', '.join(missing)}: not a checkpoint to resume from")
        saved_model = state["config"].get("model")
        if saved_model != self.cfg.model_dump(mode="json")["model"]:
            raise CheckpointError(
                f"{path}: its model section differs from this config's; resume with the config the run started "
                f"with ({self.run_dir / 'config.yaml'})"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.sampler.load_state_dict(state["sampler"])
        self.early_stopping.load_state_dict(state["early_stopping"])
        self.counters = Counters(**state["counters"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.epoch_step, self.samples_in_epoch = int(state["epoch_step"]), int(state["samples_in_epoch"])
        self.history = list(state.get("history", []))
        self.last_metrics = dict(state.get("metrics", {}))
        rngs = state["rng"]
        self._pending_rng = rngs[self.dist.rank % len(rngs)]  # restored after the epoch's loader iterator exists

    # ----------------------------------------------------------------------------------------------- checkpoints

    def _state(self, kind: str, rng: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "kind": kind,
            **training_facts(self.model, self.precision.name, self.device, self.dist.world_size),
            "config": self.cfg.model_dump(mode="json"),
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "epoch": self.epoch,
            "step": self.step,
            "epoch_step": self.epoch_step,
            "samples_in_epoch": self.samples_in_epoch,
            "metrics": dict(self.last_metrics),
            "monitor_name": self.validator.monitor_name,
            "history": list(self.history),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "sampler": self.sampler.state_dict(consumed=self.samples_in_epoch),
            "early_stopping": self.early_stopping.state_dict(),
            "counters": dataclasses.asdict(self.counters),
            "rng": rng,
        }

    def save(self, kinds: Sequence[str]) -> list[Path]:
        """Write checkpoints ``kinds`` (``last``, ``best``, ``epoch``) of the current state. Called on every rank
        (the RNG states of all ranks are gathered); rank 0 writes."""
        rng = self.dist.gather_objects(capture_rng_state())
        if not self.dist.is_main:
            return []
        paths = []
        for kind in kinds:
            name = f"epoch_{self.epoch:03d}.pt" if kind == "epoch" else f"{kind}.pt"
            paths.append(save_checkpoint(self.run_dir / name, self._state(kind, rng)))
        return paths

    # ----------------------------------------------------------------------------------------------- one step

    def _first_nonfinite_grad(self) -> str | None:
        for name, p in self.model.named_parameters():
            if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
                return name
        return None

    def train_step(self, batch: dict[str, Any]) -> StepInfo:
        """One batch: forward under autocast, loss check, backward, sanitise/clip, optimizer step (or skip)."""
        t = self.cfg.training
        x = batch["x"].to(self.device, non_blocking=True)  # (B, 19, L) z-units at 256 Hz
        y = batch["y_frames"].to(self.device, non_blocking=True)  # (B, L // 16) frame labels
        lr = self.schedule.get_last_lr()[0]
        with self.precision.autocast():
            logits = self.ddp_model(x)  # (B, F)
        loss = self.loss_fn(logits, y, None)
        loss_value = float(loss.detach())
        skipped: str | None = None
        grad_norm = float("nan")
        # The loss is checked before backward; every rank must take the same branch (DDP all-reduces grads).
        if self.dist.any(not math.isfinite(loss_value), self.device):
            skipped = "nonfinite_loss"
            self._nonfinite_where = "loss" if not math.isfinite(loss_value) else "loss on another rank"
        else:
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.unscale_(self.optimizer)
            else:
                loss.backward()
            if sanitize_grads_enabled(t.sanitize_grads):
                repaired = False
                for p in self.model.parameters():
                    if p.grad is not None:
                        repaired = repaired or not bool(torch.isfinite(p.grad).all())
                        torch.nan_to_num_(p.grad, nan=0.0, posinf=0.0, neginf=0.0)
                if repaired:  # counted and said once: a repaired step is a problem hidden, not solved
                    self.counters.sanitized_steps += 1
                    if self.counters.sanitized_steps == 1:
                        log.warning(
                            "step %d: non-finite gradients zeroed (training.sanitize_grads / %s); the repaired "
                            "steps are counted in history.json as sanitized_steps",
                            self.step + 1,
                            SANITIZE_GRADS.name,
                        )
            grads = [p.grad for p in self.model.parameters() if p.grad is not None]
            norm = torch.nn.utils.get_total_norm(grads)
            grad_norm = float(norm)
            if not math.isfinite(grad_norm) and self.scaler is None:
                # Named before clipping, which would spread the NaN into every gradient.
                self._nonfinite_where = f"gradient of {self._first_nonfinite_grad()}"
            if t.grad_clip is not None:
                torch.nn.utils.clip_grads_with_norm_(self.model.parameters(), t.grad_clip, norm)
            if self.scaler is not None:
                scale = self.scaler.get_scale()
                self.scaler.step(self.optimizer)  # skips the update itself when the grads overflowed
                self.scaler.update()
                if self.scaler.get_scale() < scale:
                    skipped = "fp16_overflow"
            elif math.isfinite(grad_norm):
                self.optimizer.step()
            else:
                skipped = "nonfinite_grad"
        self.optimizer.zero_grad(set_to_none=True)
        if skipped in ("nonfinite_loss", "nonfinite_grad"):
            self.counters.nonfinite_total += 1
            self.counters.nonfinite_consecutive += 1
        else:
            self.counters.nonfinite_consecutive = 0
            if skipped == "fp16_overflow":
                self.counters.fp16_overflow += 1
        self.schedule.step()
        self.step += 1
        self.epoch_step += 1
        self.samples_in_epoch += int(x.shape[0])
        info = StepInfo(self.epoch, self.step, self.epoch_step, loss_value, grad_norm, lr, int(x.shape[0]), skipped)
        if skipped in ("nonfinite_loss", "nonfinite_grad"):
            log.warning(
                "step %d: non-finite %s, step skipped (%d in a row, %d in the run; the run stops at %d in a row)",
                self.step, self._nonfinite_where, self.counters.nonfinite_consecutive,
                self.counters.nonfinite_total, t.max_nonfinite_steps,
            )  # fmt: skip
            if self.counters.nonfinite_consecutive >= t.max_nonfinite_steps:
                raise self.diagnose(batch)
        return info

    def diagnose(self, batch: dict[str, Any]) -> TrainingDivergedError:
        """Why the last step was non-finite: bad input, the first module with a non-finite output (one forward
        pass with the NaN hooks of :mod:`ictal.models.debug`), or gradients; with what to do about it."""
        t = self.cfg.training
        x = batch["x"].to(self.device)
        advice = (
            "What to do: lower training.learning_rate, train in full precision (training.mixed_precision: no), "
            f"check the cache with `ictal scan-cache --cache-dir {self.cfg.data.cache_dir}`, or for NaN gradients "
            f"set training.sanitize_grads: true ({SANITIZE_GRADS.name}=1); resume from last.pt with --resume"
        )
        head = (
            f"{self.counters.nonfinite_consecutive} non-finite steps in a row "
            f"(training.max_nonfinite_steps {t.max_nonfinite_steps})"
        )
        problem = describe_non_finite(x)
        if problem is not None:
            recs = sorted({self.train_dataset.recordings[int(r)].bname for r in batch["recording"]})
            return TrainingDivergedError(
                f"{head}: the input windows are not finite ({problem}; recordings {', '.join(recs)}). {advice}",
                module="(input)",
            )
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad(), self.precision.autocast(), detect_non_finite(self.model):
                self.model(x)
        except NonFiniteError as exc:
            return TrainingDivergedError(
                f"{head}: first non-finite module {exc.module!r} ({exc.kind}): {exc.detail}. {advice}",
                module=exc.module,
            )
        finally:
            self.model.train(was_training)
        where = getattr(self, "_nonfinite_where", "loss")
        return TrainingDivergedError(
            f"{head}: every module's output is finite on this batch in eval mode; the non-finite value was the "
            f"{where} (dropout, the loss or the backward pass). {advice}",
            module=None,
        )

    # ----------------------------------------------------------------------------------------------- validation

    def validate(self, epoch: int) -> dict[str, float]:
        """Run the validator on every rank after (part of) 0-based ``epoch``; rank 0's metrics, everywhere."""
        ctx = ValidationContext(
            device=self.device,
            precision=self.precision,
            dist=self.dist,
            batch_size=self.cfg.training.batch_size,
            epoch=epoch,
            step=self.step,
        )
        t0 = time.monotonic()
        was_training = self.model.training
        self.model.eval()
        try:
            metrics = self.validator(self.model, ctx)
        finally:
            self.model.train(was_training)
        metrics = self.dist.broadcast_object(metrics, self.device)
        if "monitor" not in metrics:
            raise ValueError(f"validator {type(self.validator).__name__} returned no 'monitor' metric: {metrics}")
        self.last_metrics = {k: float(v) for k, v in metrics.items()}
        return self.last_metrics | {"val_s": time.monotonic() - t0}

    # ----------------------------------------------------------------------------------------------- the loop

    def fit(self) -> TrainResult:
        """Train until the epochs or ``max_steps`` are done, early stopping, or ``max_minutes``; returns how."""
        self._setup()
        progress = ProgressReporter(
            total_steps=self.total_steps,
            done_steps=self.step,
            steps_per_epoch=self.steps_per_epoch,
            epochs=self.cfg.training.epochs,
            windows_per_step=self.cfg.training.batch_size * self.dist.world_size,
            every_s=self.cfg.training.log_every_s,
            interactive=self._progress_flag if self._progress_flag is not None else sys.stderr.isatty(),
            enabled=self.dist.is_main,
        )
        try:
            stopped = self._loop(progress)
        finally:
            progress.close()
            if self.writer is not None:
                self.writer.close()
        self._check_replicas()
        best = self.run_dir / "best.pt"
        return TrainResult(
            run_dir=self.run_dir,
            last_checkpoint=self.run_dir / "last.pt",
            best_checkpoint=best if best.is_file() else None,
            epochs_completed=self.epoch,
            steps=self.step,
            stopped=stopped,
            best_monitor=self.early_stopping.best,
            monitor_name=self.validator.monitor_name,
            history=self.history,
            nonfinite_steps=self.counters.nonfinite_total,
            device=str(self.device),
            precision=self.precision.name,
            world_size=self.dist.world_size,
        )

    def _loop(self, progress: ProgressReporter) -> str:
        t = self.cfg.training
        started = time.monotonic()
        budget_s = t.max_minutes * 60.0 if t.max_minutes is not None else None
        c = self.counters
        stopped = "completed"
        if self.early_stopping.should_stop:
            return "early_stopping"  # a resumed run that had already stopped
        if self.step >= self.total_steps:
            return "max_steps" if self.epoch < t.epochs else "completed"  # a resumed run that had already ended
        while self.epoch < t.epochs:
            self.sampler.set_epoch(self.epoch)
            self.ddp_model.train()
            batches = iter(self.loader)
            if self._pending_rng is not None:
                restore_rng_state(self._pending_rng)
                self._pending_rng = None
            out_of_time = at_max_steps = False
            while self.epoch_step < self.steps_per_epoch:
                batch = next_batch(batches, self.cfg.data.num_workers)
                if batch is None:
                    break
                for cb in self.callbacks:
                    cb.on_batch_start(self, batch)
                info = self.train_step(batch)
                if info.skipped is None or info.skipped == "fp16_overflow":
                    c.epoch_loss_sum, c.epoch_loss_batches = c.epoch_loss_sum + info.loss, c.epoch_loss_batches + 1
                # Mid-epoch resume points; the epoch's end writes its own.
                mid_epoch = self.epoch_step < self.steps_per_epoch
                if t.checkpoint_every and self.step % t.checkpoint_every == 0 and mid_epoch:
                    self.save(["last"])
                self._log_step(info)
                progress.update(info, self.counters.nonfinite_total)
                for cb in self.callbacks:
                    cb.on_step_end(self, info)
                if self.step >= self.total_steps:
                    at_max_steps = True
                    break
                if budget_s is not None and self.dist.any(time.monotonic() - started > budget_s, self.device):
                    out_of_time = True
                    break
            cut_short = out_of_time or at_max_steps
            epoch_done = not cut_short or self.epoch_step >= self.steps_per_epoch
            finished_epoch = self.epoch
            if epoch_done:
                self.epoch += 1
                self.epoch_step, self.samples_in_epoch = 0, 0
            due = epoch_done and (self.epoch % t.val_every == 0 or self.epoch == t.epochs)
            kinds = ["last"]
            if due or cut_short:
                metrics = self.validate(finished_epoch)
                improved = self.early_stopping.update(metrics["monitor"], finished_epoch)
                row = {
                    "epoch": finished_epoch + 1,
                    "epoch_complete": epoch_done,
                    "step": self.step,
                    "train_loss": c.epoch_loss_sum / c.epoch_loss_batches if c.epoch_loss_batches else float("nan"),
                    "lr": self.schedule.get_last_lr()[0],
                    "nonfinite_steps": self.counters.nonfinite_total,
                    "sanitized_steps": self.counters.sanitized_steps,
                    "best": improved,
                    **metrics,
                }
                self.history.append(row)
                c.epoch_loss_sum, c.epoch_loss_batches = 0.0, 0
                self._log_validation(row)
                if improved:
                    kinds.append("best")
            if epoch_done and t.save_every_epochs and self.epoch % t.save_every_epochs == 0:
                kinds.append("epoch")
            self.save(kinds)
            if self.dist.is_main:
                write_json_atomic(self.run_dir / "history.json", self.history)
            if self.early_stopping.should_stop:
                stopped = "early_stopping"
                log.info(
                    "early stopping: %s has not improved for %d validation(s) (best %.4f at epoch %d)",
                    self.validator.monitor_name, self.early_stopping.bad_rounds, self.early_stopping.best,
                    self.early_stopping.best_epoch + 1,
                )  # fmt: skip
                break
            if at_max_steps:
                stopped = "completed" if self.epoch >= t.epochs else "max_steps"
                log.info("training.max_steps (%d) reached at epoch %d", self.total_steps, self.epoch + 1)
                break
            if out_of_time:
                stopped = "time_budget"
                log.info(
                    "time budget of %g min used (training.max_minutes): stopped at epoch %d, step %d; continue "
                    "with --resume", t.max_minutes, self.epoch + 1, self.step,
                )  # fmt: skip
                break
        return stopped

    # ----------------------------------------------------------------------------------------------- logging

    def _log_step(self, info: StepInfo) -> None:
        if self.writer is None:
            return
        self.writer.add_scalar("train/lr", info.lr, info.step)
        if info.skipped is None:
            self.writer.add_scalar("train/loss", info.loss, info.step)
            self.writer.add_scalar("train/grad_norm", info.grad_norm, info.step)
        self.writer.add_scalar("train/nonfinite_steps", self.counters.nonfinite_total, info.step)

    def _log_validation(self, row: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        shown = ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k.startswith("dev_") and isinstance(v, float))
        log.info(
            "epoch %d%s step %d: train_loss %.4f, %s; monitor %s %.4f%s (%.1f s)",
            row["epoch"], "" if row["epoch_complete"] else " (partial)", row["step"], row["train_loss"], shown,
            self.validator.monitor_name, row["monitor"], ", new best" if row["best"] else "", row.get("val_s", 0.0),
        )  # fmt: skip
        if self.writer is not None:
            for key, value in row.items():
                if key.startswith("dev_") or key in ("monitor", "train_loss"):
                    self.writer.add_scalar(f"val/{key}", value, row["step"])
            self.writer.flush()

    def _check_replicas(self) -> None:
        """Under DDP, check that every rank ends with the same weights (they must: same start, same updates)."""
        if not self.dist.enabled:
            return
        with torch.no_grad():
            flat = torch.cat([p.detach().double().flatten() for p in self.model.parameters()])
            weights = torch.arange(1, flat.numel() + 1, dtype=torch.float64, device=flat.device)
            digest = (float(flat.sum()), float((flat * weights).sum()))
        digests = self.dist.gather_objects(digest)
        if any(d != digests[0] for d in digests):
            raise TrainingDivergedError(f"DDP replicas differ at the end of training: {digests}")
        if self.dist.is_main:
            log.info("DDP: weights identical on all %d ranks", self.dist.world_size)


def train(cfg: IctalConfig, *, resume: bool = False, run_dir: str | Path | None = None, **kwargs: Any) -> TrainResult:
    """:class:`Trainer` ``(cfg, resume=..., run_dir=..., **kwargs).fit()``."""
    return Trainer(cfg, resume=resume, run_dir=run_dir, **kwargs).fit()
