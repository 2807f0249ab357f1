"""The windowed scorer over a whole recording: windows cover it, overlaps average, the tail and short recordings
are handled."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ictal.infer.scorers import score_signal
from ictal.post.stitch import stitch_windows, window_starts


class FrameMean(torch.nn.Module):
    """Logit per 16-sample frame = mean of channel 0 over that frame (so the expected trace is computable)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t = x.shape
        return x[:, 0].reshape(b, t // 16, 16).mean(-1)


@pytest.mark.parametrize("n", [16 * 700, 16 * 700 + 5, 16 * 100, 16 * 333])
def test_trace_equals_stitched_windows(n: int) -> None:
    rng = np.random.default_rng(0)
    signal = rng.standard_normal((19, n)).astype(np.float32)
    window, stride = 16 * 256, 16 * 64
    trace = score_signal(FrameMean(), signal, window=window, stride=stride, batch_size=3, chunk=1000)
    n_frames = -(-n // 16)
    assert trace.shape == (n_frames,) and trace.dtype == np.float32
    # expected: per-window frame outputs of the zero-padded signal, stitched by overlap-add
    starts = window_starts(n, window, stride, align=16)
    padded = np.zeros((19, starts[-1] + window), np.float32)
    padded[:, :n] = signal
    outs = np.stack([padded[0, s : s + window].reshape(-1, 16).mean(-1) for s in starts])
    expected = stitch_windows(1 / (1 + np.exp(-outs)), starts // 16, n_frames)
    np.testing.assert_allclose(trace, expected, atol=1e-6)
    # where the signal is whole frames, every window agrees, so the trace is exactly the per-frame sigmoid
    whole = n // 16
    direct = 1 / (1 + np.exp(-signal[0, : whole * 16].reshape(-1, 16).mean(-1)))
    np.testing.assert_allclose(trace[:whole], direct, atol=1e-6)


def test_model_mode_restored() -> None:
    model = FrameMean().train()
    score_signal(model, np.zeros((19, 16 * 300), np.float32), window=16 * 64, stride=16 * 32)
    assert model.training


def test_bad_window_refused() -> None:
    with pytest.raises(ValueError, match="multiples of 16"):
        score_signal(FrameMean(), np.zeros((19, 100), np.float32), window=100, stride=16)
