"""NEDC TAES (time-aligned event scoring), reproducing the reference tool v6.0.0 quirks included.

Fractional credit per file and per label, walking the events after the common step in time order (the walk
is written out in :func:`taes_walk`). The quirks kept on purpose, since conformance means the same numbers:

* ``anyovlp`` compares integer-second sets, ``range(int(start), int(stop) + 1)``: looser than strict overlap,
  so a hypothesis that only shares an integer second with a reference is scored against it and can give a
  negative partial hit;
* the walk over hypotheses goes on after the reference is marked used;
* the inner loops count later events again whether or not they were already used.

Labels never interact, so each label is walked on its own events, in timeline order (overlapping rows of a
file are separate events, see ``common``). The walk is sequential (each step reads the flags the previous one
set); it visits only the events whose integer-second span meets the reference's, a contiguous run found by
bisection when the events are sorted and disjoint.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from itertools import pairwise

import numpy as np

from ictal.scoring.common import (
    BCKG,
    LABELS,
    SEIZ,
    FileScoringError,
    Intervals,
    NedcEvents,
    PerFileCounts,
    ScoringError,
    any_strict_overlap,
)


def taes_part(r_start: float, r_stop: float, h_start: float, h_stop: float) -> tuple[float, float]:
    """``(hit, fa)`` credit of hypothesis ``h`` against reference ``r`` (the four cases of the NEDC tool).

    The sums are taken in the tool's order, so the fractions agree with it to the last bit.
    """
    dur = r_stop - r_start
    if dur == 0.0:
        raise ScoringError(
            f"a zero-length reference event at {r_start} s meets a hypothesis event ({h_start}-{h_stop} s): "
            "TAES divides by the reference event's duration (the NEDC tool stops here too); remove the row"
        )
    if h_start <= r_start and h_stop <= r_stop:  # pre
        return (h_stop - r_start) / dur, min(1.0, (r_start - h_start) / dur)
    if h_start >= r_start and h_stop >= r_stop:  # post
        return (r_stop - h_start) / dur, min(1.0, (h_stop - r_stop) / dur)
    if h_start < r_start and h_stop > r_stop:  # over
        return 1.0, min(1.0, ((h_stop - r_stop) + (r_start - h_start)) / dur)
    return (h_stop - h_start) / dur, 0.0  # inside


class _SecondSpans:
    """The integer-second spans ``int(start)..int(stop)`` of one label's events in one file, for ``anyovlp``.

    Times are >= 0, so ``int()`` is floor; a span with ``stop < start`` is empty and meets nothing. When both
    ends increase along the events (sorted, disjoint events: every well-formed file), the events whose span
    meets a given one are a contiguous run found by bisection; otherwise every event is tested.
    """

    def __init__(self, start: list[float], stop: list[float]) -> None:
        self.lo = [int(x) for x in start]
        self.hi = [int(x) for x in stop]
        self.monotone = all(a <= b for a, b in pairwise(self.lo)) and all(a <= b for a, b in pairwise(self.hi))

    def meeting(self, lo: int, hi: int, after: int = -1) -> list[int]:
        """Indices ``k > after``, in order, whose span shares an integer second with ``lo..hi``."""
        if hi < lo:
            return []
        if self.monotone:
            first = max(after + 1, bisect_left(self.hi, lo))
            candidates: Iterable[int] = range(first, bisect_right(self.lo, hi))
        else:
            candidates = range(after + 1, len(self.lo))
        return [k for k in candidates if self.lo[k] <= hi and self.hi[k] >= lo and self.lo[k] <= self.hi[k]]


def taes_walk(
    r_start: np.ndarray,
    r_stop: np.ndarray,
    h_start: np.ndarray,
    h_stop: np.ndarray,
    strict: np.ndarray | None = None,
) -> tuple[float, float, float]:
    """TAES ``(hit, miss, fa)`` of one label in one file, the NEDC tool's walk.

    Args:
        r_start, r_stop: reference events of the label in timeline order, seconds, shape ``(n,)``.
        h_start, h_stop: hypothesis events of the label in timeline order, seconds, shape ``(m,)``.
        strict: whether some hypothesis strictly overlaps each reference, shape ``(n,)``, when the caller
            has it (computed here otherwise).

    Raises:
        ScoringError: a zero-length reference event meets a hypothesis event.
    """
    n, m = r_start.size, h_start.size
    if n == 0 or m == 0:
        return 0.0, float(n), float(m)
    if strict is None:
        one_file = np.zeros(n, dtype=np.int64), np.zeros(m, dtype=np.int64)
        r_iv = Intervals.grouped(r_start, r_stop, one_file[0], 1)
        strict = any_strict_overlap(r_iv, Intervals.grouped(h_start, h_stop, one_file[1], 1))
    overlapped = strict.tolist()
    rs, re_, hs, he = r_start.tolist(), r_stop.tolist(), h_start.tolist(), h_stop.tolist()
    r_spans, h_spans = _SecondSpans(rs, re_), _SecondSpans(hs, he)
    r_used, h_used = [False] * n, [False] * m
    hit = miss = fa = 0.0
    for i in range(n):
        if r_used[i] or not overlapped[i]:
            continue
        r_lo, r_hi = r_spans.lo[i], r_spans.hi[i]
        for j in h_spans.meeting(r_lo, r_hi):
            if h_used[j]:
                continue
            p_hit, p_fa = taes_part(rs[i], re_[i], hs[j], he[j])
            p_miss = 1.0 - p_hit
            r_used[i] = h_used[j] = True
            if he[j] >= re_[i]:
                # The hypothesis runs past this reference: each later reference it meets is a whole miss.
                for k in r_spans.meeting(h_spans.lo[j], h_spans.hi[j], after=i):
                    p_miss += 1.0
                    r_used[k] = True
            else:
                # The reference runs past this hypothesis: later hypotheses it meets add their credit.
                for k in h_spans.meeting(r_lo, r_hi, after=j):
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
    out = {label: taes_file_counts(ref.intervals(label), hyp.intervals(label)) for label in LABELS}
    return PerFileCounts(seiz=out[SEIZ], bckg=out[BCKG])


def taes_file_counts(ref: Intervals, hyp: Intervals) -> np.ndarray:
    """TAES counts of one label per file, shape ``(F, 4)``: targets, hits, misses, false alarms.

    Only files with events on both sides are walked; in the others every reference is a whole miss and every
    hypothesis a whole false alarm.

    Raises:
        FileScoringError: a zero-length reference event meets a hypothesis, with the file's index.
    """
    n_ref, n_hyp = ref.counts().astype(np.float64), hyp.counts().astype(np.float64)
    out = np.stack([n_ref, np.zeros_like(n_ref), n_ref, n_hyp], axis=1)
    both = np.flatnonzero((n_ref > 0) & (n_hyp > 0))
    if both.size == 0:
        return out
    strict = any_strict_overlap(ref, hyp)
    for f in both.tolist():
        try:
            walked = taes_walk(*ref.for_file(f), *hyp.for_file(f), strict=strict[ref.bounds[f] : ref.bounds[f + 1]])
        except ScoringError as exc:
            raise FileScoringError(f, str(exc)) from None
        out[f, 1:] = walked
    return out
