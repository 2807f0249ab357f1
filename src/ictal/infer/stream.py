"""Streaming inference: a recording fed chunk by chunk, as an acquisition system delivers it, events printed as
they close.

    raw chunk (19, n) µV  -> OnlinePreprocessor -> (19, m) z-units at 256 Hz
                          -> scorer (below)      -> finished stretch of the 16 Hz probability trace
                          -> PostProcessor       -> events that can no longer change

Two scorers turn preprocessed chunks into the probability trace, both in bounded memory:

- :class:`ContinuousScorer`, for a model built with ``model.streamable: true`` (causal TCN, forward-only Mamba):
  the model runs on each chunk once, carrying its TCN history and every Mamba layer's state
  (:meth:`~ictal.models.v3.V3Detector.forward_chunk`). The trace equals one forward pass over the whole
  recording to float tolerance (~1e-6 in probability, measured in ``tests/test_stream.py``). Latency: the model's
  ``stream_granularity`` (1-2 s).
- :class:`WindowedScorer`, for any model (the bidirectional V3 included): overlapping windows (60 s every 10 s by
  default) scored as soon as their last sample has arrived, averaged by :class:`~ictal.post.stitch.TraceStitcher`.
  The windows, their order and the stitching are those of :func:`~ictal.infer.trace.predict_trace`, so the trace
  is the same (bit for bit with the same batches; ~1e-7 when batch sizes differ). Latency: about one window.

``ictal predict`` uses the same scorers on chunks read from disk, so a stream and ``predict`` compute the same
trace; their events are equal when the z-score uses the same statistics. ``predict`` takes them from the whole
recording (two passes over the file); a live stream cannot, so :func:`stream_recording` by default calibrates them
on the first ``calibration_s`` seconds and freezes them (``stats_mode="calibration"``); ``stats_mode="recording"``
reads the file once beforehand (a replay of a stored recording) and then equals ``predict`` exactly.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import torch

from ictal.infer.trace import FRAME_HOP
from ictal.io.edf import open_edf
from ictal.post.config import PostConfig
from ictal.post.events import SeizureEvent
from ictal.post.stitch import TraceStitcher
from ictal.post.streaming import PostProcessor
from ictal.signal.chunked import OnlinePreprocessor, recording_stats
from ictal.signal.preprocess import ChannelStats, PreprocessConfig

__all__ = [
    "FRAME_RATE",
    "ContinuousScorer",
    "StreamEvent",
    "StreamResult",
    "TraceScorer",
    "WindowedScorer",
    "make_scorer",
    "score_signal",
    "stream_recording",
]

#: Frames per second of the probability trace (one per 16 samples at 256 Hz).
FRAME_RATE = 16.0
ScoringMode = Literal["auto", "windows", "continuous"]
StatsMode = Literal["calibration", "recording"]


class TraceScorer(Protocol):
    """Preprocessed chunks in, finished stretches of the 16 Hz probability trace out."""

    #: ``windows`` or ``continuous``.
    mode: str

    def push(self, chunk: np.ndarray) -> np.ndarray:
        """``(19, n)`` z-units at 256 Hz -> the trace values now final, ``(m,)`` float32 in [0, 1]."""
        ...

    def finish(self) -> np.ndarray:
        """The rest of the trace (the recording ended); the whole trace has ``ceil(T / 16)`` values."""
        ...

    def describe(self) -> str:
        """One line saying how the trace is computed (for outputs and logs)."""
        ...


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[object]:
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


class WindowedScorer:
    """Overlapping windows over a stream of preprocessed samples, scored in batches and stitched.

    Windows start every ``stride`` samples from 0 and are scored once their last sample has arrived; at the end,
    one more window ends at the recording's end (its start rounded up to 16 samples, zero-padded past the end),
    or a single padded window covers a recording shorter than a window: exactly
    :func:`~ictal.post.stitch.window_starts`. Memory: one window plus one chunk of signal, one batch of windows,
    one window of trace.

    Args:
        model: ``(B, 19, window)`` z-units -> ``(B, window // 16)`` frame logits.
        window, stride: samples at 256 Hz, multiples of 16 (60 s / 10 s by default in ``data.window_s/stride_s``).
        batch_size: windows per forward pass (1 adds no waiting in a live stream).
        device, autocast_dtype: where the model runs, and optional autocast (e.g. ``torch.bfloat16``).
    """

    mode = "windows"

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        window: int,
        stride: int,
        batch_size: int = 8,
        device: str | torch.device = "cpu",
        autocast_dtype: torch.dtype | None = None,
    ) -> None:
        if window % FRAME_HOP or stride % FRAME_HOP or window <= 0 or stride <= 0:
            raise ValueError(f"window ({window}) and stride ({stride}) must be positive multiples of {FRAME_HOP}")
        if stride > window:
            raise ValueError(f"stride ({stride}) is longer than the window ({window}): samples would be skipped")
        self.model, self.window, self.stride, self.batch_size = model, window, stride, max(1, batch_size)
        self.device = torch.device(device)
        self.autocast_dtype = autocast_dtype
        self.stitcher = TraceStitcher(window // FRAME_HOP)
        self.n_samples = 0  # samples pushed
        self.windows_done = 0
        self._buffer: np.ndarray | None = None  # samples [_buffer_start, n_samples)
        self._buffer_start = 0
        self._next_start = 0  # next regular window start
        self._last_start = -1  # last window cut
        self._pending: list[tuple[int, np.ndarray]] = []
        self._finished = False

    @property
    def buffered_samples(self) -> int:
        """Samples of signal held now (at most one window plus one push)."""
        return 0 if self._buffer is None else int(self._buffer.shape[1])

    def describe(self) -> str:
        return (
            f"overlapping windows of {self.window / 256:g} s every {self.stride / 256:g} s, "
            "probabilities averaged where windows overlap"
        )

    def push(self, chunk: np.ndarray) -> np.ndarray:
        if self._finished:
            raise RuntimeError("WindowedScorer.push after finish(): create one scorer per recording")
        x = np.asarray(chunk, dtype=np.float32)
        if x.shape[1]:
            self._buffer = x if self._buffer is None else np.concatenate((self._buffer, x), axis=1)
            self.n_samples += x.shape[1]
        while self._next_start + self.window <= self.n_samples:
            self._cut(self._next_start)
            self._next_start += self.stride
        out = self._score(flush=False)
        self._trim()
        return out

    def finish(self) -> np.ndarray:
        if self._finished:
            raise RuntimeError("WindowedScorer.finish called twice")
        self._finished = True
        n = self.n_samples
        if self._last_start < 0 and n > 0:
            self._cut(0)  # a recording shorter than one window: one window at 0, zero-padded
        elif self._last_start >= 0 and self._last_start + self.window < n:
            self._cut(-(-(n - self.window) // FRAME_HOP) * FRAME_HOP)  # the tail window, ending at the end
        parts = [self._score(flush=True), self.stitcher.finish(-(-n // FRAME_HOP))]
        return np.concatenate(parts).astype(np.float32, copy=False)

    def _cut(self, start: int) -> None:
        assert self._buffer is not None
        piece = self._buffer[:, start - self._buffer_start : start - self._buffer_start + self.window]
        if piece.shape[1] < self.window:
            piece = np.pad(piece, ((0, 0), (0, self.window - piece.shape[1])))
        self._pending.append((start, np.array(piece, dtype=np.float32)))
        self._last_start = start

    def _trim(self) -> None:
        # A later window (regular, or the tail window placed at finish) starts at or after this.
        keep_from = self._last_start + FRAME_HOP if self._last_start >= 0 else 0
        if self._buffer is not None and keep_from > self._buffer_start:
            self._buffer = self._buffer[:, keep_from - self._buffer_start :]
            self._buffer_start = keep_from

    @torch.no_grad()
    def _score(self, *, flush: bool) -> np.ndarray:
        parts = [np.zeros(0, dtype=np.float32)]
        while len(self._pending) >= self.batch_size or (flush and self._pending):
            batch, self._pending = self._pending[: self.batch_size], self._pending[self.batch_size :]
            x = torch.from_numpy(np.stack([w for _, w in batch])).to(self.device)
            was_training = self.model.training
            self.model.eval()
            try:
                with _autocast(self.device, self.autocast_dtype):
                    logits = self.model(x)
            finally:
                self.model.train(was_training)
            probs = torch.sigmoid(logits.float()).cpu().numpy()
            for (start, _), p in zip(batch, probs, strict=True):
                parts.append(self.stitcher.push(p, start // FRAME_HOP))
            self.windows_done += len(batch)
        return np.concatenate(parts).astype(np.float32, copy=False)


class ContinuousScorer:
    """A streamable model (``model.streamable: true``) run over the recording as one sequence, chunk by chunk.

    Samples are passed to :meth:`~ictal.models.v3.V3Detector.forward_chunk` in multiples of the model's
    ``stream_granularity`` (at most ``max_chunk`` samples per call, which bounds the activations' memory); the
    model's state carries everything earlier. At the end the remainder is zero-padded to whole frames, as
    ``forward`` on the whole recording would be. Memory: one call's chunk and the model state (a few MB).
    """

    mode = "continuous"

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        device: str | torch.device = "cpu",
        autocast_dtype: torch.dtype | None = None,
        max_chunk: int = 256 * 300,
    ) -> None:
        if not getattr(model, "streamable", False):
            raise ValueError(
                "continuous scoring needs a model built with model.streamable: true (causal, forward-only); "
                "use overlapping windows for this one"
            )
        self.model = model
        self.granularity = int(model.stream_granularity)  # type: ignore[arg-type]
        self.max_chunk = max(self.granularity, max_chunk // self.granularity * self.granularity)
        self.device = torch.device(device)
        self.autocast_dtype = autocast_dtype
        self.n_samples = 0
        self._buffer = np.zeros((0, 0), dtype=np.float32)
        self._state: object | None = None
        self._finished = False

    @property
    def buffered_samples(self) -> int:
        """Samples of signal held now (less than one ``stream_granularity``, between pushes)."""
        return int(self._buffer.shape[1]) if self._buffer.size else 0

    def describe(self) -> str:
        return (
            "causal model run continuously over the recording, state carried across chunks "
            f"(granularity {self.granularity / 256:g} s)"
        )

    def push(self, chunk: np.ndarray) -> np.ndarray:
        if self._finished:
            raise RuntimeError("ContinuousScorer.push after finish(): create one scorer per recording")
        x = np.asarray(chunk, dtype=np.float32)
        if not x.shape[1]:
            return np.zeros(0, dtype=np.float32)
        self._buffer = x if not self._buffer.size else np.concatenate((self._buffer, x), axis=1)
        self.n_samples += x.shape[1]
        ready = self._buffer.shape[1] // self.granularity * self.granularity
        parts = [np.zeros(0, dtype=np.float32)]
        for a in range(0, ready, self.max_chunk):
            parts.append(self._run(self._buffer[:, a : min(a + self.max_chunk, ready)]))
        self._buffer = self._buffer[:, ready:]
        return np.concatenate(parts)

    def finish(self) -> np.ndarray:
        if self._finished:
            raise RuntimeError("ContinuousScorer.finish called twice")
        self._finished = True
        rest = self._buffer
        if not (rest.size and rest.shape[1]):
            return np.zeros(0, dtype=np.float32)
        # Earlier calls covered whole frames, so padding the rest to whole frames gives ceil(T / 16) in all.
        return self._run(np.pad(rest, ((0, 0), (0, -rest.shape[1] % FRAME_HOP))))

    @torch.no_grad()
    def _run(self, x: np.ndarray) -> np.ndarray:
        was_training = self.model.training
        self.model.eval()
        x = np.ascontiguousarray(x)
        if not x.flags.writeable:  # a read-only chunk (a memory-mapped cache): torch wants memory it may write
            x = x.copy()
        try:
            with _autocast(self.device, self.autocast_dtype):
                logits, self._state = self.model.forward_chunk(  # type: ignore[operator]
                    torch.from_numpy(x)[None].to(self.device), self._state
                )
        finally:
            self.model.train(was_training)
        return torch.sigmoid(logits.float())[0].cpu().numpy().astype(np.float32, copy=False)


def make_scorer(
    model: torch.nn.Module,
    *,
    window: int,
    stride: int,
    mode: ScoringMode = "auto",
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    autocast_dtype: torch.dtype | None = None,
) -> TraceScorer:
    """The scorer for ``model``: ``auto`` is continuous for a streamable model and windows otherwise."""
    streamable = bool(getattr(model, "streamable", False))
    if mode == "continuous" or (mode == "auto" and streamable):
        return ContinuousScorer(model, device=device, autocast_dtype=autocast_dtype)
    if mode not in ("auto", "windows"):
        raise ValueError(f"scoring mode must be 'auto', 'windows' or 'continuous', got {mode!r}")
    return WindowedScorer(
        model, window=window, stride=stride, batch_size=batch_size, device=device, autocast_dtype=autocast_dtype
    )


def score_signal(
    model: torch.nn.Module,
    signal: np.ndarray,
    *,
    window: int,
    stride: int,
    mode: ScoringMode = "auto",
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    chunk: int = 256 * 300,
) -> np.ndarray:
    """The 16 Hz trace of a preprocessed recording already in memory or memory-mapped (``(19, T)`` z-units at
    256 Hz, e.g. from the cache) the way ``predict`` computes it: windows, or continuous for a streamable model.

    Evaluation should score a streamable model with this (not with windows) so that the thresholds it chooses
    apply to ``predict``'s and ``stream``'s traces. For windows it equals
    :func:`~ictal.infer.trace.predict_trace` bit for bit. ``chunk`` samples are read per step.
    """
    scorer = make_scorer(model, window=window, stride=stride, mode=mode, batch_size=batch_size, device=device)
    parts = [scorer.push(np.asarray(signal[:, a : a + chunk])) for a in range(0, signal.shape[-1], chunk)]
    parts.append(scorer.finish())
    return np.concatenate(parts).astype(np.float32, copy=False)


@dataclass(frozen=True)
class StreamEvent:
    """An event as the stream emitted it: ``emitted_s`` is the recording time (seconds of EEG acquired) at which
    it closed, ``latency_s = emitted_s - event.stop_s``; ``wall_s`` the wall-clock seconds since the start."""

    event: SeizureEvent
    emitted_s: float
    latency_s: float
    wall_s: float


@dataclass
class StreamResult:
    """What :func:`stream_recording` did: every event with its latency, and how the trace was made."""

    path: Path
    duration_s: float
    events: list[StreamEvent]
    scoring: str
    stats: str
    threshold: float
    wall_s: float
    n_frames: int
    trace: np.ndarray | None = field(default=None, repr=False)


def stream_recording(
    model: torch.nn.Module,
    path: str | Path,
    *,
    preprocess: PreprocessConfig,
    post: PostConfig,
    window: int,
    stride: int,
    chunk_s: float = 1.0,
    realtime: bool = False,
    stats_mode: StatsMode = "calibration",
    calibration_s: float = 300.0,
    stats: ChannelStats | None = None,
    scoring: ScoringMode = "auto",
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    keep_trace: bool = False,
    on_event: Callable[[StreamEvent], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> StreamResult:
    """Feed the EDF at ``path`` through the model ``chunk_s`` seconds at a time; report each event when it closes.

    Args:
        model: the detector (streamable or not: see :func:`make_scorer`).
        preprocess, post: the checkpoint's ``preprocess`` config and ``post`` config at the operating threshold
            (e.g. :func:`~ictal.scoring.operating_points.with_threshold`).
        window, stride: samples at 256 Hz for windowed scoring (the config's ``data.window_s/stride_s``).
        chunk_s: seconds of EEG delivered per step (an acquisition system's block).
        realtime: pace the chunks at the recording's own speed (wall clock), as a live feed would arrive.
        stats_mode: z-score statistics from the first ``calibration_s`` seconds (``calibration``, live-capable) or
            from the whole file read beforehand (``recording``: equals ``ictal predict``). ``stats`` overrides both.
        on_event: called with each :class:`StreamEvent` as soon as it closes.
        sleep: the pause used by ``realtime`` (replaceable in tests).

    Returns:
        A :class:`StreamResult`; with ``keep_trace`` it holds the whole probability trace too.
    """
    t0 = time.perf_counter()
    events: list[StreamEvent] = []
    parts: list[np.ndarray] = []
    with open_edf(path) as source:
        if stats is None and stats_mode == "recording" and preprocess.zscore:
            stats = recording_stats(source, preprocess)
            stats_text = "whole recording (read beforehand)"
        elif stats is not None:
            stats_text = "given"
        else:
            stats_text = f"first {calibration_s:g} s of the stream, then frozen" if preprocess.zscore else "none"
        pre = OnlinePreprocessor(
            source.sfreq, len(source.channel_names), preprocess, stats=stats, calibration_s=calibration_s
        )
        scorer = make_scorer(model, window=window, stride=stride, mode=scoring, batch_size=batch_size, device=device)
        post_processor = PostProcessor(FRAME_RATE, post)
        step = max(1, int(round(chunk_s * source.sfreq)))
        n = source.n_samples

        def emit(found: list[SeizureEvent], acquired: int) -> None:
            now = acquired / source.sfreq
            for ev in found:
                item = StreamEvent(ev, now, now - ev.stop_s, time.perf_counter() - t0)
                events.append(item)
                if on_event is not None:
                    on_event(item)

        def feed(trace: np.ndarray, acquired: int) -> None:
            if keep_trace:
                parts.append(trace)
            emit(post_processor.push(trace), acquired)

        for start in range(0, n, step):
            stop = min(start + step, n)
            if realtime:
                wait = stop / source.sfreq - (time.perf_counter() - t0)
                if wait > 0:
                    sleep(wait)
            feed(scorer.push(pre.push(source.read(start, stop))), stop)
        feed(scorer.push(pre.finish()), n)
        feed(scorer.finish(), n)
        emit(post_processor.finish(), n)
    trace = np.concatenate(parts) if keep_trace and parts else None
    return StreamResult(
        path=Path(path),
        duration_s=n / source.sfreq,
        events=events,
        scoring=scorer.describe(),
        stats=stats_text,
        threshold=post.tau_on,
        wall_s=time.perf_counter() - t0,
        n_frames=post_processor.samples_seen,
        trace=trace,
    )
