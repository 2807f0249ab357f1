"""Evaluation on a cached split: labels loaded, thresholds from dev, every scorer, files the NEDC tool reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ictal.cli.main import app
from ictal.infer.evaluate import (
    EvaluationError,
    evaluate_split,
    read_thresholds,
    split_traces,
    write_evaluation,
    write_plots,
)
from ictal.post.config import PostConfig

FS = 256


class Channel0Detector(torch.nn.Module):
    """Logit per frame from channel 0's frame mean: +8 where it is 1 (a seizure in the fake cache), -8 at 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t = x.shape
        return 16 * x[:, 0].reshape(b, t // 16, 16).mean(-1) - 8


def _make_split(fake_cache, root: Path, split: str, recs: list[tuple[str, int, list[tuple[float, float]]]]) -> None:  # type: ignore[no-untyped-def]
    fake_cache(root, split, recs)
    for name, _n, intervals in recs:
        x = np.load(root / split / f"{name}.npy", mmap_mode="r+")
        x[0] = 0
        for a, b in intervals:
            x[0, int(a * FS) : int(b * FS)] = 1
        x.flush()


RECS = {
    "dev": [("pdev_s001_t000", FS * 600, [(100.0, 160.0)]), ("pdev_s001_t001", FS * 300, [])],
    "eval": [("peva_s001_t000", FS * 500, [(50.0, 90.0), (300.0, 400.0)]), ("peva_s001_t001", FS * 200 + 40, [])],
}


@pytest.fixture
def cache(fake_cache, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    root = tmp_path / "cache"
    for split, recs in RECS.items():
        _make_split(fake_cache, root, split, recs)
    return root


def test_dev_then_eval_with_dev_thresholds(cache: Path, tmp_path: Path) -> None:
    model, post = Channel0Detector(), PostConfig()
    dev = split_traces(cache, "dev", model=model, window_s=60, stride_s=10, batch_size=4)
    assert dev.n_ref_seizures == 1 and [t.shape[0] for t in dev.traces] == [600 * 16, 300 * 16]
    dev_result = evaluate_split(dev, post)
    assert dev_result.thresholds_chosen_on == "dev"
    dev_json = write_evaluation(dev_result, tmp_path / "dev")

    thresholds, chosen_on = read_thresholds(dev_json)
    assert chosen_on == "dev" and set(thresholds) == {10.0, 5.0, 2.5, 1.0}
    ev = split_traces(cache, "eval", model=model, window_s=60, stride_s=10)
    with pytest.raises(EvaluationError, match="must come from a dev run"):
        evaluate_split(ev, post)
    result = evaluate_split(ev, post, thresholds=thresholds, thresholds_chosen_on=chosen_on)
    out = write_evaluation(result, tmp_path / "eval")
    data = json.loads(out.read_text())
    for s in ("ovlp", "taes", "epoch", "szcore"):
        for t in ("10", "5", "2.5", "1"):
            assert f"{s}_sensitivity_at_{t}fa" in data and f"{s}_fa_per_24h_at_{t}fa" in data
    for t in ("10", "5", "2.5", "1"):
        assert data[f"threshold_at_{t}fa"] == thresholds[float(t)]
    assert data["split"] == "eval" and data["thresholds_chosen_on"] == "dev"
    assert data["n_ref_seizures"] == 2  # labels were loaded
    assert data["ovlp_sensitivity_at_10fa"] == 1.0 and data["ovlp_fa_per_24h_at_10fa"] == 0.0
    assert data["auroc"] > 0.99 and "ovlp" in data["scorers"]

    # the written hypothesis and reference files rescore to the same OVLP figures through `ictal score`
    runner = CliRunner()
    res = runner.invoke(app, ["score", str(tmp_path / "eval/ref.list"), str(tmp_path / "eval/hyp.list"),
                              "--json", str(tmp_path / "rescore.json"), "--scorers", "ovlp"])  # fmt: skip
    assert res.exit_code == 0, res.output
    rescored = json.loads((tmp_path / "rescore.json").read_text())["ovlp"]
    assert rescored["sensitivity"] == data["ovlp_sensitivity_at_10fa"]
    assert rescored["targets"] == 2 and rescored["false_alarms"] == 0

    paths = write_plots(result, tmp_path / "eval")
    assert paths[0].name == "sensitivity_fa.png" and len(paths) == 3
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_labels_matter(cache: Path, fake_cache, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The same traces scored against a label-free split are refused, not reported as perfect."""
    root = tmp_path / "nolabels"
    _make_split(fake_cache, root, "dev", [("pnol_s001_t000", FS * 300, [])])
    with pytest.raises(EvaluationError, match="no seizure"):
        split_traces(root, "dev", model=Channel0Detector())
    with pytest.raises(EvaluationError, match="no cached recordings"):
        split_traces(root, "eval", model=Channel0Detector())


def test_choose_on_eval_is_labelled_a_leak(cache: Path) -> None:
    ev = split_traces(cache, "eval", detector="line_length")
    result = evaluate_split(ev, PostConfig(), allow_choose_on_this_split=True)
    assert "leak" in result.thresholds_chosen_on and "leak" in result.metrics["thresholds_chosen_on"]
    assert result.metrics["detector"] == "line_length"


def test_streamable_model_scored_as_predict_scores_it(cache: Path) -> None:
    """A streamable model's dev traces are the continuous ones predict/stream use, not windowed ones."""
    from ictal.infer.scorers import score_signal
    from ictal.models.v3 import build_v3

    torch.manual_seed(0)
    model = build_v3({"preset": "tiny", "streamable": True}).eval()
    traces = split_traces(cache, "dev", model=model, window_s=60, stride_s=10)
    signal = np.load(cache / "dev" / "pdev_s001_t001.npy", mmap_mode="r")
    expected = score_signal(model, signal, window=60 * FS, stride=10 * FS, mode="continuous")
    np.testing.assert_array_equal(traces.traces[1], expected)


def test_an_over_confident_model_gets_thresholds_between_its_own_levels() -> None:
    """Every frame above 0.999 (seizures at 0.99995, background at 0.9991-0.9993): the fixed grid ends at 0.999,
    where everything is one event; the sweep also tries the traces' own upper quantiles and finds the seizures.
    Where no threshold reaches a target, the table says so."""
    from ictal.infer.evaluate import SplitTraces, headline, thresholds_grid

    rng = np.random.default_rng(0)
    rate, seconds = 16, 900
    traces, refs = [], []
    for i in range(4):
        p = 0.9991 + 2e-4 * rng.random(rate * seconds)
        start = 100 + 150 * i
        p[start * rate : (start + 60) * rate] = 0.99995
        traces.append(p.astype(np.float64))
        refs.append([(float(start), float(start + 60))])
    split = SplitTraces("dev", "model", [f"r{i}" for i in range(4)], traces, refs, [float(seconds)] * 4)
    post = PostConfig()
    grid = thresholds_grid(post, traces)
    assert grid.max() > 0.9999 and np.all(np.diff(grid) > 0)
    result = evaluate_split(split, post)
    m = result.metrics
    assert m["ovlp_sensitivity_at_10fa"] == 1.0 and m["ovlp_fa_per_24h_at_10fa"] == 0.0
    assert m["threshold_at_10fa"] > 0.999 and m["target_met_at_10fa"] is True
    unmet = dict(m, target_met_at_1fa=False)
    assert any("not met" in row[1] for row in headline(unmet) if row[1].startswith("1 "))


def test_a_model_that_does_not_beat_a_trivial_detector_is_said_to(tmp_path: Path) -> None:
    """Every recording holds a seizure: calling everything seizure scores 100 % at 0 FA/24h under OVLP, and a
    model no better is warned about; one better is not."""
    from ictal.infer.evaluate import SplitTraces, all_seizure_traces, baselines_block, evaluate_baselines

    rate, seconds = 16, 300
    refs = [[(100.0, 160.0)] for _ in range(3)]
    flat = [np.full(rate * seconds, 0.3) for _ in range(3)]
    split = SplitTraces("dev", "model", ["a", "b", "c"], flat, refs, [float(seconds)] * 3)
    post = PostConfig()
    model = evaluate_split(split, post)
    baselines = evaluate_baselines({"all_seizure": all_seizure_traces(split)}, post)
    block, warnings = baselines_block(model, baselines)
    assert block["all_seizure"]["ovlp_sensitivity_at_10fa"] == 1.0
    assert block["all_seizure"]["ovlp_fa_per_24h_at_10fa"] == 0.0
    assert len(warnings) == 1 and "does not beat the all seizure detector on dev" in warnings[0]
    # On this split a perfect model cannot be told from it either (100 % at 0 FA/24h both): warned too.
    good = []
    for ref in refs:
        p = np.full(rate * seconds, 0.05)
        p[int(ref[0][0]) * rate : int(ref[0][1]) * rate] = 0.95
        good.append(p)
    perfect = evaluate_split(SplitTraces("dev", "model", ["a", "b", "c"], good, refs, [float(seconds)] * 3), post)
    assert len(baselines_block(perfect, baselines)[1]) == 1
    # A seizure-free recording tells them apart: everything-seizure raises a false alarm there, the model not.
    with_free = SplitTraces("dev", "model", ["a", "b", "c", "d"], [*good, np.full(rate * seconds, 0.05)],
                            [*refs, []], [float(seconds)] * 4)  # fmt: skip
    baselines = evaluate_baselines({"all_seizure": all_seizure_traces(with_free)}, post)
    assert baselines_block(evaluate_split(with_free, post), baselines)[1] == []
