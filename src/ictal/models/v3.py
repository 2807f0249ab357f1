"""The V3 seizure detector: TCN encoder, per-electrode bidirectional Mamba2, learned graph, SSGConv, head.

Data flow for ``x``: ``(B, 19, T)`` z-scored EEG at 256 Hz (``T`` a multiple of 16, ``F = T / 16`` frames):

    tcn          (B, 19, T)          -> (B, C, F)              multi-rate dilated TCN, ~6 s receptive field
    projection   (B, C, F)           -> (B, F, 19, D)          per-electrode features, LayerNorm
    node_stream  (B, F, 19, D)       -> (B, F, 19, D)          BiMamba2 over time per electrode
    edge_stream  (B, F, 19, D)       -> (B, F, 171)            pair similarity -> BiMamba2 per pair -> sigmoid
    adjacency    (B, F, 171)         -> (B, F, 19, 19)         top-k, threshold, symmetrise, identity fallback
    graph_pe     (B, F, 19, 19)      -> (B, F, 19, k)          Laplacian eigenvectors (static or semi-dynamic)
    graph        nodes, adj, pe      -> (B, F, 19, D)          SSGConv layers, dense batched 19x19 algebra
    head         (B, F, 19, D)       -> (B, F)                 back to (B, W, F), then one logit per frame

``forward(x, per_sample=True)`` upsamples the frame logits to ``(B, T)``.

Streaming (``model.streamable: true``): the TCN is causal and both Mamba stacks read forward only, so a frame's
logit depends on the present and the past (and on the rest of its pooling / PE group, at most
``stream_granularity`` samples ahead). ``forward_chunk(x, state)`` then runs a recording of any length chunk
by chunk, carrying the TCN's last inputs and every Mamba layer's state: the concatenated logits equal one
``forward`` over the whole recording to float tolerance. The default V3 (bidirectional) cannot do this.

Stability comes from the design: LayerNorm at every stage boundary, edge weights bounded in (0, 1) by a sigmoid,
graph degrees >= 1 by construction, eigendecompositions in float64 without gradient; nothing clamps activations.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from ictal.frames import SAMPLES_PER_FRAME
from ictal.models.config import (
    EdgeStreamConfig,
    GraphConfig,
    MambaStackConfig,
    NodeStreamConfig,
    V3Config,
)
from ictal.models.debug import NonFiniteError, describe_non_finite, detect_non_finite, nan_debug_enabled
from ictal.models.graph import (
    N_NODES,
    LaplacianPE,
    LearnedAdjacency,
    SSGConv,
    gcn_propagation,
    pair_similarity,
)
from ictal.models.mamba.mamba2 import BiMamba2, Mamba2, Mamba2State, norm_in_float32
from ictal.models.tcn import TCNEncoder


def _mamba_kwargs(cfg: MambaStackConfig) -> dict[str, Any]:
    return {
        "d_state": cfg.d_state,
        "expand": cfg.expand,
        "headdim": cfg.headdim,
        "d_conv": cfg.d_conv,
        "chunk_size": cfg.chunk_size,
    }


def _pool_time(x: torch.Tensor, factor: int) -> torch.Tensor:
    """``(N, L, C) -> (N, ceil(L / factor), C)``: mean over consecutive groups of ``factor`` steps."""
    if factor == 1:
        return x
    return F.avg_pool1d(x.transpose(1, 2), factor, factor, ceil_mode=True).transpose(1, 2)


def _unpool_time(x: torch.Tensor, factor: int, length: int) -> torch.Tensor:
    """Inverse of ``_pool_time`` by repetition: ``(N, ceil(L / factor), C) -> (N, length, C)``."""
    if factor == 1:
        return x
    return x.repeat_interleave(factor, dim=1)[:, :length]


class ForwardMamba2(nn.Module):
    """Forward-only residual Mamba2 block of a streamable model: ``x + M(RMSNorm(x))``, causal in time.

    The causal twin of :class:`~ictal.models.mamba.mamba2.BiMamba2` (same norm and residual, one direction), whose
    state can be carried from one chunk of a recording to the next. x: ``(B, L, d_model) -> (B, L, d_model)``.
    """

    def __init__(self, d_model: int, **mamba_kwargs: Any) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(d_model, eps=1e-5)
        self.mamba_forward = Mamba2(d_model, **mamba_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mamba_forward(norm_in_float32(self.norm, x))

    def forward_chunk(self, x: torch.Tensor, state: Mamba2State | None) -> tuple[torch.Tensor, Mamba2State]:
        """The next chunk ``x`` of a sequence whose earlier chunks left ``state`` (None: the start)."""
        out, after = self.mamba_forward(self.norm(x), state, return_state=True)
        return x + out, after


def _sequence_layers(cls: type[nn.Module], n_layers: int, d_model: int, kw: dict[str, Any]) -> nn.ModuleList:
    return nn.ModuleList(cls(d_model, **kw) for _ in range(n_layers))


def _run_stateful_layers(
    layers: nn.ModuleList, h: torch.Tensor, states: list[Mamba2State] | None
) -> tuple[torch.Tensor, list[Mamba2State]]:
    """Continue ``(N, L, D)`` sequences through forward-only layers from ``states`` (None: the start)."""
    after = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, ForwardMamba2):
            raise ValueError("streaming needs forward-only Mamba layers: build the model with model.streamable: true")
        h, state = layer.forward_chunk(h, None if states is None else states[i])
        after.append(state)
    return h, after


def _run_sequence_layers(layers: nn.ModuleList, h: torch.Tensor, checkpointed: bool) -> torch.Tensor:
    """Apply ``layers`` in turn to ``(N, L, D)``; with ``checkpointed`` (and autograd on), each layer's
    activations are recomputed during backward rather than kept."""
    for layer in layers:
        if checkpointed and torch.is_grad_enabled():
            h = torch.utils.checkpoint.checkpoint(layer, h, use_reentrant=False)
        else:
            h = layer(h)
    return h


class ElectrodeProjection(nn.Module):
    """``(B, C, F)`` TCN frames -> ``(B, F, 19, D)`` per-electrode features (linear map, then LayerNorm)."""

    def __init__(self, in_channels: int, d_model: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_channels, N_NODES * d_model)
        self.norm = nn.LayerNorm(d_model)
        self.d_model = d_model

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b, _, f = frames.shape
        return self.norm(self.linear(frames.transpose(1, 2)).view(b, f, N_NODES, self.d_model))


class NodeStream(nn.Module):
    """``(B, F, 19, D) -> (B, F, 19, D)``: a stack of BiMamba2 layers (forward-only ``ForwardMamba2`` when
    ``streamable``) over time, per electrode, then LayerNorm."""

    def __init__(self, cfg: NodeStreamConfig, checkpointed: bool = False, streamable: bool = False) -> None:
        super().__init__()
        self.checkpointed = checkpointed
        block = ForwardMamba2 if streamable else BiMamba2
        self.layers = _sequence_layers(block, cfg.n_layers, cfg.d_model, _mamba_kwargs(cfg))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.time_pool = cfg.time_pool

    def forward(self, nodes: torch.Tensor) -> torch.Tensor:
        return self._mix(nodes, lambda h: (_run_sequence_layers(self.layers, h, self.checkpointed), []))[0]

    def forward_chunk(
        self, nodes: torch.Tensor, states: list[Mamba2State] | None
    ) -> tuple[torch.Tensor, list[Mamba2State]]:
        """Streamable stacks: the next chunk of frames, continuing from ``states`` (None: the start)."""
        return self._mix(nodes, lambda h: _run_stateful_layers(self.layers, h, states))

    def _mix(
        self, nodes: torch.Tensor, run: Callable[[torch.Tensor], tuple[torch.Tensor, list[Mamba2State]]]
    ) -> tuple[torch.Tensor, list[Mamba2State]]:
        b, f, n, d = nodes.shape
        seq = nodes.permute(0, 2, 1, 3).reshape(b * n, f, d)  # one sequence per (window, electrode)
        pooled = _pool_time(seq, self.time_pool)
        h, states = run(pooled)
        # Each Mamba layer is residual, so h - pooled is what the stack adds; add it at full rate.
        seq = (seq + _unpool_time(h - pooled, self.time_pool, f)) if self.time_pool > 1 else h
        return self.norm(seq.view(b, n, f, d).permute(0, 2, 1, 3)), states


class EdgeStream(nn.Module):
    """``(B, F, 19, D)`` node features -> ``(B, F, 171)`` edge weights in (0, 1).

    Per frame the similarity of each electrode pair (a scalar in [-1, 1]) is lifted to ``d_model`` channels,
    run through BiMamba2 layers over time per pair, normalised, and read out to one value through a sigmoid:
    positive and bounded, whatever the input.
    """

    def __init__(self, cfg: EdgeStreamConfig, checkpointed: bool = False, streamable: bool = False) -> None:
        super().__init__()
        self.checkpointed = checkpointed
        self.similarity = cfg.similarity
        self.time_pool = cfg.time_pool
        self.lift = nn.Linear(1, cfg.d_model)
        block = ForwardMamba2 if streamable else BiMamba2
        self.layers = _sequence_layers(block, cfg.n_layers, cfg.d_model, _mamba_kwargs(cfg))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.readout = nn.Linear(cfg.d_model, 1)

    def forward(self, nodes: torch.Tensor) -> torch.Tensor:
        return self._weights(nodes, lambda h: (_run_sequence_layers(self.layers, h, self.checkpointed), []))[0]

    def forward_chunk(
        self, nodes: torch.Tensor, states: list[Mamba2State] | None
    ) -> tuple[torch.Tensor, list[Mamba2State]]:
        """Streamable stacks: the next chunk of frames, continuing from ``states`` (None: the start)."""
        return self._weights(nodes, lambda h: _run_stateful_layers(self.layers, h, states))

    def _weights(
        self, nodes: torch.Tensor, run: Callable[[torch.Tensor], tuple[torch.Tensor, list[Mamba2State]]]
    ) -> tuple[torch.Tensor, list[Mamba2State]]:
        b, f, _, _ = nodes.shape
        sim = pair_similarity(nodes, self.similarity)  # (B, F, P)
        p = sim.shape[-1]
        seq = sim.permute(0, 2, 1).reshape(b * p, f, 1)  # one sequence per (window, pair)
        h, states = run(self.lift(_pool_time(seq, self.time_pool)))
        # float32 even under autocast: top-k ranks these weights and bf16 would tie many of them.
        w = torch.sigmoid(self.readout(self.norm(h)).float())  # (B*P, F', 1)
        w = _unpool_time(w, self.time_pool, f)
        return w.view(b, p, f).permute(0, 2, 1), states


class GraphNetwork(nn.Module):
    """SSGConv layers over the per-frame graphs: nodes ``(B, F, 19, D)``, adjacency ``(B, F, 19, 19)``, PE
    ``(B, F, 19, k)`` -> ``(B, F, 19, D)``.

    The PE enters through a linear map added to the node features; each layer is pre-norm residual
    (``h + GELU(SSGConv(LN(h)))``); a final LayerNorm closes the stage. All ``B x F`` graphs go through one
    batched matrix product per hop.
    """

    def __init__(self, d_model: int, cfg: GraphConfig, dropout: float) -> None:
        super().__init__()
        self.pe_proj = nn.Linear(cfg.pe_k, d_model)
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(cfg.n_layers))
        self.convs = nn.ModuleList(SSGConv(d_model, d_model, cfg.hops, cfg.alpha) for _ in range(cfg.n_layers))
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout)
        self.out_norm = nn.LayerNorm(d_model)

    def forward(self, nodes: torch.Tensor, adj: torch.Tensor, pe: torch.Tensor) -> torch.Tensor:
        h = nodes + self.pe_proj(pe.to(nodes.dtype))
        t = gcn_propagation(adj)
        for norm, conv in zip(self.norms, self.convs, strict=True):
            h = h + self.drop(self.act(conv(norm(h), t)))
        return self.out_norm(h)


class FrameHead(nn.Module):
    """``(B, F, 19, D)`` -> ``(B, F)`` logits: electrodes flattened, mapped back to ``(B, W, F)``, then one logit."""

    def __init__(self, d_model: int, width: int, dropout: float) -> None:
        super().__init__()
        self.fuse = nn.Linear(N_NODES * d_model, width)
        self.norm = nn.LayerNorm(width)
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(width, 1)

    def forward(self, nodes: torch.Tensor) -> torch.Tensor:
        h = self.drop(self.act(self.norm(self.fuse(nodes.flatten(-2)))))  # (B, F, W)
        return self.out(h).squeeze(-1)


@dataclass
class V3StreamState:
    """What a streamable :class:`V3Detector` carries from one chunk of a recording to the next.

    ``tcn``: each TCN layer's last inputs; ``node`` / ``edge``: each Mamba layer's state (per electrode / pair
    sequence); ``frames``: frames done; ``closed``: a chunk shorter than ``stream_granularity`` came (the end).
    """

    tcn: list[torch.Tensor]
    node: list[Mamba2State]
    edge: list[Mamba2State]
    frames: int
    closed: bool


class V3Detector(nn.Module):
    """The V3 detector. ``forward(x)``: ``(B, 19, T)`` z-scored EEG at 256 Hz -> ``(B, T // 16)`` frame logits.

    ``forward(x, per_sample=True)`` returns ``(B, T)`` sample logits instead (frame logits upsampled by
    ``config.upsample``). ``T`` must be a multiple of 16; a 60 s window (T = 15,360) gives 960 frames at 16 Hz.
    A streamable model (``config.streamable``) also runs chunk by chunk: :meth:`forward_chunk`.
    """

    def __init__(self, config: V3Config | None = None) -> None:
        super().__init__()
        self.config = cfg = config if config is not None else V3Config()
        d = cfg.node.d_model
        self.tcn = TCNEncoder(cfg.tcn, in_channels=N_NODES, causal=cfg.streamable)
        self.projection = ElectrodeProjection(self.tcn.out_channels, d)
        self.node_stream = NodeStream(cfg.node, cfg.activation_checkpointing, cfg.streamable)
        self.edge_stream = EdgeStream(cfg.edge, cfg.activation_checkpointing, cfg.streamable)
        self.adjacency = LearnedAdjacency(cfg.graph.top_k, cfg.graph.threshold, cfg.graph.symmetrize)
        self.graph_pe = LaplacianPE(cfg.graph.pe_k, cfg.graph.use_dynamic_pe, cfg.graph.semi_dynamic_interval)
        self.graph = GraphNetwork(d, cfg.graph, cfg.dropout)
        self.head = FrameHead(d, cfg.head_width, cfg.dropout)

    def forward(self, x: torch.Tensor, per_sample: bool = False) -> torch.Tensor:
        """``x``: ``(B, 19, T)`` float, z-units at 256 Hz -> ``(B, T // 16)`` or, with ``per_sample``, ``(B, T)``."""
        if x.ndim != 3 or x.shape[1] != N_NODES:
            raise ValueError(f"V3Detector expects (batch, {N_NODES}, samples) EEG, got shape {tuple(x.shape)}")
        if x.shape[-1] % SAMPLES_PER_FRAME or x.shape[-1] == 0:
            raise ValueError(
                f"V3Detector input length {x.shape[-1]} samples is not a positive multiple of {SAMPLES_PER_FRAME}; "
                f"trim or pad the window to a multiple of {SAMPLES_PER_FRAME} samples"
            )
        if not nan_debug_enabled(self.config.debug_nan):
            return self._forward(x, per_sample)
        problem = describe_non_finite(x)
        if problem is not None:
            raise NonFiniteError("(input)", "V3Detector input", problem)
        with detect_non_finite(self):
            out = self._forward(x, per_sample)
        problem = describe_non_finite(out)
        if problem is not None:
            raise NonFiniteError("(output)", "V3Detector upsampling", problem)
        return out

    @property
    def streamable(self) -> bool:
        return self.config.streamable

    @property
    def stream_granularity(self) -> int:
        """Samples (at 256 Hz) every chunk but the last must be a multiple of: frames are pooled in groups and
        the dynamic PE is sampled every ``semi_dynamic_interval`` frames, and a chunk must not split a group."""
        cfg = self.config
        interval = cfg.graph.semi_dynamic_interval if cfg.graph.use_dynamic_pe else 1
        return SAMPLES_PER_FRAME * math.lcm(cfg.node.time_pool, cfg.edge.time_pool, interval)

    def forward_chunk(self, x: torch.Tensor, state: V3StreamState | None = None) -> tuple[torch.Tensor, V3StreamState]:
        """The next chunk of a recording: ``x`` ``(B, 19, L)`` z-units at 256 Hz -> ``(B, L // 16)`` frame logits
        and the state to pass with the next chunk (None starts a recording).

        ``L`` must be a multiple of :attr:`stream_granularity`, except for the last chunk (a multiple of 16).
        Only for ``config.streamable`` models; the logits equal ``forward`` on the concatenated chunks.
        """
        if not self.config.streamable:
            raise ValueError(
                "this model is bidirectional and cannot carry state across chunks; train one with "
                "model.streamable: true, or score overlapping windows (ictal predict)"
            )
        if x.ndim != 3 or x.shape[1] != N_NODES:
            raise ValueError(f"V3Detector expects (batch, {N_NODES}, samples) EEG, got shape {tuple(x.shape)}")
        if state is not None and state.closed:
            raise ValueError(
                f"a chunk of a length that is not a multiple of {self.stream_granularity} samples ends a stream; "
                "no chunk may follow it (start a new stream with state=None)"
            )
        if x.shape[-1] % SAMPLES_PER_FRAME or x.shape[-1] == 0:
            raise ValueError(f"chunk length {x.shape[-1]} samples is not a positive multiple of {SAMPLES_PER_FRAME}")
        frames, tcn_state = self.tcn.forward_chunk(x, None if state is None else state.tcn)
        nodes, node_state = self.node_stream.forward_chunk(
            self.projection(frames), None if state is None else state.node
        )
        edges, edge_state = self.edge_stream.forward_chunk(nodes, None if state is None else state.edge)
        logits = self._graph_head(nodes, edges)
        done = (0 if state is None else state.frames) + logits.shape[-1]
        closed = x.shape[-1] % self.stream_granularity != 0
        return logits, V3StreamState(tcn_state, node_state, edge_state, done, closed)

    def _graph_head(self, nodes: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        adj = self.adjacency(edges)  # (B, F, 19, 19)
        pe = self.graph_pe(adj)  # (B, F, 19, k), no gradient
        return self.head(self.graph(nodes, adj, pe))  # (B, F)

    def _forward(self, x: torch.Tensor, per_sample: bool) -> torch.Tensor:
        frames = self.tcn(x)  # (B, C, F)
        nodes = self.node_stream(self.projection(frames))  # (B, F, 19, D)
        logits = self._graph_head(nodes, self.edge_stream(nodes))  # (B, F)
        if not per_sample:
            return logits
        if self.config.upsample == "repeat":
            return logits.repeat_interleave(SAMPLES_PER_FRAME, dim=-1)
        return F.interpolate(logits.unsqueeze(1), scale_factor=SAMPLES_PER_FRAME, mode="linear").squeeze(1)


def build_v3(config: V3Config | str | dict[str, Any] | None = None) -> V3Detector:
    """A ``V3Detector`` from a config, a preset name (``'tiny'``, ``'base'``) or a ``model:`` mapping."""
    if isinstance(config, str):
        config = V3Config.from_preset(config)
    elif isinstance(config, dict):
        config = V3Config.from_mapping(config)
    return V3Detector(config)
