"""NEDC TAES (time-aligned event scoring), reproducing the reference tool v6.0.0 quirks included.

Fractional credit per file and per label, walking the events after the common step in time order (the walk
is spelled out in ``scoring.md``). The quirks kept on purpose, since conformance means the same numbers:

* ``anyovlp`` compares integer-second sets, ``range(int(start), int(stop) + 1)``: looser than strict overlap,
  so a hypothesis that only shares an integer second with a reference is scored against it and can give a
  negative partial hit;
* the walk over hypotheses goes on after the reference is marked used;
* the inner loops count later events again whether or not they were already used.

Labels never interact, so each label is walked on its own events. The walk is sequential (each step reads
the flags the previous one set); it visits only the hypotheses whose integer-second span meets the
reference's, a contiguous run since events of one label are sorted and disjoint.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence

import numpy as np

from ictal.io.annotations import Annotation
from ictal.scoring.common import (
    BCKG,
    LABELS,
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
from ictal.scoring.nedc_ovlp import any_strict_overlap


def taes_part(r_start: float, r_stop: float, h_start: float, h_stop: float) -> tuple[float, float]:
    """``(hit, fa)`` credit of hypothesis ``h`` against reference ``r`` (the four cases of ``scoring.md``)."""
    dur = r_stop - r_start
    if h_start <= r_start and h_stop <= r_stop:  # pre
        return (h_stop - r_start) / dur, min(1.0, (r_start - h_start) / dur)
    if h_start >= r_start and h_stop >= r_stop:  # post
        return (r_stop - h_start) / dur, min(1.0, (h_stop - r_stop) / dur)
    if h_start < r_start and h_stop > r_stop:  # over
        return 1.0, min(1.0, (r_start - h_start + h_stop - r_stop) / dur)
    return (h_stop - h_start) / dur, 0.0  # inside


def taes_walk(
    r_start: np.ndarray, r_stop: np.ndarray, h_start: np.ndarray, h_stop: np.ndarray
) -> tuple[float, float, float]:
    """TAES ``(hit, miss, fa)`` of one label in one file.

    Args:
        r_start, r_stop: reference events of the label, seconds, shape ``(n,)``, sorted and disjoint.
        h_start, h_stop: hypothesis events of the label, seconds, shape ``(m,)``, sorted and disjoint.
    """
    n, m = r_start.size, h_start.size
    if n == 0 or m == 0:
        return 0.0, float(n), float(m)
    strict = any_strict_overlap(r_start, r_stop, h_start, h_stop).tolist()
    rs, re_, hs, he = r_start.tolist(), r_stop.tolist(), h_start.tolist(), h_stop.tolist()
    # Integer-second spans for anyovlp; times are >= 0, so int() is floor.
    ri0, ri1 = [int(x) for x in rs], [int(x) for x in re_]
    hi0, hi1 = [int(x) for x in hs], [int(x) for x in he]
    r_used, h_used = [False] * n, [False] * m
    hit = miss = fa = 0.0
    for i in range(n):
        if r_used[i] or not strict[i]:
            continue
        # Hypotheses j with anyovlp(i, j): hi1[j] >= ri0[i] and hi0[j] <= ri1[i], a contiguous run.
        for j in range(bisect_left(hi1, ri0[i]), bisect_right(hi0, ri1[i])):
            if h_used[j]:
                continue
            p_hit, p_fa = taes_part(rs[i], re_[i], hs[j], he[j])
            p_miss = 1.0 - p_hit
            r_used[i] = h_used[j] = True
            if he[j] >= re_[i]:
                # The hypothesis runs past this reference: each later reference it touches is a whole miss.
                for k in range(i + 1, bisect_right(ri0, hi1[j])):
                    if ri1[k] >= hi0[j]:
                        p_miss += 1.0
                        r_used[k] = True
            else:
                # The reference runs past this hypothesis: later hypotheses it touches add their credit.
                for k in range(j + 1, bisect_right(hi0, ri1[i])):
                    if hi1[k] >= ri0[i]:
                        k_hit, k_fa = taes_part(rs[i], re_[i], hs[k], he[k])
                        p_hit += k_hit
                        p_miss -= k_hit
                        p_fa += k_fa
                        h_used[k] = True
            hit += p_hit
            miss += p_miss
            fa += p_fa
    miss += r_used.count(False)
    fa += h_used.count(False)
    return hit, miss, fa


def taes_counts(ref: NedcEvents, hyp: NedcEvents) -> PerFileCounts:
    """Per-file TAES counts of both labels (columns targets, hits, misses, false alarms; fractional)."""
    out = {label: np.zeros((ref.n_files, 4)) for label in LABELS}
    for label in LABELS:
        r_iv, h_iv = ref.intervals(label), hyp.intervals(label)
        for f in range(ref.n_files):
            r_start, r_stop = r_iv.for_file(f)
            h_start, h_stop = h_iv.for_file(f)
            out[label][f] = (r_start.size, *taes_walk(r_start, r_stop, h_start, h_stop))
    return PerFileCounts(seiz=out[SEIZ], bckg=out[BCKG])


def score_taes_events(
    ref: NedcEvents, hyp: NedcEvents, names: Sequence[tuple[str, str]] | None = None, per_file: bool = True
) -> NedcResult:
    """TAES on events already through the common step."""
    check_same_durations(ref, hyp, names)
    return build_result("taes", taes_counts(ref, hyp), ref.durations, names, per_file=per_file)


def score_taes(pairs: Sequence[tuple[Annotation, Annotation]], per_file: bool = True) -> NedcResult:
    """NEDC TAES on (reference, hypothesis) annotation pairs; SEIZ result pooled over files."""
    ref, hyp, names = events_from_pairs(pairs)
    return score_taes_events(ref, hyp, names, per_file)


def score_taes_intervals(
    ref: Sequence[IntervalList], hyp: Sequence[IntervalList], durations: Sequence[float], per_file: bool = False
) -> NedcResult:
    """NEDC TAES on seizure ``(start, stop)`` second lists, one list per file, with each file's duration."""
    ref_ev, hyp_ev = events_from_intervals(ref, hyp, durations)
    return score_taes_events(ref_ev, hyp_ev, per_file=per_file)
