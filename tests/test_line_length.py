"""The line-length baseline: shape, range, and that it ranks larger and faster activity higher."""

from __future__ import annotations

import numpy as np

from ictal.models.line_length import line_length_trace


def test_shape_range_and_ordering() -> None:
    fs = 256
    t = np.arange(fs * 30) / fs
    x = np.tile(np.sin(2 * np.pi * 2 * t), (19, 1)).astype(np.float32)
    x[:, fs * 10 : fs * 20] = 3 * np.sin(2 * np.pi * 20 * t[fs * 10 : fs * 20])  # big and fast in the middle
    ll = line_length_trace(x)
    assert ll.shape == (30 * 16,) and ll.dtype == np.float32
    assert ll.min() >= 0 and ll.max() < 1
    quiet, busy = ll[: 8 * 16].mean(), ll[12 * 16 : 18 * 16].mean()
    assert busy > 5 * quiet or busy > quiet + 0.5


def test_matches_direct_computation() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((19, 16 * 50 + 7)).astype(np.float32)
    ll = line_length_trace(x, window_s=0.5)
    d = np.abs(np.diff(x.astype(np.float64), axis=1)).mean(0)
    k = 20  # frame 20: centre sample 328, half window 64 samples
    c = k * 16 + 8
    direct = d[c - 64 : c + 64].mean()
    assert abs(ll[k] - direct / (1 + direct)) < 1e-6
    assert ll.shape == (-(-x.shape[1] // 16),)


def test_tiny_input() -> None:
    assert line_length_trace(np.zeros((19, 1), np.float32)).shape == (1,)
