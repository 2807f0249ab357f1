"""Mamba2 layer (selective state-space model) with a pure-PyTorch reference path and the mamba_ssm kernels.

Parameterisation and parameter names follow `mamba_ssm.modules.mamba2.Mamba2` (rmsnorm=True,
norm_before_gate=False, D per head, no in/out projection bias, conv bias), so one state_dict loads on either
path:

    in_proj -> [z, x, B, C, dt]           x: d_inner = expand * d_model channels, nheads = d_inner / headdim
    conv1d  depthwise causal over [x, B, C], then SiLU
    dt      = softplus(dt + dt_bias)       dt_bias: inverse softplus of log-uniform dt in [dt_min, dt_max]
    A       = -exp(A_log)                  per head
    y       = SSM(x, dt, A, B, C) + D * x  (ssd.ssd_chunked_scan, or mamba_chunk_scan_combined on CUDA)
    out     = out_proj(RMSNorm(y * silu(z)))

Dispatch: with `use_kernels=None` (default) the mamba_ssm Triton kernels are used when `mamba_ssm` imports and
the input is a CUDA float32/float16/bfloat16 tensor, and on a CPU the scan runs as the plain recurrence compiled by
numba, forward and backward (`ictal.models.mamba.cpu_scan`); `use_kernels=False` (or ``ICTAL_CPU_SCAN=0``,
``ICTAL_FORCE_REFERENCE_SCAN=1``) always uses the PyTorch SSD path, the reference;
`use_kernels=True` requires the CUDA kernels and raises otherwise. `mamba_backend()` names the active path.

The PyTorch path is written for CPU memory traffic, which is where its time goes (the layers' arithmetic is small):
sequences run in blocks that stay in the caches (BiMamba2: norm and both directions per block), shared among worker
threads when there are many (`ictal.models.mamba.parallel`; BiMamba2's inference gives each block's two directions
to two workers); the causal conv + SiLU and the gated norm + out_proj are autograd Functions with hand-written
backward passes (fewer passes over the activations than autograd's); the scan is `ssd.ssd_chunked_scan` (its
factorised path: one C B^T per chunk shared by all heads); large training calls recompute their blocks in the
backward pass instead of keeping their activations (`recompute_above_mb`). Every broadcast runs along a long
contiguous axis: CPU kernels slow down several times otherwise.
"""

from __future__ import annotations

import functools
import itertools
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, overload

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn

from ictal.config.env import FORCE_REFERENCE_SCAN, env_flag
from ictal.models.mamba.cpu_scan import cpu_scan_available, selective_scan_cpu
from ictal.models.mamba.parallel import map_blocks
from ictal.models.mamba.ssd import backward_without_autocast, scan_dtype, ssd_chunked_scan

__all__ = [
    "CPU_SCAN_BACKEND",
    "KERNEL_BACKEND",
    "REFERENCE_BACKEND",
    "BiMamba2",
    "GatedRMSNorm",
    "Mamba2",
    "Mamba2State",
    "mamba_backend",
    "mamba_kernels",
]

KERNEL_BACKEND = "mamba_ssm CUDA kernels"
REFERENCE_BACKEND = "PyTorch SSD reference"
CPU_SCAN_BACKEND = "numba CPU scan"
_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# Chunk length for mamba_ssm's Triton scan (its own default). `Mamba2.chunk_size` tunes the PyTorch path, whose
# best chunk on CPU is far shorter; the chunking never changes the result beyond float rounding.
KERNEL_CHUNK_SIZE = 256
# In_proj output elements per block of sequences on the PyTorch path (see Mamba2.forward): 2^20 float32
# values, 4 MiB, about what the CPU's caches hold next to the block's other intermediates.
_BLOCK_ELEMENTS = 1 << 20


@dataclass
class MambaKernels:
    """The optional CUDA entry points: the SSD scan (required) and the causal conv (optional)."""

    chunk_scan: Callable[..., Any]
    causal_conv1d: Callable[..., Any] | None


@functools.cache
def mamba_kernels() -> MambaKernels | None:
    """The mamba_ssm kernels if the package imports, else None (looked up once per process)."""
    try:
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
    except Exception:  # a broken CUDA/Triton install raises more than ImportError; then the reference path runs
        return None
    try:
        from causal_conv1d import causal_conv1d_fn
    except Exception:
        causal_conv1d_fn = None
    return MambaKernels(chunk_scan=mamba_chunk_scan_combined, causal_conv1d=causal_conv1d_fn)


def _kernels_apply(device: torch.device, dtype: torch.dtype) -> bool:
    return (
        device.type == "cuda"
        and dtype in _KERNEL_DTYPES
        and not env_flag(FORCE_REFERENCE_SCAN, False)
        and mamba_kernels() is not None
    )


def _cpu_scan_applies(device: torch.device) -> bool:
    return device.type == "cpu" and cpu_scan_available()


def mamba_backend(module_or_device: nn.Module | torch.device | str) -> str:
    """Which Mamba path runs: "mamba_ssm CUDA kernels", "numba CPU scan" (`ictal.models.mamba.cpu_scan`, on a CPU where
    numba imports) or "PyTorch SSD reference".

    For a module: the device of its parameters and the `use_kernels` setting of its Mamba2 layers (the
    reference path if the module has none). For a device: what a default (`use_kernels=None`) layer would use.
    """
    if isinstance(module_or_device, nn.Module):
        layers = [m for m in module_or_device.modules() if isinstance(m, Mamba2)]
        if not layers or layers[0].use_kernels is False:
            return REFERENCE_BACKEND
        param = layers[0].in_proj.weight
        device, dtype = param.device, param.dtype
    else:
        device, dtype = torch.device(module_or_device), torch.float32
    if _kernels_apply(device, dtype):
        return KERNEL_BACKEND
    if _cpu_scan_applies(device):
        return CPU_SCAN_BACKEND
    return REFERENCE_BACKEND


@dataclass
class Mamba2State:
    """Streaming state of one Mamba2 layer.

    conv: (B, conv_dim, d_conv - 1) the last d_conv - 1 inputs of the causal conv (conv_dim = d_inner +
    2 * ngroups * d_state), in the conv's compute dtype. ssm: (B, nheads, headdim, d_state) the SSM state h,
    float32 (float64 for a float64 model).
    """

    conv: Tensor
    ssm: Tensor

    def detach(self) -> Mamba2State:
        """The same state cut from the autograd graph (for truncated backpropagation across chunks)."""
        return Mamba2State(conv=self.conv.detach(), ssm=self.ssm.detach())

    def split(self, sizes: list[int]) -> list[Mamba2State]:
        """The states of consecutive groups of `sizes` streams (views)."""
        return [Mamba2State(conv=c, ssm=s) for c, s in zip(self.conv.split(sizes), self.ssm.split(sizes), strict=True)]

    @staticmethod
    def concat(states: list[Mamba2State]) -> Mamba2State:
        """The states of several groups of streams, stacked along the batch axis in order."""
        return Mamba2State(conv=torch.cat([s.conv for s in states]), ssm=torch.cat([s.ssm for s in states]))


def inverse_rms(t: Tensor, eps: float) -> Tensor:
    """1 / sqrt(mean(t^2) + eps) over the last axis: (..., d) -> (...). One fused reduction (vector_norm): on a
    CPU much faster than a squared copy reduced by a matrix-vector product, for short rows."""
    return torch.rsqrt(torch.linalg.vector_norm(t, dim=-1).square() / t.shape[-1] + eps)


class GatedRMSNorm(nn.Module):
    """`RMSNorm(y * silu(z)) * weight`, normalised per group of `group_size` channels (mamba_ssm RMSNormGated
    with norm_before_gate=False). Computed in float32 (float64 for float64 inputs); y, z: (..., d)."""

    def __init__(self, d: int, group_size: int, eps: float = 1e-5) -> None:
        super().__init__()
        if d % group_size:
            raise ValueError(f"GatedRMSNorm: d ({d}) must be a multiple of group_size ({group_size})")
        self.group_size = group_size
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, y: Tensor, z: Tensor) -> Tensor:
        f = scan_dtype(y.dtype)
        g = y.to(f) * F.silu(z.to(f))
        grouped = g.unflatten(-1, (-1, self.group_size))
        grouped = grouped * self.inverse_rms(grouped).unsqueeze(-1)
        return grouped.flatten(-2) * self.weight.to(f)

    def inverse_rms(self, grouped: Tensor) -> Tensor:
        """1 / RMS over the last axis (a group): (..., group_size) -> (...)."""
        return inverse_rms(grouped, self.eps)


class Mamba2(nn.Module):
    """One Mamba2 mixer: (B, L, d_model) -> (B, L, d_model), causal in L.

    d_state: SSM state size N; expand: d_inner = expand * d_model; headdim: channels per head P
    (nheads = d_inner / headdim); d_conv: causal conv width; chunk_size: SSD chunk length of the PyTorch
    path (speed/memory only, never the result; 16 is fastest on CPU for headdim 8, d_state 16); ngroups: B/C
    groups, each shared by nheads / ngroups heads; dt_min, dt_max, dt_init_floor: initial step-size range;
    A_init_range: initial range of -A; use_kernels: None = mamba_ssm kernels when usable (numba's CPU scan on a
    CPU), False = always the PyTorch SSD path, True = CUDA kernels required; recompute_above_mb: on the
    PyTorch path, a training call whose activations (`activation_mb`) would exceed this many MiB keeps only its
    input and recomputes each block of sequences in the backward pass (the same gradients for one more forward
    pass; activation memory bounded by one block); None: never. `model.activation_checkpointing` on top of it
    recomputes the layer once more.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        expand: int = 2,
        headdim: int = 8,
        d_conv: int = 4,
        chunk_size: int = 16,
        ngroups: int = 1,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        use_kernels: bool | None = None,
        A_init_range: tuple[float, float] = (1.0, 16.0),  # noqa: N803  (mamba_ssm's name)
        recompute_above_mb: float | None = 256.0,
    ) -> None:
        super().__init__()
        d_inner = expand * d_model
        if d_inner % headdim:
            raise ValueError(f"Mamba2: expand * d_model ({d_inner}) must be a multiple of headdim ({headdim})")
        nheads = d_inner // headdim
        if nheads % ngroups:
            raise ValueError(f"Mamba2: nheads ({nheads}) must be a multiple of ngroups ({ngroups})")
        if d_conv < 1 or chunk_size < 1:
            raise ValueError(f"Mamba2: d_conv ({d_conv}) and chunk_size ({chunk_size}) must be >= 1")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"Mamba2: need 0 < dt_min <= dt_max, got {dt_min}, {dt_max}")
        if not 0 < A_init_range[0] <= A_init_range[1]:
            raise ValueError(f"Mamba2: need 0 < A_init_range[0] <= A_init_range[1], got {A_init_range}")
        self.d_model = d_model
        self.d_state = d_state
        self.expand = expand
        self.headdim = headdim
        self.d_conv = d_conv
        self.chunk_size = chunk_size
        self.ngroups = ngroups
        self.d_inner = d_inner
        self.nheads = nheads
        self.conv_dim = d_inner + 2 * ngroups * d_state
        self.use_kernels = use_kernels
        self.recompute_above_mb = recompute_above_mb

        self.in_proj = nn.Linear(d_model, 2 * d_inner + 2 * ngroups * d_state + nheads, bias=False)
        self.conv1d = nn.Conv1d(
            self.conv_dim, self.conv_dim, d_conv, groups=self.conv_dim, padding=d_conv - 1, bias=True
        )
        dt = torch.exp(torch.rand(nheads) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        a = torch.empty(nheads).uniform_(*A_init_range)
        self.A_log = nn.Parameter(torch.log(a))
        self.D = nn.Parameter(torch.ones(nheads))
        for p in (self.dt_bias, self.A_log, self.D):
            p._no_weight_decay = True  # type: ignore[attr-defined]  # mamba_ssm's marker for optimizers
        self.norm = GatedRMSNorm(d_inner, group_size=d_inner // ngroups, eps=1e-5)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)

    # --- dispatch ----------------------------------------------------------------------------------------
    def _kernels_for(self, x: Tensor) -> MambaKernels | None:
        if self.use_kernels is False:
            return None
        if _kernels_apply(x.device, x.dtype):
            return mamba_kernels()
        if self.use_kernels:
            raise RuntimeError(
                f"Mamba2(use_kernels=True) needs the mamba_ssm package and a CUDA float32/16/bf16 input; got "
                f"{x.device.type} {x.dtype}, mamba_ssm {'importable' if mamba_kernels() else 'not importable'}. "
                "Fix: install mamba-ssm on a CUDA machine, or set use_kernels to None/False for the PyTorch path."
            )
        return None

    # --- state -------------------------------------------------------------------------------------------
    def init_state(self, batch: int, device: torch.device | str | None, dtype: torch.dtype) -> Mamba2State:
        """Zero state for `batch` streams: conv in `dtype`, SSM in float32 (float64 if dtype is float64)."""
        return Mamba2State(
            conv=torch.zeros(batch, self.conv_dim, self.d_conv - 1, device=device, dtype=dtype),
            ssm=torch.zeros(batch, self.nheads, self.headdim, self.d_state, device=device, dtype=scan_dtype(dtype)),
        )

    # --- pieces shared by forward and step ---------------------------------------------------------------
    def _split_proj(self, zxbcdt: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        z, xbc, dt = torch.split(zxbcdt, [self.d_inner, self.conv_dim, self.nheads], dim=-1)
        return z, xbc, dt

    def _split_xbc(self, xbc: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(..., conv_dim) -> x (..., H, P), B (..., G, N), C (..., G, N)."""
        gn = self.ngroups * self.d_state
        x, b, c = torch.split(xbc, [self.d_inner, gn, gn], dim=-1)
        return (
            x.unflatten(-1, (self.nheads, self.headdim)),
            b.unflatten(-1, (self.ngroups, self.d_state)),
            c.unflatten(-1, (self.ngroups, self.d_state)),
        )

    def _causal_conv(
        self, xbc: Tensor, conv_state: Tensor | None, kernels: MambaKernels | None
    ) -> tuple[Tensor, Tensor]:
        """Depthwise causal conv + SiLU over time. xbc: (B, L, conv_dim); conv_state: (B, conv_dim, d_conv-1)
        inputs preceding xbc (zeros when None). Returns ((B, L, conv_dim), new conv state)."""
        k = self.d_conv - 1
        batch, length, _ = xbc.shape
        prefix = None if conv_state is None else conv_state.to(xbc.dtype).mT  # (B, k, conv_dim)
        # The new state: the last k inputs, reaching into the old state when the chunk is shorter than k; a copy,
        # so that a stream's state does not keep this chunk's whole in_proj output alive.
        if length >= k:
            new_state = xbc[:, length - k :].mT.contiguous()
        else:
            zeros = xbc.new_zeros(batch, k, self.conv_dim)
            new_state = torch.cat([zeros if prefix is None else prefix, xbc], dim=1)[:, length:].mT.contiguous()
        weight = self.conv1d.weight.squeeze(1)  # (conv_dim, d_conv)
        bias = self.conv1d.bias
        if kernels is not None and kernels.causal_conv1d is not None and 2 <= self.d_conv <= 4:
            padding = xbc.new_zeros(batch, k, self.conv_dim) if prefix is None else prefix
            xin = torch.cat([padding, xbc], dim=1)  # (B, k + L, conv_dim)
            out = kernels.causal_conv1d(
                xin.mT.contiguous(),
                weight.to(xin.dtype),
                None if bias is None else bias.to(xin.dtype),
                activation="silu",
            )
            return out[..., k:].mT, new_state
        return _CausalConvSiLU.apply(xbc, prefix, weight, bias), new_state

    def _scan(
        self, xbc: Tensor, dt_raw: Tensor, initial: Tensor | None, kernels: MambaKernels | None
    ) -> tuple[Tensor, Tensor]:
        """SSM over the conv output xbc (B, L, conv_dim) = [x, B, C]: y (B, L, H, P) and the final state (B, H, P, N),
        on the mamba_ssm kernels, numba's CPU scan (`_runs_cpu_scan`) or the PyTorch SSD scan."""
        f = scan_dtype(xbc.dtype)
        a = -torch.exp(self.A_log.to(f))
        if kernels is None and self._runs_cpu_scan(xbc):
            y, final = selective_scan_cpu(
                xbc, dt_raw, self.dt_bias, a, self.D, nheads=self.nheads, headdim=self.headdim,
                ngroups=self.ngroups, d_state=self.d_state, initial=initial,
            )  # fmt: skip
            return y.to(xbc.dtype).unflatten(-1, (self.nheads, self.headdim)), final
        x, b, c = self._split_xbc(xbc)
        if kernels is not None:
            return _kernel_chunk_scan(kernels, x, dt_raw, a, b, c, self.D, self.dt_bias, KERNEL_CHUNK_SIZE, initial)
        dt = F.softplus(dt_raw.to(f) + self.dt_bias.to(f))
        return ssd_chunked_scan(x, dt, a, b, c, self.D, self.chunk_size, initial)

    def _runs_cpu_scan(self, xbc: Tensor) -> bool:
        """Whether this call's scan runs compiled (`ictal.models.mamba.cpu_scan`): on a CPU, numba present, and neither
        `use_kernels=False` nor ``ICTAL_CPU_SCAN=0`` asking for the SSD scan."""
        return self.use_kernels is not False and _cpu_scan_applies(xbc.device)

    # --- forward -----------------------------------------------------------------------------------------
    @overload
    def forward(self, x: Tensor, state: Mamba2State | None = ..., return_state: Literal[False] = ...) -> Tensor: ...

    @overload
    def forward(
        self, x: Tensor, state: Mamba2State | None = ..., *, return_state: Literal[True]
    ) -> tuple[Tensor, Mamba2State]: ...

    @overload
    def forward(
        self, x: Tensor, state: Mamba2State | None, return_state: Literal[True]
    ) -> tuple[Tensor, Mamba2State]: ...

    def forward(
        self, x: Tensor, state: Mamba2State | None = None, return_state: bool = False
    ) -> Tensor | tuple[Tensor, Mamba2State]:
        """x: (B, L, d_model) -> (B, L, d_model). With `state`, continues a stream from it; with
        `return_state`, also returns the state after the last step (feed it to the next chunk's call).

        On the PyTorch path a large batch runs in blocks of sequences (`block_sizes`): every intermediate
        of a block stays in the CPU caches and out of freshly mapped memory, which made the layer several
        times faster on CPU than one pass over the whole batch; calls with many blocks share them among worker
        threads (`ictal.models.mamba.parallel.map_blocks`). Sequences are independent, so the result is the same up to
        float rounding."""
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"Mamba2 expects (B, L, {self.d_model}) input, got {tuple(x.shape)}")
        kernels = self._kernels_for(x)
        sizes = [x.shape[0]] if kernels is not None else self.block_sizes(x.shape[0], x.shape[1])
        run = self._forward_block
        if kernels is None and torch.is_grad_enabled() and self.recomputes(x):
            if state is None and not return_state:
                return _RecomputedBlocks.apply(self._output_of_block, sizes, x, *self._trainable())
            run = self._forward_block_recomputed
        if len(sizes) == 1:
            out, after = run(x, state, kernels)
        else:
            # split (not indexing): its backward is one concatenation, not a full-size scatter per block.
            blocks = x.split(sizes)
            states = [None] * len(blocks) if state is None else state.split(sizes)
            pieces = map_blocks(lambda pair: run(*pair, None), list(zip(blocks, states, strict=True)), x.device)
            out = torch.cat([piece[0] for piece in pieces])
            if not return_state:
                return out
            after = Mamba2State.concat([piece[1] for piece in pieces])
        if return_state:
            return out, after
        return out

    def activation_mb(self, x: Tensor) -> float:
        """Estimated MiB of activations the PyTorch path keeps for the backward pass of a call on `x`
        (B, L, d_model): per position about the in_proj output and the conv's input and output, the
        scan's d_inner- and state-sized intermediates and the gate's."""
        per_position = 2 * self.in_proj.out_features + 3 * self.conv_dim + 6 * self.d_inner
        return x.shape[0] * x.shape[1] * per_position * x.element_size() / 2**20

    def recomputes(self, x: Tensor) -> bool:
        """Whether a training call on `x` recomputes its blocks in the backward pass (PyTorch path): when its
        activations would exceed `recompute_above_mb` (None: never)."""
        return self.recompute_above_mb is not None and self.activation_mb(x) > self.recompute_above_mb

    def _trainable(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def _output_of_block(self, x: Tensor) -> Tensor:
        return self._forward_block(x, None, None)[0]

    def _forward_block_recomputed(
        self, x: Tensor, state: Mamba2State | None, kernels: MambaKernels | None
    ) -> tuple[Tensor, Mamba2State]:
        """`_forward_block` keeping only its inputs for the backward pass, which runs the block again: the
        same gradients for one more forward pass, and activation memory bounded by one block."""
        conv, ssm = (None, None) if state is None else (state.conv, state.ssm)
        out, conv_after, ssm_after = torch.utils.checkpoint.checkpoint(
            self._forward_block_tensors, x, conv, ssm, use_reentrant=False, preserve_rng_state=False
        )
        return out, Mamba2State(conv=conv_after, ssm=ssm_after)

    def _forward_block_tensors(self, x: Tensor, conv: Tensor | None, ssm: Tensor | None) -> tuple[Tensor, ...]:
        state = None if conv is None or ssm is None else Mamba2State(conv=conv, ssm=ssm)
        out, after = self._forward_block(x, state, None)
        return out, after.conv, after.ssm

    def block_sequences(self, length: int) -> int:
        """Sequences of length `length` per block on the PyTorch path: as many as keep the in_proj output
        (the largest intermediate, length x (2 d_inner + 2 G N + H) per sequence) within `_BLOCK_ELEMENTS`."""
        per_sequence = max(1, length) * self.in_proj.out_features
        return max(1, _BLOCK_ELEMENTS // per_sequence)

    def block_sizes(self, batch: int, length: int) -> list[int]:
        """How the PyTorch path splits `batch` sequences of length `length` into blocks, in order: as few as keep
        each within `block_sequences`, with sizes that differ by at most one (so that workers sharing them get the
        same work)."""
        blocks = max(1, min(batch, -(-batch // self.block_sequences(length))))
        base, extra = divmod(batch, blocks)
        return [base + 1] * extra + [base] * (blocks - extra)

    def _forward_block(
        self, x: Tensor, state: Mamba2State | None, kernels: MambaKernels | None
    ) -> tuple[Tensor, Mamba2State]:
        batch, length, _ = x.shape
        z, xbc, dt_raw = self._split_proj(self.in_proj(x))
        xbc, conv_state = self._causal_conv(xbc, None if state is None else state.conv, kernels)
        y, ssm_state = self._scan(xbc, dt_raw, None if state is None else state.ssm, kernels)
        return self._gated_out(y.reshape(batch, length, self.d_inner), z), Mamba2State(conv=conv_state, ssm=ssm_state)

    def _gated_out(self, y: Tensor, z: Tensor) -> Tensor:
        """out_proj(RMSNorm(y * silu(z))): (B, L, d_inner) -> (B, L, d_model). With one group the norm's
        per-position 1/RMS is applied after out_proj (a scalar per row commutes with the linear map) and its
        weight is folded into out_proj's, which saves two passes over the d_inner-wide activations; without
        autocast this runs as `_GatedOut`, whose hand-written backward saves several more."""
        if self.ngroups != 1:
            return self.out_proj(self.norm(y, z))
        batch, length, _ = y.shape
        if not torch.is_autocast_enabled(y.device.type) and y.dtype == z.dtype == self.out_proj.weight.dtype:
            out = _GatedOut.apply(
                y.reshape(-1, self.d_inner), z.reshape(-1, self.d_inner), self.norm.weight, self.out_proj.weight,
                self.norm.eps,
            )  # fmt: skip
            return out.view(batch, length, self.d_model)
        f = scan_dtype(y.dtype)
        g = y.to(f) * F.silu(z.to(f))
        inverse_rms = self.norm.inverse_rms(g).unsqueeze(-1)  # (B, L, 1)
        out = F.linear(g, self.out_proj.weight * self.norm.weight)
        return (out * inverse_rms).to(out.dtype)

    def step(self, x_t: Tensor, state: Mamba2State) -> tuple[Tensor, Mamba2State]:
        """One time step by the plain recurrence. x_t: (B, d_model) -> (B, d_model), new state."""
        f = state.ssm.dtype
        z, xbc, dt_raw = self._split_proj(self.in_proj(x_t))
        window = torch.cat([state.conv.to(xbc.dtype), xbc.unsqueeze(-1)], dim=-1)  # (B, conv_dim, d_conv)
        conv = (window * self.conv1d.weight.squeeze(1)).sum(-1)
        if self.conv1d.bias is not None:
            conv = conv + self.conv1d.bias
        xh, b, c = self._split_xbc(F.silu(conv))
        xh, b, c = xh.to(f), b.to(f), c.to(f)
        heads_per_group = self.nheads // self.ngroups
        b = b.repeat_interleave(heads_per_group, dim=1)  # (B, H, N)
        c = c.repeat_interleave(heads_per_group, dim=1)
        dt = F.softplus(dt_raw.to(f) + self.dt_bias.to(f))  # (B, H)
        decay = torch.exp(dt * -torch.exp(self.A_log.to(f)))
        h = decay[..., None, None] * state.ssm + (dt[..., None] * xh).unsqueeze(-1) * b.unsqueeze(-2)
        y = (h @ c.unsqueeze(-1)).squeeze(-1) + self.D.to(f)[:, None] * xh  # (B, H, P)
        out = self.out_proj(self.norm(y.reshape(y.shape[0], self.d_inner).to(x_t.dtype), z))
        return out, Mamba2State(conv=window[..., 1:], ssm=h)


def _blockwise(run_block: Callable[[Tensor], Tensor], sizes: list[int], x: Tensor) -> Tensor:
    """`run_block` (a function of independent sequences, output shaped as its input) over x (B, L, D) in blocks of
    `sizes` sequences on `map_blocks`' workers, each block written into one preallocated output. No autograd."""
    out = x.new_empty(x.shape)

    def run(pair: tuple[Tensor, Tensor]) -> None:
        pair[1].copy_(run_block(pair[0]))

    map_blocks(run, list(zip(x.split(sizes), out.split(sizes), strict=True)), x.device)
    return out


class _RecomputedBlocks(torch.autograd.Function):
    """A function of independent sequences, run block by block, that keeps only its input for the backward pass.

    Inputs: `run_block` maps a block of sequences (b, L, D) to its output of the same shape (a Mamba2 layer's
    PyTorch path, or a whole BiMamba2 layer); the block sizes (sequences, `Mamba2.block_sizes`); x (B, L, D); the
    trainable parameters `run_block` uses (listed so that autograd routes their gradients here).
    Forward: each block runs without autograd and writes its output into one preallocated (B, L, D) tensor, so
    nothing but the input and that output outlives a block. Backward: block by block, the block is run again with
    autograd and differentiated with respect to its input and the parameters; the parameter gradients are summed
    over blocks in order. Blocks run on the worker threads of `map_blocks`, so activation memory is one block's per
    worker, for one extra forward pass.
    """

    @staticmethod
    def forward(
        ctx: Any, run_block: Callable[[Tensor], Tensor], sizes: list[int], x: Tensor, *params: Tensor
    ) -> Tensor:
        with torch.no_grad():
            out = _blockwise(run_block, sizes, x)
        ctx.run_block, ctx.sizes, ctx.params = run_block, sizes, params
        # The recomputation must run as the forward did: under its autocast state, not the backward caller's.
        device = x.device.type
        ctx.autocast = (device, torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))
        ctx.save_for_backward(x)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        (x,) = ctx.saved_tensors
        params = list(ctx.params)
        grad_x = torch.empty_like(x) if ctx.needs_input_grad[2] else None
        device, autocast_on, autocast_dtype = ctx.autocast
        starts = [0, *itertools.accumulate(ctx.sizes)][:-1]

        def run(bounds: tuple[int, int]) -> tuple[Tensor | None, ...]:
            i, n = bounds
            with torch.enable_grad(), torch.autocast(device, dtype=autocast_dtype, enabled=autocast_on):
                xb = x[i : i + n].detach().requires_grad_(grad_x is not None)
                ob = ctx.run_block(xb)
                wrt = ([xb] if grad_x is not None else []) + params
                grads = torch.autograd.grad(ob, wrt, grad_out[i : i + n], allow_unused=True)
            if grad_x is None:
                return grads
            grad_x[i : i + n] = grads[0]
            return grads[1:]

        # Summed in block order, whichever worker finished first: the same sum as a serial loop's.
        grad_params: list[Tensor | None] = [None] * len(params)
        for grads in map_blocks(run, list(zip(starts, ctx.sizes, strict=True)), x.device):
            for j, g in enumerate(grads):
                total = grad_params[j]
                if g is not None:
                    grad_params[j] = g if total is None else total + g
        return (None, None, grad_x, *grad_params)


class _CausalConvSiLU(torch.autograd.Function):
    """SiLU of a depthwise causal convolution as a sum over the taps, with a hand-written backward.

    xbc: (B, L, C) the conv's inputs; prefix: (B, k, C) the k = d_conv - 1 inputs before them (a stream's conv
    state), or None for the conv's zero padding; weight: (C, d_conv); bias: (C,) or None. Returns (B, L, C):
    silu(bias + sum_j weight[:, j] * xin[:, j : j + L]) with xin = [prefix, xbc] along time.
    Summing over the d_conv taps (not over time) avoids F.conv1d, whose depthwise backward dominated the whole
    layer on CPU (5x its wall time at L=960); each weight column broadcasts along the last (channel) axis, the
    fast pattern for CPU kernels. Tap j reads xbc shifted by s = k - j steps, and for the first s outputs the
    prefix, so the padded input is never assembled (a full-size copy per layer). The backward is the same tap
    sum, transposed, into one gradient buffer per input.
    """

    @staticmethod
    def forward(ctx: Any, xbc: Tensor, prefix: Tensor | None, weight: Tensor, bias: Tensor | None) -> Tensor:
        k = weight.shape[1] - 1
        length = xbc.shape[1]
        taps = weight.t().contiguous()  # (d_conv, C): contiguous rows; a strided column runs 4x slower
        pre = torch.addcmul(bias, xbc, taps[k]) if bias is not None else xbc * taps[k]
        for j in range(k):
            s = k - j
            if s < length:
                pre[:, s:].addcmul_(xbc[:, : length - s], taps[j])
            if prefix is not None:
                m = min(s, length)
                pre[:, :m].addcmul_(prefix[:, j : j + m], taps[j])
        if not any(ctx.needs_input_grad):  # inference: nothing to keep
            return F.silu(pre, inplace=True)
        ctx.save_for_backward(xbc, prefix, weight, pre)
        ctx.has_bias = bias is not None
        return F.silu(pre)

    @staticmethod
    @backward_without_autocast
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        xbc, prefix, weight, pre = ctx.saved_tensors
        k = weight.shape[1] - 1
        length = pre.shape[1]
        g = torch.ops.aten.silu_backward(grad_out.to(pre.dtype), pre)  # (B, L, C)
        taps = weight.t().contiguous()
        rows = g.shape[0] * length

        def channel_sums(a: Tensor, b: Tensor) -> Tensor:
            # Per-channel sums over all (batch, time) rows: a reduction over the leading axis, vectorised.
            return (a * b).reshape(-1, a.shape[-1]).sum(0)

        grad_xbc = g * taps[k]
        grad_prefix = None if prefix is None else torch.zeros(prefix.shape, dtype=g.dtype, device=g.device)
        grad_taps = torch.empty_like(taps)
        grad_taps[k] = channel_sums(g, xbc)
        for j in range(k):
            s = k - j
            m = min(s, length)
            grad_taps[j] = 0.0
            if s < length:
                grad_xbc[:, : length - s].addcmul_(g[:, s:], taps[j])
                grad_taps[j] += channel_sums(g[:, s:], xbc[:, : length - s])
            if prefix is not None and grad_prefix is not None:
                grad_prefix[:, j : j + m].addcmul_(g[:, :m], taps[j])
                grad_taps[j] += channel_sums(g[:, :m], prefix[:, j : j + m])
        grad_bias = g.view(rows, -1).sum(0) if ctx.has_bias else None
        grad_prefix = None if grad_prefix is None else grad_prefix.to(prefix.dtype)
        return grad_xbc.to(xbc.dtype), grad_prefix, grad_taps.t(), grad_bias


class _GatedOut(torch.autograd.Function):
    """out = (g @ (w_out * w_norm)^T) / rms(g), g = y * silu(z): the gated RMSNorm (one group) and out_proj
    of Mamba2 as one step with a hand-written backward. y, z: (R, d_inner); w_norm: (d_inner,); w_out:
    (d_model, d_inner); returns (R, d_model). Same dtype throughout (no autocast)."""

    @staticmethod
    def forward(ctx: Any, y: Tensor, z: Tensor, w_norm: Tensor, w_out: Tensor, eps: float) -> Tensor:
        training = any(ctx.needs_input_grad)
        g = y * F.silu(z) if training else F.silu(z).mul_(y)
        inv = inverse_rms(g, eps)  # (R,)
        projected = g @ (w_out * w_norm).t()  # (R, d_model)
        if not training:
            return projected.mul_(inv.unsqueeze(-1))
        ctx.save_for_backward(y, z, w_norm, w_out, g, inv, projected)
        return projected * inv.unsqueeze(-1)

    @staticmethod
    @backward_without_autocast
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        y, z, w_norm, w_out, g, inverse_rms, projected = ctx.saved_tensors
        d_inner = y.shape[-1]
        grad_projected = grad_out * inverse_rms.unsqueeze(-1)  # (R, d_model)
        grad_inverse = (grad_out * projected).sum(-1)  # (R,)
        grad_folded = grad_projected.t() @ g  # (d_model, d_inner)
        # d(1/rms)/dg = -g / (d_inner * rms^3)
        coefficient = grad_inverse * inverse_rms.pow(3) * (-1.0 / d_inner)
        grad_g = (grad_projected @ (w_out * w_norm)).addcmul_(g, coefficient.unsqueeze(-1))  # (R, d_inner)
        grad_y = grad_g * F.silu(z)
        grad_z = torch.ops.aten.silu_backward(grad_g * y, z)
        grad_w_norm = (grad_folded * w_out).sum(0)
        return grad_y, grad_z, grad_w_norm, grad_folded * w_norm, None


def _kernel_chunk_scan(
    kernels: MambaKernels,
    x: Tensor,
    dt_raw: Tensor,
    a: Tensor,
    b: Tensor,
    c: Tensor,
    d: Tensor,
    dt_bias: Tensor,
    chunk_size: int,
    initial: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """mamba_ssm's fused SSD scan with the same parameters: softplus(dt + dt_bias) and the D skip happen
    inside the kernel. x: (B, L, H, P); dt_raw: (B, L, H); b, c: (B, L, G, N); initial: (B, H, P, N)."""
    y, final = kernels.chunk_scan(
        x,
        dt_raw,
        a,
        b,
        c,
        chunk_size=chunk_size,
        D=d,
        z=None,
        dt_bias=dt_bias,
        initial_states=None if initial is None else initial.float(),
        dt_softplus=True,
        return_final_states=True,
    )
    return y, final.float()


class BiMamba2(nn.Module):
    """Bidirectional Mamba2 block: `x + M_fwd(n(x)) + flip(M_rev(flip(n(x))))`, n = RMSNorm or LayerNorm.

    Two Mamba2 layers with separate parameters: one reads the sequence forward, the other reads it reversed
    (its output is flipped back, so position t sees t..L-1). The two are summed rather than concatenated and
    projected: each direction already ends in its own out_proj, so the sum is exactly a linear map over the
    concatenation of the two inner representations; an extra Linear(2D, D) would compose two linear maps
    into one more matmul and 2*D*D parameters without adding expressiveness.
    x: (B, L, d_model) -> (B, L, d_model). mamba_kwargs go to both Mamba2 layers.
    """

    def __init__(self, d_model: int, norm: Literal["rms", "layer"] = "rms", **mamba_kwargs: Any) -> None:
        super().__init__()
        if norm == "rms":
            self.norm: nn.Module = nn.RMSNorm(d_model, eps=1e-5)
        elif norm == "layer":
            self.norm = nn.LayerNorm(d_model)
        else:
            raise ValueError(f"BiMamba2: norm must be 'rms' or 'layer', got {norm!r}")
        self.mamba_forward = Mamba2(d_model, **mamba_kwargs)
        self.mamba_reverse = Mamba2(d_model, **mamba_kwargs)

    def forward(self, x: Tensor) -> Tensor:
        layer = self.mamba_forward
        if layer._kernels_for(x) is not None:
            return self._block(x)
        # PyTorch path: blocks of sequences through the norm and both directions, each block in the caches.
        sizes = layer.block_sizes(x.shape[0], x.shape[1])
        if not torch.is_grad_enabled():
            return self._inference(x, sizes)
        if layer.recomputes(x):
            # A large training call (see Mamba2's recompute_above_mb): each block, norm and both directions, is
            # recomputed in the backward pass from its input, the one tensor kept (the norm's output and its
            # time-reversed copy would be two more of the same size).
            params = [p for p in self.parameters() if p.requires_grad]
            return _RecomputedBlocks.apply(self._block, sizes, x, *params)
        return self._block(x)

    def _block(self, x: Tensor) -> Tensor:
        h = norm_in_float32(self.norm, x)
        return x + self.mamba_forward(h) + self.mamba_reverse(h.flip(1)).flip(1)

    def _inference(self, x: Tensor, sizes: list[int]) -> Tensor:
        """The PyTorch path without autograd: each block of sequences (`sizes`) in each direction is one task for
        `map_blocks`' workers (norm included: recomputing it is cheaper than sharing it across threads). The two
        directions of a block cost the same, so even a batch of one window shares its work evenly between two
        workers, each on one core: measured faster than one thread computing with two intra-op threads. Whichever
        direction of a block finishes second writes ``x + forward + reverse`` (the order of `_block`), so only the
        blocks in flight hold a direction's output."""
        out = torch.empty_like(x)
        finished: dict[int, Tensor] = {}  # block -> the output of its direction that finished first
        lock = threading.Lock()

        def run(task: tuple[int, Tensor, Tensor, bool]) -> None:
            i, block, into, reverse = task
            h = norm_in_float32(self.norm, block)
            y = self.mamba_reverse(h.flip(1)).flip(1) if reverse else self.mamba_forward(h)
            with lock:
                other = finished.pop(i, None)
                if other is None:
                    finished[i] = y
                    return
            forward, backward = (other, y) if reverse else (y, other)
            torch.add(block, forward, out=into).add_(backward)

        blocks = zip(x.split(sizes), out.split(sizes), strict=True)
        tasks = [(i, block, into, reverse) for i, (block, into) in enumerate(blocks) for reverse in (False, True)]
        map_blocks(run, tasks, x.device, min_blocks_per_worker=1)
        return out


def norm_in_float32(norm: nn.Module, x: Tensor) -> Tensor:
    """``norm(x)`` computed in float32 (float64 stays), returned in x's dtype: a stage boundary normalises at full
    precision under bf16/fp16 autocast, on the fused kernel (a bf16 input with float32 weights falls back to an
    unfused path with a warning)."""
    if x.dtype in (torch.float32, torch.float64):
        return norm(x)
    return norm(x.float()).to(x.dtype)
