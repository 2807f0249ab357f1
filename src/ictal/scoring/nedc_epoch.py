"""NEDC EPOCH scoring: both timelines sampled every 0.25 s, a confusion matrix over the samples.

Samples at ``t = 0.125 + k * 0.25`` s for ``t <= duration``; the label at ``t`` is the first event with
``start <= t <= stop``, so a sample on a boundary belongs to the earlier event. With ``bckg`` as the null
class: SEIZ targets are reference-seizure epochs, hits both-seizure epochs, misses reference-seizure /
hypothesis-background epochs, false alarms reference-background / hypothesis-seizure epochs; BCKG has no
false alarms. The false-alarm rate is false-alarm epochs x 0.25 s / duration x 86400: seconds per day.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ictal.io.annotations import Annotation
from ictal.scoring.common import (
    SEIZ,
    IntervalList,
    NedcEvents,
    NedcResult,
    PerFileCounts,
    build_result,
    check_same_durations,
    events_from_intervals,
    events_from_pairs,
)

#: Epoch length in seconds (NEDC v6 parameter file); samples sit at the centre of each epoch.
EPOCH_S = 0.25


def epoch_times(durations: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample times on the global axis and their file index, both shape ``(sum of epochs per file,)``.

    Local times are computed first and the file offset added last, as for event times, so a sample that
    falls exactly on an event boundary compares equal to it.
    """
    half = EPOCH_S / 2.0
    n = np.floor((durations - half) / EPOCH_S).astype(np.int64) + 1
    n = np.maximum(n, 0)
    # Guard the float division at the last sample: keep exactly the k with half + k * EPOCH_S <= duration.
    n -= (n > 0) & (half + (n - 1) * EPOCH_S > durations)
    n += half + n * EPOCH_S <= durations
    file = np.repeat(np.arange(durations.size, dtype=np.int64), n)
    first = np.concatenate(([0], np.cumsum(n)[:-1])) if n.size else np.zeros(0, dtype=np.int64)
    k = np.arange(file.size, dtype=np.int64) - first[file]
    return (half + k * EPOCH_S) + offsets[file], file


def seizure_at(times: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Whether each time lies in a seizure ``(start, stop]``, shape ``times.shape``.

    The timeline alternates background and seizure and a sample on a boundary takes the earlier event, so a
    time is seizure iff the first seizure with ``stop >= t`` starts before ``t``.
    """
    idx = np.searchsorted(stop, times, side="left")
    inside = idx < start.size
    out = np.zeros(times.shape, dtype=bool)
    out[inside] = start[idx[inside]] < times[inside]
    return out


def epoch_counts(ref: NedcEvents, hyp: NedcEvents) -> PerFileCounts:
    """Per-file EPOCH counts of both labels, in epochs (columns targets, hits, misses, false alarms)."""
    times, file = epoch_times(ref.durations, ref.offsets)
    ref_seiz = seizure_at(times, *ref.global_times(SEIZ))
    hyp_seiz = seizure_at(times, *hyp.global_times(SEIZ))
    n = ref.n_files

    def per_file(mask: np.ndarray) -> np.ndarray:
        return np.bincount(file, weights=mask.astype(np.float64), minlength=n)

    both = per_file(ref_seiz & hyp_seiz)
    missed = per_file(ref_seiz & ~hyp_seiz)
    inserted = per_file(~ref_seiz & hyp_seiz)
    neither = per_file(~ref_seiz & ~hyp_seiz)
    seiz = np.stack([both + missed, both, missed, inserted], axis=1)
    bckg = np.stack([neither + inserted, neither, inserted, np.zeros(n)], axis=1)
    return PerFileCounts(seiz=seiz, bckg=bckg)


def score_epoch_events(
    ref: NedcEvents, hyp: NedcEvents, names: Sequence[tuple[str, str]] | None = None, per_file: bool = True
) -> NedcResult:
    """EPOCH on events already through the common step; ``fa_per_24h`` is false-alarm seconds per day."""
    check_same_durations(ref, hyp, names)
    counts = epoch_counts(ref, hyp)
    return build_result("epoch", counts, ref.durations, names, fa_seconds=EPOCH_S, per_file=per_file)


def score_epoch(pairs: Sequence[tuple[Annotation, Annotation]], per_file: bool = True) -> NedcResult:
    """NEDC EPOCH on (reference, hypothesis) annotation pairs; SEIZ result pooled over files."""
    ref, hyp, names = events_from_pairs(pairs)
    return score_epoch_events(ref, hyp, names, per_file)


def score_epoch_intervals(
    ref: Sequence[IntervalList], hyp: Sequence[IntervalList], durations: Sequence[float], per_file: bool = False
) -> NedcResult:
    """NEDC EPOCH on seizure ``(start, stop)`` second lists, one list per file, with each file's duration."""
    ref_ev, hyp_ev = events_from_intervals(ref, hyp, durations)
    return score_epoch_events(ref_ev, hyp_ev, per_file=per_file)
