"""predict_trace: windows cover the recording, overlaps average, the tail and short recordings are handled."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ictal.infer.trace import iter_window_batches, predict_trace
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
    trace = predict_trace(FrameMean(), signal, window=window, stride=stride, batch_size=3)
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


def test_batches_cover_and_pad() -> None:
    signal = np.ones((2, 100), np.float32)
    batches = list(iter_window_batches(signal, 64, 32, batch_size=2))
    starts = np.concatenate([s for s, _ in batches])
    assert starts[0] == 0 and starts[-1] + 64 >= 100 and all(s % 16 == 0 for s in starts)
    last = batches[-1][1][-1]
    assert last[:, : 100 - starts[-1]].min() == 1 and last[:, 100 - starts[-1] :].max() == 0


def test_model_mode_restored_and_progress() -> None:
    model = FrameMean().train()
    seen: list[tuple[int, int]] = []
    predict_trace(model, np.zeros((19, 16 * 300), np.float32), window=16 * 64, stride=16 * 32,
                  on_batch=lambda d, t: seen.append((d, t)))  # fmt: skip
    assert model.training
    assert seen[-1][0] == seen[-1][1] and len(seen) >= 2


def test_bad_window_refused() -> None:
    with pytest.raises(ValueError, match="multiples of 16"):
        predict_trace(FrameMean(), np.zeros((19, 100), np.float32), window=100, stride=16)
