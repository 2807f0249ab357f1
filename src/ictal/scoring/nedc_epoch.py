"""NEDC EPOCH scoring: both timelines sampled every 0.25 s, a confusion matrix over the samples.

Samples at ``t = 0.125 + k * 0.25`` s for ``t <=`` the reference's scored duration; the label at ``t`` is that
of the first event in timeline order with ``start <= t <= stop`` (so a sample on a boundary belongs to the
earlier event), or of the file's last event where none holds ``t``, as in the tool. With ``bckg`` as the null
class: SEIZ targets are reference-seizure epochs, hits both-seizure epochs, misses reference-seizure /
hypothesis-background epochs, false alarms reference-background / hypothesis-seizure epochs; BCKG has no
false alarms. The false-alarm rate is false-alarm epochs x 0.25 s / duration x 86400: seconds per day.

The samples are counted, not drawn. Each timeline becomes its seizure samples as runs of sample indices
``[lo, hi)``: in a file whose events tile ``[0, end]`` in order, counted in samples (every well-formed file:
no sample time lies in a gap or in two events), a seizure ``(start, stop]`` holds the samples
``start < t <= stop``, a floor division; a file where a sample lies in overlapping events, past the duration
or in a gap (other systems' rows) is labelled sample by sample, the first event painted last. Sample times
are exact in binary, so every count is exact, and the cost is per event except in those files. Samples that
are seizure in both timelines are counted through the union of the runs: ``both = ref + hyp - union``.
"""

from __future__ import annotations

import numpy as np

from ictal.scoring.common import (
    NedcEvents,
    PerFileCounts,
)

#: Epoch length in seconds (NEDC v6 parameter file); samples sit at the centre of each epoch.
EPOCH_S = 0.25
_HALF_S = EPOCH_S / 2


def samples_up_to(seconds: np.ndarray | float) -> np.ndarray:
    """Number of sample times ``0.125 + k * 0.25`` s (``k >= 0``) that are ``<= t``, elementwise (int64)."""
    t = np.asarray(seconds, dtype=np.float64)
    k = np.floor((t - _HALF_S) / EPOCH_S)
    # The division can round across a sample time; the sample times themselves are exact, so check both sides.
    k = k - (_HALF_S + EPOCH_S * k > t)
    k = k + (_HALF_S + EPOCH_S * (k + 1) <= t)
    return np.maximum(k + 1, 0).astype(np.int64)


def samples_before(seconds: np.ndarray | float) -> np.ndarray:
    """Number of sample times ``< t``, elementwise (int64)."""
    return samples_up_to(np.nextafter(np.asarray(seconds, dtype=np.float64), -np.inf))


def epoch_count(durations: np.ndarray) -> np.ndarray:
    """Number of epoch samples of each file (``t <= duration``), from durations in seconds, shape ``(F,)``."""
    return samples_up_to(durations)


Runs = tuple[np.ndarray, np.ndarray, np.ndarray]


def seizure_sample_runs(events: NedcEvents, n_samples: np.ndarray) -> Runs:
    """The samples each file's timeline labels ``seiz``, as runs ``[lo, hi)`` of sample indices with their file.

    Args:
        events: timelines of ``F`` files.
        n_samples: samples per file, shape ``(F,)`` (the reference's, for both timelines of a pair).

    Returns:
        ``(lo, hi, file)``, int64 arrays of the same length, disjoint and in order within a file.
    """
    t = events.timeline
    n_files = events.n_files
    lo_all, hi_all = samples_up_to(t.start), samples_up_to(t.stop)
    first = np.zeros(t.start.size, dtype=bool)
    first[t.bounds[:-1][t.bounds[:-1] < t.start.size]] = True
    previous_hi = np.concatenate(([0], hi_all[:-1]))
    previous_hi[first] = 0
    # A file whose events, counted in samples, tile [0, end] in order: no sample lies in a gap or in two events.
    out_of_order = (lo_all != previous_hi) | (hi_all < lo_all)
    irregular = np.bincount(t.file, weights=out_of_order, minlength=n_files) > 0
    # There a seizure holds its samples (start, stop]; the last event also holds what lies past its stop.
    regular = events.is_seiz & ~irregular[t.file]
    lo, hi, file = lo_all[regular], hi_all[regular], t.file[regular]
    last_event = (t.bounds[1:] - 1)[file] == np.flatnonzero(regular)
    hi = np.minimum(np.where(last_event, n_samples[file], hi), n_samples[file])
    runs = [(lo, hi, file)]
    for f in np.flatnonzero(irregular).tolist():
        runs.append(_painted_runs(events, f, int(n_samples[f])))
    lo, hi, file = (np.concatenate(parts) for parts in zip(*runs, strict=True))
    keep = hi > lo
    order = np.lexsort((lo[keep], file[keep]))
    return lo[keep][order], hi[keep][order], file[keep][order]


def _painted_runs(events: NedcEvents, f: int, n_samples: int) -> Runs:
    """Seizure runs of file ``f`` labelled sample by sample: the first event that holds a sample decides it."""
    t = events.timeline
    a, b = t.bounds[f], t.bounds[f + 1]
    is_seiz = events.is_seiz[a:b]
    labels = np.full(n_samples, bool(is_seiz[-1]))  # no event holds the sample: the tool takes the last one
    lo = samples_before(t.start[a:b])
    hi = np.minimum(samples_up_to(t.stop[a:b]), n_samples)
    for i in range(b - a - 1, -1, -1):
        if hi[i] > lo[i]:
            labels[lo[i] : hi[i]] = is_seiz[i]
    edges = np.flatnonzero(np.diff(np.concatenate(([False], labels, [False])).astype(np.int8)))
    starts, stops = edges[0::2], edges[1::2]
    return starts.astype(np.int64), stops.astype(np.int64), np.full(starts.size, f, dtype=np.int64)


def _run_samples(runs: Runs, n_files: int) -> np.ndarray:
    lo, hi, file = runs
    return np.bincount(file, weights=(hi - lo).astype(np.float64), minlength=n_files)


def _union_samples(a: Runs, b: Runs, n_files: int) -> np.ndarray:
    """Per-file number of samples in the union of two sets of runs (each disjoint within a file)."""
    lo, hi, file = (np.concatenate((x, y)) for x, y in zip(a, b, strict=True))
    if lo.size == 0:
        return np.zeros(n_files)
    order = np.lexsort((lo, file))
    lo, hi, file = lo[order], hi[order], file[order]
    # Running max of stops within a file, exact in int64: a file's key range lies above every earlier file's.
    span = int(hi.max()) + 1
    reach = np.maximum.accumulate(hi + file * span) - file * span
    new_run = np.ones(lo.size, dtype=bool)
    new_run[1:] = (file[1:] != file[:-1]) | (lo[1:] > reach[:-1])
    first = np.flatnonzero(new_run)
    merged_hi = np.maximum.reduceat(hi, first)
    return np.bincount(file[first], weights=(merged_hi - lo[first]).astype(np.float64), minlength=n_files)


def epoch_counts(ref: NedcEvents, hyp: NedcEvents) -> PerFileCounts:
    """Per-file EPOCH counts of both labels, in epochs (columns targets, hits, misses, false alarms)."""
    n = ref.n_files
    n_samples = epoch_count(ref.scored_durations)
    ref_runs, hyp_runs = seizure_sample_runs(ref, n_samples), seizure_sample_runs(hyp, n_samples)
    ref_seiz, hyp_seiz = _run_samples(ref_runs, n), _run_samples(hyp_runs, n)
    either = _union_samples(ref_runs, hyp_runs, n)
    both = ref_seiz + hyp_seiz - either
    missed = ref_seiz - both
    inserted = hyp_seiz - both
    neither = n_samples - either
    seiz = np.stack([ref_seiz, both, missed, inserted], axis=1)
    bckg = np.stack([neither + inserted, neither, inserted, np.zeros(n)], axis=1)
    return PerFileCounts(seiz=seiz, bckg=bckg)
