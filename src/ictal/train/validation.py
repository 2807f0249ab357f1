"""Validation on dev during training, and early stopping on the metric it monitors.

A validator is anything that follows :class:`Validator`: called with the (unwrapped) model in eval mode and a
:class:`ValidationContext`, it returns a dict of float metrics that holds ``"monitor"``, the value early
stopping watches (higher is better). The trainer calls it on every rank at once; a validator that works on
rank 0 alone may return ``{}`` elsewhere, since the trainer uses rank 0's dict everywhere.

:class:`FrameValidator` is the built-in one: frame-level dev loss and AUROC (binned, via
:class:`~ictal.scoring.calibration.ProbabilityHistogram`) over every 16 Hz frame of the dev split, each frame
scored once (non-overlapping windows, the tail covered and its padding masked), sharded over ranks with the
counts summed. The stitched per-recording scoring (sensitivity at 10 FA/24h) plugs in as another
``Validator`` with ``monitor_name = "dev_sens_at_10fa"``: pass it to :class:`~ictal.train.trainer.Trainer`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn
from torch.utils.data import Subset

from ictal.data.sampling import make_loader
from ictal.data.windows import WindowDataset
from ictal.scoring.calibration import ProbabilityHistogram
from ictal.train.distributed import DistContext
from ictal.train.losses import FrameLoss
from ictal.train.precision import Precision

if TYPE_CHECKING:
    from ictal.config.schema import IctalConfig


@dataclass(frozen=True)
class ValidationContext:
    """What a validator needs from the run: ``device`` of the model, ``precision`` (its ``autocast()`` for the
    forward pass), ``dist`` (rank, world size, collectives), ``batch_size``, and where the run is: ``epoch``,
    the 0-based epoch just trained (fully, or partly when a time budget ran out), and ``step``, batches so far."""

    device: torch.device
    precision: Precision
    dist: DistContext
    batch_size: int
    epoch: int
    step: int


@runtime_checkable
class Validator(Protocol):
    """Scores the model on dev. ``monitor_name`` names the metric returned as ``"monitor"`` (higher is better)."""

    monitor_name: str

    def __call__(self, model: nn.Module, ctx: ValidationContext) -> dict[str, float]: ...


class FrameValidator:
    """Frame-level dev loss and AUROC: every frame of the dev split scored once.

    Args:
        dataset: dev windows, non-overlapping with the tail covered (:meth:`from_config` makes them).
        loss_fn: the training loss, for a comparable ``dev_loss``.
        data: the ``data`` config (loader workers).
        n_bins: probability bins of the AUROC histogram.

    Returns from a call: ``dev_loss`` (mean per frame), ``dev_auroc`` (NaN without both classes), ``dev_ece``,
    ``dev_frames``, ``dev_seizure_frames``, ``dev_nonfinite_frames`` (counted, scored as p = 0.5) and
    ``monitor``: ``dev_auroc``, or ``-dev_loss`` when the dev split has no seizure frame (AUROC is undefined
    then); :attr:`monitor_name` says which.
    """

    def __init__(self, dataset: WindowDataset, loss_fn: FrameLoss, data: Any, *, n_bins: int = 1000) -> None:
        self.dataset = dataset
        self.loss_fn = loss_fn
        self.data = data
        self.n_bins = n_bins
        has_seizure = any(r.seizure_intervals for r in dataset.recordings)
        self.monitor_name = "dev_auroc" if has_seizure else "neg_dev_loss"

    @classmethod
    def from_config(cls, cfg: IctalConfig, loss_fn: FrameLoss, *, split: str = "dev") -> FrameValidator:
        """Dev windows of ``cfg.data.window_s`` at a stride of one window (each frame once), tail covered."""
        from ictal.data.cache import CacheParams

        if cfg.data.cache_dir is None:
            raise ValueError("data.cache_dir is not set; set it in the config")
        dataset = WindowDataset(
            cfg.data.cache_dir,
            split,
            window_s=cfg.data.window_s,
            stride_s=cfg.data.window_s,
            expect=CacheParams.from_configs(cfg.preprocess, cfg.data),
            cover_tail=True,
        )
        return cls(dataset, loss_fn, cfg.data)

    def describe(self) -> str:
        return f"validation: frame-level loss and AUROC on {self.dataset.describe()}; monitor {self.monitor_name}"

    @torch.no_grad()
    def __call__(self, model: nn.Module, ctx: ValidationContext) -> dict[str, float]:
        hist = ProbabilityHistogram(self.n_bins)
        shard = Subset(self.dataset, range(ctx.dist.rank, len(self.dataset), ctx.dist.world_size))
        loader = make_loader(shard, self.data, batch_size=ctx.batch_size)
        loader.generator = torch.Generator().manual_seed(0)  # keep the global RNG untouched (exact resume)
        loss_sum = torch.zeros((), dtype=torch.float64)
        nonfinite = torch.zeros((), dtype=torch.float64)
        was_training = model.training
        model.eval()
        try:
            for batch in loader:
                x = batch["x"].to(ctx.device, non_blocking=True)  # (B, 19, L) z-units, 256 Hz
                y = batch["y_frames"].to(ctx.device)  # (B, F)
                hop = self.dataset.frame_hop
                n_valid_frames = batch["n_valid"].to(ctx.device) // hop  # (B,)
                mask = torch.arange(y.shape[1], device=ctx.device)[None, :] < n_valid_frames[:, None]
                with ctx.precision.autocast():
                    logits = model(x)
                logits = logits.float()
                frames = mask.sum()
                loss_sum += float(self.loss_fn(logits, y, mask)) * float(frames)
                probs = torch.sigmoid(logits)[mask]
                bad = ~torch.isfinite(probs)
                nonfinite += float(bad.sum())
                # A non-finite output is counted and reported (dev_nonfinite_frames), scored as p = 0.5.
                hist.update(probs.masked_fill(bad, 0.5), y[mask] > 0.5)
        finally:
            model.train(was_training)
        counts = torch.from_numpy(np.concatenate([hist.positive, hist.negative]).astype(np.float64))
        extra = torch.stack([loss_sum, nonfinite])
        packed = torch.cat([counts, torch.from_numpy(hist.sum_p.copy()), extra])
        packed = packed.to(ctx.device if ctx.dist.backend == "nccl" else "cpu")  # nccl reduces GPU tensors only
        ctx.dist.all_reduce_sum(packed)
        packed = packed.cpu()
        n = self.n_bins
        hist.positive = packed[:n].round().to(torch.int64).numpy()
        hist.negative = packed[n : 2 * n].round().to(torch.int64).numpy()
        hist.sum_p = packed[2 * n : 3 * n].numpy()
        n_frames = hist.count
        dev_loss = float(packed[-2]) / max(1, n_frames)
        auroc = hist.auroc()
        monitor = auroc if self.monitor_name == "dev_auroc" else -dev_loss
        return {
            "dev_loss": dev_loss,
            "dev_auroc": auroc,
            "dev_ece": hist.ece(),
            "dev_frames": float(n_frames),
            "dev_seizure_frames": float(hist.positive.sum()),
            "dev_nonfinite_frames": float(packed[-1]),
            "monitor": monitor,
        }


class EarlyStopping:
    """Stop after ``patience`` validation rounds without the monitored value rising by more than ``min_delta``.

    A NaN value never counts as an improvement.
    """

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.best = -math.inf
        self.best_epoch = -1
        self.bad_rounds = 0

    def update(self, value: float, epoch: int) -> bool:
        """Record one validation's monitored ``value``; True when it is the new best."""
        if not math.isnan(value) and (self.best == -math.inf or value > self.best + self.min_delta):
            self.best, self.best_epoch, self.bad_rounds = float(value), int(epoch), 0
            return True
        self.bad_rounds += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_rounds >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_rounds": self.bad_rounds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        self.bad_rounds = int(state["bad_rounds"])
