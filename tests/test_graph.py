"""Electrode graphs: montage, pair similarity, learned adjacency, SSGConv, Laplacian PE."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ictal.io.channels import CANONICAL_19
from ictal.models import graph as graph_mod
from ictal.models.graph import (
    MONTAGE_NEIGHBOURS_10_20,
    LaplacianPE,
    SSGConv,
    gcn_propagation,
    laplacian_eigenvectors,
    learned_adjacency,
    montage_adjacency,
    normalized_laplacian,
    pair_similarity,
    pairs_to_matrix,
    upper_triangle_index,
)


def test_montage_graph_is_symmetric_connected_and_uses_canonical_names() -> None:
    names = {n for pair in MONTAGE_NEIGHBOURS_10_20 for n in pair}
    assert names == set(CANONICAL_19)
    adj = montage_adjacency()
    assert adj.shape == (19, 19)
    assert torch.equal(adj, adj.T)
    assert adj.diagonal().sum() == 0
    assert int(adj.sum()) == 2 * len(MONTAGE_NEIGHBOURS_10_20)
    eig = torch.linalg.eigvalsh(normalized_laplacian(adj.double()))
    assert int((eig < 1e-9).sum()) == 1  # one zero eigenvalue: connected
    i, j = CANONICAL_19.index("Fp1"), CANONICAL_19.index("F7")
    assert adj[i, j] == 1
    assert adj[CANONICAL_19.index("Fp1"), CANONICAL_19.index("O2")] == 0


def test_pairs_round_trip_through_the_upper_triangle() -> None:
    rows, cols = upper_triangle_index()
    assert rows.numel() == 171 and bool((rows < cols).all())
    values = torch.arange(171, dtype=torch.float32).expand(2, 171)
    mat = pairs_to_matrix(values)
    assert mat.shape == (2, 19, 19)
    assert torch.equal(mat, mat.transpose(-1, -2))
    assert torch.equal(mat[..., rows, cols], values)
    assert mat.diagonal(dim1=-2, dim2=-1).abs().sum() == 0


def test_pair_similarity_cosine_and_correlation_match_their_definitions() -> None:
    gen = torch.Generator().manual_seed(0)
    nodes = torch.randn(3, 19, 32, generator=gen, dtype=torch.float64) + 0.5
    rows, cols = upper_triangle_index()
    cos = pair_similarity(nodes, "cosine", eps=0.0)
    expected = torch.nn.functional.cosine_similarity(nodes[:, rows], nodes[:, cols], dim=-1)
    torch.testing.assert_close(cos, expected)
    corr = pair_similarity(nodes, "correlation", eps=0.0)
    np_corr = np.corrcoef(nodes[1].numpy())[rows.numpy(), cols.numpy()]
    np.testing.assert_allclose(corr[1].numpy(), np_corr, rtol=1e-10)


def test_pair_similarity_of_a_zero_vector_is_zero_with_finite_gradient() -> None:
    nodes = torch.randn(19, 16)
    nodes[4] = 0.0
    nodes.requires_grad_(True)
    sim = pair_similarity(nodes, "cosine")
    rows, cols = upper_triangle_index()
    involving = (rows == 4) | (cols == 4)
    assert sim[involving].abs().max() == 0
    sim.sum().backward()
    assert nodes.grad is not None and torch.isfinite(nodes.grad).all()
    assert nodes.grad.abs().max() < 1e3


def test_learned_adjacency_top_k_threshold_symmetrise_and_identity_fallback() -> None:
    w = torch.tensor(
        [
            [0.0, 0.9, 0.5, 0.1, 0.00001],
            [0.9, 0.0, 0.2, 0.3, 0.00001],
            [0.5, 0.2, 0.0, 0.05, 0.00001],
            [0.1, 0.3, 0.05, 0.0, 0.00001],
            [0.00001, 0.00001, 0.00001, 0.00001, 0.0],
        ]
    )
    # top-2 per row: 0 -> {1, 2}; 1 -> {0, 3}; 2 -> {0, 1}; 3 -> {1, 0}; 4 -> all below threshold 1e-4
    a_max = learned_adjacency(w, top_k=2, threshold=1e-4, symmetrize="max")
    expected = torch.tensor(
        [
            [0.0, 0.9, 0.5, 0.1, 0.0],
            [0.9, 0.0, 0.2, 0.3, 0.0],
            [0.5, 0.2, 0.0, 0.0, 0.0],
            [0.1, 0.3, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 1.0],  # isolated: identity fallback
        ]
    )
    torch.testing.assert_close(a_max, expected)
    a_mean = learned_adjacency(w, top_k=2, threshold=1e-4, symmetrize="mean")
    expected_mean = expected.clone()
    # (0,3): only row 3 kept it; (1,2): only row 2 kept it -> halved by averaging
    expected_mean[0, 3] = expected_mean[3, 0] = 0.05
    expected_mean[1, 2] = expected_mean[2, 1] = 0.1
    torch.testing.assert_close(a_mean, expected_mean)
    # Threshold above every weight: every node isolated -> identity.
    torch.testing.assert_close(learned_adjacency(w, 2, 1.0), torch.eye(5))


def test_learned_adjacency_batched_keeps_gradient_on_kept_weights() -> None:
    w = torch.rand(2, 7, 19, 19)
    w = (0.5 * (w + w.transpose(-1, -2))).requires_grad_(True)
    adj = learned_adjacency(w, top_k=3, threshold=1e-4)
    assert adj.shape == (2, 7, 19, 19)
    assert torch.equal(adj, adj.transpose(-1, -2))
    assert bool(((adj > 0).sum(-1) >= 3).all())  # each row keeps at least its own top 3
    adj.sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_gcn_propagation_by_hand() -> None:
    adj = torch.tensor([[0.0, 2.0, 0.0], [2.0, 0.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    a_hat = adj + torch.eye(3, dtype=torch.float64)
    deg = torch.tensor([3.0, 4.0, 2.0], dtype=torch.float64)
    expected = a_hat / torch.sqrt(deg[:, None] * deg[None, :])
    torch.testing.assert_close(gcn_propagation(adj), expected)


def test_ssgconv_equals_the_formula_computed_by_hand() -> None:
    gen = np.random.default_rng(1)
    n, c_in, c_out, hops, alpha = 19, 5, 3, 2, 0.05
    w = gen.random((n, n))
    w = (w + w.T) / 2
    adj = learned_adjacency(torch.tensor(w), top_k=3, threshold=1e-4).numpy()
    x = gen.standard_normal((n, c_in))
    # By hand: T = D^-1/2 (A + I) D^-1/2; out = ((1 - a) / K * (T x + T^2 x) + a x) W^T + b
    a_hat = adj + np.eye(n)
    d = a_hat.sum(1)
    t = a_hat / np.sqrt(np.outer(d, d))
    layer = SSGConv(c_in, c_out, hops=hops, alpha=alpha).double()
    weight, bias = layer.linear.weight.detach().numpy(), layer.linear.bias.detach().numpy()
    mixed = (1 - alpha) / hops * (t @ x + t @ t @ x) + alpha * x
    expected = mixed @ weight.T + bias
    out = layer(torch.tensor(x)[None], gcn_propagation(torch.tensor(adj))[None])[0]
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-10, atol=1e-12)


def test_ssgconv_batched_equals_per_graph() -> None:
    layer = SSGConv(4, 6, hops=3, alpha=0.1)
    w = torch.rand(2, 5, 19, 19)
    t = gcn_propagation(learned_adjacency(w + w.transpose(-1, -2), 3, 1e-4))
    x = torch.randn(2, 5, 19, 4)
    batched = layer(x, t)
    one = layer(x[1, 3], t[1, 3])
    torch.testing.assert_close(batched[1, 3], one)


def _check_pe(pe: torch.Tensor, adj: torch.Tensor, k: int) -> None:
    assert pe.shape == (*adj.shape[:-1], k)
    assert pe.dtype == torch.float32 and not pe.requires_grad
    assert torch.isfinite(pe).all()
    cols = pe.reshape(-1, 19, k)
    gram = cols.transpose(-1, -2) @ cols
    nonzero = cols.abs().sum(-2) > 0
    eye = torch.diag_embed(nonzero.float())
    torch.testing.assert_close(gram, eye, atol=1e-5, rtol=0)  # orthonormal (zero-padded columns stay zero)
    peak = cols.abs().argmax(dim=-2, keepdim=True)
    assert bool((cols.gather(-2, peak)[nonzero.unsqueeze(-2)] > 0).all())  # sign-fixed


@pytest.mark.parametrize(
    "name, adj",
    [
        ("montage", montage_adjacency()),
        ("complete", torch.ones(19, 19) - torch.eye(19)),
        ("disconnected", torch.zeros(19, 19)),
        ("identity fallback", torch.eye(19)),
        ("two cliques", torch.block_diag(torch.ones(9, 9), torch.ones(10, 10)) - torch.eye(19)),
    ],
)
def test_laplacian_pe_on_degenerate_graphs_is_finite_orthonormal_and_deterministic(
    name: str, adj: torch.Tensor
) -> None:
    pe = laplacian_eigenvectors(adj, k=16)
    _check_pe(pe, adj, 16)
    torch.testing.assert_close(laplacian_eigenvectors(adj.clone(), k=16), pe, rtol=0, atol=0)
    # Columns are eigenvectors of the Laplacian (up to the tiny tie-breaking ramp).
    lap = normalized_laplacian(adj.double()).float()
    lam = (pe * (lap @ pe)).sum(0)
    torch.testing.assert_close(lap @ pe, pe * lam, atol=1e-4, rtol=0)


def test_laplacian_pe_sign_is_fixed_whatever_the_solver_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    adj = montage_adjacency()
    pe = laplacian_eigenvectors(adj, k=16)
    real_eigh = torch.linalg.eigh

    def flipping_eigh(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        vals, vecs = real_eigh(a)
        signs = torch.tensor([(-1.0) ** i for i in range(a.shape[-1])], dtype=vecs.dtype)
        return vals, vecs * signs  # a solver free to return -v for every other eigenvector

    monkeypatch.setattr(torch.linalg, "eigh", flipping_eigh)
    torch.testing.assert_close(laplacian_eigenvectors(adj, k=16), pe, rtol=0, atol=0)


def test_laplacian_pe_has_no_gradient_path_and_drops_the_trivial_vector() -> None:
    w = torch.rand(19, 19)
    w = (w + w.T).requires_grad_(True)
    pe = laplacian_eigenvectors(learned_adjacency(w, 3, 1e-4), k=18)
    assert not pe.requires_grad and pe.grad_fn is None
    # For a connected graph the trivial eigenvector is D^1/2 1 (normalised); it is dropped, so every kept
    # column is orthogonal to it.
    adj = montage_adjacency()
    trivial = adj.sum(-1).sqrt()
    trivial = trivial / trivial.norm()
    pe_m = laplacian_eigenvectors(adj, k=18)
    assert (trivial @ pe_m).abs().max() < 1e-5


def test_laplacian_pe_pads_beyond_n_minus_1() -> None:
    pe = laplacian_eigenvectors(montage_adjacency(), k=20)
    assert pe.shape == (19, 20)
    assert pe[:, 18:].abs().sum() == 0 and pe[:, :18].abs().sum(0).min() > 0


def test_eigendecomposition_runs_in_float64_under_bf16_autocast(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[torch.dtype] = []
    real_eigh = torch.linalg.eigh

    def spy(a: torch.Tensor, *args: object, **kwargs: object) -> object:
        seen.append(a.dtype)
        return real_eigh(a, *args, **kwargs)

    monkeypatch.setattr(torch.linalg, "eigh", spy)
    adj = learned_adjacency(torch.rand(4, 19, 19), 3, 1e-4).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pe = laplacian_eigenvectors(adj, k=16)
    assert seen == [torch.float64]
    assert pe.dtype == torch.float32 and torch.isfinite(pe).all()


def test_non_finite_adjacency_does_not_crash_the_solver() -> None:
    adj = montage_adjacency()
    adj[0, 1] = adj[1, 0] = float("nan")
    assert torch.isfinite(laplacian_eigenvectors(adj, k=16)).all()


@pytest.mark.parametrize("interval", [1, 4, 5])
def test_semi_dynamic_interval_cuts_the_eigendecompositions(interval: int) -> None:
    b, f = 2, 40
    w = torch.rand(b, f, 19, 19)
    adj = learned_adjacency(w + w.transpose(-1, -2), 3, 1e-4)
    module = LaplacianPE(k=16, dynamic=True, semi_dynamic_interval=interval)
    before = module.eig_calls
    pe = module(adj)
    assert module.eig_calls - before == b * -(-f // interval)
    assert pe.shape == (b, f, 19, 16) and not pe.requires_grad
    # Frames 0, N, 2N, ... carry their own PE; the frames in between reuse it.
    torch.testing.assert_close(pe[:, ::interval], laplacian_eigenvectors(adj[:, ::interval], 16))
    for start in range(0, f, interval):
        block = pe[:, start : start + interval]
        torch.testing.assert_close(block, pe[:, start : start + 1].expand_as(block))


def test_static_pe_is_the_montage_graph_and_decomposes_nothing_per_call() -> None:
    module = LaplacianPE(k=16, dynamic=False, semi_dynamic_interval=1)
    before = module.eig_calls
    adj = torch.eye(19).expand(2, 10, 19, 19)
    pe = module(adj)
    assert module.eig_calls == before
    torch.testing.assert_close(pe[1, 7], laplacian_eigenvectors(montage_adjacency(), 16))
    assert graph_mod.N_NODES == 19
