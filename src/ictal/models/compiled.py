"""Opt-in compiled CPU inference for the Mamba2 layers: ``compile_inference(model)``.

The eager PyTorch path (:mod:`ictal.models.ssd`, :class:`~ictal.models.mamba2.Mamba2`) spends most of its CPU time
moving activations between small elementwise steps, not in arithmetic (the base model's node-stream layers run at
about a third of their matrix-product speed, the edge stream's at an eighth). ``torch.compile`` (TorchInductor's
C++/OpenMP code) fuses those steps. What it compiles is :func:`mamba2_inference`, the same layer written for
inference only: the factorised SSD scan of ``ssd._scan_factorised`` with the state hand-over between chunks done
as one decay-matrix product over the chunks (exact segment sums, no loop), a zero initial state, no autograd.

When it runs (everything else takes the eager path, so results never depend on whether it is on):
CPU float32 input, no autograd, no autocast, no streaming state asked for, one B/C group. Each layer's sequences run
in blocks of :meth:`Mamba2.block_sequences` (the last block padded with zero sequences, so one compiled shape serves
every batch); a block whose chunks decay faster than the factorised scan allows (``factorised_span_limit``) is run
again on the eager path, which has the segment-sum fallback.

Costs: compiling takes several seconds per layer shape on the first call (about 15-25 s for ``base``: the node and
the edge stream); TorchInductor needs a C++ compiler at run time (gcc or clang). If compiling fails, one warning
names the cause and everything runs eagerly. Results equal the eager path's to float32 rounding (tested).

    from ictal.models.compiled import compile_inference
    compile_inference(model)            # then model(x) under torch.no_grad() / torch.inference_mode()

``ictal predict --compile`` and ``benchmarks/model.py --compile`` turn it on.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ictal.models.mamba2 import Mamba2
from ictal.models.ssd import factorised_span_limit, segsum

__all__ = ["CompiledInference", "compile_inference", "compiled_runner", "mamba2_inference"]


def mamba2_inference(
    x: Tensor,
    in_weight: Tensor,
    conv_taps: Tensor,
    conv_bias: Tensor,
    dt_bias: Tensor,
    a_log: Tensor,
    d: Tensor,
    norm_weight: Tensor,
    out_weight: Tensor,
    eps: float,
    nheads: int,
    headdim: int,
    d_state: int,
    chunk: int,
) -> tuple[Tensor, Tensor]:
    """One Mamba2 layer (one B/C group, zero initial state) for inference, in plain tensor operations.

    x: (S, L, d_model) float32 sequences, L a multiple of ``chunk``; in_weight, conv_taps (d_conv, conv_dim),
    conv_bias, dt_bias, a_log, d, norm_weight, out_weight: the layer's parameters (``Mamba2`` names).
    Returns the layer's output (S, L, d_model) and the largest per-chunk decay range (0-dim): the output is valid
    only if that is within ``factorised_span_limit`` (the factors exp(+-range/2) must not overflow).
    """
    s, length, _ = x.shape
    d_inner = nheads * headdim
    nc = length // chunk
    z, xbc, dt = torch.split(x @ in_weight.t(), [d_inner, d_inner + 2 * d_state, nheads], dim=-1)
    # Depthwise causal conv as a sum over taps of the zero-padded input, then SiLU.
    k = conv_taps.shape[0] - 1
    padded = F.pad(xbc, (0, 0, k, 0))
    pre = conv_bias + padded[:, :length] * conv_taps[0]
    for j in range(1, k + 1):
        pre = pre + padded[:, j : j + length] * conv_taps[j]
    xs, b, c = torch.split(F.silu(pre), [d_inner, d_state, d_state], dim=-1)
    dt = F.softplus(dt + dt_bias)  # (S, L, H)
    loga = (dt * -torch.exp(a_log)).view(s, nc, chunk, nheads)  # decay logs, <= 0
    cs = F.pad(torch.cumsum(loga[:, :, 1:], dim=2), (0, 0, 1, 0))  # from each chunk's first step
    span = cs[:, :, -1]  # (S, nc, H), >= -limit when valid
    ref = 0.5 * span
    first = loga[:, :, 0]

    def per_channel(w: Tensor) -> Tensor:  # (..., H) -> (..., H*P)
        return w.repeat_interleave(headdim, dim=-1)

    # Within a chunk (see ssd._scan_factorised): z = tril(C B^T) u + C E, u = exp(r - cs) dt x, y = exp(cs - r) z.
    scale_in = torch.exp(ref.unsqueeze(2) - cs) * dt.view(s, nc, chunk, nheads)
    scale_out = torch.exp(cs - ref.unsqueeze(2))
    u = (xs.reshape(s, nc, chunk, nheads, headdim) * scale_in.unsqueeze(-1)).reshape(s, nc, chunk, d_inner)
    bq = b.reshape(s, nc, chunk, d_state)
    cq = c.reshape(s, nc, chunk, d_state)
    gram = torch.tril(cq @ bq.mT)  # (S, nc, Q, Q)
    produced = (bq.mT @ u) * per_channel(torch.exp(ref)).unsqueeze(2)  # (S, nc, N, H*P): each chunk's own state
    # Entering chunk k: sum over m <= k of exp(sum of decay[m..k-1]) * produced[m-1] (produced[-1] = 0), with
    # decay[i] = first[i] + span[i] the log decay across chunk i: one (nc x nc) product per sequence and head.
    shifted_decay = F.pad(first + span, (0, 0, 1, 0))[:, :nc]  # [k] = decay[k-1]
    transfer = torch.exp(segsum(shifted_decay.transpose(1, 2)))  # (S, H, nc, nc)
    shifted = F.pad(produced, (0, 0, 0, 0, 1, 0))[:, :nc]  # [m] = produced[m-1]
    by_head = shifted.reshape(s, nc, d_state, nheads, headdim).permute(0, 3, 1, 2, 4).reshape(s, nheads, nc, -1)
    entering = (transfer @ by_head).reshape(s, nheads, nc, d_state, headdim).permute(0, 2, 3, 1, 4)
    entering = entering.reshape(s, nc, d_state, d_inner) * per_channel(torch.exp(first + ref)).unsqueeze(2)
    zc = gram @ u + cq @ entering  # (S, nc, Q, H*P)
    y = (zc.view(s, nc, chunk, nheads, headdim) * scale_out.unsqueeze(-1)).reshape(s, length, d_inner)
    y = y + xs * per_channel(d)
    # Gated RMSNorm (one group) and out_proj; the per-row 1/RMS commutes with the linear map.
    g = y * F.silu(z)
    inverse_rms = torch.rsqrt(g.square().mean(-1, keepdim=True) + eps)
    return (g @ (out_weight * norm_weight).t()) * inverse_rms, (-span).amax()


class CompiledInference:
    """Runs Mamba2 layers through a compiled :func:`mamba2_inference` where it applies (see the module docstring).

    ``compiler`` turns the function into the one to call (default: ``torch.compile(dynamic=False,
    fullgraph=True)``; tests pass the identity). After a failed compile, ``disabled`` holds the reason and every
    call returns None (the eager path). ``blocks`` / ``eager_blocks`` count the blocks run compiled / sent back to
    the eager path by the span check.
    """

    def __init__(self, compiler: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None) -> None:
        self._compiler = compiler if compiler is not None else _torch_compile
        self._function: Callable[..., Any] | None = None
        self.disabled: str | None = None
        self.blocks = 0
        self.eager_blocks = 0

    @staticmethod
    def applies(layer: Mamba2, x: Tensor) -> bool:
        """Whether a call of ``layer`` on ``x`` (no state, no returned state) can run compiled."""
        return (
            x.device.type == "cpu"
            and x.dtype == torch.float32
            and layer.ngroups == 1
            and layer.use_kernels is not True
            and not torch.is_grad_enabled()
            and not torch.is_autocast_enabled("cpu")
        )

    def __call__(self, layer: Mamba2, x: Tensor) -> Tensor | None:
        """``layer(x)`` for x (S, L, d_model), compiled; None when it does not apply or compiling failed."""
        if self.disabled is not None or not self.applies(layer, x):
            return None
        s, length, _ = x.shape
        padded_length = -(-length // layer.chunk_size) * layer.chunk_size
        block = min(s, layer.block_sequences(padded_length))
        limit = factorised_span_limit(torch.float32)
        out = x.new_empty(s, length, layer.d_model)
        for start in range(0, s, block):
            xb = x[start : start + block]
            n = xb.shape[0]
            # Causal: zeros appended in time leave the real steps' outputs unchanged; zero sequences fill the last
            # block so that one compiled shape serves every batch.
            xp = F.pad(xb, (0, 0, 0, padded_length - length, 0, block - n))
            result = self._run(layer, xp)
            if result is None:
                return None
            ob, max_span = result
            if float(max_span) <= limit:
                out[start : start + n] = ob[:n, :length]
                self.blocks += 1
            else:  # a fast-decaying head: the eager path's segment-sum scan handles it exactly
                out[start : start + n] = layer._forward_block(xb, None, None)[0]
                self.eager_blocks += 1
        return out

    def _run(self, layer: Mamba2, x: Tensor) -> tuple[Tensor, Tensor] | None:
        if self._function is None:
            self._function = self._compiler(mamba2_inference)
        args = (
            x, layer.in_proj.weight, layer.conv1d.weight.squeeze(1).t(), layer.conv1d.bias, layer.dt_bias,
            layer.A_log, layer.D, layer.norm.weight, layer.out_proj.weight, layer.norm.eps, layer.nheads,
            layer.headdim, layer.d_state, layer.chunk_size,
        )  # fmt: skip
        try:
            return self._function(*args)
        except Exception as exc:  # a missing C++ compiler or an Inductor fault: say so once, then run eagerly
            self.disabled = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            warnings.warn(
                f"compiled inference is off, the eager PyTorch path runs instead (slower, same results): "
                f"torch.compile failed ({self.disabled}). Fix: install a C++ compiler (gcc or clang) for "
                "TorchInductor, or run without --compile.",
                RuntimeWarning,
                stacklevel=3,
            )
            return None


def _torch_compile(fn: Callable[..., Any]) -> Callable[..., Any]:
    return torch.compile(fn, dynamic=False, fullgraph=True)


def compile_inference(
    model: nn.Module, enabled: bool = True, runner: CompiledInference | None = None
) -> CompiledInference | None:
    """Route the inference calls of every Mamba2 layer of ``model`` through one :class:`CompiledInference`
    (returned: its counters say what ran); ``enabled=False`` restores the eager path (returns None). Training
    calls and streaming are unaffected either way."""
    if not enabled:
        runner = None
    elif runner is None:
        runner = CompiledInference()
    for module in model.modules():
        if isinstance(module, Mamba2):
            module.compiled_inference = runner
    return runner


def compiled_runner(model: nn.Module) -> CompiledInference | None:
    """The :class:`CompiledInference` that ``compile_inference`` attached to ``model``'s Mamba2 layers, or None."""
    for module in model.modules():
        if isinstance(module, Mamba2) and isinstance(module.compiled_inference, CompiledInference):
            return module.compiled_inference
    return None
