"""TCN encoder: frame rate, receptive field (analytic and measured), input checks, config validation."""

from __future__ import annotations

import pydantic
import pytest
import torch

from ictal.models.config import TCNConfig
from ictal.models.tcn import DilatedResidualBlock, Downsample, TCNEncoder

SMALL = TCNConfig(widths=(4, 4, 8, 8, 8, 8, 8, 12), dropout=0.0)


@pytest.mark.parametrize("n_frames", [1, 37, 64])
def test_output_is_one_frame_per_16_samples(n_frames: int) -> None:
    enc = TCNEncoder(SMALL)
    out = enc(torch.randn(2, 19, 16 * n_frames))
    assert out.shape == (2, 12, n_frames)
    assert enc.out_channels == 12


def test_length_not_multiple_of_16_is_refused() -> None:
    with pytest.raises(ValueError, match="multiple of 16"):
        TCNEncoder(SMALL)(torch.randn(1, 19, 16 * 10 + 3))


def test_layer_i_spans_2_to_the_i_input_samples_per_tap() -> None:
    enc = TCNEncoder(TCNConfig())
    rate_div, spans = 1, []
    for layer in enc.layers:
        if isinstance(layer, Downsample):
            rate_div *= layer.factor
        elif isinstance(layer, DilatedResidualBlock):
            spans.append(layer.dilation * rate_div)
    assert spans == [2**i for i in range(8)]
    assert rate_div == 16


def test_receptive_field_is_about_6_s_and_matches_the_measured_one() -> None:
    enc = TCNEncoder(TCNConfig(widths=(2, 2, 2, 2, 2, 2, 2, 2), dropout=0.0)).eval()
    rf = enc.receptive_field_samples
    assert 5.5 * 256 <= rf <= 6.5 * 256
    # Measured: the input samples that influence one frame in the middle of a long input.
    x = torch.randn(1, 19, 16 * 400, requires_grad=True)
    enc(x)[0, 0, 200].backward()  # one channel: LayerNorm makes the channel sum constant
    assert x.grad is not None
    touched = torch.nonzero(x.grad[0].abs().sum(0) > 0).flatten()
    span = int(touched[-1] - touched[0]) + 1
    assert 0.9 * rf <= span <= rf


def test_config_errors_name_the_key() -> None:
    adapter = pydantic.TypeAdapter(TCNConfig)
    with pytest.raises(pydantic.ValidationError, match="tcn.downsample"):
        adapter.validate_python({"downsample": [4, 2]})
    with pytest.raises(pydantic.ValidationError, match="tcn.layers_per_stage"):
        adapter.validate_python({"layers_per_stage": [2, 2, 3]})
    with pytest.raises(pydantic.ValidationError, match="kernel_size"):
        adapter.validate_python({"kernel_size": 6})
    with pytest.raises(pydantic.ValidationError):
        adapter.validate_python({"width": [1]})  # unknown key
    cfg = adapter.validate_python({"widths": [8] * 8, "layers_per_stage": [1, 3, 4]})
    assert cfg.widths == (8,) * 8


def test_amplitude_reaches_the_output_through_the_residual_path() -> None:
    # Per-step LayerNorm alone would make the output blind to the input's scale; the residual path is not.
    enc = TCNEncoder(SMALL).eval()
    x = torch.randn(1, 19, 16 * 32)
    with torch.no_grad():
        a, b = enc(x), enc(3.0 * x)
    assert not torch.allclose(a, b, atol=1e-3)
    assert torch.isfinite(b).all()
