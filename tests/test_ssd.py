"""SSD scan paths and the Mamba2 PyTorch path's own autograd Functions: the factorised and the segment-sum
evaluations each against a naive recurrence, which one a call takes, float32 precision near the factorisation's
limit, gradients (gradcheck, float64) of the scan, the causal conv and the gated norm, and the block / recompute
machinery of Mamba2.forward (same outputs and gradients as one block)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from ictal.models.mamba import mamba2 as mamba2_module
from ictal.models.mamba import ssd
from ictal.models.mamba.mamba2 import Mamba2, _CausalConvSiLU, _GatedOut
from ictal.models.mamba.ssd import factorised_span_limit, ssd_chunked_scan
from reference_scan import naive_scan

F64 = torch.float64


def scan_inputs(
    length: int, ngroups: int = 1, decay: float = 0.3, seed: int = 0, dtype: torch.dtype = F64, small: bool = False
):
    """Inputs with per-step decay logs dt * A of about -decay on average (`small`: sizes for gradcheck)."""
    gen = torch.Generator().manual_seed(seed)
    batch, nheads, headdim, dstate = (1, 2, 2, 3) if small else (2, 4, 3, 5)
    x = torch.randn(batch, length, nheads, headdim, generator=gen, dtype=dtype)
    dt = torch.rand(batch, length, nheads, generator=gen, dtype=dtype) * 2 * decay
    a = -torch.empty(nheads, dtype=dtype).uniform_(0.5, 1.5, generator=gen)
    b = torch.randn(batch, length, ngroups, dstate, generator=gen, dtype=dtype)
    c = torch.randn(batch, length, ngroups, dstate, generator=gen, dtype=dtype)
    d = torch.randn(nheads, generator=gen, dtype=dtype)
    h0 = torch.randn(batch, nheads, headdim, dstate, generator=gen, dtype=dtype)
    return x, dt, a, b, c, d, h0


@pytest.fixture
def paths_taken(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records which path each ssd_chunked_scan call takes."""
    taken: list[str] = []
    for name, label in (("_scan_factorised", "factorised"), ("_scan_by_segment_sums", "segment sums")):
        real = getattr(ssd, name)

        def spy(*args, _real=real, _label=label):
            taken.append(_label)
            return _real(*args)

        monkeypatch.setattr(ssd, name, spy)
    return taken


@pytest.mark.parametrize(("decay", "path"), [(0.3, "factorised"), (200.0, "segment sums")])
@pytest.mark.parametrize(("length", "chunk", "ngroups"), [(50, 16, 1), (37, 8, 2), (64, 64, 1), (5, 1, 1)])
def test_each_path_equals_the_naive_recurrence(
    paths_taken: list[str], decay: float, path: str, length: int, chunk: int, ngroups: int
) -> None:
    x, dt, a, b, c, d, h0 = scan_inputs(length, ngroups, decay, seed=length)
    for init in (None, h0):
        y, h = ssd_chunked_scan(x, dt, a, b, c, d, chunk, initial_state=init)
        y_ref, h_ref = naive_scan(x, dt, a, b, c, d, init)
        assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
        assert_close(h, h_ref, rtol=1e-10, atol=1e-10)
    # A chunk of one step has no decay range after its first step: always factorised.
    assert paths_taken == ["factorised" if chunk == 1 else path] * 2


def test_path_follows_the_span_limit(paths_taken: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert factorised_span_limit(torch.bfloat16) == factorised_span_limit(torch.float32) == 80.0
    x, dt, a, b, c, d, _ = scan_inputs(32, decay=0.3)
    dt = dt.float().clone()
    x, a, b, c, d = (t.float() for t in (x, a, b, c, d))
    dt[0, 3:16, 1] = 20.0  # steps 1..15 of chunk 0, head 1: decay range above 80 in float32
    ssd_chunked_scan(x, dt, a, b, c, d, 16)
    monkeypatch.setitem(ssd._SPAN_LIMIT, torch.float32, float("inf"))
    ssd_chunked_scan(x, dt, a, b, c, d, 16)
    assert paths_taken == ["segment sums", "factorised"]


def test_float32_factorised_path_is_precise_near_its_limit(paths_taken: list[str]) -> None:
    # Per-step decay ~5 over 16-step chunks: spans ~75, factors up to exp(+-37).
    x, dt, a, b, c, d, h0 = scan_inputs(96, decay=2.5, seed=3)
    dt = dt.clamp(max=5.3 / a.abs().max())
    y_ref, h_ref = naive_scan(x, dt, a, b, c, d, h0)
    y, h = ssd_chunked_scan(x.float(), dt.float(), a.float(), b.float(), c.float(), d.float(), 16, h0.float())
    assert paths_taken == ["factorised"]
    assert ((y.double() - y_ref).norm() / y_ref.norm()) < 1e-5
    assert ((h.double() - h_ref).norm() / h_ref.norm()) < 1e-5


def test_empty_sequence_passes_the_state() -> None:
    x, dt, a, b, c, d, h0 = scan_inputs(0)
    y, h = ssd_chunked_scan(x, dt, a, b, c, d, 16, initial_state=h0)
    assert y.shape == (2, 0, 4, 3)
    assert_close(h, h0)


@pytest.mark.parametrize(("decay", "ngroups", "length", "chunk"), [(0.3, 1, 11, 4), (0.3, 2, 9, 3), (50.0, 1, 7, 4)])
def test_scan_gradients(decay: float, ngroups: int, length: int, chunk: int) -> None:
    inputs = [t.requires_grad_() for t in scan_inputs(length, ngroups, decay, seed=7, small=True)]

    def run(x, dt, a, b, c, d, h0):
        return ssd_chunked_scan(x, dt, a, b, c, d, chunk, initial_state=h0)

    assert torch.autograd.gradcheck(run, tuple(inputs), eps=1e-6, atol=1e-6)


def test_scan_gradient_without_initial_state_or_final_state_use() -> None:
    x, dt, a, b, c, d, _ = (t.requires_grad_() for t in scan_inputs(10, seed=2, small=True))

    def only_y(x, dt, a, b, c, d):
        return ssd_chunked_scan(x, dt, a, b, c, d, 4)[0]

    assert torch.autograd.gradcheck(only_y, (x, dt, a, b, c, d), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("d_conv", [1, 2, 4])
@pytest.mark.parametrize("with_prefix", [False, True])
@pytest.mark.parametrize("length", [6, 2])
def test_causal_conv_function_gradients(with_bias: bool, d_conv: int, with_prefix: bool, length: int) -> None:
    """Against F.conv1d over [prefix or zeros, xbc]; chunks shorter than the conv's reach (length 2 < d_conv - 1
    = 3) read part of their taps from the prefix only."""
    gen = torch.Generator().manual_seed(d_conv + 10 * length)
    k = d_conv - 1
    xbc = torch.randn(2, length, 5, generator=gen, dtype=F64, requires_grad=True)
    prefix = torch.randn(2, k, 5, generator=gen, dtype=F64, requires_grad=True) if with_prefix else None
    weight = torch.randn(5, d_conv, generator=gen, dtype=F64, requires_grad=True)
    bias = torch.randn(5, generator=gen, dtype=F64, requires_grad=True) if with_bias else None
    padding = prefix if prefix is not None else torch.zeros(2, k, 5, dtype=F64)
    expected = F.silu(F.conv1d(torch.cat([padding, xbc], dim=1).mT, weight.unsqueeze(1), bias, groups=5)).mT
    assert_close(_CausalConvSiLU.apply(xbc, prefix, weight, bias), expected, rtol=1e-12, atol=1e-12)
    with torch.no_grad():  # the in-place inference branch
        assert_close(_CausalConvSiLU.apply(xbc, prefix, weight, bias), expected, rtol=1e-12, atol=1e-12)

    def conv(xbc: torch.Tensor, weight: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        it = iter(rest)
        p = next(it) if with_prefix else None
        b = next(it) if with_bias else None
        return _CausalConvSiLU.apply(xbc, p, weight, b)

    inputs = (xbc, weight, *([prefix] if prefix is not None else []), *([bias] if bias is not None else []))
    assert torch.autograd.gradcheck(conv, inputs)


def test_gated_out_function_matches_norm_then_out_proj_and_its_gradients() -> None:
    torch.manual_seed(0)
    m = Mamba2(6, d_state=3, expand=2, headdim=4).to(F64)
    with torch.no_grad():
        m.norm.weight.uniform_(0.5, 1.5)
    y = torch.randn(7, 12, dtype=F64, requires_grad=True)
    z = torch.randn(7, 20, dtype=F64)[:, 3:15].requires_grad_()  # a strided view, like in_proj's z
    expected = m.out_proj(m.norm(y, z))
    got = _GatedOut.apply(y, z, m.norm.weight, m.out_proj.weight, m.norm.eps)
    assert_close(got, expected, rtol=1e-12, atol=1e-12)
    inputs = (y, z, m.norm.weight, m.out_proj.weight)
    assert torch.autograd.gradcheck(lambda *t: _GatedOut.apply(*t, m.norm.eps), inputs)


def layer_and_gradients(m: Mamba2, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    m.zero_grad()
    xg = x.clone().requires_grad_()
    out = m(xg)
    (out * torch.linspace(-1, 1, out.shape[1], dtype=out.dtype)[:, None]).square().sum().backward()
    assert xg.grad is not None
    return out.detach(), {k: p.grad.clone() for k, p in m.named_parameters() if p.grad is not None}, xg.grad


def test_blocks_and_recompute_give_the_same_outputs_and_gradients(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    m = Mamba2(8, d_state=4, headdim=4, chunk_size=5, recompute_above_mb=None).to(F64)
    assert m.conv1d.bias is not None
    with torch.no_grad():
        m.conv1d.bias.normal_()
        m.norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(7, 23, 8, dtype=F64)
    out, grads, grad_x = layer_and_gradients(m, x)
    assert m.block_sequences(23) >= 7 and not m.recomputes(x)
    monkeypatch.setattr(mamba2_module, "_BLOCK_ELEMENTS", 2 * 23 * m.in_proj.out_features)  # blocks of 2
    assert m.block_sequences(23) == 2
    for recompute_above_mb in (None, 0.0):
        m.recompute_above_mb = recompute_above_mb
        assert m.recomputes(x) == (recompute_above_mb is not None)
        out2, grads2, grad_x2 = layer_and_gradients(m, x)
        assert_close(out2, out, rtol=1e-12, atol=1e-12)
        assert_close(grad_x2, grad_x, rtol=1e-10, atol=1e-12)
        assert grads2.keys() == grads.keys() == {k for k, _ in m.named_parameters()}
        for k in grads:
            assert_close(grads2[k], grads[k], rtol=1e-10, atol=1e-12, msg=k)
    # Streaming state through blocks: the state of every stream comes back in order.
    with torch.no_grad():
        whole, state = m(x, return_state=True)
        first, mid = m(x[:, :10], return_state=True)
        second = m(x[:, 10:], state=mid)
    assert_close(torch.cat([first, second], 1), whole, rtol=1e-10, atol=1e-12)
    assert state.ssm.shape == (7, m.nheads, 4, 4)


def test_inference_path_equals_training_path() -> None:
    torch.manual_seed(1)
    m = Mamba2(16, d_state=8, headdim=8)
    x = torch.randn(3, 40, 16)
    with torch.no_grad():
        inference = m(x)
    assert_close(m(x.requires_grad_()).detach(), inference, rtol=1e-6, atol=1e-6)
