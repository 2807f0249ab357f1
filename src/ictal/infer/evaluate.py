"""Evaluate a detector on a cached split: traces, labels, thresholds, every scorer, files the NEDC tool can read.

    traces = split_traces(cache_dir, "dev", model=model)                 # or detector="line_length"
    result = evaluate_split(traces, cfg.post, cfg.szcore)               # thresholds chosen on dev
    write_evaluation(result, out_dir)                                   # results.json, hyp/ref .csv_bi, lists

Labels come from the cache (the recording's ``.csv_bi`` or ``.csv`` seizure intervals); a split with no reference
seizure at all is refused, since scoring it would say nothing (the reference system's evaluate scored every
label as 0 without noticing). Thresholds for the FA/24h targets are chosen on the split they come from (dev)
and applied unchanged elsewhere; choosing them on the evaluated split itself is labelled a leak everywhere.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ictal.data.cache import CacheParams, check_cache, list_cached
from ictal.errors import IctalError
from ictal.frames import FRAME_RATE
from ictal.infer.scorers import score_signal
from ictal.io.annotations import intervals_to_mask, term_annotation, write_annotations
from ictal.io.atomic import write_text_atomic
from ictal.io.json_files import write_json_atomic
from ictal.models.line_length import line_length_trace
from ictal.post.config import PostConfig
from ictal.post.events import SeizureEvent, detect_events, events_to_annotation
from ictal.post.thresholds import tau_off_for
from ictal.provenance import checkpoint_provenance, software_versions
from ictal.scoring.calibration import ProbabilityHistogram
from ictal.scoring.operating_points import (
    DEFAULT_TARGETS,
    SweepResult,
    choose_thresholds,
    operating_points,
    sweep_thresholds,
    target_label,
    with_threshold,
)
from ictal.scoring.szcore import SzcoreConfig

if TYPE_CHECKING:
    from ictal.config.schema import IctalConfig

SCORERS = ("ovlp", "taes", "epoch", "szcore")
#: How each scorer's figures are aggregated, printed beside every number.
AGGREGATION = {
    "ovlp": "NEDC OVLP, SEIZ, pooled over recordings",
    "taes": "NEDC TAES, SEIZ, pooled over recordings",
    "epoch": "NEDC EPOCH (0.25 s epochs), SEIZ, pooled; FA = false-alarm seconds per 24 h",
    "szcore": "SzCORE event scoring (timescoring), pooled over recordings",
}


class EvaluationError(IctalError):
    """The split cannot be evaluated as asked (no labels, no recordings, thresholds missing)."""


@dataclass
class SplitTraces:
    """One probability trace per recording of a split, with its reference seizures."""

    split: str
    detector: str
    names: list[str]
    traces: list[np.ndarray]  # each (ceil(n_samples / 16),) float32 in [0, 1], 16 Hz
    refs: list[list[tuple[float, float]]]  # seizure intervals, seconds
    durations: list[float]  # seconds

    @property
    def hours(self) -> float:
        return float(sum(self.durations) / 3600.0)

    @property
    def n_ref_seizures(self) -> int:
        return sum(len(r) for r in self.refs)


@dataclass
class EvaluationResult:
    split: str
    detector: str
    traces: SplitTraces
    sweep: SweepResult
    thresholds: dict[float, float]
    thresholds_chosen_on: str
    metrics: dict[str, Any]
    histogram: ProbabilityHistogram
    events: dict[str, list[SeizureEvent]] = field(default_factory=dict)  # at the 10 FA/24h threshold


def split_traces(
    cache_dir: str | Path,
    split: str,
    *,
    model: torch.nn.Module | None = None,
    detector: str = "model",
    window_s: float = 60.0,
    stride_s: float = 10.0,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    autocast_dtype: torch.dtype | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    expect: CacheParams | None = None,
) -> SplitTraces:
    """Run ``model`` (or the line-length baseline, ``detector="line_length"``) over every cached recording.

    Signals are memory-mapped from the cache (``(19, T)`` z-units at 256 Hz); windows of ``window_s`` every
    ``stride_s`` cover each recording, the tail included. ``progress(name, done, total)`` is called per recording.

    Args:
        expect: what the model was trained on (``CacheParams.from_configs(cfg.preprocess, cfg.data)`` of its
            checkpoint's config): a cache built otherwise (another notch, band or label source) is refused
            before any recording is scored.

    Raises:
        CacheMismatchError: the cache was built with other parameters than ``expect``, with the rebuild command.
    """
    if expect is not None:
        check_cache(cache_dir, expect)
    recordings, problems = list_cached(cache_dir, split)
    if not recordings:
        raise EvaluationError(
            f"{cache_dir}/{split}: no cached recordings"
            + (f" ({problems[0]})" if problems else "")
            + f"; build them with `ictal build-cache --cache-dir {cache_dir} --split {split}`"
        )
    if detector == "model" and model is None:
        raise ValueError("detector='model' needs a model")
    names, traces, refs, durations = [], [], [], []
    for i, rec in enumerate(recordings):
        signal = rec.signal()
        if detector == "line_length":
            trace = line_length_trace(signal, sfreq=rec.sfreq)
        else:
            # The scorer predict and stream use (continuous for a streamable model): thresholds chosen here
            # apply to their traces.
            assert model is not None
            trace = score_signal(
                model, signal, window=int(round(window_s * rec.sfreq)), stride=int(round(stride_s * rec.sfreq)),
                batch_size=batch_size, device=device, autocast_dtype=autocast_dtype,
            )  # fmt: skip
        names.append(rec.bname)
        traces.append(trace)
        refs.append([(float(a), float(b)) for a, b in rec.seizure_intervals])
        durations.append(rec.duration_s)
        if progress is not None:
            progress(rec.bname, i + 1, len(recordings))
    out = SplitTraces(split, detector, names, traces, refs, durations)
    if out.n_ref_seizures == 0:
        raise EvaluationError(
            f"{cache_dir}/{split}: the labels hold no seizure in {len(names)} recording(s); sensitivity cannot be "
            "measured. Check the annotation files (.csv_bi) and data.label_source, then rebuild the cache"
        )
    return out


def frame_histogram(traces: SplitTraces) -> ProbabilityHistogram:
    """Binned frame-level probabilities against frame labels (for AUROC and calibration)."""
    hist = ProbabilityHistogram()
    for trace, ref in zip(traces.traces, traces.refs, strict=True):
        hist.update(trace, intervals_to_mask(ref, trace.shape[0], FRAME_RATE))
    return hist


#: Upper quantiles of the pooled frame probabilities added to the sweep's grid, finer towards the top: an
#: over-confident model whose frames all sit above 0.999 still gets thresholds between its own levels.
TRACE_QUANTILES = 1.0 - np.geomspace(0.5, 1e-6, 40)
#: Frames sampled per recording for those quantiles (bounded work on long splits).
_QUANTILE_SAMPLE = 20_000


def thresholds_grid(post: PostConfig, traces: Sequence[np.ndarray] = ()) -> np.ndarray:
    """The candidate thresholds of a sweep: the fixed grid, and the upper quantiles of the traces' own values, so
    the levels the model actually takes are tried whatever its calibration. Sorted, distinct.

    At or below the hysteresis gap ``tau_off`` is 0: the whole recording is one event, which can look like a
    valid operating point on a few long recordings; those thresholds are not candidates.
    """
    from ictal.scoring.operating_points import DEFAULT_THRESHOLDS

    gap = post.tau_on - post.tau_off
    candidates = [float(t) for t in DEFAULT_THRESHOLDS]
    if len(traces):
        sample = np.concatenate([t[:: max(1, t.size // _QUANTILE_SAMPLE)].astype(np.float64) for t in traces if t.size])
        if sample.size:
            candidates += np.round(np.quantile(sample, TRACE_QUANTILES), 9).tolist()
    grid = np.unique(np.asarray(candidates))
    return grid[(grid > gap) & (tau_off_for(grid, post) > 0) & (grid <= 1.0)]


def read_thresholds(results_json: str | Path) -> tuple[dict[float, float], str]:
    """``{target: threshold}`` and the split they were chosen on, from an earlier ``results.json``."""
    path = Path(results_json)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EvaluationError(f"{path}: cannot read thresholds ({exc}); give the results.json of a dev run") from None
    out = {}
    for target in DEFAULT_TARGETS:
        key = f"threshold_at_{target_label(target)}fa"
        if key not in data:
            raise EvaluationError(f"{path}: no {key}; give the results.json written by `ictal evaluate --split dev`")
        out[float(target)] = float(data[key])
    return out, str(data.get("split", "unknown"))


def evaluate_split(
    traces: SplitTraces,
    post: PostConfig,
    szcore: SzcoreConfig | None = None,
    *,
    thresholds: Mapping[float, float] | None = None,
    thresholds_chosen_on: str | None = None,
    allow_choose_on_this_split: bool | None = None,
) -> EvaluationResult:
    """Score every threshold, pick (or apply) the operating thresholds, and gather every metric.

    Args:
        traces: from :func:`split_traces`.
        thresholds: ``{fa_target: threshold}`` chosen on another split (dev); None chooses them on this split,
            which is only allowed for ``dev`` unless ``allow_choose_on_this_split``.
        thresholds_chosen_on: the split ``thresholds`` came from (recorded in the results).
    """
    szcore = szcore or SzcoreConfig()
    sweep = sweep_thresholds(
        traces.traces,
        FRAME_RATE,
        traces.refs,
        traces.durations,
        post,
        thresholds_grid(post, traces.traces),
        SCORERS,
        szcore,
    )
    if thresholds is None:
        allowed = traces.split == "dev" if allow_choose_on_this_split is None else allow_choose_on_this_split
        if not allowed:
            raise EvaluationError(
                f"thresholds for the {traces.split} split must come from a dev run (--thresholds-from "
                "dev/results.json); choosing them on the evaluated split is a leak and needs --choose-on-split"
            )
        chosen: Mapping[float, float] = choose_thresholds(sweep, DEFAULT_TARGETS, "ovlp")
        chosen_on = traces.split if traces.split == "dev" else f"{traces.split} (chosen on the evaluated split: leak)"
    else:
        chosen = {float(k): float(v) for k, v in thresholds.items()}
        chosen_on = thresholds_chosen_on or "given"
    hist = frame_histogram(traces)
    metrics: dict[str, Any] = {
        "split": traces.split,
        "detector": traces.detector,
        "thresholds_chosen_on": chosen_on,
        "scorers": dict(AGGREGATION),
        "label": "SEIZ",
        "n_recordings": len(traces.names),
        "hours": traces.hours,
        "n_ref_seizures": traces.n_ref_seizures,
        "auroc": hist.auroc(),
        "ece": hist.ece(),
    }
    metrics.update(operating_points(sweep, chosen))
    theta10 = chosen[10.0] if 10.0 in chosen else next(iter(chosen.values()))
    events = {
        name: detect_events(trace, FRAME_RATE, with_threshold(post, theta10))
        for name, trace in zip(traces.names, traces.traces, strict=True)
    }
    return EvaluationResult(
        traces.split, traces.detector, traces, sweep, dict(chosen), chosen_on, metrics, hist, events
    )


#: The figures kept of each baseline (besides its thresholds).
_BASELINE_KEYS = ("ovlp_sensitivity_at_10fa", "ovlp_fa_per_24h_at_10fa", "szcore_sensitivity_at_10fa", "auroc")


def all_seizure_traces(traces: SplitTraces) -> SplitTraces:
    """A detector that calls everything seizure: probability 1 at every frame of the same recordings."""
    ones = [np.ones_like(t) for t in traces.traces]
    return SplitTraces(traces.split, "all_seizure", traces.names, ones, traces.refs, traces.durations)


def evaluate_baselines(
    baseline_traces: Mapping[str, SplitTraces],
    post: PostConfig,
    szcore: SzcoreConfig | None = None,
    *,
    thresholds: Mapping[str, Mapping[float, float]] | None = None,
) -> dict[str, EvaluationResult]:
    """Each baseline scored as a model would be: thresholds chosen on this split (as a dev run does), or applied
    from ``thresholds[name]`` (a dev run's ``baselines`` block); a baseline without given thresholds is chosen on
    this split whatever it is, which for a trivial detector is a fair upper bound, not a leak to worry about."""
    out = {}
    for name, traces in baseline_traces.items():
        given = (thresholds or {}).get(name)
        out[name] = evaluate_split(
            traces, post, szcore, thresholds=given, thresholds_chosen_on="dev" if given else None,
            allow_choose_on_this_split=True,
        )  # fmt: skip
    return out


def baselines_block(
    model: EvaluationResult, baselines: Mapping[str, EvaluationResult]
) -> tuple[dict[str, Any], list[str]]:
    """The ``baselines`` block of ``results.json`` and one warning per baseline the model does not beat (NEDC
    OVLP sensitivity at 10 FA/24h no higher, at no lower a false-alarm rate)."""
    block: dict[str, Any] = {}
    warnings: list[str] = []
    m = model.metrics
    for name, result in baselines.items():
        b = result.metrics
        block[name] = {
            "thresholds": {target_label(k): v for k, v in result.thresholds.items()},
            **{k: b.get(k) for k in _BASELINE_KEYS},
        }
        figures = [
            float(x) if x is not None else math.nan
            for x in (m.get("ovlp_sensitivity_at_10fa"), m.get("ovlp_fa_per_24h_at_10fa"),
                      b.get("ovlp_sensitivity_at_10fa"), b.get("ovlp_fa_per_24h_at_10fa"))
        ]  # fmt: skip
        if not all(math.isfinite(x) for x in figures):
            continue
        sens, fa, b_sens, b_fa = figures
        if sens <= b_sens and fa >= b_fa:
            warnings.append(
                f"the model does not beat the {name.replace('_', ' ')} detector on {model.split}: NEDC OVLP "
                f"sensitivity at 10 FA/24h {100 * sens:.1f} % ({fa:.2f} FA/24h) against {100 * b_sens:.1f} % "
                f"({b_fa:.2f} FA/24h); these figures cannot tell it from a trivial detector"
            )
    return block, warnings


def read_baseline_thresholds(results_json: str | Path) -> dict[str, dict[float, float]]:
    """The baselines' thresholds of a dev ``results.json`` (empty when it has none)."""
    try:
        data = json.loads(Path(results_json).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    out = {}
    for name, block in (data.get("baselines") or {}).items():
        given = block.get("thresholds") or {}
        out[name] = {float(k): float(v) for k, v in given.items()}
    return out


def write_evaluation(
    result: EvaluationResult,
    out_dir: str | Path,
    *,
    cfg: IctalConfig | None = None,
    checkpoint_meta: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``results.json``, one reference and one hypothesis ``.csv_bi`` per recording, and the list files.

    The hypotheses are the events at the 10 FA/24h threshold; ``ref.list`` / ``hyp.list`` pair them by order
    (paths relative to the list files), so ``ictal score`` or the NEDC tool can rescore them unchanged. With the
    checkpoint's ``cfg`` and ``meta`` (from :func:`~ictal.train.checkpoint.load_model`) ``results.json`` also says
    which checkpoint, trained how, was evaluated (``checkpoint``, ``checkpoint_epoch``, ``config``, ``model``);
    it always holds the software versions that evaluated it. Returns the path of ``results.json``.
    """
    out = Path(out_dir)
    (out / "ref").mkdir(parents=True, exist_ok=True)
    (out / "hyp").mkdir(parents=True, exist_ok=True)
    ref_lines, hyp_lines = [], []
    tr = result.traces
    for name, ref, duration in zip(tr.names, tr.refs, tr.durations, strict=True):
        write_annotations(out / "ref" / f"{name}.csv_bi", term_annotation(ref, duration, name))
        write_annotations(out / "hyp" / f"{name}.csv_bi", events_to_annotation(result.events[name], duration, name))
        ref_lines.append(f"ref/{name}.csv_bi")
        hyp_lines.append(f"hyp/{name}.csv_bi")
    write_text_atomic(out / "ref.list", "\n".join(ref_lines) + "\n")
    write_text_atomic(out / "hyp.list", "\n".join(hyp_lines) + "\n")
    payload = dict(result.metrics)
    payload["curves"] = {
        s: {
            "thresholds": result.sweep.thresholds.tolist(),
            "sensitivity": result.sweep.curve(s).sensitivity.tolist(),
            "fa_per_24h": result.sweep.curve(s).fa_per_24h.tolist(),
        }
        for s in SCORERS
    }
    payload["histogram"] = result.histogram.to_dict()
    if cfg is not None and checkpoint_meta is not None:
        payload["checkpoint"] = checkpoint_meta.get("path")
        payload["checkpoint_epoch"] = checkpoint_meta.get("epoch")
        payload["config"] = cfg.model_dump(mode="json")
        payload["model"] = checkpoint_provenance(cfg, checkpoint_meta, device)
    payload["software"] = software_versions()
    if extra:
        payload.update(extra)
    path = out / "results.json"
    write_json_atomic(path, payload)
    return path


def headline(metrics: Mapping[str, Any], scorers: Sequence[str] = SCORERS) -> list[tuple[str, str, str, str]]:
    """Rows ``(scorer/aggregation, target, sensitivity %, FA/24h)`` for printing."""
    rows = []
    for s in scorers:
        for target in DEFAULT_TARGETS:
            t = target_label(target)
            sens, fa = metrics.get(f"{s}_sensitivity_at_{t}fa"), metrics.get(f"{s}_fa_per_24h_at_{t}fa")
            sens_txt = "n/a" if sens is None or not math.isfinite(sens) else f"{100 * sens:.1f}"
            fa_txt = "n/a" if fa is None or not math.isfinite(fa) else f"{fa:.2f}"
            if metrics.get(f"target_met_at_{t}fa") is False:
                t += " (not met: no threshold reached it)"
            rows.append((AGGREGATION[s], t, sens_txt, fa_txt))
    return rows


def write_plots(result: EvaluationResult, out_dir: str | Path, n_timelines: int = 4) -> list[Path]:
    """``sensitivity_fa.png`` (every scorer) and timelines of a few recordings (those with seizures first)."""
    from ictal.report.plots import plot_sensitivity_fa, plot_timeline

    out = Path(out_dir)
    curves = {
        s: {"sensitivity": result.sweep.curve(s).sensitivity, "fa_per_24h": result.sweep.curve(s).fa_per_24h}
        for s in SCORERS
    }
    title = f"{result.detector} on {result.split}: thresholds chosen on {result.thresholds_chosen_on}"
    paths = [plot_sensitivity_fa(curves, out / "sensitivity_fa.png", title=title, operating=result.metrics)]
    tr = result.traces
    order = sorted(range(len(tr.names)), key=lambda i: (-len(tr.refs[i]), tr.names[i]))
    theta = result.thresholds.get(10.0)
    for i in order[:n_timelines]:
        name = tr.names[i]
        hyp = [(e.start_s, e.stop_s) for e in result.events[name]]
        paths.append(
            plot_timeline(
                tr.traces[i], FRAME_RATE, tr.refs[i], hyp, out / "timelines" / f"{name}.png",
                title=f"{name} ({result.split}): {len(tr.refs[i])} reference, {len(hyp)} detected at 10 FA/24h",
                threshold=theta,
            )
        )  # fmt: skip
    return paths
