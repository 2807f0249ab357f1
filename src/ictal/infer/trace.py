"""A model over a whole recording: overlapping windows in batches, stitched into one probability trace.

The same code serves evaluation (recordings memory-mapped from the cache) and prediction (recordings
preprocessed chunk by chunk): windows are cut when needed, only one batch of windows is in memory, and the
stitcher keeps one window of output, so memory does not grow with the recording.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import torch

from ictal.post.stitch import TraceStitcher, window_starts

#: Samples per 16 Hz output frame at 256 Hz.
FRAME_HOP = 16


def iter_window_batches(
    signal: np.ndarray, window: int, stride: int, batch_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Batches of windows covering ``signal`` (C, T): yields ``(starts (b,), windows (b, C, window) float32)``.

    Starts are multiples of 16 samples; windows running past the end (the tail, or a recording shorter than a
    window) are zero-padded.
    """
    n = signal.shape[-1]
    starts = window_starts(n, window, stride, align=FRAME_HOP)
    for i in range(0, len(starts), batch_size):
        chunk = starts[i : i + batch_size]
        batch = np.zeros((len(chunk), signal.shape[0], window), dtype=np.float32)
        for j, s in enumerate(chunk):
            piece = signal[:, s : s + window]
            batch[j, :, : piece.shape[-1]] = piece
        yield chunk, batch


@torch.no_grad()
def predict_trace(
    model: torch.nn.Module,
    signal: np.ndarray,
    *,
    window: int = 15360,
    stride: int = 2560,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    autocast_dtype: torch.dtype | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Seizure probability per 16 Hz frame for one recording.

    Args:
        model: maps ``(B, 19, window)`` z-scored EEG at 256 Hz to ``(B, window // 16)`` frame logits.
        signal: ``(19, T)`` preprocessed EEG (z-units, 256 Hz); a numpy array or a read-only memmap.
        window, stride: in samples (multiples of 16); 60 s / 10 s by default.
        batch_size: windows per forward pass.
        device: where the model runs; ``autocast_dtype`` (e.g. ``torch.bfloat16``) enables autocast there.
        on_batch: called as ``on_batch(windows_done, windows_total)`` after each batch (progress bars).

    Returns:
        ``(ceil(T / 16),)`` float32 probabilities in [0, 1]: window outputs averaged where windows overlap.
    """
    if window % FRAME_HOP or stride % FRAME_HOP:
        raise ValueError(f"window ({window}) and stride ({stride}) must be multiples of {FRAME_HOP} samples")
    n = signal.shape[-1]
    n_frames = -(-n // FRAME_HOP)
    total = len(window_starts(n, window, stride, align=FRAME_HOP))
    stitcher = TraceStitcher(window // FRAME_HOP, n_total=n_frames)
    dev = torch.device(device)
    was_training = model.training
    model.eval()
    parts: list[np.ndarray] = []
    done = 0
    amp = torch.autocast(dev.type, dtype=autocast_dtype) if autocast_dtype is not None else contextlib.nullcontext()
    try:
        for starts, batch in iter_window_batches(signal, window, stride, batch_size):
            with amp:
                logits = model(torch.from_numpy(batch).to(dev))
            probs = torch.sigmoid(logits.float()).cpu().numpy()
            for s, p in zip(starts, probs, strict=True):
                parts.append(stitcher.push(p, int(s) // FRAME_HOP))
            done += len(starts)
            if on_batch is not None:
                on_batch(done, total)
        parts.append(stitcher.finish(n_frames))
    finally:
        model.train(was_training)
    trace = np.concatenate(parts).astype(np.float32, copy=False)
    if trace.shape[0] != n_frames:  # the stitcher's contract; a mismatch is a bug, not bad input
        raise RuntimeError(f"stitched trace has {trace.shape[0]} frames, expected {n_frames}")
    return trace
