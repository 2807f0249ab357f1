"""EventValidator: dev scored by events (stitched, post-processed, OVLP at 10 FA/24h) for early stopping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ictal.config.schema import config_from_dict
from ictal.train.distributed import DistContext
from ictal.train.event_validation import AUROC_TIE_BREAK, EventValidator
from ictal.train.precision import Precision
from ictal.train.validation import ValidationContext

FS = 256


class Channel0Detector(torch.nn.Module):
    def __init__(self, gain: float) -> None:
        super().__init__()
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t = x.shape
        return self.gain * (x[:, 0].reshape(b, t // 16, 16).mean(-1) - 0.5)


def _ctx(rank: int = 0) -> ValidationContext:
    precision = Precision(name="fp32", device_type="cpu", requested="no", why="test")
    return ValidationContext(torch.device("cpu"), precision, DistContext(rank=rank), 4, 0, 0)


def test_event_validator_scores_dev(fake_cache, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "cache"
    recs = [("pdev_s001_t000", FS * 400, [(100.0, 140.0), (250.0, 280.0)]), ("pdev_s001_t001", FS * 200, [])]
    fake_cache(root, "dev", recs)
    for name, _n, intervals in recs:
        x = np.load(root / "dev" / f"{name}.npy", mmap_mode="r+")
        x[0] = 0
        for a, b in intervals:
            x[0, int(a * FS) : int(b * FS)] = 1
        x.flush()
    cfg = config_from_dict({"data": {"cache_dir": str(root), "window_s": 20, "stride_s": 5}})
    validator = EventValidator(cfg)
    good = validator(Channel0Detector(20.0), _ctx())
    assert good["dev_ovlp_sens_at_10fa"] == 1.0 and good["dev_ovlp_fa_per_24h_at_10fa"] == 0.0
    assert good["monitor"] == 1.0 + AUROC_TIE_BREAK * good["dev_auroc"]
    # a detector that ignores the signal finds nothing at 10 FA/24h and monitors lower
    blind = validator(Channel0Detector(0.0), _ctx())
    assert blind["dev_ovlp_sens_at_10fa"] < 1.0 and blind["monitor"] < good["monitor"]
    assert validator(Channel0Detector(20.0), _ctx(rank=1)) == {}
    assert "events on dev" in validator.describe()


def test_a_saturated_event_monitor_is_warned_about() -> None:
    from ictal.train.event_validation import saturation_warning

    assert saturation_warning([1.0]) is None and saturation_warning([0.5, 0.75]) is None
    line = saturation_warning([1.0, 1.0, 1.0])
    assert line is not None and "100.0 % at every validation so far (3)" in line and "frame AUROC" in line
