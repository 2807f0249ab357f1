"""Model outputs as numpy arrays, wherever they come from (the stages after the model work in numpy)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["as_numpy"]


def as_numpy(x: Any) -> np.ndarray:
    """A numpy array from an array-like or a torch tensor (any device; bf16/fp16 become float32), without
    importing torch: a tensor is recognised by its ``detach`` method."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if x.dtype.is_floating_point and x.element_size() < 4:
            x = x.float()
        x = x.numpy()
    return np.asarray(x)
