"""The line-length detector: the classic amplitude-and-frequency baseline a learned model must beat.

Line length (Esteller et al., 2001) is the mean absolute sample-to-sample difference over a sliding window,
here averaged over the 19 channels of the same preprocessed input the model sees. It is mapped to [0, 1] with
the monotonic ``ll / (1 + ll)`` so that the same post-processing and threshold sweep apply; only the ordering
matters, since its threshold is tuned on dev like the model's.
"""

from __future__ import annotations

import numpy as np

from ictal.frames import SAMPLE_RATE, SAMPLES_PER_FRAME, n_frames


def line_length_trace(signal: np.ndarray, *, sfreq: float = SAMPLE_RATE, window_s: float = 2.0) -> np.ndarray:
    """Line-length score per 16-sample frame.

    Args:
        signal: ``(C, T)`` preprocessed EEG (z-units at ``sfreq``), a numpy array or memmap.
        window_s: length of the centred window over which the absolute differences are averaged.

    Returns:
        ``(ceil(T / 16),)`` float32 scores in [0, 1), higher for larger, faster activity.
    """
    x = np.asarray(signal, dtype=np.float32)
    n = x.shape[-1]
    frames = n_frames(n)
    if n < 2:
        return np.zeros(frames, np.float32)
    diff = np.abs(np.diff(x, axis=-1)).mean(axis=0, dtype=np.float64)  # (T - 1,)
    csum = np.concatenate(([0.0], np.cumsum(diff)))
    half = max(1, int(round(window_s * sfreq / 2)))
    centres = np.minimum(np.arange(frames) * SAMPLES_PER_FRAME + SAMPLES_PER_FRAME // 2, n - 2)
    lo = np.clip(centres - half, 0, diff.size)
    hi = np.clip(centres + half, 1, diff.size)
    ll = (csum[hi] - csum[lo]) / (hi - lo)
    return (ll / (1.0 + ll)).astype(np.float32)
