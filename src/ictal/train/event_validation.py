"""Validation by events: the dev split scored as ``ictal evaluate`` scores it, for early stopping.

Every dev recording is run through the model in overlapping windows and stitched into one trace; the traces
are post-processed at every candidate threshold and scored with NEDC OVLP; the monitored value is the OVLP
sensitivity at the threshold whose dev false-alarm rate is at most 10 per 24 h. On a small
dev split that sensitivity moves in coarse steps, so the frame AUROC breaks ties (weight 1e-3, below one step).

Runs on rank 0 only (the others return ``{}``; the trainer uses rank 0's metrics everywhere).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from torch import nn

from ictal.infer.evaluate import evaluate_split, split_traces

if TYPE_CHECKING:
    from ictal.config.schema import IctalConfig
    from ictal.train.validation import ValidationContext

#: Weight of the frame AUROC in the monitored value (a tie-break: less than one seizure's worth of sensitivity).
AUROC_TIE_BREAK = 1e-3

log = logging.getLogger("ictal.train")


def saturation_warning(sensitivities: list[float]) -> str | None:
    """A warning when every validation so far gave the same dev sensitivity (at least two of them): the event
    monitor cannot tell the checkpoints apart, and the frame AUROC tie-break picks ``best.pt`` alone."""
    if len(sensitivities) < 2 or len(set(sensitivities)) > 1:
        return None
    return (
        f"validation: dev OVLP sensitivity at 10 FA/24h is {100 * sensitivities[0]:.1f} % at every validation "
        f"so far ({len(sensitivities)}): the event monitor is saturated on this dev split, so best.pt is chosen by "
        "frame AUROC, the tie-break; a dev split with more seizure-free recordings, or evaluate's trivial-detector "
        "baselines, tells whether the model learned anything"
    )


class EventValidator:
    """Dev OVLP sensitivity at 10 FA/24h (thresholds chosen on dev), stitched per recording.

    Returns ``dev_ovlp_sens_at_10fa``, ``dev_ovlp_fa_per_24h_at_10fa``, ``dev_threshold_at_10fa``,
    ``dev_auroc`` and ``monitor`` (the sensitivity plus ``AUROC_TIE_BREAK`` x AUROC).
    """

    monitor_name = "dev_ovlp_sens_at_10fa"

    def __init__(self, cfg: IctalConfig, split: str = "dev") -> None:
        if cfg.data.cache_dir is None:
            raise ValueError("data.cache_dir is not set; set it in the config")
        self.cfg = cfg
        self.split = split
        self.sensitivities: list[float] = []
        self._warned = False

    def describe(self) -> str:
        return (
            f"validation: events on {self.split} (windows {self.cfg.data.window_s:g} s / {self.cfg.data.stride_s:g} s "
            f"stitched per recording, post-processed, NEDC OVLP); monitor {self.monitor_name} (+{AUROC_TIE_BREAK:g} "
            "x frame AUROC to break ties)"
        )

    def __call__(self, model: nn.Module, ctx: ValidationContext) -> dict[str, float]:
        if ctx.dist.rank != 0:
            return {}
        assert self.cfg.data.cache_dir is not None
        traces = split_traces(
            self.cfg.data.cache_dir,
            self.split,
            model=model,
            window_s=self.cfg.data.window_s,
            stride_s=self.cfg.data.stride_s,
            batch_size=ctx.batch_size,
            device=ctx.device,
            autocast_dtype=ctx.precision.dtype,
        )
        result = evaluate_split(traces, self.cfg.post, self.cfg.szcore, thresholds_chosen_on=self.split,
                                allow_choose_on_this_split=True)  # fmt: skip
        m = result.metrics
        sens = float(m["ovlp_sensitivity_at_10fa"])
        auroc = float(m["auroc"])
        sens = 0.0 if math.isnan(sens) else sens
        tie = 0.0 if math.isnan(auroc) else AUROC_TIE_BREAK * auroc
        self.sensitivities.append(sens)
        warning = saturation_warning(self.sensitivities)
        if warning and not self._warned:
            log.warning(warning)
            self._warned = True
        return {
            "dev_ovlp_sens_at_10fa": sens,
            "dev_ovlp_fa_per_24h_at_10fa": float(m["ovlp_fa_per_24h_at_10fa"]),
            "dev_threshold_at_10fa": float(m["threshold_at_10fa"]),
            "dev_auroc": auroc,
            "monitor": sens + tie,
        }
