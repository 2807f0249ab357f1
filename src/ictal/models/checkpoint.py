"""Checkpoints: written atomically, each carrying the whole config, loadable without the training code.

A checkpoint is a ``torch.save`` dict with

- ``format`` (:data:`CHECKPOINT_FORMAT`), ``kind`` (``best``, ``last``, ``epoch``), ``ictal_version``,
  ``torch_version``, ``mamba_backend`` (the Mamba path that trained it), ``precision``, ``device``,
  ``world_size``, ``created`` (UTC ISO time),
- ``config``: the run's whole config (``IctalConfig.model_dump(mode="json")``),
- ``model``: the detector's ``state_dict`` on CPU (float32 weights whatever the autocast precision; no DDP
  prefix),
- ``epoch`` (epochs completed, i.e. the 0-based epoch in progress), ``step`` (batches done in the run),
  ``epoch_step`` and ``samples_in_epoch`` (done in the epoch in progress), ``metrics`` (the last validation,
  with ``monitor``), ``monitor_name``, ``history`` (one row per validation),
- for resuming: ``optimizer``, ``schedule``, ``scaler``, ``sampler``, ``early_stopping``, ``counters`` and
  ``rng`` (per rank: torch, CUDA, numpy and Python generator states).

Everything in it is a tensor, number, string, list or dict, so it loads with ``torch.load(weights_only=True)``
(no code runs from a checkpoint file).

>>> model, cfg, meta = load_model("runs/smoke/best.pt")      # eval mode, on CPU
>>> probs = torch.sigmoid(model(x))                          # x: (B, 19, T) z-units at 256 Hz
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ictal.errors import IctalError
from ictal.io.atomic import write_atomic

if TYPE_CHECKING:
    from ictal.config.schema import IctalConfig
    from ictal.models.v3 import V3Detector

CHECKPOINT_FORMAT = 1
#: Keys every checkpoint has (the resume keys are checked separately, when resuming).
REQUIRED_KEYS = ("format", "kind", "config", "model", "epoch", "step")
#: Keys :func:`load_model` leaves out of ``meta`` (large or only useful to resume).
STATE_KEYS = ("model", "optimizer", "schedule", "scaler", "sampler", "early_stopping", "rng")


class CheckpointError(IctalError):
    """A checkpoint file that cannot be used: missing, unreadable, another format, or the wrong model."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically: serialised in memory, written to a temporary file beside it,
    flushed, then renamed, so a crash leaves the previous checkpoint intact. Returns the path."""
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    write_atomic(path, lambda fh: fh.write(data), size_hint=len(data))
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dict at ``path`` (tensors on ``map_location``), after checking its format.

    Raises:
        CheckpointError: the file is missing, not a checkpoint, or of another format.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file; give the path of a best.pt/last.pt from a run folder")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty (0 bytes), not a checkpoint; use another best.pt/last.pt")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # a truncated or foreign file raises many kinds of errors
        # PyTorch's own message advises unsafe loading and filing an issue: only its kind is passed on.
        raise CheckpointError(
            f"{path}: not a readable ictal checkpoint (torch.load failed with {type(exc).__name__}: truncated, "
            "corrupt or not a checkpoint written by ictal); use another best.pt/last.pt"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not an ictal checkpoint (a {type(state).__name__}, expected a dict)")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not an ictal checkpoint (missing {', '.join(missing)})")
    if state["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: checkpoint format {state['format']!r}, this ictal reads format {CHECKPOINT_FORMAT}; "
            "use the ictal version that wrote it (see its ictal_version)"
        )
    return state


def config_of(state: dict[str, Any], source: str | Path = "<checkpoint>") -> IctalConfig:
    """The :class:`IctalConfig` stored in a checkpoint dict (paths in it are not checked: the data may live
    elsewhere on this machine)."""
    from ictal.config.schema import config_from_dict

    return config_from_dict(state["config"], f"{source} (stored config)")


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[V3Detector, IctalConfig, dict[str, Any]]:
    """The trained detector of a checkpoint, ready for inference.

    Args:
        path: a checkpoint written by ``ictal train`` (``best.pt``, ``last.pt``, ``epoch_NNN.pt``).
        device: where to put the model (``"cpu"``, ``"cuda"``, ``"cuda:1"``, a ``torch.device``).

    Returns:
        ``(model, cfg, meta)``: the :class:`~ictal.models.v3.V3Detector` in eval mode on ``device`` (input
        ``(B, 19, T)`` z-units at 256 Hz, output ``(B, T // 16)`` frame logits), the run's whole config (its
        ``preprocess``, ``data.window_s`` and ``post`` sections are what inference must use), and ``meta``:
        every other checkpoint key except the large resume states (``kind``, ``epoch``, ``step``, ``metrics``,
        ``history``, ``mamba_backend``, ``precision``, ``ictal_version``, ...) plus ``path``.

    Raises:
        CheckpointError: unreadable file, another format, or weights that do not fit the stored config.
    """
    from ictal.models.v3 import build_v3

    state = load_checkpoint(path, map_location="cpu")
    cfg = config_of(state, path)
    model = build_v3(cfg.model)
    problem = weights_mismatch(model, state["model"])
    if problem:
        raise CheckpointError(f"{path}: its weights do not fit the model its config describes ({problem})")
    model.load_state_dict(state["model"], strict=True)
    model.to(torch.device(device)).eval()
    meta = {k: v for k, v in state.items() if k not in STATE_KEYS and k != "config"}
    meta["path"] = str(Path(path))
    return model, cfg, meta


def weights_mismatch(model: torch.nn.Module, weights: dict[str, Any]) -> str:
    """One line on how ``weights`` differ from ``model``'s parameters and buffers ('' when they fit): how many
    are missing, unexpected or of another shape, and the first of each."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    shapes = [
        f"{k} {tuple(weights[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in weights and hasattr(weights[k], "shape") and tuple(weights[k].shape) != tuple(v.shape)
    ]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing, e.g. {missing[0]}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected, e.g. {unexpected[0]}")
    if shapes:
        parts.append(f"{len(shapes)} of another shape, e.g. {shapes[0]}")
    return "; ".join(parts)
