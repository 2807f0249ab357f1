"""Training section of the config (used by ``ictal train`` / ``ictal preflight``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, with_config


@with_config(ConfigDict(extra="forbid"))
@dataclass
class TrainingConfig:
    """YAML section ``training``."""

    batch_size: Annotated[int, Field(ge=1)] = 8
    learning_rate: Annotated[float, Field(gt=0, lt=1)] = 3e-4
    weight_decay: Annotated[float, Field(ge=0)] = 0.05
    epochs: Annotated[int, Field(ge=1)] = 10
    warmup_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.05
    grad_clip: Annotated[float | None, Field(gt=0)] = 1.0
    #: ``auto``: bf16 where supported, else fp16 with loss scaling on CUDA, else full precision.
    mixed_precision: Literal["auto", "bf16", "fp16", "no"] = "auto"
    loss: Literal["focal", "bce"] = "focal"
    focal_alpha: Annotated[float, Field(ge=0, le=1)] = 0.5
    focal_gamma: Annotated[float, Field(ge=0)] = 2.0
    #: Consecutive non-finite losses (each skipped) before the run stops with a diagnosis.
    max_nonfinite_steps: Annotated[int, Field(ge=1)] = 20
    sanitize_grads: bool = False
    early_stopping_patience: Annotated[int, Field(ge=1)] = 5
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0
