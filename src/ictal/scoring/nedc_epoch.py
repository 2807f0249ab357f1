"""NEDC EPOCH scoring: both timelines sampled every 0.25 s, a confusion matrix over the samples.

Samples at ``t = 0.125 + k * 0.25`` s for ``t <= duration``; the label at ``t`` is the first event with
``start <= t <= stop``, so a sample on a boundary belongs to the earlier event. With ``bckg`` as the null
class: SEIZ targets are reference-seizure epochs, hits both-seizure epochs, misses reference-seizure /
hypothesis-background epochs, false alarms reference-background / hypothesis-seizure epochs; BCKG has no
false alarms. The false-alarm rate is false-alarm epochs x 0.25 s / duration x 86400: seconds per day.

The samples are counted, not drawn: the timeline alternates background and seizure and a boundary sample goes
to the earlier event, so a seizure ``(start, stop]`` holds exactly the samples ``start < t <= stop``, and the
number of samples up to a time is a floor division. In integer ticks of 1e-4 s (where sample times are exact,
1,250 + 2,500 k) every count is exact, and the cost is per event, not per 0.25 s of recording. Samples that are
seizure in both timelines are counted through the union of the two: ``both = ref + hyp - union``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ictal.io.annotations import Annotation
from ictal.scoring.common import (
    TICKS_PER_SECOND,
    IntervalList,
    Intervals,
    NedcEvents,
    NedcResult,
    PerFileCounts,
    _merge_touching,
    build_result,
    check_same_durations,
    events_from_intervals,
    events_from_pairs,
)

#: Epoch length in seconds (NEDC v6 parameter file); samples sit at the centre of each epoch.
EPOCH_S = 0.25
_EPOCH_TICKS = round(EPOCH_S * TICKS_PER_SECOND)
_HALF_TICKS = _EPOCH_TICKS // 2


def samples_up_to(ticks: np.ndarray) -> np.ndarray:
    """Number of sample times ``0.125 + k * 0.25`` s (``k >= 0``) that are ``<= t``, for ``t`` in ticks (int64)."""
    return np.maximum((np.asarray(ticks, dtype=np.int64) - _HALF_TICKS) // _EPOCH_TICKS + 1, 0)


def epoch_count(durations: np.ndarray) -> np.ndarray:
    """Number of epoch samples of each file (``t <= duration``), from durations in seconds, shape ``(F,)``."""
    return samples_up_to(_to_ticks(durations))


def _to_ticks(seconds: np.ndarray) -> np.ndarray:
    # Event times are ticks / 1e4 (common step), so this round trip is exact.
    return np.rint(np.asarray(seconds, dtype=np.float64) * TICKS_PER_SECOND).astype(np.int64)


def _seizure_samples(start: np.ndarray, stop: np.ndarray, file: np.ndarray, n_files: int) -> np.ndarray:
    """Per-file number of samples inside seizures ``(start, stop]`` (ticks, disjoint within a file), ``(F,)``."""
    inside = samples_up_to(stop) - samples_up_to(start)
    return np.bincount(file, weights=inside.astype(np.float64), minlength=n_files)


def epoch_counts(ref: NedcEvents, hyp: NedcEvents) -> PerFileCounts:
    """Per-file EPOCH counts of both labels, in epochs (columns targets, hits, misses, false alarms)."""
    n = ref.n_files

    def ticks(iv: Intervals) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _to_ticks(iv.start), _to_ticks(iv.stop), iv.file

    ref_t, hyp_t = ticks(ref.seiz), ticks(hyp.seiz)
    ref_seiz = _seizure_samples(*ref_t, n)
    hyp_seiz = _seizure_samples(*hyp_t, n)
    # Seizure in either timeline: the union of both event sets (overlapping or touching ones merged).
    union = _merge_touching(*(np.concatenate((a, b)) for a, b in zip(ref_t, hyp_t, strict=True)))
    either = _seizure_samples(*union, n)
    both = ref_seiz + hyp_seiz - either
    missed = ref_seiz - both
    inserted = hyp_seiz - both
    neither = epoch_count(ref.durations) - either
    seiz = np.stack([ref_seiz, both, missed, inserted], axis=1)
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
