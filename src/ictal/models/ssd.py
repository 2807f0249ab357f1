"""Chunked state-space-duality (SSD) scan: the pure-PyTorch reference for Mamba2's selective recurrence.

The recurrence (per batch b, head h; p indexes the head's channels, n the state):

    h_t = exp(dt_t * A) * h_{t-1} + dt_t * x_t B_t^T        h_t: (headdim, d_state)
    y_t = h_t C_t + D * x_t

is evaluated exactly (not approximated) by the SSD algorithm of the Mamba2 paper ("ssd_minimal"): the sequence
is cut into chunks; inside a chunk the output is a masked quadratic form (C B^T weighted by a decay matrix built
with a segment sum), and the states handed from chunk to chunk follow a short recurrence over chunks, done as a
decay-matrix product over blocks of chunks. No step of the computation loops over time steps.

Numerics: the whole scan runs in float32 (float64 when the inputs are float64) with autocast disabled, because
bf16/fp16 cumulative sums of decay logs lose the precision that exp() then amplifies. Segment sums are masked
cumulative sums (no difference of two large cumulative sums), and every exp() gets a non-positive argument.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["segsum", "ssd_chunked_scan", "scan_dtype"]

# Chunks whose states are passed with one decay-matrix product; longer sequences loop over such blocks, so the
# cost stays linear in the number of chunks (a 24 h recording at 16 Hz has ~20,000 chunks of 64 frames).
_STATE_PASS_BLOCK = 16
# Longest segment-sum axis done as one matmul with a T^3 indicator (see segsum).
_SEGSUM_MATMUL_MAX = 64


def scan_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the scan computes in: float64 stays float64, everything else becomes float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def segsum(a: Tensor) -> Tensor:
    """Segment sums of decay logs: `out[..., i, j] = sum(a[..., j+1 : i+1])` for j <= i, `-inf` above.

    a: (..., T) non-positive decay logs (dt * A). Returns (..., T, T); exp() of it is the lower-triangular
    decay matrix with ones on the diagonal. Each entry sums only its own segment (never a difference of two
    long prefix sums, which cancels catastrophically when the decay is strong), so it is exact up to the
    rounding of a same-sign sum. On CPU for T <= 64 that sum is one matmul with a 0/1 segment-indicator matrix
    (fastest there, forward and backward); elsewhere a masked cumulative sum (no TF32 matmul on CUDA, and no
    T^3 indicator for long chunks).
    """
    t = a.shape[-1]
    lower = torch.ones(t, t, dtype=torch.bool, device=a.device).tril(0)
    if a.device.type == "cpu" and t <= _SEGSUM_MATMUL_MAX:
        k = torch.arange(t, device=a.device)
        # indicator[k, i, j] = 1 where j < k <= i: a_k belongs to segment (j, i].
        indicator = (k[:, None, None] > k[None, None, :]) & (k[:, None, None] <= k[None, :, None])
        out = (a @ indicator.to(a.dtype).reshape(t, t * t)).unflatten(-1, (t, t))
    else:
        strictly_lower = torch.ones(t, t, dtype=torch.bool, device=a.device).tril(-1)
        cols = a.unsqueeze(-1).expand(*a.shape, t).masked_fill(~strictly_lower, 0.0)
        out = torch.cumsum(cols, dim=-2)
    return out.masked_fill(~lower, float("-inf"))


def _pass_states(chunk_states: Tensor, chunk_decay: Tensor, initial: Tensor) -> tuple[Tensor, Tensor]:
    """States entering each chunk, and the final state, from each chunk's own contribution.

    chunk_states: (B, H, N_chunks, P, N) state each chunk produces from a zero start.
    chunk_decay: (B, H, N_chunks) log decay across each whole chunk (sum of dt*A, <= 0).
    initial: (B, H, P, N) state before the first chunk.
    Returns (entering (B, H, N_chunks, P, N), final (B, H, P, N)), following
    `S_{c+1} = exp(chunk_decay_c) * S_c + chunk_states_c`, evaluated blockwise as a decay-matrix product.
    """
    b, h, nc, p, n = chunk_states.shape
    entering = []
    carry = initial
    for start in range(0, nc, _STATE_PASS_BLOCK):
        stop = min(start + _STATE_PASS_BLOCK, nc)
        m = stop - start
        # Row i of the (m+1)x(m+1) decay matrix maps [carry, chunk_states_start..] to the state after i chunks.
        logs = torch.nn.functional.pad(chunk_decay[..., start:stop], (1, 0))
        decay = torch.exp(segsum(logs))  # (B, H, m+1, m+1)
        stacked = torch.cat([carry.unsqueeze(2), chunk_states[:, :, start:stop]], dim=2)
        passed = (decay @ stacked.reshape(b, h, m + 1, p * n)).reshape(b, h, m + 1, p, n)
        entering.append(passed[:, :, :m])
        carry = passed[:, :, m]
    return torch.cat(entering, dim=2), carry


def ssd_chunked_scan(
    x: Tensor,
    dt: Tensor,
    a: Tensor,
    b: Tensor,
    c: Tensor,
    d: Tensor | None,
    chunk_size: int,
    initial_state: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Selective scan of Mamba2 by the chunked SSD algorithm.

    x: (B, L, H, P) head inputs; dt: (B, L, H) step sizes after softplus (>= 0); a: (H,) negative decay rates
    (A = -exp(A_log)); b, c: (B, L, G, N) input/output projections shared by the H/G heads of each group;
    d: (H,) skip weights or None; initial_state: (B, H, P, N) or None (zeros).
    Returns y (B, L, H, P) in x's dtype and the final state (B, H, P, N) in the scan dtype (float32, or
    float64 for float64 inputs). Lengths that are not a multiple of chunk_size are padded with dt = 0 and zero
    inputs, which leave the state unchanged (decay exp(0) = 1, input 0), and the output is cropped.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    batch, length, nheads, headdim = x.shape
    ngroups, dstate = b.shape[2], b.shape[3]
    if nheads % ngroups:
        raise ValueError(f"nheads ({nheads}) must be a multiple of ngroups ({ngroups})")
    out_dtype = x.dtype
    f = scan_dtype(x.dtype)
    with torch.autocast(device_type=x.device.type, enabled=False):
        x, dt, a, b, c = (t.to(f) for t in (x, dt, a, b, c))
        pad = (-length) % chunk_size
        if pad:
            x = torch.nn.functional.pad(x, (0, 0, 0, 0, 0, pad))
            dt = torch.nn.functional.pad(dt, (0, 0, 0, pad))
            b = torch.nn.functional.pad(b, (0, 0, 0, 0, 0, pad))
            c = torch.nn.functional.pad(c, (0, 0, 0, 0, 0, pad))
        nc = (length + pad) // chunk_size
        q, g, hg, p, n = chunk_size, ngroups, nheads // ngroups, headdim, dstate
        # Layouts: per-head tensors (B, G, Hg, nc, Q, .), per-group tensors (B, G, nc, Q, .), so every
        # contraction is a batched matmul and B/C products are computed once per group, not once per head.
        xdt = (x * dt.unsqueeze(-1)).view(batch, nc, q, g, hg, p).permute(0, 3, 4, 1, 2, 5)
        bq = b.view(batch, nc, q, g, n).permute(0, 3, 1, 2, 4)
        cq = c.view(batch, nc, q, g, n).permute(0, 3, 1, 2, 4)
        loga = (dt * a).view(batch, nc, q, g, hg).permute(0, 3, 4, 1, 2)  # (B, G, Hg, nc, Q), <= 0

        # 1. Within-chunk outputs: y_l = sum_{s<=l} (C_l . B_s) exp(sum a_(s,l]) x_s dt_s.
        decay = torch.exp(segsum(loga))  # (B, G, Hg, nc, Q, Q), lower triangular
        scores = (cq @ bq.mT).unsqueeze(2)  # (B, G, 1, nc, Q, Q)
        y = (scores * decay) @ xdt  # (B, G, Hg, nc, Q, P)

        # 2. State each chunk produces from a zero start; the decay to the chunk end is decay's last row.
        weighted = (xdt * decay[..., -1, :].unsqueeze(-1)).permute(0, 1, 3, 2, 5, 4)  # (B, G, nc, Hg, P, Q)
        chunk_states = weighted.reshape(batch, g, nc, hg * p, q) @ bq  # (B, G, nc, Hg*P, N)
        chunk_states = chunk_states.view(batch, g, nc, hg, p, n).permute(0, 1, 3, 2, 4, 5)
        chunk_states = chunk_states.reshape(batch, nheads, nc, p, n)

        # 3. States entering each chunk (recurrence over chunks only).
        initial = x.new_zeros(batch, nheads, p, n) if initial_state is None else initial_state.to(f)
        from_start = torch.cumsum(loga, dim=-1)  # (B, G, Hg, nc, Q): log decay from the chunk start, <= 0
        entering, final = _pass_states(chunk_states, from_start[..., -1].reshape(batch, nheads, nc), initial)

        # 4. Entering state's contribution to each output: exp(log decay from chunk start) * C_l . S.
        entering = entering.view(batch, g, hg, nc, p, n).permute(0, 1, 3, 5, 2, 4).reshape(batch, g, nc, n, hg * p)
        y_off = (cq @ entering).view(batch, g, nc, q, hg, p).permute(0, 1, 4, 2, 3, 5)  # (B, G, Hg, nc, Q, P)
        y = y + y_off * torch.exp(from_start).unsqueeze(-1)

        y = y.permute(0, 3, 4, 1, 2, 5).reshape(batch, nc * q, nheads, p)[:, :length]
        if d is not None:
            y = y + x[:, :length] * d.to(f).view(1, 1, nheads, 1)
    return y.to(out_dtype), final
