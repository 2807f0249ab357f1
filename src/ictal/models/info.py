"""Model size figures: parameters per component and multiply-accumulates (MACs) per window."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Parameters per direct child module of ``model`` (in registration order), plus ``'total'``.

    Parameters registered on ``model`` itself (not in a child) are listed under ``'(own)'``.
    """
    counts = {name: sum(p.numel() for p in child.parameters()) for name, child in model.named_children()}
    own = sum(p.numel() for p in model.parameters(recurse=False))
    if own:
        counts["(own)"] = own
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts


def macs_per_window(
    model: nn.Module,
    example: torch.Tensor,
    **forward_kwargs: object,
) -> dict[str, int]:
    """MACs of one forward pass on ``example`` per direct child of ``model``, plus ``'total'``.

    Counted by ``torch.utils.flop_counter.FlopCounterMode`` (matrix products and convolutions; element-wise
    work, scans and eigendecompositions are not counted), divided by 2 (one MAC = two FLOPs) and by the
    batch size of ``example`` so the figures are per window. Runs in eval mode without gradients and
    restores the model's training flag.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(example, **forward_kwargs)
    finally:
        model.train(was_training)
    flops = counter.get_flop_counts()
    root = type(model).__name__
    batch = max(1, int(example.shape[0]))
    result: dict[str, int] = {}
    for name, _ in model.named_children():
        per_op = flops.get(f"{root}.{name}", {})
        result[name] = int(sum(per_op.values())) // 2 // batch
    result["total"] = int(counter.get_total_flops()) // 2 // batch
    return result
