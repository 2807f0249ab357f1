"""The YAML config: one schema composed of each stage's own config dataclass, unknown keys rejected.

>>> cfg = load_config("configs/smoke.yaml")      # raises ConfigError with one line per problem
>>> cfg.preprocess.notch_hz, cfg.data.window_s
(60, 60.0)
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ictal.config.yaml_files import read_yaml_mapping
from ictal.data.config import DataConfig
from ictal.errors import ConfigError
from ictal.models.config import V3Config
from ictal.post.config import PostConfig
from ictal.scoring.szcore import SzcoreConfig
from ictal.signal.config import PreprocessConfig
from ictal.train.config import TrainingConfig


class IctalConfig(BaseModel):
    """The whole configuration. Sections: ``data``, ``preprocess``, ``model``, ``training``, ``post``, ``szcore``."""

    model_config = ConfigDict(extra="forbid")

    #: A free-text name shown in logs and reports.
    name: str = "ictal"
    data: DataConfig = Field(default_factory=DataConfig)
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    #: The detector; ``model.preset`` (``tiny`` / ``base``) fills every key not given.
    model: V3Config = Field(default_factory=lambda: V3Config.from_preset("base"))
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    #: Stitching and post-processing of probability traces into events.
    post: PostConfig = Field(default_factory=PostConfig)
    #: SzCORE (EpilepsyBench) event scoring parameters.
    szcore: SzcoreConfig = Field(default_factory=SzcoreConfig)


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed at the mapping that holds ``loc``'s last element (for unknown-key messages)."""
    node: Any = IctalConfig
    for part in loc[:-1]:
        hints = typing.get_type_hints(node) if dataclasses.is_dataclass(node) else None
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(str(part))
            node = field.annotation if field else None
        elif hints is not None:
            node = hints.get(str(part))
        else:
            return []
        # Optional[X] -> X
        args = [a for a in typing.get_args(node) if a is not type(None)]
        if args and typing.get_origin(node) is not None and len(args) == 1:
            node = args[0]
    if isinstance(node, type) and issubclass(node, BaseModel):
        return sorted(node.model_fields)
    if dataclasses.is_dataclass(node):
        return sorted(f.name for f in dataclasses.fields(node))
    return []


def format_validation_error(exc: ValidationError) -> list[str]:
    """One line per problem: ``key: got VALUE; what is allowed``."""
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        value = err.get("input")
        if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            allowed = _allowed_keys(loc)
            hint = f"allowed keys here: {', '.join(allowed)}" if allowed else "remove it"
            lines.append(f"{key}: unknown key (value {value!r}); {hint}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            shown = repr(value) if not isinstance(value, dict) else "{...}"
            lines.append(f"{key}: got {shown}; {msg}")
    return lines


def config_from_dict(raw: dict[str, Any], source: str | Path = "<dict>") -> IctalConfig:
    """Validate a parsed config mapping; raises :class:`ConfigError` listing every problem."""
    if not isinstance(raw, dict):
        raise ConfigError(source, [f"top level must be a mapping of sections, got {type(raw).__name__}"])
    try:
        return IctalConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(source, format_validation_error(exc)) from None


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Command-line ``KEY=VALUE`` overrides, values parsed as YAML: ``["training.loss=bce", "data.window_s=30"]``
    -> ``{"training.loss": "bce", "data.window_s": 30}`` (dotted keys, as :func:`with_overrides` takes
    them). Raises ``ValueError`` naming an item without ``=``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{item!r}: expected KEY=VALUE, e.g. training.loss=bce")
        out[key.strip()] = yaml.safe_load(value)
    return out


def with_overrides(cfg: IctalConfig, overrides: dict[str, Any]) -> IctalConfig:
    """A copy of ``cfg`` with dotted keys set (``{"training.device": "cpu"}``), validated again like a file.

    None values are skipped (an option not given on the command line). A key naming no section of the config
    raises :class:`ConfigError` with the sections there are; a misspelt last part is refused by the schema
    with the keys it allows.
    """
    raw = cfg.model_dump(mode="json")
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = raw
        *parents, leaf = dotted.split(".")
        for depth, part in enumerate(parents):
            child = node.get(part)
            if not isinstance(child, dict):
                where = ".".join(parents[:depth]) or "the top level"
                sections = ", ".join(k for k, v in node.items() if isinstance(v, dict))
                raise ConfigError(
                    "command-line options", [f"{dotted}: {where} has no section {part!r}; sections: {sections}"]
                )
            node = child
        node[leaf] = str(value) if isinstance(value, Path) else value
    return config_from_dict(raw, "command-line options")


def load_config(path: str | Path, *, check_paths: bool = True) -> IctalConfig:
    """Read and validate a YAML config.

    Relative paths in the file (``data.data_dir``, ``data.cache_dir``) are resolved against the current working
    directory, as a user typing them on the command line would expect. With ``check_paths``, paths that must
    exist (``data.data_dir`` when set) are checked too.
    """
    path = Path(path)
    raw = read_yaml_mapping(path)
    cfg = config_from_dict(raw, path)
    if check_paths:
        problems = check_config_paths(cfg)
        if problems:
            raise ConfigError(path, problems)
    return cfg


def check_config_paths(cfg: IctalConfig) -> list[str]:
    """Problems with paths that must exist or must be usable; empty when all is well."""
    problems = []
    d = cfg.data
    if d.data_dir is not None and not Path(d.data_dir).is_dir():
        problems.append(
            f"data.data_dir: got {str(d.data_dir)!r}; the folder does not exist (point it at a TUSZ root with "
            "train/ dev/ eval/, or run `ictal synth DIR` to make a synthetic one)"
        )
    if d.cache_dir is not None and Path(d.cache_dir).exists() and not Path(d.cache_dir).is_dir():
        problems.append(f"data.cache_dir: got {str(d.cache_dir)!r}; it exists and is not a folder")
    return problems


def config_summary(cfg: IctalConfig) -> list[tuple[str, str]]:
    """(key, value) rows for a short human summary of the most consulted settings."""
    p, d, t, post = cfg.preprocess, cfg.data, cfg.training, cfg.post
    band = f"{p.highpass_hz}-{p.lowpass_hz} Hz order {p.filter_order}"
    return [
        ("name", cfg.name),
        ("data.data_dir", str(d.data_dir)),
        ("data.cache_dir", str(d.cache_dir)),
        ("data.split_policy", d.split_policy),
        ("data.window", f"{d.window_s:g} s, stride {d.stride_s:g} s"),
        ("data.use_balanced_sampling", str(d.use_balanced_sampling)),
        ("preprocess", f"{p.target_sfreq:g} Hz, band-pass {band}, notch {p.notch_hz}, clip {p.clip_sigma}"),
        (
            "model",
            f"V3 preset {cfg.model.preset}, dynamic PE {cfg.model.graph.use_dynamic_pe} every "
            f"{cfg.model.graph.semi_dynamic_interval} frames",
        ),
        ("training", f"batch {t.batch_size}, lr {t.learning_rate:g}, precision {t.mixed_precision}"),
        ("post", f"hysteresis {post.tau_on}/{post.tau_off}, events {post.min_duration_s:g}-{post.max_duration_s:g} s"),
    ]
