"""Run-length arithmetic on 1-D boolean traces: hysteresis and 1-D binary morphology without a per-sample loop.

A set of runs is a pair of int64 arrays ``(starts, stops)``, sorted, disjoint, half-open ``[start, stop)`` in
sample indices of the trace. Only :func:`runs_of` and :func:`hysteresis_runs` touch the full trace (a compare,
a diff and a nonzero); every later step works on the few runs, so a 24 h trace costs milliseconds.

1-D morphology with a flat structuring element of ``k`` samples is exact in run terms:

* opening removes the runs shorter than ``k`` and leaves the others unchanged;
* closing fills the gaps shorter than ``k`` between two runs.

Outside the trace counts as "off" for opening (a short run touching an end is removed) and gaps between a run
and an end of the trace are never filled by closing; this equals ``scipy.ndimage.binary_opening`` /
``binary_closing`` on the trace zero-padded by ``k`` on both sides, without scipy's border erosion.
"""

from __future__ import annotations

import numpy as np

Runs = tuple[np.ndarray, np.ndarray]


def seconds_to_samples(seconds: float, rate: float) -> int:
    """A duration in seconds as a whole number of samples at ``rate`` Hz (rounded to nearest)."""
    return round(seconds * rate)


def empty_runs() -> Runs:
    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)


def runs_of(mask: np.ndarray) -> Runs:
    """The runs of True in a 1-D boolean mask, shape ``(n,)``: ``(starts, stops)`` as int64 sample indices."""
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 1:
        raise ValueError(f"expected a 1-D mask, got shape {m.shape}")
    if m.size == 0:
        return empty_runs()
    # Positions where the mask changes, plus the trace ends where a run touches them, alternate start / stop.
    edges = np.flatnonzero(m[1:] != m[:-1]) + 1
    if m[0]:
        edges = np.concatenate(([0], edges))
    if m[-1]:
        edges = np.concatenate((edges, [m.size]))
    edges = edges.astype(np.int64, copy=False)
    return edges[0::2], edges[1::2]


def runs_to_mask(runs: Runs, n: int) -> np.ndarray:
    """A boolean mask of ``n`` samples, True inside the runs. Shape ``(n,)``."""
    starts, stops = runs
    delta = np.zeros(n + 1, dtype=np.int64)
    np.add.at(delta, np.minimum(starts, n), 1)
    np.add.at(delta, np.minimum(stops, n), -1)
    return np.cumsum(delta[:-1]) > 0


def drop_short_runs(runs: Runs, min_length: int) -> Runs:
    """The runs lasting at least ``min_length`` samples (a 1-D opening when ``min_length`` is the element size)."""
    starts, stops = runs
    keep = (stops - starts) >= min_length
    return starts[keep], stops[keep]


def bridge_gaps(runs: Runs, max_gap: int) -> Runs:
    """Runs with every gap shorter than ``max_gap`` samples filled (a 1-D closing with an element of that size).

    Gaps between a run and an end of the trace are not gaps here and stay unfilled.
    """
    starts, stops = runs
    if starts.size < 2 or max_gap <= 1:
        return starts, stops
    separate = (starts[1:] - stops[:-1]) >= max_gap
    new_starts = starts[np.concatenate(([True], separate))]
    new_stops = stops[np.concatenate((separate, [True]))]
    return new_starts, new_stops


def hysteresis_runs(trace: np.ndarray, tau_on: float, tau_off: float, min_on: int = 1, min_off: int = 0) -> Runs:
    """Hysteresis thresholding of a probability trace, shape ``(n,)`` at any rate, values in [0, 1].

    An event is a stretch where ``p >= tau_off`` that contains a trigger: at least ``min_on`` consecutive
    samples with ``p >= tau_on``. Dips below ``tau_off`` shorter than ``min_off`` samples are bridged first
    (the event stays on through them). The event spans the whole ``p >= tau_off`` stretch, including the rise
    before the trigger, so it is the non-causal form of "turn on at tau_on, stay on while p >= tau_off".
    NaN counts as below both thresholds.
    """
    p = np.asarray(trace)
    return hysteresis_of_runs(runs_of(p >= tau_off), runs_of(p >= tau_on), min_on, min_off)


def hysteresis_of_runs(low: Runs, high: Runs, min_on: int = 1, min_off: int = 0) -> Runs:
    """:func:`hysteresis_runs` from the runs of ``p >= tau_off`` (``low``) and of ``p >= tau_on`` (``high``).

    ``high`` must lie inside ``low`` (``tau_on >= tau_off``); the multi-threshold detection gets both from the
    level crossings of many thresholds at once.
    """
    low = bridge_gaps(low, min_off)
    high = drop_short_runs(high, max(1, min_on))
    if low[0].size == 0 or high[0].size == 0:
        return empty_runs()
    # Every trigger lies inside one low run: find it by its start.
    owner = np.searchsorted(low[0], high[0], side="right") - 1
    keep = np.zeros(low[0].size, dtype=bool)
    keep[owner] = True
    return low[0][keep], low[1][keep]


def split_long_runs(runs: Runs, max_length: int) -> Runs:
    """Runs longer than ``max_length`` samples cut into the fewest equal, touching pieces no longer than it."""
    starts, stops = runs
    lengths = stops - starts
    pieces = np.maximum(1, -(-lengths // max_length))  # ceil division
    if np.all(pieces == 1):
        return starts, stops
    owner = np.repeat(np.arange(starts.size), pieces)
    first = np.cumsum(pieces) - pieces
    index = np.arange(owner.size) - first[owner]  # piece number inside its run
    n = pieces[owner]
    # Integer boundaries start + floor(i * L / n): pieces differ by at most one sample and tile the run.
    piece_starts = starts[owner] + (index * lengths[owner]) // n
    piece_stops = starts[owner] + ((index + 1) * lengths[owner]) // n
    return piece_starts, piece_stops
