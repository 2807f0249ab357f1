"""Frame-level training losses: focal loss (alpha 0.5, gamma 2 by default) and plain binary cross-entropy.

Both take frame logits ``(B, F)`` (16 Hz) and frame labels ``(B, F)`` in {0, 1}, optionally a ``(B, F)`` mask
of frames to count (padded frames of a tail window are 0), and return the mean over counted frames. They are
computed in float32 whatever the autocast dtype: the log-sigmoid of a bf16/fp16 logit loses too much.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ictal.train.config import TrainingConfig

FrameLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return values.mean()
    m = mask.to(values.dtype)
    return (values * m).sum() / m.sum().clamp_min(1.0)


def bce_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean binary cross-entropy of frame ``logits`` ``(B, F)`` against ``labels`` ``(B, F)``."""
    per_frame = F.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="none")
    return _masked_mean(per_frame, mask)


def focal_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    alpha: float = 0.5,
    gamma: float = 2.0,
) -> torch.Tensor:
    """Mean focal loss (Lin et al. 2017) of frame ``logits`` ``(B, F)`` against ``labels`` ``(B, F)``.

    ``alpha`` weighs positive frames (``1 - alpha`` negatives); ``(1 - p_t) ** gamma`` down-weights frames the
    model already gets right, so the many easy background frames do not swamp the seizure frames.
    ``gamma = 0`` and ``alpha = 0.5`` give half the BCE.
    """
    x, y = logits.float(), labels.float()
    bce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    p = torch.sigmoid(x)
    p_t = p * y + (1.0 - p) * (1.0 - y)
    alpha_t = alpha * y + (1.0 - alpha) * (1.0 - y)
    per_frame = alpha_t * (1.0 - p_t).pow(gamma) * bce
    return _masked_mean(per_frame, mask)


def make_loss(cfg: TrainingConfig) -> FrameLoss:
    """The loss ``training.loss`` names, with ``focal_alpha``/``focal_gamma`` bound for ``focal``."""
    if cfg.loss == "bce":
        return bce_loss
    alpha, gamma = cfg.focal_alpha, cfg.focal_gamma

    def loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return focal_loss(logits, labels, mask, alpha=alpha, gamma=gamma)

    return loss
