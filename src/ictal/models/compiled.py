"""Opt-in compiled CPU inference for the Mamba2 layers: ``compile_inference(model)``.

The eager PyTorch path (:mod:`ictal.models.ssd`, :class:`~ictal.models.mamba2.Mamba2`) spends much of its CPU time
moving activations between small elementwise steps of the scan and the gated norm, not in arithmetic.
``torch.compile`` (TorchInductor's C++/OpenMP code) fuses those steps. What it compiles is :func:`scan_and_gate`:
the factorised SSD scan of ``ssd._scan_factorised`` from a zero state (the recurrence over chunks unrolled into
one fused loop), the D skip, the gated RMSNorm and out_proj, for inference only. The rest of the layer stays eager,
where it is faster: in_proj and the causal conv (TorchInductor's code for the conv, which reads a padded input with
bounds checks, ran several times slower than the eager tap sum), and the per-head scalings
(:func:`chunk_factors`; compiled, their exponentials were recomputed for every channel they multiply).

When it runs (everything else takes the eager path, so results never depend on whether it is on):
CPU float32 input, no autograd, no autocast, no streaming state asked for, one B/C group. Each layer's sequences run
in blocks of :meth:`Mamba2.block_sequences` (the last block padded with zero sequences, so one compiled shape serves
every batch); a block whose chunks decay faster than the factorised scan allows (``factorised_span_limit``) runs
on the eager path, which has the segment-sum fallback.

Costs: compiling takes seconds per layer shape on the first call; TorchInductor needs a C++ compiler at run time
(gcc or clang). If compiling fails, one warning names the cause and everything runs eagerly. Results equal the
eager path's to float32 rounding (tested). ``benchmarks/model.py --compile`` measures what it gains.

    from ictal.models.compiled import compile_inference
    compile_inference(model)            # then model(x) under torch.no_grad() / torch.inference_mode()

``ictal predict --compile`` turns it on for prediction.

Since the eager path's inference runs the scan compiled by numba (:mod:`ictal.models.cpu_scan`), this is slower
than the default: measured 0.70x (batch 1) and 0.72x (batch 8) of the eager forward timed in turn with it
(``benchmarks/model.py --compile``, 2 threads). It remains for comparison and for an install without numba.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ictal.models.mamba2 import Mamba2
from ictal.models.ssd import chunk_decay_logs, factorised_scalings, factorised_span_limit

__all__ = ["CompiledInference", "chunk_factors", "compile_inference", "compiled_runner", "scan_and_gate"]


def chunk_factors(dt: Tensor, a_log: Tensor, chunk: int) -> tuple[tuple[Tensor, ...], float]:
    """The factorised scan's scalings (``ssd.factorised_scalings``) for step sizes dt (S, L, H), L a multiple of
    ``chunk``, and a_log (H,); and the largest decay range of a chunk: the factors are within exp(+-range/2), so
    they are safe only if that is within ``factorised_span_limit``. Run eagerly: TorchInductor would recompute
    these exponentials for every channel that a scaling multiplies.
    """
    loga, cs, max_span = chunk_decay_logs(dt, -torch.exp(a_log), chunk)
    return factorised_scalings(loga, cs, dt), max_span


def scan_and_gate(
    z: Tensor,
    xbc: Tensor,
    scale_in: Tensor,
    scale_out: Tensor,
    w_produced: Tensor,
    w_decay: Tensor,
    w_entering: Tensor,
    d: Tensor,
    norm_weight: Tensor,
    out_weight: Tensor,
    eps: float,
    headdim: int,
    d_state: int,
) -> Tensor:
    """The SSD scan from a zero state, the D skip, the gated RMSNorm (one group) and out_proj of one Mamba2 layer.

    z (S, L, d_inner); xbc (S, L, d_inner + 2 N) the conv output [x, B, C]; the scalings of :func:`chunk_factors`;
    d (H,), norm_weight (d_inner,), out_weight (d_model, d_inner). Returns (S, L, d_model).
    """
    s, nc, q, nheads = scale_in.shape
    length, d_inner = nc * q, nheads * headdim
    xs, b, c = torch.split(xbc, [d_inner, d_state, d_state], dim=-1)
    x5 = xs.reshape(s, nc, q, nheads, headdim)
    # Within a chunk: z = tril(C B^T) u + C E with u = scale_in * x; y = scale_out * z (ssd._scan_factorised).
    u = (x5 * scale_in.unsqueeze(-1)).reshape(s, nc, q, d_inner)
    bq = b.reshape(s, nc, q, d_state)
    cq = c.reshape(s, nc, q, d_state)
    gram = torch.tril(cq @ bq.mT)  # (S, nc, Q, Q)
    produced = (bq.mT @ u).view(s, nc, d_state, nheads, headdim) * w_produced[:, :, None, :, None]
    # The states entering the chunks, by the recurrence over chunks: pointwise steps fused into one loop.
    state = produced.new_zeros(s, d_state, nheads, headdim)
    states = []
    for i in range(nc):
        states.append(state)
        state = state * w_decay[:, i, None, :, None] + produced[:, i]
    entering = torch.stack(states, dim=1) * w_entering[:, :, None, :, None]  # (S, nc, N, H, P)
    zc = gram @ u + cq @ entering.view(s, nc, d_state, d_inner)  # (S, nc, Q, H*P)
    y = zc.view(s, nc, q, nheads, headdim) * scale_out.unsqueeze(-1) + x5 * d[:, None]
    g = y.reshape(s, length, d_inner) * F.silu(z)
    # The per-row 1/RMS commutes with the linear map; the norm weight folds into out_proj's.
    inverse_rms = torch.rsqrt(g.square().mean(-1, keepdim=True) + eps)
    return (g @ (out_weight * norm_weight).t()) * inverse_rms


class CompiledInference:
    """Runs Mamba2 layers through a compiled :func:`scan_and_gate` where it applies (see the module docstring).

    ``compiler`` turns the function into the one to call (default: ``torch.compile(dynamic=False,
    fullgraph=True)``; tests pass the identity). After a failed compile, ``disabled`` holds the reason and every
    call returns None (the eager path). ``blocks`` / ``eager_blocks`` count the blocks run compiled / sent back to
    the eager path by the span check.
    """

    def __init__(self, compiler: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None) -> None:
        self._compiler = compiler if compiler is not None else _torch_compile
        self._scan: Callable[..., Any] | None = None
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
        out = x.new_empty(s, length, layer.d_model)
        for start in range(0, s, block):
            xb = x[start : start + block]
            n = xb.shape[0]
            # Causal: zeros appended in time leave the real steps' outputs unchanged; zero sequences fill the last
            # block so that one compiled shape serves every batch.
            ob, ran = self._run(layer, F.pad(xb, (0, 0, 0, padded_length - length, 0, block - n)))
            if not ran:
                return None
            if ob is not None:
                out[start : start + n] = ob[:n, :length]
                self.blocks += 1
            else:  # a fast-decaying head: the eager path's segment-sum scan handles it exactly
                out[start : start + n] = layer._forward_block(xb, None, None)[0]
                self.eager_blocks += 1
        return out

    def _run(self, layer: Mamba2, x: Tensor) -> tuple[Tensor | None, bool]:
        """(output, ran) for one padded block: output None with ran True when the block's chunks decay too fast
        for the factorised scan; ran False when compiling failed."""
        if self._scan is None:
            self._scan = self._compiler(scan_and_gate)
        try:
            # in_proj, the causal conv and the step sizes run eagerly: the eager conv (a tap sum in place) is
            # several times faster than TorchInductor's code for it, which reads the padded input with bounds checks.
            z, xbc, dt_raw = layer._split_proj(layer.in_proj(x))
            xbc = layer._causal_conv(xbc, None, None)[0]
            dt = F.softplus(dt_raw + layer.dt_bias)
            factors, max_span = chunk_factors(dt, layer.A_log, layer.chunk_size)
            if max_span > factorised_span_limit(torch.float32):
                return None, True
            out = self._scan(
                z, xbc, *factors, layer.D, layer.norm.weight, layer.out_proj.weight, layer.norm.eps, layer.headdim,
                layer.d_state,
            )  # fmt: skip
            return out, True
        except Exception as exc:  # a missing C++ compiler or an Inductor fault: say so once, then run eagerly
            self.disabled = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            warnings.warn(
                f"compiled inference is off, the eager PyTorch path runs instead (slower, same results): "
                f"torch.compile failed ({self.disabled}). Fix: install a C++ compiler (gcc or clang) for "
                "TorchInductor, or run without --compile.",
                RuntimeWarning,
                stacklevel=3,
            )
            return None, False


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
