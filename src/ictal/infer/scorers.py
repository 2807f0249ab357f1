"""Trace scorers: a model over preprocessed EEG in bounded memory, chunk by chunk, into the 16 Hz probability trace.

One scorer of each kind serves every caller (``ictal evaluate`` and validation on cached recordings, ``predict``
on chunks read from disk, ``stream`` on chunks as they arrive, the EpilepsyBench entrypoint), so they all compute
the same trace:

- :class:`WindowedScorer`, for any model (the bidirectional V3 included): overlapping windows (60 s every 10 s by
  default) scored as soon as their last sample has arrived, in batches, averaged where they overlap by
  :class:`~ictal.post.stitch.TraceStitcher`; the windows cover the tail as :func:`~ictal.post.stitch.window_starts`
  places them. Latency: about one window.
- :class:`ContinuousScorer`, for a model built with ``model.streamable: true`` (causal TCN, forward-only Mamba):
  the model runs on each chunk once, carrying its TCN history and every Mamba layer's state
  (:meth:`~ictal.models.v3.V3Detector.forward_chunk`). The trace equals one forward pass over the whole
  recording to float tolerance (~1e-6 in probability, ``tests/test_stream.py``). Latency: the model's
  ``stream_granularity`` (1-2 s).

:func:`make_scorer` picks one (``auto``: continuous for a streamable model); :func:`score_signal` runs it over a
recording already in memory or memory-mapped.
"""

from __future__ import annotations

import contextlib
from typing import Literal, Protocol

import numpy as np
import torch

from ictal.frames import SAMPLE_RATE, SAMPLES_PER_FRAME, n_frames
from ictal.post.stitch import TraceStitcher

__all__ = ["ContinuousScorer", "ScoringMode", "TraceScorer", "WindowedScorer", "make_scorer", "score_signal"]

ScoringMode = Literal["auto", "windows", "continuous"]
#: Samples read per step from a recording in memory (5 min at 256 Hz): bounds a continuous model's activations.
DEFAULT_CHUNK = int(300 * SAMPLE_RATE)


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
        if window % SAMPLES_PER_FRAME or stride % SAMPLES_PER_FRAME or window <= 0 or stride <= 0:
            raise ValueError(
                f"window ({window}) and stride ({stride}) must be positive multiples of {SAMPLES_PER_FRAME}"
            )
        if stride > window:
            raise ValueError(f"stride ({stride}) is longer than the window ({window}): samples would be skipped")
        self.model, self.window, self.stride, self.batch_size = model, window, stride, max(1, batch_size)
        self.device = torch.device(device)
        self.autocast_dtype = autocast_dtype
        self.stitcher = TraceStitcher(window // SAMPLES_PER_FRAME)
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
            f"overlapping windows of {self.window / SAMPLE_RATE:g} s every {self.stride / SAMPLE_RATE:g} s, "
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
            # The tail window, ending at the end (its start rounded up to a whole frame).
            self._cut(n_frames(n - self.window) * SAMPLES_PER_FRAME)
        parts = [self._score(flush=True), self.stitcher.finish(n_frames(n))]
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
        keep_from = self._last_start + SAMPLES_PER_FRAME if self._last_start >= 0 else 0
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
                parts.append(self.stitcher.push(p, start // SAMPLES_PER_FRAME))
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
        max_chunk: int = DEFAULT_CHUNK,
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
            f"(granularity {self.granularity / SAMPLE_RATE:g} s)"
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
        return self._run(np.pad(rest, ((0, 0), (0, -rest.shape[1] % SAMPLES_PER_FRAME))))

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
    autocast_dtype: torch.dtype | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> np.ndarray:
    """The 16 Hz trace of a preprocessed recording already in memory or memory-mapped, the way ``predict``
    computes it: windows, or continuous for a streamable model (``auto``).

    Args:
        signal: ``(19, T)`` z-units at 256 Hz (e.g. a memory-mapped cache recording); ``chunk`` samples are read
            per step, so a memory map is never read whole.

    Returns:
        ``(ceil(T / 16),)`` float32 probabilities in [0, 1].
    """
    scorer = make_scorer(
        model, window=window, stride=stride, mode=mode, batch_size=batch_size, device=device,
        autocast_dtype=autocast_dtype,
    )  # fmt: skip
    parts = [scorer.push(np.asarray(signal[:, a : a + chunk])) for a in range(0, signal.shape[-1], chunk)]
    parts.append(scorer.finish())
    trace = np.concatenate(parts).astype(np.float32, copy=False)
    if trace.shape[0] != n_frames(signal.shape[-1]):  # the scorers' contract; a mismatch is a bug, not bad input
        raise RuntimeError(f"scored trace has {trace.shape[0]} frames, expected {n_frames(signal.shape[-1])}")
    return trace
