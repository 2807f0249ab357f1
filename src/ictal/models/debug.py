"""NaN debugging: name the first module whose output is not finite.

Switched on by a model's config (``debug_nan``) or by ``ICTAL_NAN_DEBUG=1`` (alias ``BGB_NAN_DEBUG``) in the
environment (``0`` switches it off whatever the config says; :mod:`ictal.config.env`). The variable is read
each time a model runs, not at import, so it can be set in a notebook or a launcher after ``import ictal``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ictal.config.env import NAN_DEBUG, env_flag
from ictal.errors import IctalError


class NonFiniteError(IctalError):
    """A module produced NaN or Inf; ``module`` is its qualified name inside the model."""

    def __init__(self, module: str, kind: str, detail: str) -> None:
        self.module, self.kind, self.detail = module, kind, detail
        super().__init__(
            f"non-finite output from module {module!r} ({kind}): {detail}. This is the first module in execution "
            f"order whose output is not finite; look at its inputs and weights (set {NAN_DEBUG.name}=0 or "
            f"debug_nan: false to switch this check off)"
        )


def nan_debug_enabled(config_flag: bool) -> bool:
    """Whether NaN debugging is on now: ``ICTAL_NAN_DEBUG`` (or ``BGB_NAN_DEBUG``) overrides ``config_flag``."""
    return env_flag(NAN_DEBUG, config_flag)


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from _tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _tensors(item)


def describe_non_finite(obj: Any) -> str | None:
    """``None`` if every floating tensor in ``obj`` (tensor, tuple, list, dict) is finite, else a summary."""
    for t in _tensors(obj):
        if t.is_floating_point() or t.is_complex():
            bad = ~torch.isfinite(t.detach())
            if bool(bad.any()):
                n_nan = int(torch.isnan(t.detach()).sum())
                return (
                    f"{n_nan} NaN and {int(bad.sum()) - n_nan} Inf among {t.numel()} values of a "
                    f"{tuple(t.shape)} {t.dtype} tensor"
                )
    return None


@contextmanager
def detect_non_finite(model: nn.Module) -> Iterator[None]:
    """Within the block, raise ``NonFiniteError`` as soon as a submodule of ``model`` outputs NaN/Inf.

    Forward hooks run when a module's forward returns, innermost first, so the first hook to see a non-finite
    value names the module that produced it. The message says whether that module's inputs were finite
    (if not, the fault lies upstream in code that is not a module). Hooks are removed on exit.
    """
    handles = []

    def hook(module: nn.Module, args: Any, output: Any, *, name: str) -> None:
        problem = describe_non_finite(output)
        if problem is not None:
            inputs = "its inputs were finite" if describe_non_finite(args) is None else "its inputs were not finite"
            raise NonFiniteError(name, type(module).__name__, f"{problem}; {inputs}")

    try:
        for name, module in model.named_modules():
            if module is not model:
                handles.append(module.register_forward_hook(_bind(hook, name)))
        yield
    finally:
        for h in handles:
            h.remove()


def _bind(hook: Any, name: str) -> Any:
    def bound(module: nn.Module, args: Any, output: Any) -> None:
        hook(module, args, output, name=name)

    return bound
