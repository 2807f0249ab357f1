"""Electrode graphs: montage neighbours, learned per-frame adjacency, SSGConv, Laplacian positional encoding.

Every graph has the 19 nodes of ``CANONICAL_19`` in canonical order. Graphs for all ``B x F`` frames are held as
one dense ``(..., 19, 19)`` tensor and processed with batched matrix products: at 19 nodes dense algebra is
faster than any sparse format and needs no loop over graphs.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ictal.io.channels import CANONICAL_19

N_NODES = len(CANONICAL_19)

#: Nearest-neighbour pairs of the 10-20 system on the scalp (each pair once): the chains front to back
#: along each side and the midline, the rows across, and the diagonals between adjacent rows.
MONTAGE_NEIGHBOURS_10_20: tuple[tuple[str, str], ...] = (
    # left temporal chain and left parasagittal chain
    ("Fp1", "F7"), ("F7", "T3"), ("T3", "T5"), ("T5", "O1"),
    ("Fp1", "F3"), ("F3", "C3"), ("C3", "P3"), ("P3", "O1"),
    # right temporal chain and right parasagittal chain
    ("Fp2", "F8"), ("F8", "T4"), ("T4", "T6"), ("T6", "O2"),
    ("Fp2", "F4"), ("F4", "C4"), ("C4", "P4"), ("P4", "O2"),
    # midline
    ("Fz", "Cz"), ("Cz", "Pz"),
    # rows across the head
    ("Fp1", "Fp2"), ("F7", "F3"), ("F3", "Fz"), ("Fz", "F4"), ("F4", "F8"),
    ("T3", "C3"), ("C3", "Cz"), ("Cz", "C4"), ("C4", "T4"),
    ("T5", "P3"), ("P3", "Pz"), ("Pz", "P4"), ("P4", "T6"), ("O1", "O2"),
    # front pole to midline, midline to occiput, and diagonals between adjacent rows
    ("Fp1", "Fz"), ("Fp2", "Fz"), ("Pz", "O1"), ("Pz", "O2"),
    ("F3", "T3"), ("F4", "T4"), ("T3", "P3"), ("T4", "P4"),
    ("F3", "Cz"), ("F4", "Cz"), ("P3", "Cz"), ("P4", "Cz"),
    ("Fz", "C3"), ("Fz", "C4"), ("Pz", "C3"), ("Pz", "C4"),
)  # fmt: skip


def montage_adjacency() -> torch.Tensor:
    """``(19, 19)`` float32 0/1 adjacency of ``MONTAGE_NEIGHBOURS_10_20`` in ``CANONICAL_19`` order (no self loops)."""
    index = {name: i for i, name in enumerate(CANONICAL_19)}
    adj = torch.zeros(N_NODES, N_NODES)
    for a, b in MONTAGE_NEIGHBOURS_10_20:
        adj[index[a], index[b]] = adj[index[b], index[a]] = 1.0
    return adj


def upper_triangle_index(n: int = N_NODES) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices of the ``n (n - 1) / 2`` electrode pairs ``i < j`` (171 for 19 nodes), row-major."""
    rows, cols = torch.triu_indices(n, n, offset=1)
    return rows, cols


def pairs_to_matrix(values: torch.Tensor, n: int = N_NODES) -> torch.Tensor:
    """``(..., n (n-1)/2)`` pair values (``upper_triangle_index`` order) -> symmetric ``(..., n, n)``, zero diagonal."""
    rows, cols = upper_triangle_index(n)
    out = values.new_zeros(*values.shape[:-1], n, n)
    out[..., rows.to(values.device), cols.to(values.device)] = values
    return out + out.transpose(-1, -2)


def pair_similarity(
    nodes: torch.Tensor, kind: Literal["cosine", "correlation"] = "cosine", eps: float = 1e-4
) -> torch.Tensor:
    """Similarity of every electrode pair per frame: ``(..., 19, D)`` -> ``(..., 171)`` in ``[-1, 1]``.

    ``cosine`` compares the feature vectors; ``correlation`` first removes each vector's mean over features
    (Pearson correlation). Norms are taken as ``sqrt(|v|^2 + D * eps)``: for the unit-scale features that
    follow a LayerNorm this is the plain norm, and a (near-)zero vector gives a similarity near 0 with a
    bounded gradient instead of 0/0. Computed in float32 (float64 stays float64) with autocast off.
    """
    rows, cols = upper_triangle_index(nodes.shape[-2])
    dtype = torch.float64 if nodes.dtype == torch.float64 else torch.float32
    with torch.autocast(nodes.device.type, enabled=False):
        v = nodes.to(dtype)
        if kind == "correlation":
            v = v - v.mean(dim=-1, keepdim=True)
        elif kind != "cosine":
            raise ValueError(f"edge similarity must be 'cosine' or 'correlation', got {kind!r}")
        v = v * torch.rsqrt(v.pow(2).sum(dim=-1, keepdim=True) + v.shape[-1] * eps)
        gram = v @ v.transpose(-1, -2)
        return gram[..., rows.to(v.device), cols.to(v.device)]


def learned_adjacency(
    weights: torch.Tensor,
    top_k: int,
    threshold: float,
    symmetrize: Literal["max", "mean"] = "max",
) -> torch.Tensor:
    """Sparse per-frame adjacency from dense non-negative edge weights: ``(..., n, n) -> (..., n, n)``.

    Per row keep the ``top_k`` largest off-diagonal weights, drop those not above ``threshold``, symmetrise
    (element-wise ``max`` of A and A^T, or their ``mean``), then give every node left without an edge a self
    loop of weight 1 (identity fallback), so every degree is positive. The kept weights stay differentiable;
    the selection is not (a mask).
    """
    n = weights.shape[-1]
    eye = torch.eye(n, dtype=torch.bool, device=weights.device)
    k = min(top_k, n - 1)
    ranked = weights.masked_fill(eye, float("-inf"))
    top_idx = ranked.topk(k, dim=-1).indices
    keep = torch.zeros_like(weights, dtype=torch.bool).scatter_(-1, top_idx, True)
    keep = keep & (weights > threshold) & ~eye
    adj = torch.where(keep, weights, torch.zeros_like(weights))
    if symmetrize == "max":
        adj = torch.maximum(adj, adj.transpose(-1, -2))
    elif symmetrize == "mean":
        adj = 0.5 * (adj + adj.transpose(-1, -2))
    else:
        raise ValueError(f"graph.symmetrize must be 'max' or 'mean', got {symmetrize!r}")
    isolated = (adj > 0).sum(dim=-1) == 0  # (..., n)
    return adj + torch.diag_embed(isolated.to(adj.dtype))


class LearnedAdjacency(nn.Module):
    """Module form of ``learned_adjacency`` (so debug hooks and profilers name the stage)."""

    def __init__(self, top_k: int, threshold: float, symmetrize: Literal["max", "mean"]) -> None:
        super().__init__()
        self.top_k, self.threshold, self.symmetrize = top_k, threshold, symmetrize

    def forward(self, edge_weights: torch.Tensor) -> torch.Tensor:
        """``(..., 171)`` positive pair weights -> ``(..., 19, 19)`` adjacency."""
        return learned_adjacency(pairs_to_matrix(edge_weights), self.top_k, self.threshold, self.symmetrize)

    def extra_repr(self) -> str:
        return f"top_k={self.top_k}, threshold={self.threshold}, symmetrize={self.symmetrize!r}"


def gcn_propagation(adj: torch.Tensor) -> torch.Tensor:
    """``T = D^-1/2 (A + I) D^-1/2`` with ``D`` the degrees of ``A + I``: ``(..., n, n) -> (..., n, n)``.

    The self loop makes every degree >= 1, so the inverse square root is always finite. Computed in float32
    (float64 stays float64) with autocast off.
    """
    dtype = torch.float64 if adj.dtype == torch.float64 else torch.float32
    with torch.autocast(adj.device.type, enabled=False):
        a_hat = adj.to(dtype) + torch.eye(adj.shape[-1], dtype=dtype, device=adj.device)
        d_inv_sqrt = a_hat.sum(dim=-1).rsqrt()
        return d_inv_sqrt.unsqueeze(-1) * a_hat * d_inv_sqrt.unsqueeze(-2)


class SSGConv(nn.Module):
    """Simple Spectral Graph Convolution (Zhu & Koniusz, ICLR 2021), dense and batched.

    ``out = ((1 - alpha) / K * sum_{k=1..K} T^k x + alpha x) W + b`` with ``T`` from ``gcn_propagation``
    (the formula of PyG's ``SSGConv``). ``x``: ``(G, n, C_in)`` node features of ``G`` graphs, ``T``:
    ``(G, n, n)``; returns ``(G, n, C_out)``. Any leading batch shape shared by ``x`` and ``T`` works.
    """

    def __init__(self, in_features: int, out_features: int, hops: int = 2, alpha: float = 0.05) -> None:
        super().__init__()
        if hops < 1:
            raise ValueError(f"SSGConv needs hops (K) >= 1, got {hops}")
        self.hops, self.alpha = hops, alpha
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor, propagation: torch.Tensor) -> torch.Tensor:
        t = propagation.to(x.dtype)
        h, acc = x, torch.zeros_like(x)
        for _ in range(self.hops):  # K is 2: a loop over hops, not over graphs
            h = t @ h
            acc = acc + h
        return self.linear((1.0 - self.alpha) / self.hops * acc + self.alpha * x)

    def extra_repr(self) -> str:
        return f"hops={self.hops}, alpha={self.alpha}"


def normalized_laplacian(adj: torch.Tensor) -> torch.Tensor:
    """``L = I - D^-1/2 A D^-1/2`` of a non-negative adjacency ``(..., n, n)``; nodes of degree 0 get ``L_ii = 1``."""
    deg = adj.sum(dim=-1)
    d_inv_sqrt = torch.where(deg > 0, deg.clamp_min(torch.finfo(adj.dtype).tiny).rsqrt(), torch.zeros_like(deg))
    eye = torch.eye(adj.shape[-1], dtype=adj.dtype, device=adj.device)
    return eye - d_inv_sqrt.unsqueeze(-1) * adj * d_inv_sqrt.unsqueeze(-2)


def laplacian_eigenvectors(adj: torch.Tensor, k: int, jitter: float = 1e-6) -> torch.Tensor:
    """Laplacian positional encoding: ``(..., n, n)`` adjacency -> ``(..., n, k)`` float32, no gradient.

    The eigenvectors of ``normalized_laplacian(adj)`` by ascending eigenvalue, the first (lowest: the trivial
    one of a connected graph) dropped, the next ``k`` kept (zero columns beyond ``n - 1``). Each is sign-fixed
    so its largest-magnitude entry is positive. Runs under ``no_grad`` in float64 with autocast off. A
    deterministic diagonal ramp ``jitter * i / n`` separates repeated eigenvalues (a disconnected or
    complete graph), so the basis chosen inside such an eigenspace is fixed by the matrix, not by the
    solver; non-finite adjacency entries count as missing edges, so the solver always gets a finite matrix.
    """
    n = adj.shape[-1]
    with torch.no_grad(), torch.autocast(adj.device.type, enabled=False):
        a = torch.nan_to_num(adj.detach().to(torch.float64), nan=0.0, posinf=0.0, neginf=0.0)
        lap = normalized_laplacian(a)
        ramp = jitter * torch.arange(n, dtype=torch.float64, device=adj.device) / n
        _, vecs = torch.linalg.eigh(lap + torch.diag(ramp))
        vecs = vecs[..., 1 : 1 + k]
        peak = vecs.abs().argmax(dim=-2, keepdim=True)
        sign = torch.sign(vecs.gather(-2, peak))
        vecs = vecs * torch.where(sign == 0, torch.ones_like(sign), sign)
        if vecs.shape[-1] < k:
            vecs = F.pad(vecs, (0, k - vecs.shape[-1]))
        return vecs.to(torch.float32)


class LaplacianPE(nn.Module):
    """Static or semi-dynamic Laplacian positional encoding for ``(B, F)`` frames of 19-node graphs.

    Static: eigenvectors of the montage neighbour graph, computed once at construction. Dynamic: eigenvectors of
    the learned adjacency at frames ``0, N, 2N, ...`` (``N = semi_dynamic_interval``), each reused for the
    ``N`` frames that follow, so ``N`` cuts the eigendecompositions by ``N``. ``eig_calls`` counts the
    matrices decomposed since construction (or since it was last reset). The output never requires grad.
    """

    static_pe: torch.Tensor

    def __init__(self, k: int, dynamic: bool, semi_dynamic_interval: int = 1, jitter: float = 1e-6) -> None:
        super().__init__()
        if k < 1 or semi_dynamic_interval < 1:
            raise ValueError(f"LaplacianPE needs k >= 1 and semi_dynamic_interval >= 1, got {k}, "
                             f"{semi_dynamic_interval}")  # fmt: skip
        self.k, self.dynamic, self.interval, self.jitter = k, dynamic, semi_dynamic_interval, jitter
        self.eig_calls = 0
        self.register_buffer("static_pe", self._decompose(montage_adjacency()), persistent=False)

    def _decompose(self, adj: torch.Tensor) -> torch.Tensor:
        self.eig_calls += adj[..., 0, 0].numel()
        return laplacian_eigenvectors(adj, self.k, self.jitter)

    def forward(self, adj: torch.Tensor) -> torch.Tensor:
        """``adj``: ``(B, F, 19, 19)`` learned adjacency -> ``(B, F, 19, k)`` float32 PE (a view when static)."""
        b, f, n, _ = adj.shape
        if not self.dynamic:
            return self.static_pe.expand(b, f, n, self.k)
        sampled = self._decompose(adj[:, :: self.interval])  # (B, ceil(F / N), 19, k)
        return sampled.repeat_interleave(self.interval, dim=1)[:, :f]

    def extra_repr(self) -> str:
        return f"k={self.k}, dynamic={self.dynamic}, semi_dynamic_interval={self.interval}"
