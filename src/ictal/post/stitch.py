"""Overlapping window outputs -> one probability trace per recording (overlap-add of values and counts).

Windows and traces share one time axis whose unit is the window output's: frames at 16 Hz (a 60 s window
gives 960 values) or samples at 256 Hz (15,360 values). ``starts`` are in that same unit.

Covering the tail: :func:`window_starts` places windows every ``stride`` from 0 and adds one last window that
ends exactly at the end of the recording (rounded up to a multiple of ``align``), so every sample is covered and
no window is padded except (a) a recording shorter than one window, which gets one window at 0, and (b) the last
window when ``align`` > 1, which may run up to ``align - 1`` samples past the end. The caller pads those
windows' input (e.g. with zeros); :func:`stitch_windows` and :class:`TraceStitcher` discard every output that
falls at or after ``n_total``.

``align`` exists for frame traces: with window starts on a multiple of 16 samples, the sample-level starts
divided by 16 are the frame-level starts, exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ictal.arrays import as_numpy


def window_starts(n_total: int, window: int, stride: int, align: int = 1) -> np.ndarray:
    """Start indices of windows of ``window`` samples that cover ``n_total`` samples, shape ``(W,)`` int64.

    Regular starts ``0, stride, 2*stride, ...`` while the window fits, then, if the tail is not yet covered,
    one more window placed to end at ``n_total`` (its start rounded up to a multiple of ``align``, so it may
    run up to ``align - 1`` samples past the end). A recording shorter than a window gets one window at 0,
    running past the end (pad its input).

    Args:
        n_total: length of the recording, in samples (or frames).
        window: window length in the same unit (15,360 samples for 60 s at 256 Hz).
        stride: distance between window starts (2,560 samples for 10 s).
        align: every start is a multiple of this (16 makes sample starts map to whole 16 Hz frames).
    """
    for name, value in (("n_total", n_total), ("window", window), ("stride", stride), ("align", align)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive whole number of samples, got {value!r}")
    if stride % align or window % align:
        raise ValueError(f"stride ({stride}) and window ({window}) must be multiples of align ({align})")
    if n_total <= window:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, n_total - window + 1, stride, dtype=np.int64)
    if starts[-1] + window < n_total:
        last = -(-(n_total - window) // align) * align  # ceil to a multiple of align
        starts = np.append(starts, np.int64(last))
    return starts


def _check_windows(window_probs: np.ndarray, starts: np.ndarray, n_total: int) -> None:
    if window_probs.ndim != 2:
        raise ValueError(f"window outputs must have shape (W, L), got {window_probs.shape}")
    if starts.shape != (window_probs.shape[0],):
        raise ValueError(f"starts must have shape ({window_probs.shape[0]},) (one per window), got {starts.shape}")
    if not np.issubdtype(starts.dtype, np.integer):
        raise ValueError(f"starts must be whole sample/frame indices, got dtype {starts.dtype}")
    if int(n_total) != n_total or n_total < 1:
        raise ValueError(f"n_total must be a positive whole number, got {n_total!r}")
    if starts.size and starts.min() < 0:
        raise ValueError(f"window starts must be >= 0, got {int(starts.min())}")
    if starts.size and starts.max() >= n_total:
        raise ValueError(
            f"a window starts at {int(starts.max())}, at or after the end (n_total={n_total}); are the starts "
            "in samples while the outputs are frames (divide by 16)?"
        )


def _out_dtype(window_probs: np.ndarray) -> np.dtype:
    return np.result_type(window_probs.dtype, np.float32)


def stitch_windows(window_probs: Any, starts: Any, n_total: int, fill_value: float = 0.0) -> np.ndarray:
    """Average overlapping window outputs into one trace covering the recording.

    Args:
        window_probs: per-window outputs, shape ``(W, L)``: ``(W, 960)`` frames at 16 Hz or ``(W, 15360)``
            samples at 256 Hz for 60 s windows (probabilities, or any value to average). numpy or torch.
        starts: index of each window's first value in the trace, shape ``(W,)``, in the outputs' unit.
        n_total: length of the trace to return (samples or frames of the whole recording).
        fill_value: value where no window covers the trace (never, with :func:`window_starts`).

    Returns:
        The trace, shape ``(n_total,)``: at each index the mean of the windows covering it. dtype float32 for
        float32 (or narrower) input, else float64; sums are accumulated in float64. Outputs at or after
        ``n_total`` (a padded last window) are discarded.
    """
    probs = as_numpy(window_probs)
    st = as_numpy(starts)
    _check_windows(probs, st, n_total)
    n_windows, length = probs.shape
    total = np.zeros(n_total + length, dtype=np.float64)  # room for a window running past the end
    _overlap_add(total, probs, st)
    # Coverage is piecewise constant between window edges: count it per segment (O(W)), then expand.
    ends = np.minimum(st + length, n_total)
    edges = np.unique(np.concatenate(([0, n_total], st, ends)))
    seg_starts, seg_lengths = edges[:-1], np.diff(edges)
    seg_counts = np.searchsorted(np.sort(st), seg_starts, side="right") - np.searchsorted(
        np.sort(ends), seg_starts, side="right"
    )
    counts = np.repeat(np.maximum(seg_counts, 1).astype(np.float32), seg_lengths)  # exact for counts < 2**24
    trace = np.empty(n_total, dtype=_out_dtype(probs))
    # float64 division, rounded once into the output dtype (same arithmetic as TraceStitcher).
    np.divide(total[:n_total], counts, out=trace, casting="same_kind")
    for a, n in zip(seg_starts[seg_counts == 0].tolist(), seg_lengths[seg_counts == 0].tolist(), strict=True):
        trace[a : a + n] = fill_value  # gaps no window covers: only with hand-made starts
    return trace


def _overlap_add(total: np.ndarray, probs: np.ndarray, starts: np.ndarray) -> None:
    """``total[s:s+L] += probs[w]`` for every window, in window order, without a loop over windows where the
    starts form a regular grid whose stride divides L (the usual 60 s / 10 s case)."""
    n_windows, length = probs.shape
    regular = 0
    if n_windows >= 2:
        stride = int(starts[1] - starts[0])
        if stride > 0 and length % stride == 0:
            steps = np.diff(starts)
            off_grid = np.flatnonzero(steps != stride)
            regular = n_windows if off_grid.size == 0 else int(off_grid[0]) + 1
    if regular >= 2:
        # Cut each window into L/stride blocks of `stride` values; block k of window w lands on trace block
        # w + k. One vectorised add per k, k descending so each trace value sums its windows in window order.
        per = length // stride
        base = int(starts[0])
        blocks = probs[:regular].reshape(regular, per, stride)
        trace_blocks = total[base : base + (regular + per - 1) * stride].reshape(regular + per - 1, stride)
        for k in range(per - 1, -1, -1):
            trace_blocks[k : k + regular] += blocks[:, k]
    else:
        regular = 0
    for w in range(regular, n_windows):  # off-grid windows (the tail window): a few slices
        s = int(starts[w])
        total[s : s + length] += probs[w]


class TraceStitcher:
    """Streaming :func:`stitch_windows`: push windows in order of start, get finished stretches of the trace.

    Everything before the latest window's start is final (later windows start no earlier), so each push
    returns the trace from the end of the previous output up to that start; memory is one window. The
    concatenation of all outputs equals ``stitch_windows`` on the same windows (bit for bit).

    >>> stitcher = TraceStitcher(window_length=960)
    >>> parts = [stitcher.push(out, start) for out, start in zip(outputs, frame_starts)]
    >>> parts.append(stitcher.finish(n_total=n_frames))
    >>> trace = np.concatenate(parts)
    """

    def __init__(self, window_length: int, n_total: int | None = None, fill_value: float = 0.0) -> None:
        if int(window_length) != window_length or window_length < 1:
            raise ValueError(f"window_length must be a positive whole number, got {window_length!r}")
        if n_total is not None and (int(n_total) != n_total or n_total < 1):
            raise ValueError(f"n_total must be a positive whole number or None, got {n_total!r}")
        self.window_length = int(window_length)
        self.n_total = None if n_total is None else int(n_total)
        self.fill_value = fill_value
        self.emitted = 0  # trace index of the first value not yet returned
        self._sum = np.zeros(self.window_length, dtype=np.float64)  # trace[emitted : emitted + L]
        self._count = np.zeros(self.window_length, dtype=np.int64)
        self._last_start = -1
        self._dtype: np.dtype | None = None
        self._finished = False

    def push(self, window: Any, start: int) -> np.ndarray:
        """Add one window output, shape ``(L,)``, starting at trace index ``start``; return the trace values
        that are now final (from ``self.emitted`` before the call up to ``start``), possibly empty."""
        if self._finished:
            raise RuntimeError("TraceStitcher.push after finish(): create a new TraceStitcher per recording")
        values = as_numpy(window)
        if values.shape != (self.window_length,):
            raise ValueError(f"window output must have shape ({self.window_length},), got {values.shape}")
        start = int(start)
        if start < self._last_start:
            raise ValueError(f"windows must come in order of start: {start} after {self._last_start}")
        if self.n_total is not None and start >= self.n_total:
            raise ValueError(f"window starts at {start}, at or after the end (n_total={self.n_total})")
        if self._dtype is None:
            self._dtype = _out_dtype(values)
        self._last_start = start
        out = self._advance(start)
        self._sum += values  # the buffer now starts at `start`
        self._count += 1
        return out

    def finish(self, n_total: int | None = None) -> np.ndarray:
        """The rest of the trace, up to ``n_total`` (default: the constructor's, else the last window's end)."""
        if self._finished:
            raise RuntimeError("TraceStitcher.finish called twice")
        self._finished = True
        end = n_total if n_total is not None else self.n_total
        if end is None:
            end = self._last_start + self.window_length if self._last_start >= 0 else 0
        if end < self.emitted:
            raise ValueError(f"n_total={end} is before data already returned (up to {self.emitted})")
        return self._advance(int(end))

    def _advance(self, until: int) -> np.ndarray:
        """Return trace[emitted:until] and shift the buffer so it starts at ``until``."""
        n = until - self.emitted
        dtype = self._dtype if self._dtype is not None else np.dtype(np.float32)
        if n <= 0:
            return np.zeros(0, dtype=dtype)
        out = np.full(n, self.fill_value, dtype=np.float64)
        head = min(n, self.window_length)
        covered = self._count[:head] > 0
        out[:head][covered] = self._sum[:head][covered] / self._count[:head][covered]
        # Shift the buffer left by n; the freed tail is zero (not yet covered).
        keep = self.window_length - head
        self._sum[:keep] = self._sum[head:]
        self._sum[keep:] = 0.0
        self._count[:keep] = self._count[head:]
        self._count[keep:] = 0
        self.emitted = until
        return out.astype(dtype, copy=False)
