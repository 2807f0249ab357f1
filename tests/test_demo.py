"""The demo's whole chain, shrunk: corpus, cache, a few training steps, evaluate, predict, report, headline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ictal.cli.main import app
from ictal.config.schema import parse_overrides


def test_parse_overrides() -> None:
    assert parse_overrides(["training.loss=bce", "data.window_s=30", "training.tensorboard=false"]) == {
        "training.loss": "bce",
        "data.window_s": 30,
        "training.tensorboard": False,
    }
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_overrides(["training.loss"])
    bad = CliRunner().invoke(app, ["demo", "--set", "training.loss"])  # a usage error, before any work
    assert bad.exit_code == 2 and "--set" in bad.output and "KEY=VALUE" in bad.output


@pytest.mark.slow
def test_demo_runs_the_whole_chain(tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    args = ["--out", str(out), "--patients", "6", "--hours", "1.5", "--seed", "3", "--workers", "1"]
    args += ["--train-steps", "3", "--set", "data.window_s=20", "--set", "training.tensorboard=false"]
    result = CliRunner().invoke(app, ["demo", *args])
    assert result.exit_code == 0, result.output
    printed = result.output
    assert "headline (synthetic eval, thresholds from dev)" in printed and "line length" in printed
    results = json.loads((out / "eval" / "results.json").read_text())
    for key in ("ovlp_sensitivity_at_10fa", "line_length_ovlp_sensitivity_at_10fa", "szcore_sensitivity_at_10fa"):
        assert 0.0 <= results[key] <= 1.0, key
    assert results["thresholds_chosen_on"] == "dev"
    assert (out / "run" / "best.pt").is_file() and json.loads((out / "run" / "history.json").read_text())
    assert (out / "report.html").stat().st_size > 10_000
    assert list((out / "predict").glob("*.csv_bi")) and list((out / "predict").glob("*_events.tsv"))
