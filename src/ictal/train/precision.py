"""Mixed precision: which one runs on this device (``training.mixed_precision``), its autocast and loss scaler.

``auto`` picks bf16 on a CUDA device that supports it, fp16 with loss scaling on an older CUDA device, and full
precision (fp32) on CPU, where bf16 autocast is supported but rarely faster than fp32 without matrix units.
``bf16`` on CPU runs CPU autocast (it is how the bf16 path is tested without a GPU); ``fp16`` needs CUDA.
Only the forward pass runs under autocast; losses, the model's eigendecompositions and the weights stay in
float32 (float64 for the eigendecompositions).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Literal

import torch

from ictal.errors import IctalError

PrecisionName = Literal["bf16", "fp16", "fp32"]

_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}


class PrecisionError(IctalError):
    """The requested precision cannot run on the device in use."""


@dataclass(frozen=True)
class Precision:
    """The precision a run uses. ``name``: bf16, fp16 or fp32; ``requested``: the config's value; ``why``: one
    line on why ``name`` was chosen (logged at start-up)."""

    name: PrecisionName
    device_type: str
    requested: str
    why: str

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype (None for fp32)."""
        return _DTYPES.get(self.name)

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        """The context the forward pass runs in (a no-op for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def make_scaler(self) -> torch.amp.GradScaler | None:
        """A dynamic loss scaler for fp16 (its small exponent range underflows gradients without one), else
        None: bf16 has float32's exponent range."""
        if self.name != "fp16":
            return None
        return torch.amp.GradScaler(self.device_type)

    def describe(self) -> str:
        return f"precision: {self.name} (training.mixed_precision: {self.requested}; {self.why})"


def _cuda_bf16(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def resolve_precision(requested: str, device: torch.device) -> Precision:
    """The precision ``requested`` (auto, bf16, fp16, no) becomes on ``device``.

    Raises:
        PrecisionError: fp16 asked for on CPU, or bf16 on a CUDA device without bf16 support.
    """
    kind = device.type
    if requested == "no":
        return Precision("fp32", kind, requested, "full precision as configured")
    if requested == "auto":
        if kind == "cuda":
            if _cuda_bf16(device):
                return Precision("bf16", kind, requested, f"{torch.cuda.get_device_name(device)} supports bf16")
            return Precision("fp16", kind, requested, "this GPU has no bf16; fp16 with dynamic loss scaling")
        return Precision("fp32", kind, requested, f"{kind}: bf16 autocast is rarely faster than fp32 here")
    if requested == "bf16":
        if kind == "cuda" and not _cuda_bf16(device):
            raise PrecisionError(
                f"training.mixed_precision: bf16 but {torch.cuda.get_device_name(device)} has no bf16 support; "
                "use fp16 (with loss scaling), auto or no"
            )
        return Precision("bf16", kind, requested, "as configured")
    if requested == "fp16":
        if kind != "cuda":
            raise PrecisionError(
                f"training.mixed_precision: fp16 needs a CUDA device, this run is on {kind}; use bf16, auto or no"
            )
        return Precision("fp16", kind, requested, "as configured, with dynamic loss scaling")
    raise PrecisionError(f"training.mixed_precision: unknown value {requested!r}; use auto, bf16, fp16 or no")
