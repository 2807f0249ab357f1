"""Streaming post-processing: feed a probability trace in chunks, get each event once it can no longer change.

Why it is exact: every step of the pipeline (``ictal.post.events``) either looks at one run on its own or
bridges a gap shorter than some length (``min_off_s``, ``closing_s``, ``merge_gap_s``). A stretch of
``p < tau_off`` at least as long as the longest of those, ``G``, is a gap at every step, so nothing before it
interacts with anything after it: the batch result on the whole trace is the union of the batch results on the
pieces between such stretches. The processor keeps the trace since the last such stretch, and when a new one
is seen it runs the batch pipeline on the finished piece and emits that piece's events. The emitted events are
identical to :func:`ictal.post.events.detect_events` on the whole trace (times exactly; ``mean`` confidences to
float64 rounding).

Latency: an event is emitted ``G`` seconds (2 s with defaults) after the trace falls below ``tau_off`` for good.
Memory: the samples since the last quiet stretch of ``G`` seconds; a trace that never stays below ``tau_off``
for ``G`` seconds is held whole (at 16 Hz a day is 1.4 M float64, 11 MB).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ictal.post.config import PostConfig, validated_post_config
from ictal.post.events import SeizureEvent, as_trace, event_runs, runs_to_events
from ictal.post.runs import seconds_to_samples


class PostProcessor:
    """Incremental :func:`~ictal.post.events.detect_events` for one recording.

    >>> post = PostProcessor(rate=16.0)
    >>> events = []
    >>> for chunk in chunks:            # consecutive pieces of the probability trace, shape (m,) at 16 Hz
    ...     events += post.push(chunk)
    >>> events += post.finish()         # the end of the recording closes any open event
    """

    def __init__(self, rate: float, config: PostConfig | None = None) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive (samples per second of the trace), got {rate}")
        self.rate = float(rate)
        self.config = validated_post_config(config)
        cfg = self.config
        # Longest gap any step can bridge; a quiet stretch this long separates independent pieces.
        self.separation = max(
            1,
            seconds_to_samples(cfg.min_off_s, rate),
            seconds_to_samples(cfg.closing_s, rate),
            seconds_to_samples(cfg.merge_gap_s, rate),
        )
        self._pending: list[np.ndarray] = []  # trace since ``_piece_start``
        self._piece_start = 0  # global index of the first pending sample
        self._seen = 0  # samples pushed so far
        self._quiet_since = 0  # global index where the current run of p < tau_off began (== _seen if none)
        self._finished = False

    @property
    def samples_seen(self) -> int:
        return self._seen

    @property
    def samples_pending(self) -> int:
        """Samples held back because an event there may still change."""
        return self._seen - self._piece_start

    def push(self, chunk: Any) -> list[SeizureEvent]:
        """Add the next stretch of the trace, shape ``(m,)`` at ``rate`` Hz; return the events now final."""
        if self._finished:
            raise RuntimeError("PostProcessor.push after finish(): create a new PostProcessor per recording")
        p = as_trace(chunk, "probability chunk")
        if p.size == 0:
            return []
        offset = self._seen
        self._pending.append(p)
        self._seen += p.size
        quiet = ~(p >= self.config.tau_off)  # NaN-proof: exactly the complement of the hysteresis low mask
        cut = self._last_cut(quiet, offset)
        if cut <= self._piece_start:
            return []
        return self._emit_until(cut)

    def finish(self) -> list[SeizureEvent]:
        """The end of the trace: return the remaining events. The processor takes no more data afterwards."""
        if self._finished:
            return []
        self._finished = True
        return self._emit_until(self._seen)

    def _last_cut(self, quiet: np.ndarray, offset: int) -> int:
        """The latest global index that ends a quiet stretch of at least ``separation`` samples, or -1.

        ``quiet`` is the new chunk's ``p < tau_off`` mask, its first sample at global index ``offset``.
        """
        change = np.flatnonzero(quiet[1:] != quiet[:-1]) + 1
        # Quiet runs in chunk coordinates; the first one continues the run carried from the previous chunk.
        bounds = np.concatenate(([0], change, [quiet.size]))
        run_starts, run_stops = bounds[:-1], bounds[1:]
        is_quiet = quiet[run_starts]
        starts = run_starts[is_quiet] + offset
        stops = run_stops[is_quiet] + offset
        if starts.size and starts[0] == offset:
            starts[0] = self._quiet_since
        self._quiet_since = int(starts[-1]) if quiet[-1] else self._seen
        long_enough = np.flatnonzero(stops - starts >= self.separation)
        # A run that reaches the chunk's end may still grow, but it is already long enough to separate.
        return int(stops[long_enough[-1]]) if long_enough.size else -1

    def _emit_until(self, cut: int) -> list[SeizureEvent]:
        """Process the pending trace up to global index ``cut`` as one finished piece and keep the rest."""
        if not self._pending:
            return []
        trace = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        split = cut - self._piece_start
        piece, rest = trace[:split], trace[split:]
        events = runs_to_events(
            piece, event_runs(piece, self.rate, self.config), self.rate, self.config, self._piece_start
        )
        self._pending = [rest] if rest.size else []
        self._piece_start = cut
        return events
