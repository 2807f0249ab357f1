"""The ``model:`` config section as dataclasses, without torch: the schema, the CLI and checkpoints' readers
import this module only, so validating a config does not load PyTorch.

``V3Config`` holds one section per stage (``tcn``, ``node``, ``edge``, ``graph``) and the head; ``preset`` (``tiny``,
``base``) fills every key not given. The model itself is built from it in :mod:`ictal.models.v3`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic

from ictal.config.yaml_files import read_yaml_mapping
from ictal.errors import ConfigError
from ictal.frames import SAMPLES_PER_FRAME


@pydantic.with_config(pydantic.ConfigDict(extra="forbid"))
@dataclass
class TCNConfig:
    """TCN encoder sizes.

    ``widths`` has one entry per dilated layer (the last is the encoder's output width); ``layers_per_stage``
    splits those layers over the rates 256 Hz, 256/d1 Hz, ... with ``downsample`` the decimation factors
    between stages, whose product must be 16 (one frame per 16 samples).
    """

    widths: tuple[int, ...] = (32, 32, 64, 128, 128, 256, 256, 512)
    layers_per_stage: tuple[int, ...] = (2, 2, 4)
    downsample: tuple[int, ...] = (4, 4)
    kernel_size: Annotated[int, pydantic.Field(ge=3)] = 7
    dropout: Annotated[float, pydantic.Field(ge=0.0, lt=1.0)] = 0.1

    def __post_init__(self) -> None:
        problems = []
        if any(w < 1 for w in self.widths):
            problems.append(f"tcn.widths must be positive, got {list(self.widths)}")
        if len(self.layers_per_stage) != len(self.downsample) + 1:
            problems.append(
                f"tcn.layers_per_stage needs one entry more than tcn.downsample "
                f"(got {len(self.layers_per_stage)} and {len(self.downsample)})"
            )
        if sum(self.layers_per_stage) != len(self.widths) or any(n < 0 for n in self.layers_per_stage):
            problems.append(
                f"tcn.layers_per_stage must be >= 0 and sum to len(tcn.widths)={len(self.widths)}, "
                f"got {list(self.layers_per_stage)}"
            )
        if any(f < 2 for f in self.downsample) or math.prod(self.downsample) != SAMPLES_PER_FRAME:
            problems.append(
                f"tcn.downsample factors must be >= 2 with product {SAMPLES_PER_FRAME} (256 Hz -> 16 Hz frames), "
                f"got {list(self.downsample)}"
            )
        if self.kernel_size % 2 == 0:
            problems.append(f"tcn.kernel_size must be odd (centred 'same' padding), got {self.kernel_size}")
        if problems:
            raise ValueError("; ".join(problems))


PositiveInt = Annotated[int, pydantic.Field(ge=1)]


@dataclass
class MambaStackConfig:
    """What the node and edge streams share: a stack of bidirectional Mamba2 layers of width ``d_model``."""

    d_model: PositiveInt = 64
    d_state: PositiveInt = 16
    expand: PositiveInt = 2
    headdim: PositiveInt = 8
    n_layers: PositiveInt = 6
    d_conv: PositiveInt = 4
    #: SSD chunk length of the PyTorch scan (the CUDA kernels use their own): speed and memory only.
    chunk_size: PositiveInt = 16
    #: Run the Mamba stack on frames averaged in groups of this many (1 = every frame, the V3 design); its
    #: output is repeated back to every frame.
    time_pool: PositiveInt = 1

    def __post_init__(self) -> None:
        if (self.expand * self.d_model) % self.headdim:
            raise ValueError(f"expand * d_model ({self.expand * self.d_model}) must be a multiple of headdim "
                             f"({self.headdim})")  # fmt: skip


@pydantic.with_config(pydantic.ConfigDict(extra="forbid"))
@dataclass
class NodeStreamConfig(MambaStackConfig):
    """Per-electrode bidirectional Mamba2 stack over time; ``d_model`` is also the electrode feature width. With
    ``time_pool`` > 1 the stack's output is added to the full-rate features."""


@pydantic.with_config(pydantic.ConfigDict(extra="forbid"))
@dataclass
class EdgeStreamConfig(MambaStackConfig):
    """Per-pair bidirectional Mamba2 over the time course of each electrode pair's similarity; with ``time_pool``
    > 1 the edge weights are repeated back to every frame."""

    similarity: Literal["cosine", "correlation"] = "cosine"
    d_model: PositiveInt = 16
    d_state: PositiveInt = 8
    n_layers: PositiveInt = 2


@pydantic.with_config(pydantic.ConfigDict(extra="forbid"))
@dataclass
class GraphConfig:
    """Learned adjacency, SSGConv layers and the Laplacian positional encoding."""

    n_layers: PositiveInt = 2
    #: SSGConv propagation steps K.
    hops: PositiveInt = 2
    #: SSGConv restart weight: the share of each node's own features kept.
    alpha: Annotated[float, pydantic.Field(ge=0.0, le=1.0)] = 0.05
    top_k: PositiveInt = 3
    threshold: Annotated[float, pydantic.Field(ge=0.0)] = 1e-4
    symmetrize: Literal["max", "mean"] = "max"
    #: Laplacian eigenvectors used as positional encoding (the trivial one is dropped; at most 18 are non-zero).
    pe_k: PositiveInt = 16
    #: True: PE from the learned adjacency; False: from the 10-20 montage neighbour graph.
    use_dynamic_pe: bool = True
    #: Dynamic PE is recomputed at frames 0, N, 2N, ... and reused in between.
    semi_dynamic_interval: PositiveInt = 16


_PRESETS: dict[str, dict[str, Any]] = {
    # The reference V3's sizes are the dataclass defaults.
    "base": {},
    # Trains in minutes on 2 CPU cores: narrow layers, one Mamba layer per stream, sequence models at a
    # reduced frame rate (the pure-PyTorch scan dominates CPU time).
    "tiny": {
        "tcn": {"widths": (8, 8, 16, 16, 32, 32, 32, 32), "dropout": 0.0},
        "node": {"d_model": 16, "d_state": 8, "n_layers": 1, "time_pool": 4},
        "edge": {"d_model": 4, "d_state": 4, "headdim": 4, "n_layers": 1, "time_pool": 16},
        "graph": {"n_layers": 1, "pe_k": 8, "semi_dynamic_interval": 32},
        "head_width": 32,
        "dropout": 0.0,
    },
}


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


@pydantic.with_config(pydantic.ConfigDict(extra="forbid"))
@dataclass
class V3Config:
    """The ``model:`` config section. ``preset`` (``tiny`` / ``base``) fills every key not given explicitly."""

    architecture: Literal["v3"] = "v3"
    preset: Literal["tiny", "base"] | None = None
    tcn: TCNConfig = field(default_factory=TCNConfig)
    node: NodeStreamConfig = field(default_factory=NodeStreamConfig)
    edge: EdgeStreamConfig = field(default_factory=EdgeStreamConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    #: Width of the head's frame features (the "back to (B, 512, 960)" step).
    head_width: PositiveInt = 512
    dropout: Annotated[float, pydantic.Field(ge=0.0, lt=1.0)] = 0.1
    #: How frame logits become per-sample logits: linear interpolation or repetition.
    upsample: Literal["linear", "repeat"] = "linear"
    #: Recompute the Mamba layers' activations in the backward pass instead of storing them (training only):
    #: less memory for more compute, the same gradients.
    activation_checkpointing: bool = False
    #: Raise at the first module with a non-finite output (``ICTAL_NAN_DEBUG`` overrides, read at run time).
    debug_nan: bool = False
    #: Causal TCN and forward-only Mamba layers, so ``forward_chunk`` can stream a recording carrying state
    #: (``ictal stream``); False is the V3 design (bidirectional Mamba), which only runs on whole windows.
    streamable: bool = False

    @pydantic.model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        # Keys given next to ``preset`` override the preset's values, at any depth.
        if isinstance(data, dict) and data.get("preset") in _PRESETS:
            return _deep_merge(_PRESETS[data["preset"]], data)
        return data

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> V3Config:
        """The preset's config (``'tiny'`` or ``'base'``), with nested ``overrides`` applied on top."""
        if name not in _PRESETS:
            raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(_PRESETS)}")
        return cls.from_mapping({**overrides, "preset": name})

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> V3Config:
        """Validate a ``model:`` mapping (unknown keys rejected); raises ``pydantic.ValidationError``."""
        return pydantic.TypeAdapter(cls).validate_python(data)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict of JSON/YAML types (for checkpoints and logs); ``from_mapping`` gives it back."""
        result: dict[str, Any] = pydantic.TypeAdapter(V3Config).dump_python(self, mode="json")
        return result


def load_v3_config(source: str | Path) -> V3Config:
    """A ``V3Config`` from a preset name (``'tiny'``, ``'base'``) or a YAML file's ``model:`` section.

    Other sections of the file are ignored here (the full schema checks them). Raises ``ConfigError`` naming
    the file and each bad key.
    """
    if str(source) in _PRESETS:
        return V3Config.from_preset(str(source))
    path = Path(source)
    if not path.is_file():
        raise ConfigError(path, [f"not a preset ({', '.join(sorted(_PRESETS))}) and no such file; give a preset "
                                 "name or the path of a YAML config with a 'model:' section"])  # fmt: skip
    section = read_yaml_mapping(path).get("model")
    if not isinstance(section, dict):
        raise ConfigError(path, ["model: missing or not a mapping; add a 'model:' section (e.g. 'preset: tiny')"])
    try:
        return V3Config.from_mapping(section)
    except pydantic.ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(["model", *(str(p) for p in err["loc"])])
            if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
                problems.append(f"{key}: unknown key; remove it or check its spelling")
            else:
                problems.append(f"{key}: got {err.get('input')!r}; {err['msg'].removeprefix('Value error, ')}")
        raise ConfigError(path, problems) from None
