"""Probability trace -> seizure events: hysteresis, morphology, durations, merging, confidence.

The pipeline, on a 1-D probability trace at ``rate`` Hz (16 Hz frames or 256 Hz samples), every size taken from
:class:`~ictal.post.config.PostConfig` in seconds and rounded to samples of the trace:

1. hysteresis: stretches of ``p >= tau_off`` that contain ``min_on_s`` at ``p >= tau_on``, dips under
   ``min_off_s`` bridged (:func:`ictal.post.runs.hysteresis_runs`);
2. opening: runs shorter than ``opening_s`` removed;
3. closing: gaps shorter than ``closing_s`` filled;
4. runs shorter than ``min_duration_s`` dropped;
5. events separated by less than ``merge_gap_s`` merged (after the duration filter, so fragments too short
   to be events on their own do not join; the merged event can be longer than its parts);
6. events longer than ``max_duration_s`` split into equal touching pieces (``long_event_policy='split'``) or
   dropped (``'drop'``); last, so merging cannot re-join the pieces. Note that NEDC scoring merges touching
   events again, so splitting changes the event list, not NEDC scores;
7. each event's confidence: mean, peak or a percentile of p over its samples.

An event covering samples ``[i0, i1)`` spans ``i0 / rate`` to ``i1 / rate`` seconds, the convention of
``ictal.io.annotations.mask_to_intervals``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ictal.io.annotations import Annotation, term_annotation
from ictal.post.config import PostConfig, validated_post_config
from ictal.post.runs import (
    Runs,
    bridge_gaps,
    drop_short_runs,
    hysteresis_runs,
    seconds_to_samples,
    split_long_runs,
)


@dataclass(frozen=True)
class SeizureEvent:
    """One detected seizure, in seconds from the start of the recording, with a confidence in [0, 1]."""

    start_s: float
    stop_s: float
    confidence: float

    @property
    def duration_s(self) -> float:
        return self.stop_s - self.start_s


def as_trace(trace: Any, what: str = "probability trace") -> np.ndarray:
    """A 1-D float array from a numpy array, list or torch tensor (any device or float dtype).

    Raises:
        ValueError: when it is not 1-D or holds NaN/Inf (naming the first bad sample).
    """
    if hasattr(trace, "detach"):  # torch without importing it: bf16/fp16 have no numpy twin
        trace = trace.detach().cpu()
        if trace.dtype.is_floating_point and trace.element_size() < 4:
            trace = trace.float()
        trace = trace.numpy()
    p = np.asarray(trace)
    if p.ndim != 1:
        raise ValueError(f"{what} must be 1-D (one recording), got shape {p.shape}")
    if not np.issubdtype(p.dtype, np.floating):
        p = p.astype(np.float64)
    bad = ~np.isfinite(p)
    if bad.any():
        raise ValueError(
            f"{what} has {int(bad.sum())} non-finite values (first at index {int(np.argmax(bad))}); "
            "the model produced NaN/Inf: run with ICTAL_NAN_DEBUG=1 to find the module"
        )
    return p


def event_runs(trace: np.ndarray, rate: float, config: PostConfig) -> Runs:
    """Steps 1-6 of the pipeline: the event runs ``(starts, stops)`` in samples of ``trace``.

    Args:
        trace: probabilities, shape ``(n,)`` at ``rate`` Hz, already checked by :func:`as_trace`.
        rate: samples per second of ``trace`` (16 for frames, 256 for samples).
        config: a validated :class:`PostConfig`.
    """
    min_on, min_off = hysteresis_samples(rate, config)
    return morphology_runs(hysteresis_runs(trace, config.tau_on, config.tau_off, min_on, min_off), rate, config)


def hysteresis_samples(rate: float, config: PostConfig) -> tuple[int, int]:
    """``(min_on, min_off)`` of step 1 in samples at ``rate`` Hz."""
    return max(1, seconds_to_samples(config.min_on_s, rate)), seconds_to_samples(config.min_off_s, rate)


def morphology_runs(runs: Runs, rate: float, config: PostConfig) -> Runs:
    """Steps 2-6 of the pipeline on hysteresis runs (samples at ``rate`` Hz): opening, closing, minimum
    duration, merging, maximum duration. The one copy of those steps, for one threshold or many
    (:mod:`ictal.post.thresholds`)."""

    def samples(seconds: float) -> int:
        return seconds_to_samples(seconds, rate)

    runs = drop_short_runs(runs, samples(config.opening_s))
    runs = bridge_gaps(runs, samples(config.closing_s))
    runs = drop_short_runs(runs, samples(config.min_duration_s))
    runs = bridge_gaps(runs, samples(config.merge_gap_s))
    max_length = max(1, samples(config.max_duration_s))
    if config.long_event_policy == "split":
        return split_long_runs(runs, max_length)
    keep = (runs[1] - runs[0]) <= max_length
    return runs[0][keep], runs[1][keep]


def run_confidences(trace: np.ndarray, runs: Runs, mode: str = "mean", percentile: float = 90.0) -> np.ndarray:
    """Per-run confidence from the trace samples inside each run, shape ``(len(runs[0]),)``, float64.

    Args:
        trace: probabilities, shape ``(n,)``.
        runs: sorted, disjoint, non-empty runs ``[start, stop)`` (they may touch).
        mode: ``mean``, ``peak`` (maximum) or ``percentile`` (numpy's linear interpolation, like
            ``np.percentile``).
    """
    starts, stops = runs
    if starts.size == 0:
        return np.zeros(0, dtype=np.float64)
    p = np.asarray(trace, dtype=np.float64)
    lengths = stops - starts
    if mode in ("mean", "peak"):
        # reduceat over [start0, stop0, start1, stop1, ...] reduces each run on its own; the even results are
        # the runs. A trailing pad makes index n valid; stop == next start (split pieces) is harmless.
        padded = np.concatenate((p, [0.0]))
        bounds = np.column_stack((starts, stops)).ravel()
        if mode == "mean":
            return np.add.reduceat(padded, bounds)[0::2] / lengths
        return np.maximum.reduceat(padded, bounds)[0::2]
    if mode != "percentile":
        raise ValueError(f"confidence mode {mode!r} is not one of 'mean', 'peak', 'percentile'")
    # All run samples at once: sort within runs (lexsort by run, then value), then interpolate like numpy.
    owner = np.repeat(np.arange(starts.size), lengths)
    offsets = np.cumsum(lengths) - lengths
    index = starts[owner] + np.arange(owner.size) - offsets[owner]
    values = p[index]
    values = values[np.lexsort((values, owner))]
    position = percentile / 100.0 * (lengths - 1)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, lengths - 1)
    frac = position - below
    lo, hi = values[offsets + below], values[offsets + above]
    # numpy's _lerp: exact at both ends.
    return np.where(frac >= 0.5, hi - (hi - lo) * (1 - frac), lo + (hi - lo) * frac)


def runs_to_events(
    trace: np.ndarray, runs: Runs, rate: float, config: PostConfig, offset: int = 0
) -> list[SeizureEvent]:
    """Events from runs of ``trace`` (samples at ``rate`` Hz); ``offset`` is the global index of ``trace[0]``."""
    conf = run_confidences(trace, runs, config.confidence, config.confidence_percentile)
    starts = (runs[0] + offset).tolist()
    stops = (runs[1] + offset).tolist()
    return [
        SeizureEvent(start / rate, stop / rate, float(c)) for start, stop, c in zip(starts, stops, conf, strict=True)
    ]


def detect_events(trace: Any, rate: float, config: PostConfig | None = None) -> list[SeizureEvent]:
    """Seizure events of one recording from its probability trace.

    Args:
        trace: per-frame or per-sample seizure probabilities, shape ``(n,)`` at ``rate`` Hz, values in [0, 1]
            (a numpy array or a torch tensor), e.g. from :func:`ictal.post.stitch.stitch_windows`.
        rate: samples per second of ``trace`` (16 for the model's frames, 256 for samples).
        config: post-processing settings; defaults to ``PostConfig()``.

    Returns:
        Events sorted by start, ``start_s``/``stop_s`` in seconds from ``trace[0]``.

    Raises:
        ValueError: for a trace that is not 1-D or not finite, or a rate that is not positive.
        pydantic.ValidationError: for a config that breaks its constraints.
    """
    if not rate > 0:
        raise ValueError(f"rate must be positive (samples per second of the trace), got {rate}")
    cfg = validated_post_config(config)
    p = as_trace(trace)
    return runs_to_events(p, event_runs(p, rate, cfg), rate, cfg)


def events_to_annotation(events: Sequence[SeizureEvent], duration: float, bname: str) -> Annotation:
    """A term-level (``.csv_bi``) annotation of ``events`` for a recording of ``duration`` seconds.

    Events are clipped to ``[0, duration]``: a frame trace can end up to one frame after the last sample, and
    NEDC requires reference and hypothesis to state the same duration. Events left empty by clipping are
    dropped. Gaps are filled with ``bckg`` rows; each ``seiz`` row carries the event's confidence.
    """
    intervals: list[tuple[float, float]] = []
    confidences: list[float] = []
    for ev in events:
        start, stop = max(0.0, ev.start_s), min(float(duration), ev.stop_s)
        if stop > start:
            intervals.append((start, stop))
            confidences.append(ev.confidence)
    return term_annotation(intervals, float(duration), bname, confidences)
