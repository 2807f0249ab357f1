"""Post-processing at many thresholds at once: the events of every recording at each (tau_on, tau_off) pair.

The same events as :func:`ictal.post.events.detect_events` gives per recording with each pair in the config,
for all recordings and thresholds in one pass (TUSZ dev, 1,800 recordings and 435 h at 16 Hz, at ~50
thresholds in about a second), for the operating-point sweep of :mod:`ictal.scoring.operating_points`:

* every trace is mapped once to a small integer *level*: the number of distinct thresholds it reaches, so
  ``p >= tau`` becomes ``level > j`` for the index ``j`` of ``tau``; comparisons follow numpy's rules for the
  trace's own dtype, so a float32 trace thresholds exactly as ``detect_events`` thresholds it;
* all recordings' levels go on one global sample axis, separated by gaps wider than any gap post-processing
  bridges, and only the positions where the level changes are kept: the runs of ``p >= tau`` at any threshold
  start where the level steps up across ``j`` and stop where it steps down across it;
* hysteresis and the steps after it are :mod:`ictal.post.runs` and :func:`ictal.post.events.morphology_runs`,
  the single-threshold pipeline's own functions, on the runs of all recordings at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ictal.post.config import PostConfig
from ictal.post.events import hysteresis_samples, morphology_runs
from ictal.post.runs import Runs, hysteresis_of_runs, seconds_to_samples


@dataclass(frozen=True)
class HypothesisEvents:
    """The detected events of every recording at one threshold: flat arrays of shape ``(n,)``.

    ``start_s``/``stop_s`` are seconds from the start of recording ``file``, sorted by (file, start).
    """

    start_s: np.ndarray
    stop_s: np.ndarray
    file: np.ndarray

    def __len__(self) -> int:
        return int(self.start_s.size)

    def per_file(self, n_files: int) -> list[list[tuple[float, float]]]:
        """The events as one ``[(start_s, stop_s), ...]`` list per recording."""
        out: list[list[tuple[float, float]]] = [[] for _ in range(n_files)]
        for f, a, b in zip(self.file.tolist(), self.start_s.tolist(), self.stop_s.tolist(), strict=True):
            out[f].append((a, b))
        return out


def tau_off_for(theta: np.ndarray, post: PostConfig) -> np.ndarray:
    """``tau_off`` paired with each operating threshold: the config's hysteresis gap below it, at least 0.

    Rounded to 9 decimals, so that ``0.10 - 0.08`` is the grid's ``0.02`` rather than ``0.020000000000000004``
    (a near-duplicate threshold would cost a level of its own).
    """
    gap = post.tau_on - post.tau_off
    return np.maximum(np.round(np.asarray(theta, dtype=np.float64) - gap, 9), 0.0)


def detect_at_thresholds(
    traces: Sequence[np.ndarray], rate: float, post: PostConfig, tau_on: np.ndarray, tau_off: np.ndarray
) -> list[HypothesisEvents]:
    """The events of every recording at each ``(tau_on[t], tau_off[t])``, post-processed as ``post`` says.

    The same events as :func:`ictal.post.events.detect_events` gives per recording with
    ``replace(post, tau_on=tau_on[t], tau_off=tau_off[t])``, for all recordings and thresholds at once.

    Args:
        traces: checked probability traces (:func:`ictal.post.events.as_trace`), shape ``(n_f,)`` at ``rate`` Hz.
        rate: samples per second of the traces.
        post: a validated config (its own ``tau_on``/``tau_off`` are not used).
        tau_on, tau_off: shape ``(T,)`` each, ``tau_off[t] <= tau_on[t]``.
    """
    min_on, min_off = hysteresis_samples(rate, post)
    levels, offsets, grid = _global_levels(traces, post, rate, np.concatenate((tau_on, tau_off)))
    runs_at_level = _level_runs(levels, grid.size)
    del levels

    def runs_at(tau: float) -> Runs:
        # p >= tau  <=>  level > j, with j the index of tau among the grid's distinct values.
        return runs_at_level(int(np.searchsorted(grid, tau, side="left")))

    out = []
    for on, off in zip(tau_on.tolist(), tau_off.tolist(), strict=True):
        runs = morphology_runs(hysteresis_of_runs(runs_at(off), runs_at(on), min_on, min_off), rate, post)
        file = np.searchsorted(offsets, runs[0], side="right") - 1
        local = offsets[file]
        out.append(HypothesisEvents((runs[0] - local) / rate, (runs[1] - local) / rate, file))
    return out


#: Most level crossings listed at once (about 14 bytes each); beyond it each level is found by its own scan.
MAX_CROSSINGS = 100_000_000


def _level_runs(levels: np.ndarray, n_levels: int) -> Callable[[int], Runs]:
    """A function giving the runs of ``levels > j`` (global sample indices) for a level index ``j``.

    Every run at every level starts where the level steps up across ``j`` and stops where it steps down across
    it. The global axis starts and ends with padding at level 0, so every run closes. When the crossings are
    few enough they are listed for all levels at once and grouped by level with one radix sort (cost in
    proportion to the crossings: about one per change of level for a smooth trace); otherwise each level scans
    the change points (memory bounded by them).
    """
    index = np.int32 if levels.size < 2**31 else np.int64
    change = (np.flatnonzero(levels[1:] != levels[:-1]) + 1).astype(index)
    before = levels[change - 1].astype(np.int32)
    after = levels[change].astype(np.int32)
    if int(np.abs(after - before).sum(dtype=np.int64)) > MAX_CROSSINGS:

        def scan(j: int) -> Runs:
            starts = change[(before <= j) & (after > j)]
            return starts.astype(np.int64), change[(after <= j) & (before > j)].astype(np.int64)

        return scan
    # One key per (change point, level crossed): 2 j for a start at level j, 2 j + 1 for a stop. A step of k
    # levels crosses low, low + 1, ..., low + k - 1; list the s-th crossing of every step still that long.
    low = np.minimum(before, after)
    stop_bit = (after < before).astype(np.int32)
    remaining = np.abs(after - before)
    live = np.arange(change.size, dtype=index)
    key_type = np.uint16 if 2 * n_levels < 2**16 else np.int32
    keys, where = [], []
    step = 0
    while live.size:
        keys.append((2 * (low[live] + step) + stop_bit[live]).astype(key_type))
        where.append(change[live])
        step += 1
        live = live[remaining[live] > step]
    key = np.concatenate(keys)
    order = np.argsort(key, kind="stable")  # radix sort for 16-bit keys
    position = np.concatenate(where)[order]
    bounds = np.searchsorted(key[order], np.arange(2 * n_levels + 1))

    def listed(j: int) -> Runs:
        # Within a key the positions come as one ascending block per step pass: timsort merges them in
        # near-linear time.
        a, b, c = bounds[2 * j], bounds[2 * j + 1], bounds[2 * j + 2]
        starts = np.sort(position[a:b], kind="stable").astype(np.int64)
        return starts, np.sort(position[b:c], kind="stable").astype(np.int64)

    return listed


def _global_levels(
    traces: Sequence[np.ndarray], post: PostConfig, rate: float, taus: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every trace as threshold levels on one global sample axis.

    Returns:
        levels: shape ``(N,)``, uint8 or uint16: ``levels[i] = #{j : p_i >= grid[j]}`` (comparisons in the
            trace's dtype), 0 in the padding between recordings.
        offsets: shape ``(F,)``, the global index of each trace's first sample.
        grid: the distinct threshold values, float64, ascending.
    """
    values = np.unique(np.asarray(taus, dtype=np.float64))
    # Padding wider than any gap post-processing fills, so runs of different recordings never join.
    pad = 1 + max(
        seconds_to_samples(s, rate) for s in (post.min_off_s, post.closing_s, post.merge_gap_s, post.opening_s)
    )
    lengths = np.array([p.size for p in traces], dtype=np.int64)
    offsets = pad + np.concatenate(([0], np.cumsum(lengths + pad)[:-1])) if lengths.size else lengths
    total = int(lengths.sum() + pad * (lengths.size + 1))
    levels = np.zeros(total, dtype=np.uint8 if values.size < 255 else np.uint16)
    cast: dict[np.dtype, np.ndarray] = {}
    for p, start in zip(traces, offsets.tolist(), strict=True):
        # Compare in the trace's dtype, as numpy does for ``p >= python_float`` in detect_events. Casting keeps
        # the order (not always strictly), so the thresholds a sample reaches are still a prefix of the grid.
        grid = cast.setdefault(p.dtype, values.astype(p.dtype))
        # Most samples of a real trace sit below all thresholds but the lowest: two compares settle them, and
        # only the rest need the binary search.
        levels[start : start + p.size] = p >= grid[0]
        if grid.size > 1:
            above = np.flatnonzero(p >= grid[1])
            levels[start + above] = np.searchsorted(grid, p[above], side="right")
    return levels, offsets, values
