"""Chunked state-space-duality (SSD) scan: the pure-PyTorch reference for Mamba2's selective recurrence.

The recurrence (per batch b, head h; p indexes the head's channels, n the state):

    h_t = exp(dt_t * A) * h_{t-1} + dt_t * x_t B_t^T        h_t: (headdim, d_state)
    y_t = h_t C_t + D * x_t

is evaluated exactly (not approximated) by the SSD algorithm of the Mamba2 paper: the sequence is cut into
chunks; inside a chunk the output is a masked quadratic form (C B^T weighted by the decay between the two
steps), and the states handed from chunk to chunk follow a short recurrence over chunks. No step of the
computation loops over time steps.

Two evaluations of the same formula, chosen per call:

- factorised (the fast path, used whenever it is safe): B and C are shared by the heads of a group, and a head's
  decay between steps s <= l of a chunk is a scalar, exp(cs_l - cs_s) with cs the chunk's cumulative decay log.
  Writing it as exp(cs_l - r) * exp(r - cs_s) (r: the middle of the chunk's decay range) turns the per-head
  (Q x Q) decay matrices into per-step scalings, so the within-chunk work is one (Q x Q) Gram matrix C B^T per
  chunk and group, shared by every head, and one batched matrix product over all heads' channels. Safe means
  that no factor can overflow: each chunk's decay range (the sum of -dt*A over its steps after the first) is at
  most `factorised_span_limit(dtype)`; the factors then stay within exp(+-limit/2). The cumulative sums are
  differences within one chunk only, so their rounding error is at most limit * eps relative (~5e-6 in float32),
  the precision of the mamba_ssm kernels, which difference cumulative sums over 256 steps.
- segment sums (the fallback, for chunks whose decay range exceeds the limit: a head that forgets almost all of
  its state within a step): per-head (Q x Q) decay matrices built from exact segment sums (no difference of two
  long cumulative sums) and a decay-matrix product over blocks of chunks for the states ("ssd_minimal").

Numerics: the whole scan runs in float32 (float64 when the inputs are float64) with autocast disabled, because
bf16/fp16 cumulative sums of decay logs lose the precision that exp() then amplifies.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "backward_without_autocast",
    "chunk_decay_logs",
    "factorised_scalings",
    "factorised_span_limit",
    "segsum",
    "ssd_chunked_scan",
    "scan_dtype",
]

# Chunks whose states are passed with one decay-matrix product on the segment-sum path; longer sequences loop
# over such blocks, so the cost stays linear in the number of chunks.
_STATE_PASS_BLOCK = 16
# Longest segment-sum axis done as one matmul with a T^3 indicator (see segsum).
_SEGSUM_MATMUL_MAX = 64
# Largest decay range (sum of -dt*A over one chunk's steps after its first) for the factorised path. Each factor
# is at most exp(limit / 2): exp(40) ~ 2e17 leaves float32 (max ~3e38) a margin of 1e21 for the products of
# C.B, dt*x and chunk length; float64 gets exp(300) with a larger margin still.
_SPAN_LIMIT = {torch.float32: 80.0, torch.float64: 600.0}


def scan_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the scan computes in: float64 stays float64, everything else becomes float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def factorised_span_limit(dtype: torch.dtype) -> float:
    """Largest per-chunk decay range (sum of -dt*A over a chunk's steps after the first) for which the scan
    takes the factorised path in `dtype`'s scan dtype; chunks with a larger range take the segment-sum path."""
    return _SPAN_LIMIT[scan_dtype(dtype)]


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
    The factorised path runs when every chunk's decay range is within `factorised_span_limit`, the segment-sum
    path otherwise (see the module docstring); both give the same result up to rounding.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    batch, length, nheads, headdim = x.shape
    ngroups = b.shape[2]
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
        if nc == 0:  # an empty sequence: no output, the state passes unchanged
            final = x.new_zeros(batch, nheads, headdim, b.shape[3]) if initial_state is None else initial_state.to(f)
            return x.new_zeros(batch, 0, nheads, headdim).to(out_dtype), final
        loga, cs, max_span = chunk_decay_logs(dt, a, chunk_size)
        initial = None if initial_state is None else initial_state.to(f)
        if max_span <= _SPAN_LIMIT[f]:
            y, final = _scan_factorised(x, dt, loga, cs, b, c, initial)
        else:
            y, final = _scan_by_segment_sums(x, dt, loga, b, c, initial)
        y = y[:, :length]
        # The final state may be a view into the per-chunk state buffer (nc + 1 states); a stream keeps it
        # between chunks, so it gets its own (small) memory.
        final = final.clone()
        if d is not None:
            # (B*L, H*P) * (H*P,): a broadcast along the last axis, the fast pattern for CPU kernels.
            skip = d.to(f).repeat_interleave(headdim)
            y2, x2 = y.reshape(batch * length, -1), x[:, :length].reshape(batch * length, -1)
            inplace = not torch.is_grad_enabled() and y2.data_ptr() == y.data_ptr() and y2.is_contiguous()
            y = (y2.addcmul_(x2, skip) if inplace else torch.addcmul(y2, x2, skip)).view(batch, length, nheads, headdim)
    return y.to(out_dtype), final


def chunk_decay_logs(dt: Tensor, a: Tensor, chunk: int) -> tuple[Tensor, Tensor, float]:
    """The scan's decay logs per chunk, their cumulative sums, and the largest decay range of a chunk.

    dt: (B, L, H) step sizes, L a multiple of ``chunk``; a: (H,) negative decay rates. Returns loga = dt * a and cs,
    both (B, nc, chunk, H), with cs[:, :, 0] = 0 and cs[:, :, l] = sum(loga[:, :, 1..l]) (from each chunk's first
    step), and the largest -cs[:, :, -1] over chunks and heads (0 for no chunks): the factorised scan is safe when
    it is within `factorised_span_limit`.
    """
    batch, length, nheads = dt.shape
    loga = (dt * a).view(batch, length // chunk, chunk, nheads)  # <= 0
    cs = torch.nn.functional.pad(torch.cumsum(loga[:, :, 1:], dim=2), (0, 0, 1, 0))
    max_span = -float(cs[:, :, -1].detach().min()) if cs.numel() else 0.0
    return loga, cs, max_span


def factorised_scalings(loga: Tensor, cs: Tensor, dt: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The factorised scan's per-step and per-chunk scalings, one number per step or chunk and head.

    loga: (B, nc, Q, H) decay logs; cs: (B, nc, Q, H) their cumulative sums from each chunk's first step
    (cs[:, :, 0] = 0); dt: (B, nc * Q, H). Returns scale_in, scale_out (B, nc, Q, H) and w_produced, w_decay,
    w_entering (B, nc, H):

        y_l = exp(cs_l - r) * [sum_{s<=l} (C_l . B_s) u_s + C_l . E]     u_s = exp(r - cs_s) dt_s x_s
        E   = (state entering the chunk) * exp(loga_0 + r)              r = span / 2, span = cs_{Q-1}
        the state a chunk produces is exp(r) * B^T u; the state decays by exp(loga_0 + span) across a chunk.

    Every factor lies within exp(+-span / 2), so within exp(+-limit / 2) on the factorised path.
    """
    span = cs[:, :, -1]  # (B, nc, H): decay log across the chunk after its first step
    ref = 0.5 * span
    first = loga[:, :, 0]
    scale_in = torch.exp(ref.unsqueeze(2) - cs) * dt.view(loga.shape)
    scale_out = torch.exp(cs - ref.unsqueeze(2))
    return scale_in, scale_out, torch.exp(ref), torch.exp(first + span), torch.exp(first + ref)


def _scan_factorised(
    x: Tensor, dt: Tensor, loga: Tensor, cs: Tensor, b: Tensor, c: Tensor, initial: Tensor | None
) -> tuple[Tensor, Tensor]:
    """The factorised path (see the module docstring), without the D skip.

    x: (B, L, H, P) with L = nc * Q; dt: (B, L, H); loga: (B, nc, Q, H) decay logs; cs: (B, nc, Q, H) their
    cumulative sums from each chunk's first step (cs[:, :, 0] = 0); b, c: (B, L, G, N); initial: (B, H, P, N).
    Returns y (B, L, H, P) and the final state (B, H, P, N).

    The per-step and per-chunk scalings (small: one number per step or chunk and head) are computed here with
    autograd; the heavy part, linear in x, B, C, the scalings and the initial state, is `_FactorisedScan`
    with a hand-written backward.
    """
    batch, nc, q, nheads = loga.shape
    headdim = x.shape[-1]
    g, n = b.shape[2], b.shape[3]
    hg = nheads // g
    scale_in, scale_out, w_produced, w_decay, w_entering = factorised_scalings(loga, cs, dt)
    grouped, chunk = (batch, nc, q, g, hg), (batch, nc, g, hg)
    scale_in, scale_out = scale_in.view(grouped), scale_out.view(grouped)
    w_produced, w_decay, w_entering = w_produced.view(chunk), w_decay.view(chunk), w_entering.view(chunk)
    if initial is not None:
        initial = initial.view(batch, g, hg, headdim, n).permute(0, 1, 4, 2, 3)  # (B, G, N, Hg, P)
    y, final = _FactorisedScan.apply(
        x.view(batch, nc, q, g, hg, headdim),
        scale_in,
        scale_out,
        w_produced,
        w_decay,
        w_entering,
        b.view(batch, nc, q, g, n),
        c.view(batch, nc, q, g, n),
        initial,
    )
    return y.reshape(batch, nc * q, nheads, headdim), final.permute(0, 1, 3, 4, 2).reshape(batch, nheads, headdim, n)


def _sum_last(t: Tensor) -> Tensor:
    """Sum over the last axis as a matrix-vector product: for a short last axis (a head's channels) CPU
    reductions are several times slower than this."""
    return t @ t.new_ones(t.shape[-1])


def _to_groups(t: Tensor) -> Tensor:
    """(B, nc, Q, G, K...) -> (B*nc*G, Q, prod(K)): one matrix per chunk and group (a view when G = 1)."""
    batch, nc, q, g = t.shape[:4]
    return t.reshape(batch, nc, q, g, -1).transpose(2, 3).reshape(batch * nc * g, q, -1)


def _per_channel(w: Tensor, p: int) -> Tensor:
    """(..., Hg) per-head scalars -> (..., Hg*P), each repeated over its head's P channels: broadcasting
    along a long contiguous last axis is the fast pattern for CPU kernels, along a short one (P) it is not."""
    return w.repeat_interleave(p, dim=-1)


def backward_without_autocast(backward: Callable[..., Any]) -> Callable[..., Any]:
    """Run a hand-written ``backward`` with autocast off, in the dtypes its forward saved.

    Its forward ran in one dtype (autocast off, or only elementwise ops); a ``.backward()`` called inside an
    ``autocast`` block would otherwise turn its matmuls to bf16/fp16 and mix dtypes with the saved tensors."""

    @functools.wraps(backward)
    def wrapper(ctx: Any, *grads: Any) -> Any:
        device = next((g.device.type for g in grads if isinstance(g, Tensor)), "cpu")
        with torch.autocast(device_type=device, enabled=False):
            return backward(ctx, *grads)

    return wrapper


class _FactorisedScan(torch.autograd.Function):
    """The linear part of the factorised scan, with a hand-written backward.

    Inputs (B batch, nc chunks, Q steps, G groups, Hg heads per group, P channels, N state):
    x (B, nc, Q, G, Hg, P); scale_in, scale_out (B, nc, Q, G, Hg); w_produced, w_decay, w_entering
    (B, nc, G, Hg); b, c (B, nc, Q, G, N); initial (B, G, N, Hg, P) or None.
    With u = scale_in * x and, per chunk and group, the Gram matrix M = tril(C B^T) (Q x Q):

        produced_k = w_produced * B^T u              state from a zero start at the chunk end
        S_{k+1}    = w_decay_k * S_k + produced_k    S_0 = initial (or 0)
        z          = M u + C (w_entering * S_k)
        y          = scale_out * z

    Outputs y (B, nc, Q, G, Hg, P) and S_nc (B, G, N, Hg, P). Per chunk and group the heads' channels sit side
    by side as the W = Hg*P columns of one (Q x W) matrix, so every contraction is one batched matmul; the
    states are kept chunk-major, (nc + 1, B, G, N, W), so that each step of the loop over chunks is one fused
    multiply-add on contiguous memory.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        scale_in: Tensor,
        scale_out: Tensor,
        w_produced: Tensor,
        w_decay: Tensor,
        w_entering: Tensor,
        b: Tensor,
        c: Tensor,
        initial: Tensor | None,
    ) -> tuple[Tensor, Tensor]:
        batch, nc, q, g, hg, p = x.shape
        n, w, m = b.shape[-1], hg * p, batch * nc * g
        u = _to_groups(x * scale_in.unsqueeze(-1))  # (M, Q, W), M = B*nc*G
        bm, cm = _to_groups(b), _to_groups(c)  # (M, Q, N)
        gram = torch.tril(cm @ bm.mT)  # (M, Q, Q)
        produced = (bm.mT @ u).view(batch, nc, g, n, w)  # before its w_produced scaling
        w_produced, w_entering = _per_channel(w_produced, p), _per_channel(w_entering, p)  # (B, nc, G, W)
        decay = _per_channel(w_decay, p).transpose(0, 1).unsqueeze(3).contiguous()  # (nc, B, G, 1, W)
        scaled = x.new_empty(nc, batch, g, n, w)
        torch.mul(produced.transpose(0, 1), w_produced.transpose(0, 1).unsqueeze(3), out=scaled)
        # states[k] enters chunk k; states[nc] is the final state.
        states = x.new_empty(nc + 1, batch, g, n, w)
        if initial is None:
            states[0].zero_()
        else:
            states[0].copy_(initial.reshape(batch, g, n, w))
        # Views made once: indexing inside the loop costs more than each step's arithmetic on small blocks.
        scaled_k, states_k, decay_k = scaled.unbind(0), states.unbind(0), decay.unbind(0)
        for k in range(nc):
            torch.addcmul(scaled_k[k], states_k[k], decay_k[k], out=states_k[k + 1])
        entering = _entering(states, w_entering)
        z = torch.baddbmm(cm @ entering.view(m, n, w), gram, u)  # (M, Q, W)
        z6 = z.view(batch, nc, g, q, hg, p).transpose(2, 3)
        final = states[nc].view(batch, g, n, hg, p)
        if not any(ctx.needs_input_grad):  # inference: scale in place, keep nothing
            return z6.mul_(scale_out.unsqueeze(-1)), final
        ctx.save_for_backward(x, scale_in, scale_out, w_produced, decay, w_entering, bm, cm, gram, produced, states, z)
        ctx.has_initial = initial is not None
        return z6 * scale_out.unsqueeze(-1), final

    @staticmethod
    @backward_without_autocast
    def backward(ctx: Any, grad_y: Tensor | None, grad_final: Tensor | None) -> tuple[Tensor | None, ...]:
        x, scale_in, scale_out, w_produced, decay, w_entering, bm, cm, gram, produced, states, z = ctx.saved_tensors
        batch, nc, q, g, hg, p = x.shape
        n, w, m = bm.shape[-1], hg * p, batch * nc * g
        if grad_y is None:
            grad_y = x.new_zeros(x.shape)
        grad_scale_out = _sum_last(grad_y * z.view(batch, nc, g, q, hg, p).transpose(2, 3))  # (B, nc, Q, G, Hg)
        gz = _to_groups(grad_y * scale_out.unsqueeze(-1))  # (M, Q, W)
        u = _to_groups(x * scale_in.unsqueeze(-1))  # recomputed: cheaper than keeping it
        entering = _entering(states, w_entering)
        grad_gram = torch.tril(gz @ u.mT)  # (M, Q, Q)
        grad_c = torch.baddbmm(grad_gram @ bm, gz, entering.view(m, n, w).mT)  # (M, Q, N)
        grad_b = grad_gram.mT @ cm
        grad_entering = (cm.mT @ gz).view(batch, nc, g, n, w)
        before = states[:nc].transpose(0, 1)  # (B, nc, G, N, W): the state entering each chunk
        grad_w_entering = _per_head((grad_entering * before).sum(3), p)  # (B, nc, G, Hg)
        # Reverse recurrence, chunk-major: dS_k = decay_k * dS_{k+1} + w_entering_k * dE_k; dS_nc = grad_final.
        from_entering = x.new_empty(nc, batch, g, n, w)
        torch.mul(grad_entering.transpose(0, 1), w_entering.transpose(0, 1).unsqueeze(3), out=from_entering)
        grad_states = x.new_empty(nc + 1, batch, g, n, w)
        if grad_final is None:
            grad_states[nc].zero_()
        else:
            grad_states[nc].copy_(grad_final.reshape(batch, g, n, w))
        entering_k, grad_k, decay_k = from_entering.unbind(0), grad_states.unbind(0), decay.unbind(0)
        for k in range(nc - 1, -1, -1):
            torch.addcmul(entering_k[k], grad_k[k + 1], decay_k[k], out=grad_k[k])
        grad_scaled = grad_states[1:].transpose(0, 1)  # (B, nc, G, N, W): produced_k feeds S_{k+1}
        grad_w_decay = _per_head((grad_scaled * before).sum(3), p)
        grad_w_produced = _per_head((grad_scaled * produced).sum(3), p)
        grad_produced = (grad_scaled * w_produced.unsqueeze(3)).reshape(m, n, w)  # d(B^T u)
        grad_b.baddbmm_(u, grad_produced.mT)
        grad_u = torch.baddbmm(bm @ grad_produced, gram.mT, gz)  # (M, Q, W)
        grad_u6 = grad_u.view(batch, nc, g, q, hg, p).transpose(2, 3)  # (B, nc, Q, G, Hg, P)
        grad_x = grad_u6 * scale_in.unsqueeze(-1)
        grad_scale_in = _sum_last(grad_u6 * x)
        grad_b = grad_b.view(batch, nc, g, q, n).transpose(2, 3)
        grad_c = grad_c.view(batch, nc, g, q, n).transpose(2, 3)
        grad_initial = grad_states[0].view(batch, g, n, hg, p) if ctx.has_initial else None
        return (grad_x, grad_scale_in, grad_scale_out, grad_w_produced, grad_w_decay, grad_w_entering, grad_b,
                grad_c, grad_initial)  # fmt: skip


def _entering(states: Tensor, w_entering: Tensor) -> Tensor:
    """States entering each chunk times w_entering, batch-major for the matmul with C: states (nc + 1, B, G,
    N, W) chunk-major, w_entering (B, nc, G, W) -> (B, nc, G, N, W) contiguous."""
    nc, batch, g, n, w = states.shape[0] - 1, *states.shape[1:]
    out = states.new_empty(batch, nc, g, n, w)
    return torch.mul(states[:nc].transpose(0, 1), w_entering.unsqueeze(3), out=out)


def _per_head(t: Tensor, p: int) -> Tensor:
    """(..., Hg*P) -> (..., Hg): the sum over each head's P channels."""
    return _sum_last(t.unflatten(-1, (-1, p)))


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


def _scan_by_segment_sums(
    x: Tensor, dt: Tensor, loga: Tensor, b: Tensor, c: Tensor, initial: Tensor | None
) -> tuple[Tensor, Tensor]:
    """The segment-sum path (see the module docstring), without the D skip. Shapes as `_scan_factorised`."""
    batch, nc, q, nheads = loga.shape
    p = x.shape[-1]
    g, n = b.shape[2], b.shape[3]
    hg = nheads // g
    # Layouts: per-head tensors (B, G, Hg, nc, Q, .), per-group tensors (B, G, nc, Q, .), so every
    # contraction is a batched matmul and B/C products are computed once per group, not once per head.
    xdt = (x * dt.unsqueeze(-1)).view(batch, nc, q, g, hg, p).permute(0, 3, 4, 1, 2, 5)
    bq = b.view(batch, nc, q, g, n).permute(0, 3, 1, 2, 4)
    cq = c.view(batch, nc, q, g, n).permute(0, 3, 1, 2, 4)
    loga = loga.view(batch, nc, q, g, hg).permute(0, 3, 4, 1, 2)  # (B, G, Hg, nc, Q), <= 0

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
    initial = x.new_zeros(batch, nheads, p, n) if initial is None else initial
    from_start = torch.cumsum(loga, dim=-1)  # (B, G, Hg, nc, Q): log decay from the chunk start, <= 0
    entering, final = _pass_states(chunk_states, from_start[..., -1].reshape(batch, nheads, nc), initial)

    # 4. Entering state's contribution to each output: exp(log decay from chunk start) * C_l . S.
    entering = entering.view(batch, g, hg, nc, p, n).permute(0, 1, 3, 5, 2, 4).reshape(batch, g, nc, n, hg * p)
    y_off = (cq @ entering).view(batch, g, nc, q, hg, p).permute(0, 1, 4, 2, 3, 5)  # (B, G, Hg, nc, Q, P)
    y = y + y_off * torch.exp(from_start).unsqueeze(-1)
    return y.permute(0, 3, 4, 1, 2, 5).reshape(batch, nc * q, nheads, p), final
