"""TCN encoder: EEG at 256 Hz to feature frames at 16 Hz with a ~6 s receptive field.

The reference V3 runs 8 dilated convolutions (kernel 7, dilation 2^i, widths 64-128-256-512 twice) at the full
256 Hz rate and only then downsamples by 16, most of the model's cost on a CPU. This encoder keeps the same 8
layers, kernel, receptive field and output frame rate, but decimates *between* the layers: layer ``i`` still
spans ``2^i`` input samples per tap, realised as a dilation of ``2^i / r`` at a rate already reduced by ``r``.
Layers with short dilations (fine temporal detail) run at 256 Hz and are narrow; the wide layers run at 64 Hz and
16 Hz, where a tap costs 4x/16x less (``benchmarks/tcn.py`` measures both designs in one run; figures in
``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import torch
from torch import nn

from ictal.frames import SAMPLES_PER_FRAME
from ictal.models.config import TCNConfig


class ChannelLayerNorm(nn.Module):
    """LayerNorm over channels at each time step of ``(B, C, T)``.

    Time-local on purpose: statistics over time would make a frame's output depend on the window length,
    and the streaming predictor feeds chunks of other lengths.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


def _with_history(x: torch.Tensor, history: torch.Tensor | None, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` ``(B, C, L)`` preceded by the ``length`` samples before it (zeros at the start of a recording);
    returns ``(B, C, length + L)`` and the last ``length`` samples, the history of the next chunk."""
    prefix = x.new_zeros(x.shape[0], x.shape[1], length) if history is None else history.to(x.dtype)
    joined = torch.cat([prefix, x], dim=-1)
    # A copy: the next chunk needs these samples only, not this whole chunk (a view would keep it alive).
    return joined, joined[..., joined.shape[-1] - length :].clone()


class DilatedResidualBlock(nn.Module):
    """``(B, C_in, T) -> (B, C_out, T)``: dilated convolution, LayerNorm, GELU, plus a residual path.

    The convolution is centred ('same' padding), or with ``causal`` sees only the present and the past (left
    padding only), which lets :meth:`forward_chunk` continue a recording chunk by chunk. The residual path is
    untouched by the normalisation, so the signal's amplitude reaches later layers.
    """

    def __init__(
        self, c_in: int, c_out: int, kernel_size: int, dilation: int, dropout: float, causal: bool = False
    ) -> None:
        super().__init__()
        span = dilation * (kernel_size - 1)
        self.history = span if causal else 0  # past samples a causal output needs
        self.conv = nn.Conv1d(c_in, c_out, kernel_size, dilation=dilation, padding=0 if causal else span // 2)
        self.norm = ChannelLayerNorm(c_out)
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout)
        self.skip: nn.Module = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.dilation = dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.history:
            return self.forward_chunk(x, None)[0]
        return self.skip(x) + self.drop(self.act(self.norm(self.conv(x))))

    def forward_chunk(self, x: torch.Tensor, history: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Causal blocks: ``x`` ``(B, C_in, L)`` after ``history`` (the previous chunk's last inputs, None at the
        start) -> ``(B, C_out, L)`` and the history for the next chunk."""
        joined, after = _with_history(x, history, self.history)
        return self.skip(x) + self.drop(self.act(self.norm(self.conv(joined)))), after


class Downsample(nn.Module):
    """``(B, C, T) -> (B, C, T / factor)``: overlapping strided convolution (kernel 2*factor), then LayerNorm.

    The overlapping kernel lets the layer learn its own anti-aliasing low-pass before decimating. With
    ``causal``, output ``j`` sees inputs ``[(j - 1) factor, (j + 1) factor)``, none after its own step.
    """

    def __init__(self, channels: int, factor: int, causal: bool = False) -> None:
        super().__init__()
        self.history = factor if causal else 0
        self.conv = nn.Conv1d(channels, channels, 2 * factor, stride=factor, padding=0 if causal else factor // 2)
        self.norm = ChannelLayerNorm(channels)
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.history:
            return self.forward_chunk(x, None)[0]
        return self.norm(self.conv(x))

    def forward_chunk(self, x: torch.Tensor, history: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Causal layers: ``x`` ``(B, C, L)``, ``L`` a multiple of ``factor`` -> ``(B, C, L / factor)``, history."""
        joined, after = _with_history(x, history, self.history)
        return self.norm(self.conv(joined)), after


class TCNEncoder(nn.Module):
    """``(B, 19, T)`` z-scored EEG at 256 Hz -> ``(B, widths[-1], T / 16)`` frames at 16 Hz.

    Layer ``i`` (0-based) has dilation ``2^i`` in input samples, i.e. ``max(1, 2^i / r)`` at its stage's
    reduced rate ``256 / r`` Hz; ``receptive_field_samples`` gives the resulting span (about 6 s by default).
    ``T`` must be a multiple of 16. With ``causal`` every layer sees only the present and the past, and
    :meth:`forward_chunk` runs a recording chunk by chunk with each layer's last inputs carried over: the
    concatenated outputs equal one :meth:`forward` over the whole recording.
    """

    def __init__(self, config: TCNConfig, in_channels: int = 19, causal: bool = False) -> None:
        super().__init__()
        self.config = config
        self.causal = causal
        layers: list[nn.Module] = []
        c_prev, layer_idx, rate_div = in_channels, 0, 1
        rf = 1  # receptive field in input samples, accumulated analytically
        for stage, n_layers in enumerate(config.layers_per_stage):
            if stage > 0:
                factor = config.downsample[stage - 1]
                layers.append(Downsample(c_prev, factor, causal))
                rf += (2 * factor - 1) * rate_div
                rate_div *= factor
            for _ in range(n_layers):
                dilation = max(1, 2**layer_idx // rate_div)
                c_out = config.widths[layer_idx]
                layers.append(DilatedResidualBlock(c_prev, c_out, config.kernel_size, dilation, config.dropout, causal))
                rf += (config.kernel_size - 1) * dilation * rate_div
                c_prev, layer_idx = c_out, layer_idx + 1
        self.layers = nn.Sequential(*layers)
        self.out_norm = ChannelLayerNorm(c_prev)
        self.out_channels = c_prev
        self.receptive_field_samples = rf

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, 19, T)`` at 256 Hz, z-units, ``T % 16 == 0``; returns ``(B, C, T // 16)``."""
        self._check_length(x)
        return self.out_norm(self.layers(x))

    def forward_chunk(
        self, x: torch.Tensor, state: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Causal encoders: the next chunk ``x`` ``(B, 19, L)`` (``L % 16 == 0``) of a recording whose earlier
        chunks left ``state`` (None at the start) -> ``(B, C, L // 16)`` frames and the state for the next chunk
        (each layer's last inputs: at most 6 s of the input rate's history in all)."""
        if not self.causal:
            raise ValueError("TCNEncoder.forward_chunk needs a causal encoder (model.streamable: true)")
        self._check_length(x)
        histories: list[torch.Tensor] = []
        h = x
        for i, layer in enumerate(self.layers):
            assert isinstance(layer, DilatedResidualBlock | Downsample)
            h, after = layer.forward_chunk(h, None if state is None else state[i])
            histories.append(after)
        return self.out_norm(h), histories

    @staticmethod
    def _check_length(x: torch.Tensor) -> None:
        if x.shape[-1] % SAMPLES_PER_FRAME:
            raise ValueError(
                f"TCN input length {x.shape[-1]} samples is not a multiple of {SAMPLES_PER_FRAME}; "
                f"trim or pad the window to a multiple of {SAMPLES_PER_FRAME} samples (1/16 s at 256 Hz)"
            )
