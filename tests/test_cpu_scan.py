"""The numba-compiled CPU scan (ictal.models.mamba.cpu_scan): the kernel against the per-step recurrence written in the
tests, its gradients against the SSD scan's (autograd) and gradcheck, the Mamba2 / BiMamba2 / V3 paths against the
SSD path (outputs and gradients), streaming with carried state, when it runs and when not (ICTAL_CPU_SCAN=0,
use_kernels=False), non-finite inputs, bf16 autocast, and how the path is reported. The module-level tests of
tests/test_mamba2.py run on both paths too."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import ictal.models.mamba.mamba2 as mamba2_module
from ictal.config.env import CPU_SCAN, FORCE_REFERENCE_SCAN
from ictal.errors import ConfigError
from ictal.models.mamba import cpu_scan
from ictal.models.mamba.mamba2 import CPU_SCAN_BACKEND, REFERENCE_BACKEND, BiMamba2, Mamba2, Mamba2State, mamba_backend
from ictal.models.mamba.ssd import ssd_chunked_scan
from ictal.models.v3 import build_v3
from reference_scan import naive_scan

F64 = torch.float64
pytestmark = pytest.mark.skipif(not cpu_scan.cpu_scan_available(), reason="numba is not importable")


def kernel_inputs(length: int, ngroups: int, dtype: torch.dtype, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    batch, nheads, headdim, dstate = 3, 4, 3, 5
    x = torch.randn(batch, length, nheads, headdim, generator=gen, dtype=dtype)
    b = torch.randn(batch, length, ngroups, dstate, generator=gen, dtype=dtype)
    c = torch.randn(batch, length, ngroups, dstate, generator=gen, dtype=dtype)
    # Step sizes from tiny to large (softplus past its threshold of 20 too), decay rates up to e^3.
    dt_raw = 4 * torch.randn(batch, length, nheads, generator=gen, dtype=dtype)
    dt_raw[0, :1] = 25.0
    return {
        "x": x, "b": b, "c": c, "dt_raw": dt_raw,
        "dt_bias": torch.randn(nheads, generator=gen, dtype=dtype),
        "a": -torch.exp(torch.empty(nheads, dtype=dtype).uniform_(-3, 3, generator=gen)),
        "d": torch.randn(nheads, generator=gen, dtype=dtype),
        "h0": torch.randn(batch, nheads, headdim, dstate, generator=gen, dtype=dtype),
    }  # fmt: skip


def run_kernel(t: dict[str, torch.Tensor], initial: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    batch, length, nheads, headdim = t["x"].shape
    ngroups, dstate = t["b"].shape[2:]
    xbc = torch.cat([t["x"].flatten(2), t["b"].flatten(2), t["c"].flatten(2)], dim=-1)
    y, final = cpu_scan.selective_scan_cpu(
        xbc, t["dt_raw"], t["dt_bias"], t["a"], t["d"],
        nheads=nheads, headdim=headdim, ngroups=ngroups, d_state=dstate, initial=initial,
    )  # fmt: skip
    return y.view(batch, length, nheads, headdim), final


@pytest.mark.parametrize("length", [1, 7, 100])
@pytest.mark.parametrize("ngroups", [1, 2])
@pytest.mark.parametrize("with_state", [False, True])
def test_kernel_equals_naive_recurrence(length: int, ngroups: int, with_state: bool) -> None:
    t = kernel_inputs(length, ngroups, F64, seed=length + ngroups)
    initial = t["h0"] if with_state else None
    dt = F.softplus(t["dt_raw"] + t["dt_bias"])
    y_ref, h_ref = naive_scan(t["x"], dt, t["a"], t["b"], t["c"], t["d"], initial)
    y, h = run_kernel(t, initial)
    assert y.dtype == h.dtype == F64
    assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    assert_close(h, h_ref, rtol=1e-12, atol=1e-12)
    # float32 inputs: float32 arithmetic, as close to the float64 truth as float32 allows.
    y32, h32 = run_kernel({k: v.float() for k, v in t.items()}, None if initial is None else initial.float())
    assert y32.dtype == torch.float32
    assert_close(y32.double(), y_ref, rtol=1e-4, atol=1e-4)
    assert_close(h32.double(), h_ref, rtol=1e-4, atol=1e-4)


def test_kernel_on_empty_inputs() -> None:
    t = kernel_inputs(0, 1, torch.float32)
    y, h = run_kernel(t, t["h0"])
    assert y.shape == (3, 0, 4, 3)
    assert_close(h, t["h0"])


def eval_module(seed: int = 0, **kw: object) -> Mamba2:
    torch.manual_seed(seed)
    m = Mamba2(12, d_state=6, expand=2, headdim=4, chunk_size=8, **kw).to(F64).eval()  # type: ignore[arg-type]
    with torch.no_grad():  # non-trivial norm, conv bias and skip so every parameter matters
        m.norm.weight.uniform_(0.5, 1.5)
        m.conv1d.bias.normal_()
        m.D.normal_()
    return m


class ScanCalls:
    """Counts the calls that reach the compiled scan."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = mamba2_module.selective_scan_cpu

        def counted(*args: object, **kwargs: object) -> tuple[torch.Tensor, torch.Tensor]:
            self.count += 1
            return real(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(mamba2_module, "selective_scan_cpu", counted)


@pytest.mark.parametrize("ngroups", [1, 3])
def test_module_runs_the_compiled_scan_and_equals_the_ssd_path(ngroups: int, monkeypatch: pytest.MonkeyPatch) -> None:
    m = eval_module(ngroups=ngroups)
    x = torch.randn(2, 45, 12, dtype=F64)
    calls = ScanCalls(monkeypatch)
    with torch.no_grad():
        y, state = m(x, return_state=True)
    assert calls.count == 1
    m.use_kernels = False
    with torch.no_grad():
        y_ssd, state_ssd = m(x, return_state=True)
    assert calls.count == 1
    assert_close(y, y_ssd, rtol=1e-10, atol=1e-12)
    assert_close(state.ssm, state_ssd.ssm, rtol=1e-10, atol=1e-12)
    assert_close(state.conv, state_ssd.conv, rtol=0, atol=0)


@pytest.mark.parametrize("pieces", [[1, 2, 47], [16, 16, 18], [50]])
def test_streaming_on_the_compiled_scan_equals_the_whole_sequence(pieces: list[int]) -> None:
    m = eval_module(1)
    x = torch.randn(2, sum(pieces), 12, dtype=F64)
    with torch.no_grad():
        whole = m(x)
        state: Mamba2State | None = None
        outs, start = [], 0
        for n in pieces:
            out, state = m(x[:, start : start + n], state=state, return_state=True)
            outs.append(out)
            start += n
        # ... and the plain step() continues where it stopped.
        _, state = m(x[:, :30], return_state=True)
        for t in range(30, 35):
            o, state = m.step(x[:, t], state)
            assert_close(o, whole[:, t], rtol=1e-10, atol=1e-12)
    assert_close(torch.cat(outs, dim=1), whole, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("length", "ngroups", "with_state"), [(7, 1, True), (37, 2, False), (100, 1, True), (16, 1, False)]
)
def test_kernel_gradients_equal_the_ssd_scans(length: int, ngroups: int, with_state: bool) -> None:
    # Lengths below, at and across the 16-step checkpoint segments of the backward pass; gradients of y and of the
    # final state, with respect to x, B, C, dt (raw and bias), A, D and the initial state.
    t = kernel_inputs(length, ngroups, F64, seed=length)
    leaves = {k: v.requires_grad_() for k, v in t.items() if k != "h0" or with_state}
    initial = leaves.get("h0")
    gen = torch.Generator().manual_seed(1)
    y, final = run_kernel(t, initial)
    weights_y, weights_final = (
        torch.randn(y.shape, generator=gen, dtype=F64),
        torch.randn(final.shape, generator=gen, dtype=F64),
    )
    ours = torch.autograd.grad((y * weights_y).sum() + (final * weights_final).sum(), list(leaves.values()))
    dt = F.softplus(t["dt_raw"] + t["dt_bias"])
    y_ssd, final_ssd = ssd_chunked_scan(t["x"], dt, t["a"], t["b"], t["c"], t["d"], 8, initial)
    expected = torch.autograd.grad((y_ssd * weights_y).sum() + (final_ssd * weights_final).sum(), list(leaves.values()))
    for name, got, want in zip(leaves, ours, expected, strict=True):
        assert_close(got, want, rtol=1e-10, atol=1e-10, msg=name)


def test_kernel_gradcheck() -> None:
    t = kernel_inputs(20, 2, F64, seed=3)
    names = ["x", "b", "c", "dt_raw", "dt_bias", "a", "d", "h0"]

    def scan(*inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        given = dict(zip(names, inputs, strict=True))
        return run_kernel(given, given["h0"])

    assert torch.autograd.gradcheck(scan, tuple(t[k].requires_grad_() for k in names), eps=1e-6, atol=1e-7)


def test_module_gradients_and_training_equal_the_ssd_path(monkeypatch: pytest.MonkeyPatch) -> None:
    m = eval_module(2).train()
    x = torch.randn(2, 40, 12, dtype=F64)
    calls = ScanCalls(monkeypatch)

    def grads() -> tuple[torch.Tensor, list[torch.Tensor]]:
        m.zero_grad()
        xi = x.clone().requires_grad_(True)
        (m(xi) * torch.linspace(-1, 1, 40 * 12, dtype=F64).view(40, 12)).sum().backward()
        assert xi.grad is not None
        return xi.grad, [p.grad.clone() for p in m.parameters() if p.grad is not None]

    grad_x, grad_params = grads()
    assert calls.count == 1
    m.use_kernels = False
    grad_x_ssd, grad_params_ssd = grads()
    assert calls.count == 1
    assert_close(grad_x, grad_x_ssd, rtol=1e-10, atol=1e-12)
    assert len(grad_params) == len(grad_params_ssd) == len(list(m.parameters()))
    for got, want in zip(grad_params, grad_params_ssd, strict=True):
        assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_switches_and_reporting(monkeypatch: pytest.MonkeyPatch) -> None:
    m = eval_module(2)
    x = torch.randn(2, 20, 12, dtype=F64)
    calls = ScanCalls(monkeypatch)
    assert mamba_backend(m) == mamba_backend("cpu") == CPU_SCAN_BACKEND
    monkeypatch.setenv(CPU_SCAN.name, "0")
    with torch.no_grad():
        m(x)
    assert calls.count == 0
    assert mamba_backend(m) == mamba_backend("cpu") == REFERENCE_BACKEND
    monkeypatch.setenv(CPU_SCAN.name, "1")
    with torch.no_grad():
        m(x)
    assert calls.count == 1
    m.use_kernels = False
    with torch.no_grad():
        m(x)
    assert calls.count == 1
    assert mamba_backend(m) == REFERENCE_BACKEND


@pytest.mark.parametrize("variable", [FORCE_REFERENCE_SCAN.name, "SEIZURE_MAMBA_FORCE_FALLBACK"])
def test_forcing_the_reference_scan(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    # The reference system's SEIZURE_MAMBA_FORCE_FALLBACK is an alias of ours: the PyTorch SSD scan everywhere.
    m = eval_module(2)
    calls = ScanCalls(monkeypatch)
    monkeypatch.setenv(variable, "1")
    with torch.no_grad():
        m(torch.randn(2, 20, 12, dtype=F64))
    assert calls.count == 0 and mamba_backend(m) == REFERENCE_BACKEND


def test_a_bad_switch_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CPU_SCAN.name, "maybe")
    m = eval_module()
    with pytest.raises(ConfigError) as err, torch.no_grad():
        m(torch.randn(1, 5, 12, dtype=F64))
    assert CPU_SCAN.name in str(err.value.source) and "0" in str(err.value.problems)


def test_non_finite_inputs_propagate_as_on_the_ssd_path() -> None:
    m = eval_module(3)
    x = torch.randn(1, 30, 12, dtype=F64)
    x[0, 10, 3] = float("nan")
    with torch.no_grad():
        y = m(x)
    assert torch.isfinite(y[0, :10]).all()
    assert torch.isnan(y[0, 10:]).any(dim=-1).all()  # causal: from the NaN step on, not before


def test_bidirectional_block_and_v3_inference_equal_the_ssd_path(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    bi = BiMamba2(16, d_state=8, headdim=8).eval()
    x = torch.randn(5, 70, 16) * 3
    calls = ScanCalls(monkeypatch)
    with torch.no_grad():
        y = bi(x)
    assert calls.count == 2  # one block, two directions
    reference = bi._block(x).detach()  # grad mode on: the SSD scan, norm and both directions in one thread
    assert_close(y, reference, rtol=1e-5, atol=1e-5)
    torch.manual_seed(0)
    model = build_v3("tiny").eval()
    eeg = torch.randn(2, 19, 2560)
    with torch.no_grad():
        ours = model(eeg)
        for layer in model.modules():
            if isinstance(layer, Mamba2):
                layer.use_kernels = False
        ssd = model(eeg)
    assert calls.count > 2
    assert_close(ours, ssd, rtol=1e-5, atol=1e-5)
    # bf16 autocast: the scan converts to float32 and gives back the autocast dtype.
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y_bf16 = bi(x)
    assert torch.isfinite(y_bf16).all()
    assert (y_bf16.float() - y).norm() / y.norm() < 5e-2


def test_states_are_kept_for_the_backward_pass_only_when_one_follows(monkeypatch: pytest.MonkeyPatch) -> None:
    kernels = cpu_scan._kernels()
    kept: list[int] = []
    real = kernels.scan_forward

    def spy(*args: object) -> None:
        kept.append(args[6].shape[1])  # type: ignore[attr-defined]  # checkpoints (B, S, G, N, W)
        real(*args)

    monkeypatch.setattr(kernels, "scan_forward", spy)
    m = eval_module(4)  # parameters require gradients, as in any model
    x = torch.randn(1, 40, 12, dtype=F64)
    with torch.no_grad():
        m(x)
    with torch.inference_mode():
        m(x)
    m(x.requires_grad_()).sum().backward()
    assert kept == [0, 0, 3]  # 40 steps: states before steps 0, 16 and 32
