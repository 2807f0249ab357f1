"""AdamW with weight decay only where it belongs, and the warm-up + cosine learning-rate schedule.

Weight decay pulls parameters towards 0. That suits the weights of convolutions and linear maps, but not

- normalisation gains and shifts (LayerNorm, RMSNorm, ...): decaying a gain shrinks the activations it scales,
- biases,
- the Mamba SSM's ``A_log`` (log decay rates), ``D`` (skip) and ``dt_bias`` (step-size offset): decaying them
  moves the state-space dynamics themselves (mamba_ssm marks them ``_no_weight_decay``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ictal.train.config import TrainingConfig

#: Parameter names (last component) never decayed: the Mamba SSM's dynamics parameters.
NO_DECAY_NAMES = frozenset({"A_log", "D", "dt_bias"})


def _is_norm(module: nn.Module) -> bool:
    # Covers LayerNorm, RMSNorm, GroupNorm, BatchNorm*d and the project's ChannelLayerNorm/GatedRMSNorm.
    return "Norm" in type(module).__name__


def no_decay_reason(name: str, param: nn.Parameter, module: nn.Module) -> str | None:
    """Why parameter ``name`` (owned directly by ``module``) gets no weight decay, or None when it does."""
    leaf = name.rsplit(".", 1)[-1]
    if getattr(param, "_no_weight_decay", False):
        return "marked _no_weight_decay"
    if leaf in NO_DECAY_NAMES:
        return f"SSM {leaf}"
    if leaf == "bias":
        return "bias"
    if _is_norm(module):
        return f"norm ({type(module).__name__})"
    return None


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups: ``decay`` (weight decay ``weight_decay``) and ``no_decay`` (0), each with ``names``.

    Every trainable parameter is in exactly one group; shared parameters are listed once.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    decay_names: list[str] = []
    no_decay_names: list[str] = []
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for leaf, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            name = f"{module_name}.{leaf}" if module_name else leaf
            if no_decay_reason(name, param, module) is None:
                decay.append(param)
                decay_names.append(name)
            else:
                no_decay.append(param)
                no_decay_names.append(name)
    return [
        {"params": decay, "weight_decay": weight_decay, "group": "decay", "names": decay_names},
        {"params": no_decay, "weight_decay": 0.0, "group": "no_decay", "names": no_decay_names},
    ]


def make_optimizer(model: nn.Module, cfg: TrainingConfig) -> torch.optim.AdamW:
    """AdamW at ``cfg.learning_rate`` over :func:`parameter_groups` (``names`` kept for logging)."""
    groups = parameter_groups(model, cfg.weight_decay)
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(0.9, 0.999), eps=1e-8)


class WarmupCosineSchedule:
    """Learning rate ``lr(step) = base_lr x factor(step)``: linear warm-up over ``warmup_steps`` (from
    ``base_lr / warmup_steps`` at step 0 to ``base_lr``), then a half cosine down to 0 at ``total_steps``.

    ``step`` counts training batches, including skipped ones, so the schedule ends when the planned steps do.
    The state is the step alone; :meth:`state_dict` / :meth:`load_state_dict` restore it exactly.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int) -> None:
        if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
            raise ValueError(f"need 0 <= warmup_steps ({warmup_steps}) <= total_steps ({total_steps}) and >= 1")
        self.optimizer = optimizer
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.base_lrs = [float(g.get("initial_lr", g["lr"])) for g in optimizer.param_groups]
        for group, lr in zip(optimizer.param_groups, self.base_lrs, strict=True):
            group["initial_lr"] = lr
        self.step_count = 0
        self._apply()

    @classmethod
    def from_config(
        cls, optimizer: torch.optim.Optimizer, cfg: TrainingConfig, total_steps: int
    ) -> WarmupCosineSchedule:
        """The schedule over ``total_steps`` with ``cfg.warmup_fraction`` of them warming up."""
        total = max(1, int(total_steps))
        return cls(optimizer, warmup_steps=min(total, round(cfg.warmup_fraction * total)), total_steps=total)

    def factor(self, step: int) -> float:
        """The multiplier of the base learning rate at ``step`` (0-based batch number)."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        decay_steps = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / decay_steps)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    def _apply(self) -> None:
        f = self.factor(self.step_count)
        for group, lr in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = lr * f

    def step(self) -> None:
        """Advance one batch and set the optimizer's learning rates for the next."""
        self.step_count += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {
            "step_count": self.step_count,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "base_lrs": list(self.base_lrs),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue at the saved step. Warm-up and total steps stay those of this run's config, so a resume
        with more ``epochs`` stretches the cosine instead of training on at a learning rate of 0."""
        self.step_count = int(state["step_count"])
        self._apply()
