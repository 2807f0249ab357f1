"""What computed a result: software versions and the facts of the checkpoint behind it, assembled once.

Every output that says where it came from uses these: a checkpoint's own facts (:func:`training_facts`, written
by the trainer), a prediction's or an evaluation's ``model`` block (:func:`checkpoint_provenance`, from what
:func:`ictal.train.checkpoint.load_model` returns), and the versions of the software that ran
(:func:`software_versions`). The report reads them from ``results.json``; nothing re-opens a checkpoint to
find them.
"""

from __future__ import annotations

import datetime
import platform
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

import ictal

if TYPE_CHECKING:
    from ictal.config.schema import IctalConfig

__all__ = ["TRAINED_WITH_KEYS", "checkpoint_provenance", "software_versions", "training_facts"]

#: The facts a checkpoint records about the run that trained it (the keys :func:`training_facts` writes).
TRAINED_WITH_KEYS: tuple[str, ...] = (
    "ictal_version",
    "torch_version",
    "mamba_backend",
    "precision",
    "device",
    "world_size",
    "created",
)


def software_versions(model: torch.nn.Module | None = None) -> dict[str, str]:
    """Versions of what computes a result now: ictal, torch, numpy, scipy, python, and the Mamba path in use."""
    import scipy

    from ictal.models.mamba.mamba2 import mamba_backend

    return {
        "ictal": ictal.__version__,
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "python": platform.python_version(),
        "mamba_backend": mamba_backend(model if model is not None else "cpu"),
    }


def training_facts(
    model: torch.nn.Module, precision: str, device: torch.device | str, world_size: int
) -> dict[str, Any]:
    """The facts a checkpoint records about its run (:data:`TRAINED_WITH_KEYS`), as of now."""
    from ictal.models.mamba.mamba2 import mamba_backend

    return {
        "ictal_version": ictal.__version__,
        "torch_version": str(torch.__version__),
        "mamba_backend": mamba_backend(model),
        "precision": precision,
        "device": str(device),
        "world_size": world_size,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def checkpoint_provenance(cfg: IctalConfig, meta: Mapping[str, Any], device: torch.device | str) -> dict[str, Any]:
    """The ``model`` block of a prediction's or an evaluation's JSON: which checkpoint, how it was trained,
    what model it holds, and where it ran now.

    Args:
        cfg, meta: the config and ``meta`` that :func:`ictal.train.checkpoint.load_model` returned.
        device: where inference ran.
    """
    return {
        "checkpoint": meta.get("path"),
        "epoch": meta.get("epoch"),
        "kind": meta.get("kind"),
        "trained_with": {k: meta.get(k) for k in TRAINED_WITH_KEYS},
        "architecture": cfg.model.architecture,
        "preset": cfg.model.preset,
        "streamable": cfg.model.streamable,
        "device": str(device),
    }
