"""Mamba2's selective scan for CPU inference: the recurrence step by step, in code compiled by numba.

    h_t = exp(dt_t * A) * h_{t-1} + dt_t * x_t B_t^T        y_t = h_t C_t + D * x_t      (per sequence and head)

Why a second evaluation beside the chunked SSD scan (`ictal.models.ssd`): on a CPU the SSD algorithm's time goes
into memory traffic (per-chunk states as large as the input, many small matrix products and elementwise passes), not
arithmetic. Step by step, a head's (headdim x d_state) state stays in the L1 cache, every input is read once, and
the innermost loop runs over contiguous channels, which the compiler vectorises. Measured on one thread of a 2-core
machine (``python benchmarks/scan.py``, two runs; ``benchmarks/model.py --ssd-scan`` gives the whole model's
figures): a block of the base model's node stream (3 sequences x 960 frames) in 0.92-0.98 ms against the SSD scan's
3.6-4.5 ms (3.9-4.6x), a block of its edge stream (12-13 x 960) in 1.05-1.07 ms against 3.4-3.6 ms (3.3-3.4x). It
has no backward pass, so it runs only in eval mode where no gradient is needed (inference: `ictal predict`,
evaluation, streaming); training runs the SSD scan. Both compute the same recurrence in the same float precision;
the tests hold them to each other and to a naive per-step loop.

numba (a well-kept JIT compiler for numerical Python, no C compiler needed) compiles the kernel on the first call in
a process (about a second). Without numba, or with ``ICTAL_CPU_SCAN=0``, inference runs the SSD scan.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ictal.errors import ConfigError

__all__ = ["CPU_SCAN_ENV", "cpu_scan_available", "selective_scan_cpu"]

#: Environment variable: ``0`` turns the compiled CPU scan off (inference then runs the SSD scan), ``1`` (default) on.
CPU_SCAN_ENV = "ICTAL_CPU_SCAN"


def cpu_scan_enabled() -> bool:
    """Whether ``ICTAL_CPU_SCAN`` allows the compiled scan (unset or ``1``); ``0`` turns it off."""
    value = os.environ.get(CPU_SCAN_ENV, "1").strip()
    if value not in ("0", "1"):
        raise ConfigError(
            f"environment variable {CPU_SCAN_ENV}",
            [f"{CPU_SCAN_ENV}={value!r} must be 0 (SSD scan for inference too) or 1 (compiled CPU scan), or unset"],
        )
    return value == "1"


def cpu_scan_available() -> bool:
    """Whether inference on a CPU can run the compiled scan: numba imports and ``ICTAL_CPU_SCAN`` is not 0."""
    return cpu_scan_enabled() and _kernel() is not None


@functools.cache
def _kernel() -> Callable[..., None] | None:
    """The compiled kernel, or None without numba (looked up once per process; numba compiles it per dtype and
    array layout on first use)."""
    try:
        import numba
    except Exception:  # not installed, or a broken llvmlite: the SSD scan runs instead
        return None
    # contract (fused multiply-add) only: no assumptions about NaN or infinity, so non-finite inputs propagate
    # as they do through the SSD scan and the NaN debugger still finds their source.
    compiled: Callable[..., None] = numba.njit(nogil=True, fastmath={"contract"}, error_model="numpy")(_scan_sequences)
    return compiled


def _scan_sequences(
    xbc: Any, dt: Any, decay: Any, d: Any, state: Any, y: Any, nheads: int, headdim: int, ngroups: int, d_state: int
) -> None:
    """Every sequence, head and time step. Arrays (numpy views of the torch tensors):

    xbc (B, L, H*P + 2*G*N): the conv's output, [x | B | C] per step; dt, decay (B, L, H): the step size and
    exp(dt * A) (computed beforehand by torch's vectorised kernels: one exp per step here would cost more than the
    recurrence); d (H,): skip weights; state (B, G, N, Hg*P): the state h_t laid out so that each state index holds
    the channels of its group's heads side by side (the innermost loop runs over those channels, contiguous, which
    the compiler vectorises); updated in place. y (B, L, H*P): written.
    """
    batch, length, _ = xbc.shape
    hp = nheads * headdim
    group_width = hp // ngroups
    b_at = hp
    c_at = hp + ngroups * d_state
    # Per channel, from its head: dt * x and exp(dt * A) of the current step.
    input_channel = np.empty(hp, dtype=y.dtype)
    decay_channel = np.empty(hp, dtype=y.dtype)
    for i in range(batch):
        for t in range(length):
            row = xbc[i, t]
            out = y[i, t]
            for h in range(nheads):
                step, keep, skip = dt[i, t, h], decay[i, t, h], d[h]
                for p in range(headdim):
                    j = h * headdim + p
                    input_channel[j] = step * row[j]
                    decay_channel[j] = keep
                    out[j] = skip * row[j]
            for g in range(ngroups):
                group_state = state[i, g]
                base = g * group_width
                for n in range(d_state):
                    b_n = row[b_at + g * d_state + n]
                    c_n = row[c_at + g * d_state + n]
                    s = group_state[n]
                    for k in range(group_width):
                        value = decay_channel[base + k] * s[k] + input_channel[base + k] * b_n
                        s[k] = value
                        out[base + k] += value * c_n


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
    """Mamba2's scan with the D skip, for inference on a CPU (no autograd).

    xbc: (B, L, H*P + 2*G*N) the causal conv's SiLU output, [x | B | C] along the last axis; dt_raw: (B, L, H) step
    sizes before ``softplus(dt_raw + dt_bias)``; dt_bias, d: (H,); a: (H,) negative decay rates; initial: (B, H, P, N)
    state or None (zeros). Computes in float64 for float64 inputs, float32 otherwise (like the SSD scan).
    Returns y (B, L, H*P) in the compute dtype and the final state (B, H, P, N). Runs in the calling thread, on one
    core, without the GIL (callers run blocks of sequences on several threads: `ictal.models.parallel`).
    """
    kernel = _kernel()
    if kernel is None:
        raise RuntimeError("selective_scan_cpu needs numba; install it (pip install numba) or use ssd_chunked_scan")
    f = torch.float64 if xbc.dtype == torch.float64 else torch.float32
    batch, length, _ = xbc.shape
    hp = nheads * headdim
    if batch == 0 or length == 0:  # nothing to scan: no output, the state passes unchanged
        final = xbc.new_zeros(batch, nheads, headdim, d_state, dtype=f) if initial is None else initial.to(f)
        return xbc.new_zeros(batch, length, hp, dtype=f), final
    with torch.no_grad():
        xbc = xbc.to(f).contiguous()
        dt = F.softplus(dt_raw.to(f) + dt_bias.to(f))  # (B, L, H) contiguous, as the SSD scan computes it
        decay = torch.exp(dt * a.to(f))
        groups = (batch, ngroups, nheads // ngroups, headdim, d_state)
        if initial is None:
            state = xbc.new_zeros(batch, ngroups, d_state, hp // ngroups)
        else:  # (B, H, P, N) -> (B, G, N, Hg*P)
            state = initial.detach().to(f).reshape(groups).permute(0, 1, 4, 2, 3).reshape(batch, ngroups, d_state, -1)
            state = state.contiguous()
        y = xbc.new_empty(batch, length, hp)
        skip = d.detach().to(f).contiguous()
        kernel(xbc.numpy(), dt.numpy(), decay.numpy(), skip.numpy(), state.numpy(), y.numpy(),
               nheads, headdim, ngroups, d_state)  # fmt: skip
    final = state.view(batch, ngroups, d_state, nheads // ngroups, headdim).permute(0, 1, 3, 4, 2)
    return y, final.reshape(batch, nheads, headdim, d_state)
