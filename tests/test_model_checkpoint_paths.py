"""A checkpoint saved without mamba_ssm loads into the CUDA path's module.

On every machine: our Mamba2's state_dict has exactly the names and shapes that
`mamba_ssm.modules.mamba2.Mamba2(d_model, d_state, d_conv, expand, headdim, ngroups)` creates (written out here
from mamba_ssm's constructor: in_proj.weight (d_in_proj, d_model) with d_in_proj = 2 d_inner + 2 ngroups d_state +
nheads, conv1d.weight (conv_dim, 1, d_conv), conv1d.bias (conv_dim,), dt_bias, A_log, D (nheads,), norm.weight
(d_inner,), out_proj.weight (d_model, d_inner); no biases on the projections); a V3 checkpoint written to disk has
those names under every Mamba layer; and a state_dict read the way mamba_ssm's module reads it (its step(): in_proj
split [z, x, B, C, dt], conv taps oldest to newest, softplus(dt + dt_bias), A = -exp(A_log), D per head, gated
RMSNorm of y * silu(z) per group of d_inner / ngroups, out_proj) gives our outputs.

On a CUDA machine with mamba_ssm: mamba_ssm's own Mamba2 loads our state_dict (strict) and gives the output of
our PyTorch path and of our kernel path; a V3 checkpoint saved on CPU gives the same logits on the GPU's kernel
path. Those tests skip elsewhere (the `gpu` skip condition below).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from ictal.models.mamba.mamba2 import KERNEL_BACKEND, REFERENCE_BACKEND, Mamba2, mamba_backend, mamba_kernels
from ictal.models.v3 import build_v3

F64 = torch.float64

# A `gpu` test: runs only where the CUDA path exists.
gpu = pytest.mark.skipif(
    not (torch.cuda.is_available() and mamba_kernels() is not None),
    reason="gpu: needs a CUDA device and the mamba_ssm package (the CUDA path); the key mapping is tested on CPU",
)


def mamba_ssm_shapes(
    d_model: int, d_state: int, expand: int, headdim: int, d_conv: int = 4, ngroups: int = 1
) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes of mamba_ssm.modules.mamba2.Mamba2 (d_ssm=None, rmsnorm=True, bias=False,
    conv_bias=True, D_has_hdim=False)."""
    d_inner = expand * d_model
    nheads = d_inner // headdim
    d_in_proj = 2 * d_inner + 2 * ngroups * d_state + nheads
    conv_dim = d_inner + 2 * ngroups * d_state
    return {
        "in_proj.weight": (d_in_proj, d_model),
        "conv1d.weight": (conv_dim, 1, d_conv),
        "conv1d.bias": (conv_dim,),
        "dt_bias": (nheads,),
        "A_log": (nheads,),
        "D": (nheads,),
        "norm.weight": (d_inner,),
        "out_proj.weight": (d_model, d_inner),
    }


# (d_model, d_state, expand, headdim, d_conv, ngroups): the base node and edge streams, the tiny edge stream,
# and grouped B/C with another conv width.
SIZES = [(64, 16, 2, 8, 4, 1), (16, 8, 2, 8, 4, 1), (4, 4, 2, 4, 4, 1), (12, 6, 2, 4, 3, 2)]


@pytest.mark.parametrize("sizes", SIZES)
def test_state_dict_names_and_shapes_are_mamba_ssm_s(sizes: tuple[int, ...], tmp_path: Path) -> None:
    d_model, d_state, expand, headdim, d_conv, ngroups = sizes
    m = Mamba2(d_model, d_state=d_state, expand=expand, headdim=headdim, d_conv=d_conv, ngroups=ngroups)
    torch.save(m.state_dict(), tmp_path / "mamba.pt")
    loaded = torch.load(tmp_path / "mamba.pt", weights_only=True)
    assert {k: tuple(v.shape) for k, v in loaded.items()} == mamba_ssm_shapes(*sizes)
    assert all(v.dtype == torch.float32 for v in loaded.values())


def test_v3_checkpoint_has_mamba_ssm_names_under_every_mamba_layer(tmp_path: Path) -> None:
    model = build_v3("tiny")
    torch.save({"model": model.state_dict()}, tmp_path / "v3.pt")
    state = torch.load(tmp_path / "v3.pt", weights_only=True)["model"]
    layers = {name: m for name, m in model.named_modules() if isinstance(m, Mamba2)}
    assert layers, "the V3 model has Mamba2 layers"
    for name, layer in layers.items():
        expected = mamba_ssm_shapes(layer.d_model, layer.d_state, layer.expand, layer.headdim, layer.d_conv)
        got = {k.removeprefix(name + "."): tuple(v.shape) for k, v in state.items() if k.startswith(name + ".")}
        assert got == expected, name


def mamba_ssm_step_reference(sd: dict[str, torch.Tensor], x: torch.Tensor, headdim: int, ngroups: int) -> torch.Tensor:
    """A Mamba2 forward computed from a state_dict the way mamba_ssm's module reads it (its step(), one time step
    at a time, extended to ngroups groups of consecutive heads). x: (B, L, d_model) -> (B, L, d_model)."""
    d_inner = sd["norm.weight"].shape[0]
    nheads = sd["A_log"].shape[0]
    conv_dim, _, d_conv = sd["conv1d.weight"].shape
    d_state = (conv_dim - d_inner) // (2 * ngroups)
    batch, length, _ = x.shape
    conv_state = x.new_zeros(batch, conv_dim, d_conv)
    ssm_state = x.new_zeros(batch, nheads, headdim, d_state)
    a = -torch.exp(sd["A_log"])
    outs = []
    for t in range(length):
        zxbcdt = x[:, t] @ sd["in_proj.weight"].T
        z, xbc, dt = torch.split(zxbcdt, [d_inner, conv_dim, nheads], dim=-1)
        conv_state = torch.cat([conv_state[:, :, 1:], xbc.unsqueeze(-1)], dim=-1)
        xbc = F.silu((conv_state * sd["conv1d.weight"][:, 0]).sum(-1) + sd["conv1d.bias"])
        xs, b, c = torch.split(xbc, [d_inner, ngroups * d_state, ngroups * d_state], dim=-1)
        per_group = nheads // ngroups
        b = b.view(batch, ngroups, d_state).repeat_interleave(per_group, dim=1)  # (B, H, N)
        c = c.view(batch, ngroups, d_state).repeat_interleave(per_group, dim=1)
        dt = F.softplus(dt + sd["dt_bias"])
        xs = xs.view(batch, nheads, headdim)
        ssm_state = ssm_state * torch.exp(dt * a)[..., None, None] + torch.einsum("bh,bhn,bhp->bhpn", dt, b, xs)
        y = torch.einsum("bhpn,bhn->bhp", ssm_state, c) + sd["D"][:, None] * xs
        g = (y.reshape(batch, d_inner) * F.silu(z)).view(batch, ngroups, -1)
        g = (g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + 1e-5)).reshape(batch, d_inner) * sd["norm.weight"]
        outs.append(g @ sd["out_proj.weight"].T)
    return torch.stack(outs, dim=1)


@pytest.mark.parametrize("sizes", SIZES)
def test_state_dict_read_as_mamba_ssm_reads_it_gives_our_output(sizes: tuple[int, ...]) -> None:
    d_model, d_state, expand, headdim, d_conv, ngroups = sizes
    torch.manual_seed(0)
    m = Mamba2(d_model, d_state=d_state, expand=expand, headdim=headdim, d_conv=d_conv, ngroups=ngroups).to(F64)
    assert m.conv1d.bias is not None
    with torch.no_grad():  # every parameter non-trivial, so a swapped slice or axis shows
        m.conv1d.bias.normal_()
        m.norm.weight.uniform_(0.5, 1.5)
        m.D.normal_()
    x = torch.randn(2, 21, d_model, dtype=F64)
    with torch.no_grad():
        ours = m(x)
    reference = mamba_ssm_step_reference(m.state_dict(), x, headdim, ngroups)
    assert_close(ours, reference, rtol=1e-10, atol=1e-10)


@gpu
def test_gpu_mamba_ssm_module_loads_our_state_dict_and_matches_both_paths() -> None:
    from mamba_ssm.modules.mamba2 import Mamba2 as MambaSsmMamba2

    torch.manual_seed(0)
    ours = Mamba2(64, d_state=16, expand=2, headdim=8).cuda()
    assert ours.conv1d.bias is not None
    with torch.no_grad():
        ours.conv1d.bias.normal_()
        ours.norm.weight.uniform_(0.5, 1.5)
        ours.D.normal_()
    # use_mem_eff_path=False: mamba_ssm's fused path needs the causal_conv1d package, which this test does not.
    theirs = MambaSsmMamba2(
        d_model=64, d_state=16, d_conv=4, expand=2, headdim=8, ngroups=1, use_mem_eff_path=False
    ).cuda()
    # Tolerances: TF32 inside the Triton kernels (see tests/test_mamba2.py; 2.6e-3 measured on an H200).
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(3, 500, 64, device="cuda")
    with torch.no_grad():
        kernel = ours(x)
        ours.use_kernels = False
        reference = ours(x)
        ours.use_kernels = None
        mamba_ssm_out = theirs(x)
    assert_close(mamba_ssm_out, reference, rtol=1e-2, atol=5e-3)
    assert_close(kernel, reference, rtol=1e-2, atol=5e-3)
    # And back: a state_dict written by mamba_ssm loads into ours.
    back = Mamba2(64, d_state=16, expand=2, headdim=8).cuda()
    back.load_state_dict(theirs.state_dict(), strict=True)
    with torch.no_grad():
        assert_close(back(x), mamba_ssm_out, rtol=1e-2, atol=5e-3)


@gpu
def test_gpu_v3_checkpoint_saved_on_cpu_runs_on_the_kernel_path(tmp_path: Path) -> None:
    # The Mamba streams are compared (not the logits, whose top-k adjacency may break near-ties differently).
    torch.manual_seed(0)
    cpu_model = build_v3("base").eval()
    assert mamba_backend(cpu_model) == REFERENCE_BACKEND
    torch.save(cpu_model.state_dict(), tmp_path / "v3.pt")
    gpu_model = build_v3("base").cuda().eval()
    gpu_model.load_state_dict(torch.load(tmp_path / "v3.pt", weights_only=True), strict=True)
    assert mamba_backend(gpu_model) == KERNEL_BACKEND
    with torch.no_grad():
        nodes = cpu_model.projection(cpu_model.tcn(torch.randn(1, 19, 15360)))
        cpu_nodes = cpu_model.node_stream(nodes)
        gpu_nodes = gpu_model.node_stream(nodes.cuda())
        cpu_edges = cpu_model.edge_stream(cpu_nodes)
        gpu_edges = gpu_model.edge_stream(cpu_nodes.cuda())
    assert_close(gpu_nodes.cpu(), cpu_nodes, rtol=1e-3, atol=1e-3)
    assert_close(gpu_edges.cpu(), cpu_edges, rtol=1e-3, atol=1e-3)
