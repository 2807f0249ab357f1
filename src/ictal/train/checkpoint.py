"""Training's side of checkpoints: the random generator states a resumed run restores.

The checkpoint file itself (format, atomic writing, loading a model for inference) is
:mod:`ictal.models.checkpoint`, which inference uses without the training code; its names are importable from
here too, where runs were loaded from before.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from ictal.models.checkpoint import (
    CHECKPOINT_FORMAT,
    REQUIRED_KEYS,
    STATE_KEYS,
    CheckpointError,
    config_of,
    load_checkpoint,
    load_model,
    save_checkpoint,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "REQUIRED_KEYS",
    "STATE_KEYS",
    "CheckpointError",
    "capture_rng_state",
    "config_of",
    "load_checkpoint",
    "load_model",
    "restore_rng_state",
    "save_checkpoint",
]


# ------------------------------------------------------------------------------------------------ RNG state


def capture_rng_state() -> dict[str, Any]:
    """This process's random generator states (torch CPU, every CUDA device, numpy's legacy global, Python's),
    in types ``weights_only`` loading accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # noqa: NPY002
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Set this process's generators to a :func:`capture_rng_state` result."""
    torch.set_rng_state(state["torch"].cpu())
    np_state = state["numpy"]
    np.random.set_state(  # noqa: NPY002  (the legacy global generator is what other code may draw from)
        (
            np_state["kind"],
            np_state["keys"].cpu().numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
