"""NEDC OVLP (any-overlap) scoring, vectorised over every event of every file.

Per label: a reference event is a hit if some hypothesis event of its label strictly overlaps it
(``hyp.stop > ref.start and hyp.start < ref.stop``), else a miss; a hypothesis event that strictly overlaps no
reference event of its label is one false alarm. No guard band. Overlapping events of one file are each scored
on their own (two overlapping hypothesis rows without a reference seizure are two false alarms).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ictal.io.annotations import Annotation
from ictal.scoring.common import (
    LABELS,
    SEIZ,
    IntervalList,
    NedcEvents,
    NedcResult,
    PerFileCounts,
    any_strict_overlap,
    build_result,
    check_same_durations,
    events_from_intervals,
    events_from_pairs,
)


def ovlp_counts(ref: NedcEvents, hyp: NedcEvents) -> PerFileCounts:
    """Per-file OVLP counts of both labels (columns targets, hits, misses, false alarms)."""
    n = ref.n_files
    out = {}
    for label in LABELS:
        r, h = ref.intervals(label), hyp.intervals(label)
        hit = any_strict_overlap(r, h)
        false_alarm = ~any_strict_overlap(h, r)
        r_file, h_file = r.file, h.file
        targets = np.bincount(r_file, minlength=n).astype(np.float64)
        hits = np.bincount(r_file, weights=hit.astype(np.float64), minlength=n)
        fas = np.bincount(h_file, weights=false_alarm.astype(np.float64), minlength=n)
        out[label] = np.stack([targets, hits, targets - hits, fas], axis=1)
    return PerFileCounts(seiz=out[SEIZ], bckg=out["bckg"])


def score_ovlp_events(
    ref: NedcEvents, hyp: NedcEvents, names: Sequence[tuple[str, str]] | None = None, per_file: bool = True
) -> NedcResult:
    """OVLP on events already through the common step (see :class:`~ictal.scoring.common.NedcEvents`)."""
    check_same_durations(ref, hyp, names)
    return build_result("ovlp", ovlp_counts(ref, hyp), ref.scored_durations, names, per_file=per_file)


def score_ovlp(pairs: Sequence[tuple[Annotation, Annotation]], per_file: bool = True) -> NedcResult:
    """NEDC OVLP on (reference, hypothesis) annotation pairs; SEIZ result pooled over files."""
    ref, hyp, names = events_from_pairs(pairs)
    return score_ovlp_events(ref, hyp, names, per_file)


def score_ovlp_intervals(
    ref: Sequence[IntervalList],
    hyp: Sequence[IntervalList],
    durations: Sequence[float],
    per_file: bool = False,
) -> NedcResult:
    """NEDC OVLP on seizure ``(start, stop)`` second lists, one list per file, with each file's duration.

    The fast path for threshold sweeps: no annotation objects, no per-file Python work beyond flattening the
    lists. To score many hypotheses against one reference, build ``NedcEvents.from_intervals(ref, durations)``
    once and call :func:`score_ovlp_events`.
    """
    ref_ev, hyp_ev = events_from_intervals(ref, hyp, durations)
    return score_ovlp_events(ref_ev, hyp_ev, per_file=per_file)
