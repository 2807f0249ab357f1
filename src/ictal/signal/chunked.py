"""The preprocessing chain of :mod:`ictal.signal.preprocess`, run chunk by chunk in bounded memory.

A 24 h recording at 256 Hz is 19 x 22 M samples (3.4 GB in float64); here only a chunk (plus a few samples of
filter margin) is ever held. Each step and how it relates to whole-recording :func:`preprocess`:

- **NaN/Inf to 0**: element-wise, exact.
- **Resampling** (:class:`PolyphaseResampler`): ``resample_poly`` is not stateful, so each block of output is
  computed from an input segment that starts on a multiple of ``down`` (so its polyphase grid lines up with the
  whole recording's) and reaches ``pad`` input samples beyond the block on both sides (more than the FIR
  filter's half-length). Interior samples are then the same dot products as on the whole recording: the tests
  measure a maximum difference of exactly 0.0 (250->256, 400->256 and 512->256 Hz).
- **Band-pass and notch**: causal second-order sections with the state carried from chunk to chunk
  (:func:`~ictal.signal.preprocess.apply_filters`), exact by construction (0.0 measured).
- **Z-score**: needs each channel's mean and std over the whole recording, which a single pass over a stream
  cannot know at the start. Offline (``predict``) the file is read twice: pass 1 accumulates the statistics of
  the filtered signal chunk by chunk (:class:`RunningChannelStats`, Chan et al.'s pairwise update in float64),
  pass 2 normalises. The statistics differ from numpy's whole-array ones by float64 rounding (~1e-16 relative),
  so the float32 output differs by at most one float32 rounding step (measured max |diff| <= 1e-6 in z-units).
  Online (``stream``), where the future is unknown, the statistics come from a calibration period at the start
  of the recording (``calibration_s``, 5 min by default) and are then frozen: :class:`OnlinePreprocessor`.
- **Clip, float32**: element-wise, exact.

A *source* is anything with ``sfreq``, ``n_samples`` and ``read(start, stop) -> (C, stop - start)`` float32 µV:
an :class:`~ictal.io.edf.EdfSource` (``open_edf``), or an :class:`ArraySource` around an array in memory.

>>> with open_edf(path) as src:
...     for chunk in preprocess_chunks(src, PreprocessConfig(), chunk_s=300):   # two passes over the file
...         ...                                                                 # (19, <= 300 * 256) z-units
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import signal as sps

from ictal.signal.preprocess import ChannelStats, PreprocessConfig, apply_filters, normalise, resample_ratio

__all__ = [
    "ArraySource",
    "OnlinePreprocessor",
    "PolyphaseResampler",
    "RunningChannelStats",
    "SampleSource",
    "filtered_chunks",
    "n_chunks",
    "output_length",
    "preprocess_chunked",
    "preprocess_chunks",
    "recording_stats",
]

#: scipy.signal.resample_poly's default FIR half-length is 10 * max(up, down) taps at the upsampled rate.
_RESAMPLE_HALF_TAPS = 10


class SampleSource(Protocol):
    """What the chunked chain reads from: an EDF opened with ``open_edf`` or an :class:`ArraySource`."""

    @property
    def sfreq(self) -> float: ...

    @property
    def n_samples(self) -> int: ...

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` of every channel: ``(C, stop - start)`` float32 µV at ``sfreq``."""
        ...


@dataclass
class ArraySource:
    """A recording already in memory, ``data`` ``(C, T)`` µV at ``sfreq`` Hz, read like an EDF source."""

    data: np.ndarray
    sfreq: float

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[-1])

    def read(self, start: int, stop: int) -> np.ndarray:
        return np.asarray(self.data[:, start:stop], dtype=np.float32)


def output_length(n_in: int, sfreq: float, target: float) -> int:
    """Samples at ``target`` Hz that ``resample`` makes of ``n_in`` samples at ``sfreq``: ceil(n_in * up / down)."""
    up, down = resample_ratio(sfreq, target)
    return -(-n_in * up // down)


class PolyphaseResampler:
    """Online :func:`~ictal.signal.preprocess.resample`: push input of any length, get the output samples that
    are final; the concatenation of every output equals ``resample`` of the whole input (0.0 difference measured).

    Output block ``k`` (samples ``[k up, (k+1) up)``) depends on input ``[k down - h, (k+1) down + h)`` with ``h``
    the filter half-length in input samples, so it is emitted once that input has arrived; :meth:`finish` emits
    the rest, zero-padded at the end exactly as ``resample_poly`` pads the whole recording. Memory: the input
    since the earliest sample a pending block needs (one push plus ``2 pad`` samples).

    Args:
        sfreq: input rate, Hz. target: output rate, Hz. n_channels: rows of every pushed array.
    """

    def __init__(self, sfreq: float, target: float, n_channels: int) -> None:
        self.up, self.down = resample_ratio(sfreq, target)
        self.n_channels = n_channels
        half = _RESAMPLE_HALF_TAPS * max(self.up, self.down) // self.up + 2  # input samples, rounded up
        self.pad = -(-half // self.down) * self.down  # a multiple of down keeps segment starts on the grid
        self._buffer = np.zeros((n_channels, 0), dtype=np.float64)
        self._buffer_start = 0  # global input index of _buffer[:, 0], a multiple of down
        self.n_in = 0  # input samples pushed
        self.n_out = 0  # output samples emitted (a multiple of up until finish)
        self._finished = False

    @property
    def identity(self) -> bool:
        return self.up == self.down

    @property
    def buffered_samples(self) -> int:
        """Input samples held now (the margin before the next block, plus the last push)."""
        return int(self._buffer.shape[1])

    def push(self, x: np.ndarray) -> np.ndarray:
        """Add input ``(C, n)`` at ``sfreq`` (float64 preferred); return the output ``(C, m)`` float64 now final."""
        if self._finished:
            raise RuntimeError("PolyphaseResampler.push after finish(): create one resampler per recording")
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != self.n_channels:
            raise ValueError(f"resampler input must have shape ({self.n_channels}, n), got {x.shape}")
        self.n_in += x.shape[1]
        if self.identity:
            self.n_out += x.shape[1]
            return x
        self._buffer = np.concatenate((self._buffer, x), axis=1) if self._buffer.shape[1] else x
        blocks_ready = max(0, (self.n_in - self.pad) // self.down)  # block k needs input < (k+1) down + pad
        return self._emit(blocks_ready * self.up, at_end=False)

    def finish(self) -> np.ndarray:
        """The remaining output (the recording's end, zero-padded like ``resample_poly``); no pushes after it."""
        if self._finished:
            raise RuntimeError("PolyphaseResampler.finish called twice")
        self._finished = True
        if self.identity:
            return np.zeros((self.n_channels, 0))
        return self._emit(-(-self.n_in * self.up // self.down), at_end=True)

    def _emit(self, out_stop: int, *, at_end: bool) -> np.ndarray:
        """Output samples ``[n_out, out_stop)`` from an aligned, padded input segment; trims the buffer."""
        if out_stop <= self.n_out:
            return np.zeros((self.n_channels, 0))
        first_in = self.n_out // self.up * self.down  # input index of the first output sample (n_out % up == 0)
        seg_start = max(0, first_in - self.pad)
        seg_stop = self.n_in if at_end else min(self.n_in, -(-out_stop // self.up) * self.down + self.pad)
        local = self._buffer[:, seg_start - self._buffer_start : seg_stop - self._buffer_start]
        resampled = sps.resample_poly(local, self.up, self.down, axis=-1)
        skip = (first_in - seg_start) * self.up // self.down
        out = resampled[:, skip : skip + out_stop - self.n_out]
        self.n_out = out_stop
        # Keep what the next block needs: from `pad` before its first input sample.
        keep_from = max(0, out_stop // self.up * self.down - self.pad)
        if keep_from > self._buffer_start:
            self._buffer = self._buffer[:, keep_from - self._buffer_start :]
            self._buffer_start = keep_from
        return out


class RunningChannelStats:
    """Per-channel mean and standard deviation accumulated over chunks (Chan et al.'s pairwise update, float64).

    Equals :func:`~ictal.signal.preprocess.channel_stats` of the concatenated chunks to float64 rounding:
    non-finite values are ignored and a flat channel gets std 1, as there.
    """

    def __init__(self, n_channels: int) -> None:
        self.count = np.zeros(n_channels, dtype=np.float64)
        self.mean = np.zeros(n_channels, dtype=np.float64)
        self.m2 = np.zeros(n_channels, dtype=np.float64)  # sum of squared deviations from the mean

    def update(self, x: np.ndarray) -> None:
        """Add the samples of ``x`` ``(C, n)``."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[1] == 0:
            return
        finite = np.isfinite(x)
        if finite.all():
            n_b = np.full(x.shape[0], float(x.shape[1]))
            mean_b = x.mean(axis=1)
            m2_b = np.square(x - mean_b[:, None]).sum(axis=1)
        else:
            clean = np.where(finite, x, 0.0)
            n_b = finite.sum(axis=1).astype(np.float64)
            mean_b = clean.sum(axis=1) / np.maximum(n_b, 1.0)
            m2_b = np.where(finite, np.square(clean - mean_b[:, None]), 0.0).sum(axis=1)
        total = self.count + n_b
        safe = np.maximum(total, 1.0)
        delta = mean_b - self.mean
        self.mean = self.mean + delta * n_b / safe
        self.m2 = self.m2 + m2_b + delta**2 * self.count * n_b / safe
        self.count = total

    def stats(self) -> ChannelStats:
        """The statistics so far, as :func:`~ictal.signal.preprocess.channel_stats` gives them."""
        std = np.sqrt(self.m2 / np.maximum(self.count, 1.0))
        return ChannelStats(mean=self.mean.copy(), std=np.where(std > 1e-12, std, 1.0))


def n_chunks(n_samples: int, chunk_samples: int) -> int:
    """Chunks of ``chunk_samples`` input samples that cover ``n_samples`` (the last may be shorter)."""
    return max(1, -(-n_samples // chunk_samples))


def _chunk_samples(source: SampleSource, chunk_s: float) -> int:
    if not chunk_s > 0:
        raise ValueError(f"chunk_s must be positive seconds, got {chunk_s}")
    return max(1, int(round(chunk_s * source.sfreq)))


def filtered_chunks(
    source: SampleSource,
    cfg: PreprocessConfig,
    chunk_s: float = 300.0,
    on_chunk: Callable[[int, int], None] | None = None,
) -> Iterator[np.ndarray]:
    """Resampled, band-passed and notched signal of ``source``, chunk by chunk: ``(C, m)`` float64 µV at
    ``cfg.target_sfreq``; the concatenation equals the whole-recording chain up to (not including) the z-score.

    ``chunk_s`` seconds of input are read per step; ``on_chunk(done, total)`` is called after each.
    """
    step = _chunk_samples(source, chunk_s)
    total = n_chunks(source.n_samples, step)
    resampler: PolyphaseResampler | None = None
    zi: np.ndarray | None = None
    for i, start in enumerate(range(0, max(source.n_samples, 1), step)):
        raw = np.asarray(source.read(start, min(start + step, source.n_samples)), dtype=np.float64)
        if resampler is None:
            resampler = PolyphaseResampler(source.sfreq, cfg.target_sfreq, raw.shape[0])
        if not np.isfinite(raw).all():  # NaN/Inf would spread through the IIR filters, as in preprocess()
            raw = np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0)
        pieces = [resampler.push(raw)]
        if i == total - 1:
            pieces.append(resampler.finish())
        for piece in pieces:
            if piece.shape[1]:
                out, zi = apply_filters(piece, cfg, zi)
                yield out
        if on_chunk is not None:
            on_chunk(i + 1, total)


def recording_stats(
    source: SampleSource,
    cfg: PreprocessConfig,
    chunk_s: float = 300.0,
    on_chunk: Callable[[int, int], None] | None = None,
) -> ChannelStats:
    """Pass 1: per-channel mean and std of the filtered signal over the whole recording, in bounded memory."""
    running: RunningChannelStats | None = None
    for chunk in filtered_chunks(source, cfg, chunk_s, on_chunk):
        if running is None:
            running = RunningChannelStats(chunk.shape[0])
        running.update(chunk)
    if running is None:
        raise ValueError("the recording has no samples")
    return running.stats()


def preprocess_chunks(
    source: SampleSource,
    cfg: PreprocessConfig,
    chunk_s: float = 300.0,
    stats: ChannelStats | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> Iterator[np.ndarray]:
    """The whole chain, chunk by chunk: ``(C, m)`` float32 at ``cfg.target_sfreq``, z-units when ``cfg.zscore``.

    With ``cfg.zscore`` and no ``stats``, the source is read twice (pass 1: :func:`recording_stats`), so the
    concatenated output equals :func:`~ictal.signal.preprocess.preprocess` of the whole recording (max |diff|
    ~1e-6 z-units from float64 rounding of the statistics). ``on_chunk(done, total)`` counts the chunks of both
    passes (``total`` is twice the chunks per pass when two passes run).
    """
    step = _chunk_samples(source, chunk_s)
    per_pass = n_chunks(source.n_samples, step)
    two_passes = cfg.zscore and stats is None
    total = 2 * per_pass if two_passes else per_pass

    def progress(offset: int) -> Callable[[int, int], None] | None:
        if on_chunk is None:
            return None
        return lambda done, _n: on_chunk(offset + done, total)

    if two_passes:
        stats = recording_stats(source, cfg, chunk_s, progress(0))
    for chunk in filtered_chunks(source, cfg, chunk_s, progress(per_pass if two_passes else 0)):
        yield normalise(chunk, stats if cfg.zscore else None, cfg)


def preprocess_chunked(source: SampleSource, cfg: PreprocessConfig | None = None, chunk_s: float = 300.0) -> np.ndarray:
    """:func:`preprocess_chunks` concatenated: ``(C, T)`` float32 (for checks and notebooks; holds the output)."""
    cfg = cfg or PreprocessConfig()
    return np.concatenate(list(preprocess_chunks(source, cfg, chunk_s)), axis=1)


class OnlinePreprocessor:
    """The chain for a live stream: push raw µV as it is acquired, get preprocessed samples as they are final.

    Resampling and filtering are exactly those of the whole recording (above). The z-score cannot wait for the
    end of a stream, so it uses either ``stats`` given up front (e.g. from a recording already on disk: then the
    output equals offline preprocessing) or, by default, statistics of the first ``calibration_s`` seconds of the
    filtered signal, frozen afterwards: nothing is emitted until the calibration period is complete (or the
    stream ends first, whose statistics are then used), after which every push returns its samples.

    Latency: the resampler waits for ``pad`` input samples past an output block (about 20 samples at 250 Hz,
    0.1 s); the calibration adds ``calibration_s`` once, at the start. Memory: the calibration buffer
    (19 x 5 min x 256 Hz float64 = 5.8 MB), then one push.

    Args:
        sfreq: input rate (Hz); n_channels: rows of every push; cfg: the chain's parameters.
        stats: fixed z-score statistics (per channel, of the filtered signal); None calibrates.
        calibration_s: seconds of filtered signal the statistics are taken from when ``stats`` is None.
    """

    def __init__(
        self,
        sfreq: float,
        n_channels: int,
        cfg: PreprocessConfig,
        *,
        stats: ChannelStats | None = None,
        calibration_s: float = 300.0,
    ) -> None:
        if stats is None and cfg.zscore and not calibration_s > 0:
            raise ValueError(f"calibration_s must be positive seconds, got {calibration_s}")
        self.cfg = cfg
        self.resampler = PolyphaseResampler(sfreq, cfg.target_sfreq, n_channels)
        self.stats = stats
        self.calibration_samples = math.ceil(calibration_s * cfg.target_sfreq)
        self._zi: np.ndarray | None = None
        self._held: list[np.ndarray] = []  # filtered samples waiting for the calibration
        self._held_n = 0

    @property
    def calibrated(self) -> bool:
        return self.stats is not None or not self.cfg.zscore

    def push(self, raw: np.ndarray) -> np.ndarray:
        """Raw ``(C, n)`` µV at ``sfreq`` -> the preprocessed samples now final, ``(C, m)`` float32."""
        x = np.asarray(raw, dtype=np.float64)
        if not np.isfinite(x).all():
            x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        return self._filtered(self.resampler.push(x), final=False)

    def finish(self) -> np.ndarray:
        """The last samples (the end of the resampling, and everything held if calibration never completed)."""
        return self._filtered(self.resampler.finish(), final=True)

    def _filtered(self, resampled: np.ndarray, *, final: bool) -> np.ndarray:
        if resampled.shape[1]:
            filtered, self._zi = apply_filters(resampled, self.cfg, self._zi)
        else:
            filtered = resampled
        if self.calibrated:
            return normalise(filtered, self.stats, self.cfg)
        if filtered.shape[1]:
            self._held.append(filtered)
            self._held_n += filtered.shape[1]
        if self._held_n < self.calibration_samples and not final:
            return np.zeros((filtered.shape[0], 0), dtype=np.float32)
        held = np.concatenate(self._held, axis=1) if self._held else filtered
        running = RunningChannelStats(held.shape[0])
        running.update(held[:, : self.calibration_samples])
        self.stats = running.stats()
        self._held, self._held_n = [], 0
        return normalise(held, self.stats, self.cfg)
