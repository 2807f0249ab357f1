"""The selective scan written out one time step at a time: the reference the scan implementations are tested against."""

from __future__ import annotations

import torch


def naive_scan(
    x: torch.Tensor,
    dt: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    d: torch.Tensor,
    h0: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T ; y_t = h_t C_t + D x_t, one step at a time (heads grouped
    contiguously: head h reads group h // (H / G)). x: (B, L, H, P); dt: (B, L, H); a, d: (H,); b, c: (B, L, G, N);
    h0: (B, H, P, N) or None. Returns y (B, L, H, P) and the final state (B, H, P, N)."""
    batch, length, nheads, headdim = x.shape
    per_group = nheads // b.shape[2]
    bh, ch = b.repeat_interleave(per_group, dim=2), c.repeat_interleave(per_group, dim=2)  # (B, L, H, N)
    h = torch.zeros(batch, nheads, headdim, b.shape[3], dtype=x.dtype) if h0 is None else h0.clone()
    ys = []
    for t in range(length):
        decay = torch.exp(dt[:, t] * a)  # (B, H)
        h = decay[:, :, None, None] * h + (dt[:, t, :, None] * x[:, t])[..., None] * bh[:, t, :, None, :]
        ys.append(torch.einsum("bhpn,bhn->bhp", h, ch[:, t]) + d[None, :, None] * x[:, t])
    return torch.stack(ys, dim=1), h
