"""Which device a command or a training process runs on: one rule for ``auto``, ``cpu``, ``cuda`` and ``cuda:N``."""

from __future__ import annotations

import torch

from ictal.errors import IctalError

__all__ = ["DeviceError", "resolve_device"]


class DeviceError(IctalError):
    """The requested device is not available."""


def resolve_device(requested: str, local_rank: int = 0, what: str = "--device") -> torch.device:
    """The device for ``requested``: ``auto`` is this process's GPU (``cuda:LOCAL_RANK``) when CUDA is
    available, else the CPU; ``cuda`` is ``cuda:LOCAL_RANK``; ``cuda:N`` that GPU; ``cpu`` the CPU.

    Args:
        local_rank: this process's rank on its node (torchrun's ``LOCAL_RANK``; 0 for one process).
        what: the option or key the value came from, for the error message.

    Raises:
        DeviceError: an unknown name, CUDA asked for where there is none, or a GPU index this node lacks.
    """
    name = requested.strip().lower()
    index: int | None = None
    if name.startswith("cuda:"):
        try:
            index = int(name.split(":", 1)[1])
        except ValueError:
            index = -1
        if index < 0:
            raise DeviceError(f"{what} {requested!r}: a GPU is cuda:N with N a whole number (cuda:0, cuda:1, ...)")
        name = "cuda"
    if name not in ("auto", "cpu", "cuda"):
        raise DeviceError(f"{what} {requested!r}: unknown device; use auto, cpu, cuda or cuda:N")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError(
            f"{what} {requested!r}: PyTorch sees no CUDA device (CPU-only build, no driver, or "
            "CUDA_VISIBLE_DEVICES empty); use cpu or auto, or install a CUDA build of torch"
        )
    gpu = local_rank if index is None else index
    count = torch.cuda.device_count()
    if gpu >= count:
        raise DeviceError(
            f"{what} {requested!r}: GPU {gpu} is needed but this node has {count}"
            + ("; start at most that many processes per node (torchrun --nproc-per-node)" if index is None else "")
        )
    return torch.device("cuda", gpu)
