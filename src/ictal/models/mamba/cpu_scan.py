"""Mamba2's selective scan on a CPU: the recurrence step by step, forward and backward, in code compiled by numba.

    h_t = exp(dt_t * A) * h_{t-1} + dt_t * x_t B_t^T        y_t = h_t C_t + D * x_t      (per sequence and head)

Why a second evaluation beside the chunked SSD scan (`ictal.models.mamba.ssd`): on a CPU the SSD algorithm's time goes
into memory traffic (per-chunk states as large as the input, many small matrix products and elementwise passes), not
arithmetic. Step by step, a head's (headdim x d_state) state stays in the L1 cache, every input is read once, and
the innermost loop runs over contiguous channels, which the compiler vectorises. The backward pass runs the adjoint
recurrence backwards in time, recomputing the states of each 16-step segment from a state the forward pass kept.
It is several times faster than the SSD scan per block (``benchmarks/scan.py``, figures in
``benchmarks/RESULTS.md``). Both compute the same recurrence in the same float precision; the tests hold them to
each other (outputs and gradients), to a naive per-step loop and to gradcheck.

numba (a well-kept JIT compiler for numerical Python, no C compiler needed) compiles each kernel on its first call
in a process (about a second; its compiler stays resident, some 100-250 MB). Without numba, or with
``ICTAL_CPU_SCAN=0``, the SSD scan runs instead.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ictal.config.env import CPU_SCAN, FORCE_REFERENCE_SCAN, env_flag

__all__ = ["cpu_scan_available", "cpu_scan_enabled", "selective_scan_cpu"]


def cpu_scan_enabled() -> bool:
    """Whether the environment allows the compiled scan: ``ICTAL_CPU_SCAN`` (default on) and not
    ``ICTAL_FORCE_REFERENCE_SCAN`` (:mod:`ictal.config.env`)."""
    return env_flag(CPU_SCAN, True) and not env_flag(FORCE_REFERENCE_SCAN, False)


def cpu_scan_available() -> bool:
    """Whether a CPU can run the compiled scan: numba imports and ``ICTAL_CPU_SCAN`` is not 0."""
    return cpu_scan_enabled() and _kernels() is not None


@functools.cache
def _kernels() -> Any:
    """The compiled kernels' module (`ictal.models.mamba.cpu_scan_kernels`), or None without numba (looked up once per
    process; numba compiles each kernel per dtype and array layout on first use)."""
    try:
        from ictal.models.mamba import cpu_scan_kernels
    except Exception:  # numba not installed, or a broken llvmlite: the SSD scan runs instead
        return None
    return cpu_scan_kernels


class _CompiledScan(torch.autograd.Function):
    """The compiled scan as an autograd Function: forward `scan_forward` (keeping a state every CHECKPOINT_STEPS steps
    when a gradient is needed), backward `scan_backward`.

    Inputs: xbc (B, L, H*P + 2*G*N), dt, decay (B, L, H), d (H,), initial (B, G, N, Hg*P) or None, all contiguous in
    one float dtype, then the sizes and whether a backward pass will follow. Outputs: y (B, L, H*P) and the final
    state (B, G, N, Hg*P).
    """

    @staticmethod
    def forward(
        ctx: Any, xbc: Tensor, dt: Tensor, decay: Tensor, d: Tensor, initial: Tensor | None,
        nheads: int, headdim: int, ngroups: int, d_state: int, training: bool,
    ) -> tuple[Tensor, Tensor]:  # fmt: skip
        kernels = _kernels()
        batch, length, _ = xbc.shape
        width = nheads * headdim // ngroups
        state = xbc.new_zeros(batch, ngroups, d_state, width) if initial is None else initial.detach().clone()
        y = xbc.new_empty(batch, length, nheads * headdim)
        segments = -(-length // kernels.CHECKPOINT_STEPS) if training else 0
        checkpoints = xbc.new_empty(batch, segments, ngroups, d_state, width)
        arrays = [t.detach().numpy() for t in (xbc, dt, decay, d, state, y, checkpoints)]
        kernels.scan_forward(*arrays, nheads, headdim, ngroups, d_state)
        if training:
            ctx.save_for_backward(xbc, dt, decay, d, checkpoints)
            ctx.sizes = (nheads, headdim, ngroups, d_state)
            ctx.has_initial = initial is not None
        return y, state

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_y: Tensor | None, grad_final: Tensor | None) -> tuple[Tensor | None, ...]:
        xbc, dt, decay, d, checkpoints = ctx.saved_tensors
        nheads, headdim, ngroups, d_state = ctx.sizes
        batch, length, _ = xbc.shape
        width = nheads * headdim // ngroups
        f = xbc.dtype
        grad_y = xbc.new_zeros(batch, length, nheads * headdim) if grad_y is None else grad_y.to(f).contiguous()
        # In: the final state's gradient; out (updated in place by the kernel): the initial state's.
        adjoint = xbc.new_zeros(batch, ngroups, d_state, width) if grad_final is None else grad_final.to(f).clone()
        grad_xbc, grad_dt, grad_decay = torch.empty_like(xbc), torch.empty_like(dt), torch.empty_like(decay)
        grad_d = torch.zeros_like(d)
        arrays = [t.detach().numpy() for t in (xbc, dt, decay, d, checkpoints, grad_y, adjoint)]
        arrays += [t.numpy() for t in (grad_xbc, grad_dt, grad_decay, grad_d)]
        _kernels().scan_backward(*arrays, nheads, headdim, ngroups, d_state)
        grad_initial = adjoint if ctx.has_initial else None
        return grad_xbc, grad_dt, grad_decay, grad_d, grad_initial, None, None, None, None, None


def selective_scan_cpu(
    xbc: Tensor,
    dt_raw: Tensor,
    dt_bias: Tensor,
    a: Tensor,
    d: Tensor,
    *,
    nheads: int,
    headdim: int,
    ngroups: int,
    d_state: int,
    initial: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Mamba2's scan with the D skip on a CPU, differentiable (autograd) with respect to every input.

    xbc: (B, L, H*P + 2*G*N) the causal conv's SiLU output, [x | B | C] along the last axis; dt_raw: (B, L, H) step
    sizes before ``softplus(dt_raw + dt_bias)``; dt_bias, d: (H,); a: (H,) negative decay rates; initial: (B, H, P, N)
    state or None (zeros). Computes in float64 for float64 inputs, float32 otherwise (like the SSD scan), with
    autocast off. Returns y (B, L, H*P) in the compute dtype and the final state (B, H, P, N). Runs in the calling
    thread, on one core, without the GIL (callers run blocks of sequences on several threads:
    `ictal.models.mamba.parallel`).
    """
    if _kernels() is None:
        raise RuntimeError("selective_scan_cpu needs numba; install it (pip install numba) or use ssd_chunked_scan")
    f = torch.float64 if xbc.dtype == torch.float64 else torch.float32
    batch, length, _ = xbc.shape
    hp = nheads * headdim
    if batch == 0 or length == 0:  # nothing to scan: no output, the state passes unchanged
        final = xbc.new_zeros(batch, nheads, headdim, d_state, dtype=f) if initial is None else initial.to(f)
        return xbc.new_zeros(batch, length, hp, dtype=f), final
    grouped = (batch, ngroups, nheads // ngroups, headdim, d_state)
    with torch.autocast(device_type=xbc.device.type, enabled=False):
        dt = F.softplus(dt_raw.to(f) + dt_bias.to(f))  # (B, L, H) contiguous, as the SSD scan computes it
        decay = torch.exp(dt * a.to(f))
        if initial is not None:  # (B, H, P, N) -> (B, G, N, Hg*P)
            initial = initial.to(f).reshape(grouped).permute(0, 1, 4, 2, 3).reshape(batch, ngroups, d_state, -1)
            initial = initial.contiguous()
        inputs = (xbc.to(f).contiguous(), dt, decay, d.to(f), initial)
        # Inside forward, ctx.needs_input_grad is True for a parameter even under no_grad: decide here instead.
        training = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs)
        y, state = _CompiledScan.apply(*inputs, nheads, headdim, ngroups, d_state, training)
    final = state.view(batch, ngroups, d_state, nheads // ngroups, headdim).permute(0, 1, 3, 4, 2)
    return y, final.reshape(batch, nheads, headdim, d_state)
