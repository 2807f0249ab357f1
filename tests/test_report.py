"""``ictal report RESULTS_DIR``: one self-contained HTML page from an evaluate folder."""

from __future__ import annotations

import base64
import json
import re
import struct
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ictal.cli.main import app
from ictal.config.schema import config_from_dict
from ictal.infer.evaluate import evaluate_split, split_traces, write_evaluation, write_plots
from ictal.models.checkpoint import CHECKPOINT_FORMAT, load_model, save_checkpoint
from ictal.models.v3 import build_v3
from ictal.report.html import build_report, write_report


@pytest.fixture(scope="module")
def evaluated(synthetic_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An evaluate folder written by the real evaluate code (line-length detector on the synthetic corpus' dev
    split), with the config and a checkpoint path, as `ictal evaluate` writes them."""
    root = tmp_path_factory.mktemp("report")
    cfg = config_from_dict({"data": {"window_s": 10, "stride_s": 5}, "model": {"preset": "tiny"}})
    state = {
        "format": CHECKPOINT_FORMAT, "kind": "best", "config": cfg.model_dump(mode="json"),
        "model": build_v3(cfg.model).state_dict(), "epoch": 2, "step": 9, "ictal_version": "0.1.0",
        "torch_version": str(torch.__version__), "mamba_backend": "PyTorch SSD reference",
    }  # fmt: skip
    checkpoint = save_checkpoint(root / "run" / "best.pt", state)
    traces = split_traces(synthetic_cache, "dev", detector="line_length")
    result = evaluate_split(traces, cfg.post, cfg.szcore)
    out = root / "evaluate-dev"
    _model, ck_cfg, meta = load_model(checkpoint)
    write_evaluation(result, out, cfg=ck_cfg, checkpoint_meta=meta)
    write_plots(result, out)
    return out


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def test_report_is_one_self_contained_page(evaluated: Path) -> None:
    path = write_report(evaluated)
    page = path.read_text(encoding="utf-8")
    assert path == evaluated / "report.html"
    # Self-contained: no link, script or image that points anywhere else.
    assert not re.search(r'(src|href)="(?!data:)', page)
    images = _images(page)
    timelines = len(list((evaluated / "timelines").glob("*.png")))
    assert len(images) == 2 + timelines  # curves, event chart, every timeline
    for data in images:
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", data[16:24])
        assert width >= 600 and height >= 150 and len(data) > 10_000


def test_metrics_table_per_scorer_names_scorer_label_and_aggregation(evaluated: Path) -> None:
    page = build_report(evaluated)
    results = json.loads((evaluated / "results.json").read_text())
    for scorer, aggregation in results["scorers"].items():
        assert f"scorer <b>{scorer}</b>; label <b>SEIZ</b>; aggregation: {aggregation}" in page
    threshold = results["threshold_at_10fa"]
    sensitivity = results["ovlp_sensitivity_at_10fa"]
    assert f"<td>{threshold:.3f}</td>" in page and f"<td>{100 * sensitivity:.1f}</td>" in page
    for heading in ("Metrics per scorer", "Sensitivity against false alarms", "Per-recording timelines", "Config",
                    "Versions"):  # fmt: skip
        assert f"<h2>{heading}</h2>" in page
    for line in (evaluated / "ref.list").read_text().split():
        assert Path(line).stem in page  # the per-recording table


def test_config_and_versions_are_shown(evaluated: Path) -> None:
    page = build_report(evaluated)
    assert "tau_on: 0.86" in page and "preset: tiny" in page  # the config as YAML
    for component in ("ictal", "torch", "numpy", "python", "mamba_backend"):
        assert f'<td class="l">{component}</td>' in page
    assert str(torch.__version__) in page
    assert "recorded in the checkpoint" in page and "PyTorch SSD reference" in page


def test_missing_curve_picture_is_drawn_from_results(evaluated: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(evaluated, copy)
    (copy / "sensitivity_fa.png").unlink()
    shutil.rmtree(copy / "timelines")
    results = json.loads((copy / "results.json").read_text())
    results["thresholds_chosen_on"] = "eval (chosen on the evaluated split: leak)"
    del results["model"]  # an older results.json, without the checkpoint's facts
    (copy / "results.json").write_text(json.dumps(results))
    page = build_report(copy)
    assert len(_images(page)) == 2
    assert '<span class="leak">' in page and "recorded in the checkpoint" not in page


def test_report_cli(evaluated: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "r.html"
    res = runner.invoke(app, ["report", str(evaluated), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.stat().st_size > 50_000 and "self-contained" in res.output
    res = runner.invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 1 and "no results.json" in res.output
