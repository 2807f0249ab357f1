"""``ictal evaluate`` end to end on a checkpoint and a cache: dev, then eval with dev thresholds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ictal.cli.main import app
from ictal.config.schema import config_from_dict
from ictal.models.checkpoint import CHECKPOINT_FORMAT, save_checkpoint
from ictal.models.v3 import build_v3

FS = 256


@pytest.fixture
def checkpoint(fake_cache, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    cache = tmp_path / "cache"
    fake_cache(cache, "dev", [("pdev_s001_t000", FS * 90, [(20.0, 50.0)]), ("pdev_s001_t001", FS * 40, [])])
    fake_cache(cache, "eval", [("peva_s001_t000", FS * 70, [(10.0, 30.0)])])
    cfg = config_from_dict(
        {"data": {"cache_dir": str(cache), "window_s": 10, "stride_s": 5}, "model": {"preset": "tiny"}}
    )
    torch.manual_seed(0)
    model = build_v3(cfg.model)
    state = {
        "format": CHECKPOINT_FORMAT, "kind": "best", "config": cfg.model_dump(mode="json"),
        "model": model.state_dict(), "epoch": 1, "step": 10,
    }  # fmt: skip
    return save_checkpoint(tmp_path / "run" / "best.pt", state)


def test_evaluate_dev_then_eval(checkpoint: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    dev_out = tmp_path / "dev"
    res = runner.invoke(app, ["evaluate", str(checkpoint), "--split", "dev", "--out", str(dev_out), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "NEDC OVLP" in res.output and "thresholds chosen on dev" in res.output
    dev = json.loads((dev_out / "results.json").read_text())
    assert dev["split"] == "dev" and dev["n_ref_seizures"] == 1 and dev["checkpoint_epoch"] == 1
    assert (dev_out / "ref.list").read_text().count(".csv_bi") == 2
    assert (dev_out / "sensitivity_fa.png").stat().st_size > 10_000
    # Beside the model, what two trivial detectors get on the same split by the same rules.
    assert set(dev["baselines"]) == {"all_seizure", "line_length"}
    everything = dev["baselines"]["all_seizure"]
    assert everything["ovlp_sensitivity_at_10fa"] == 1.0  # calling everything seizure finds the one seizure
    assert "all seizure detector: NEDC OVLP 100.0 %" in " ".join(res.output.split())
    for warning in dev["warnings"]:
        assert warning in " ".join(res.output.split()).replace("warning: ", "")

    # eval refuses to choose its own thresholds, then takes dev's unchanged
    res = runner.invoke(app, ["evaluate", str(checkpoint), "--split", "eval", "--out", str(tmp_path / "x")])
    assert res.exit_code == 1 and "dev run" in res.output
    eval_out = tmp_path / "eval"
    res = runner.invoke(app, ["evaluate", str(checkpoint), "--split", "eval", "--out", str(eval_out),
                              "--thresholds-from", str(dev_out / "results.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    ev = json.loads((eval_out / "results.json").read_text())
    assert ev["thresholds_chosen_on"] == "dev"
    assert ev["threshold_at_10fa"] == dev["threshold_at_10fa"]
    assert ev["baselines"]["line_length"]["thresholds"] == dev["baselines"]["line_length"]["thresholds"]


def test_evaluate_bad_inputs(checkpoint: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["evaluate", str(tmp_path / "nope.pt"), "--split", "dev"])
    assert res.exit_code == 1 and "nope.pt" in res.output
    res = runner.invoke(app, ["evaluate", str(checkpoint), "--split", "train"])
    assert res.exit_code == 1 and "no cached recordings" in res.output
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    res = runner.invoke(app, ["evaluate", str(checkpoint), "--split", "eval", "--thresholds-from", str(bad)])
    assert res.exit_code == 1 and "threshold_at_10fa" in res.output
