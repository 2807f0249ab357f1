"""``ictal predict`` end to end: outputs that parse back, a bad file among good ones, thresholds, the picture."""

from __future__ import annotations

import csv
import json
import struct
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch
from timescoring import scoring as ts_scoring
from timescoring.annotations import Annotation as TsAnnotation
from typer.testing import CliRunner

from ictal.cli.main import app
from ictal.config.schema import config_from_dict
from ictal.infer.evaluate import EvaluationError
from ictal.infer.predict import (
    TSV_COLUMNS,
    PredictConfig,
    events_tsv,
    find_recordings,
    predict_eeg,
    predict_recording,
    resolve_threshold,
    write_prediction,
)
from ictal.io.annotations import read_annotations, term_annotation, write_annotations
from ictal.io.channels import CANONICAL_19
from ictal.io.edf import read_edf, recording_from_mne
from ictal.io.edf_write import write_edf
from ictal.models.checkpoint import CHECKPOINT_FORMAT, load_model, save_checkpoint
from ictal.models.config import V3Config
from ictal.models.v3 import build_v3
from ictal.post.events import SeizureEvent
from ictal.synthetic.signal import SOURCE_CHANNELS, synthesize_recording


def _edf(path: Path, seconds: int, rate: float, seed: int) -> tuple[Path, list[tuple[float, float]]]:
    rec = synthesize_recording(seconds, rate, 1, np.random.default_rng(seed))
    rows = [SOURCE_CHANNELS.index(c) for c in CANONICAL_19]
    written = write_edf(path, list(rec.data[rows]), rate, [f"EEG {c.upper()}-REF" for c in CANONICAL_19])
    return written, [(s.start, s.stop) for s in rec.seizures]


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A checkpoint (tiny, 10 s windows), two good recordings in two folders, a broken one, a dev results.json."""
    root = tmp_path_factory.mktemp("predict")
    cfg = config_from_dict({"data": {"window_s": 10, "stride_s": 5}, "model": {"preset": "tiny"}})
    torch.manual_seed(0)
    model = build_v3(V3Config.from_mapping(cfg.model.to_dict()))
    state = {
        "format": CHECKPOINT_FORMAT, "kind": "best", "config": cfg.model_dump(mode="json"),
        "model": model.state_dict(), "epoch": 3, "step": 30, "ictal_version": "0.1.0",
    }  # fmt: skip
    checkpoint = save_checkpoint(root / "run" / "best.pt", state)
    good_a, truth_a = _edf(root / "in" / "a" / "pat1_s001_t000.edf", 60, 250.0, 1)
    good_b, truth_b = _edf(root / "in" / "b" / "pat2_s001_t000.EDF", 44, 256.0, 2)
    broken = root / "in" / "b" / "broken.edf"
    broken.write_bytes(b"0       this is not an EDF header" + bytes(300))
    # A threshold that gives events for this untrained model: the median of one recording's trace.
    loaded, loaded_cfg, _ = load_model(checkpoint)
    trace = predict_recording(loaded, good_a, loaded_cfg, resolve_threshold(loaded_cfg.post)).trace
    theta = float(np.quantile(trace, 0.5))
    results = root / "dev" / "results.json"
    results.parent.mkdir()
    results.write_text(json.dumps({"split": "dev", **{f"threshold_at_{t}fa": theta for t in ("10", "5", "2.5", "1")}}))
    return {
        "root": root, "checkpoint": checkpoint, "inputs": root / "in", "results": results, "theta": theta,
        "good": {"pat1_s001_t000": (good_a, truth_a, 60.0), "pat2_s001_t000": (good_b, truth_b, 44.0)},
        "broken": broken,
    }  # fmt: skip


@pytest.fixture(scope="module")
def predicted(setup: dict[str, object]) -> tuple[Path, str, int]:
    """One CLI run over the input folder (two good files, one broken): (out dir, output, exit code)."""
    out = Path(str(setup["root"])) / "out"
    res = CliRunner().invoke(
        app, ["predict", str(setup["checkpoint"]), str(setup["inputs"]), "--out", str(out), "--threshold-from",
              str(setup["results"]), "--device", "cpu", "--chunk-s", "25", "--plot-events", "2"],
    )  # fmt: skip
    return out, res.output, res.exit_code


def test_a_recording_in_memory_or_from_mne_is_predicted_as_its_file(setup: dict[str, object], tmp_path: Path) -> None:
    model, cfg, _ = load_model(Path(str(setup["checkpoint"])))
    threshold = resolve_threshold(cfg.post, Path(str(setup["results"])))
    good = setup["good"]
    assert isinstance(good, dict)
    path = good["pat2_s001_t000"][0]
    predict = PredictConfig(chunk_s=25)
    from_file = predict_recording(model, path, cfg, threshold, predict=predict)
    rec = read_edf(path)
    in_memory = predict_eeg(model, rec, cfg, threshold, predict=predict)
    np.testing.assert_array_equal(in_memory.trace, from_file.trace)
    assert in_memory.events == from_file.events and in_memory.name == "pat2_s001_t000"
    from_mne = predict_eeg(model, recording_from_mne(rec.to_mne()), cfg, threshold, predict=predict)
    np.testing.assert_allclose(from_mne.trace, from_file.trace, atol=1e-5)  # through volts and back
    paths = write_prediction(from_mne, tmp_path, cfg, recording=recording_from_mne(rec.to_mne()))
    assert paths["png"].stat().st_size > 20_000 and (tmp_path / "mne_Raw.csv_bi").is_file()
    with pytest.raises(ValueError, match="19 canonical channels"):
        predict_eeg(model, read_edf(path, channels=CANONICAL_19[:5]), cfg, threshold)


def test_a_broken_file_is_reported_and_the_others_are_done(predicted: tuple[Path, str, int]) -> None:
    out, output, code = predicted
    assert code == 1, output
    assert "broken.edf" in output and "failed" in output
    assert "2 recording(s) predicted" in output
    for name in ("pat1_s001_t000", "pat2_s001_t000"):
        for suffix in (".csv_bi", "_events.tsv", ".json", ".png"):
            assert (out / f"{name}{suffix}").is_file(), f"{name}{suffix}"
    assert not list(out.glob("broken*"))
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_json_names_events_threshold_model_and_versions(
    predicted: tuple[Path, str, int], setup: dict[str, object]
) -> None:
    out, _, _ = predicted
    data = json.loads((out / "pat1_s001_t000.json").read_text())
    assert data["threshold"] == pytest.approx(float(str(setup["theta"])))
    assert "threshold_at_10fa" in data["threshold_source"] and "chosen on dev" in data["threshold_source"]
    assert data["n_events"] == len(data["events"]) >= 1
    assert all(0.0 <= e["confidence"] <= 1.0 and e["duration_s"] > 0 for e in data["events"])
    assert data["model"]["checkpoint"].endswith("best.pt") and data["model"]["epoch"] == 3
    assert data["model"]["preset"] == "tiny" and data["model"]["streamable"] is False
    assert set(data["software"]) >= {"ictal", "torch", "numpy", "python", "mamba_backend"}
    assert "overlapping windows" in data["scoring"] and data["duration_s"] == 60.0


def test_csv_bi_parses_back_and_scores_with_ictal_score(predicted: tuple[Path, str, int], tmp_path: Path,
                                                        setup: dict[str, object]) -> None:  # fmt: skip
    out, _, _ = predicted
    good = setup["good"]
    assert isinstance(good, dict)
    ref_lines, hyp_lines = [], []
    for name, (_, truth, duration) in good.items():
        hyp = read_annotations(out / f"{name}.csv_bi")
        events = json.loads((out / f"{name}.json").read_text())["events"]
        assert hyp.duration == duration
        assert hyp.seizure_intervals() == [
            (round(e["onset_s"], 4), round(min(e["stop_s"], duration), 4)) for e in events
        ]
        write_annotations(tmp_path / f"{name}.csv_bi", term_annotation(truth, duration, name))
        ref_lines.append(str(tmp_path / f"{name}.csv_bi"))
        hyp_lines.append(str(out / f"{name}.csv_bi"))
    (tmp_path / "ref.list").write_text("\n".join(ref_lines) + "\n")
    (tmp_path / "hyp.list").write_text("\n".join(hyp_lines) + "\n")
    (tmp_path / "self.list").write_text("\n".join(hyp_lines) + "\n")
    runner = CliRunner()
    res = runner.invoke(app, ["score", str(tmp_path / "ref.list"), str(tmp_path / "hyp.list")])
    assert res.exit_code == 0, res.output
    assert "NEDC OVLP" in res.output
    # Scored against itself, every predicted event is a hit: the files carry exactly the events.
    res = runner.invoke(
        app, ["score", str(tmp_path / "self.list"), str(tmp_path / "self.list"), "--json", str(tmp_path / "s.json")]
    )
    assert res.exit_code == 0, res.output
    ovlp = json.loads((tmp_path / "s.json").read_text())["ovlp"]
    assert ovlp["sensitivity"] == 1.0 and ovlp["fa_per_24h"] == 0.0


def test_tsv_is_bids_szcore_and_agrees_with_csv_bi_in_timescoring(predicted: tuple[Path, str, int]) -> None:
    out, _, _ = predicted
    for name, duration in (("pat1_s001_t000", 60.0), ("pat2_s001_t000", 44.0)):
        with (out / f"{name}_events.tsv").open(newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        assert rows and tuple(rows[0]) == TSV_COLUMNS
        seizures = [r for r in rows if r["eventType"] == "sz"]
        for r in rows:
            datetime.strptime(r["dateTime"], "%Y-%m-%d %H:%M:%S")  # the SzCORE dateTime format
            assert float(r["recordingDuration"]) == duration and r["channels"] == "n/a"
        tsv_events = [(float(r["onset"]), float(r["onset"]) + float(r["duration"])) for r in seizures]
        csv_events = read_annotations(out / f"{name}.csv_bi").seizure_intervals()
        np.testing.assert_allclose(np.reshape(tsv_events, (-1, 2)), np.reshape(csv_events, (-1, 2)), atol=1e-3)
        fs = 16
        ref = TsAnnotation(csv_events, fs, int(duration * fs))
        hyp = TsAnnotation(tsv_events, fs, int(duration * fs))
        assert np.array_equal(ref.mask, hyp.mask)
        if csv_events:
            scores = ts_scoring.EventScoring(ref, hyp)
            assert scores.sensitivity == 1.0 and scores.fp == 0


def test_picture_shows_trace_and_event_panels(predicted: tuple[Path, str, int]) -> None:
    out, _, _ = predicted
    png = out / "pat1_s001_t000.png"
    width, height = _png_size(png)
    n_events = json.loads((out / "pat1_s001_t000.json").read_text())["n_events"]
    panels = min(n_events, 2)  # --plot-events 2
    assert width >= 1100 and height >= 250 + 400 * panels  # trace panel plus one 19-channel panel per event
    assert png.stat().st_size > 50_000


def test_all_good_files_exit_0_and_without_results_the_config_threshold_is_used(
    setup: dict[str, object], tmp_path: Path
) -> None:
    good = setup["good"]
    assert isinstance(good, dict)
    path = good["pat2_s001_t000"][0]
    res = CliRunner().invoke(
        app, ["predict", str(setup["checkpoint"]), str(path), "--out", str(tmp_path), "--device", "cpu",
              "--plot-events", "0"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "pat2_s001_t000.json").read_text())
    assert data["threshold"] == 0.86 and "post.tau_on" in data["threshold_source"]
    assert "1 recording(s) predicted" in res.output


def test_bad_options_are_refused(setup: dict[str, object], tmp_path: Path) -> None:
    runner = CliRunner()
    ck, inputs = str(setup["checkpoint"]), str(setup["inputs"])
    res = runner.invoke(app, ["predict", ck, inputs, "--threshold-from", str(setup["results"]), "--fa-target", "3"])
    assert res.exit_code == 1 and "10, 5, 2.5, 1" in res.output
    res = runner.invoke(app, ["predict", ck, inputs, "--scoring", "sideways"])
    assert res.exit_code == 2 and "--scoring" in res.output
    res = runner.invoke(app, ["predict", str(tmp_path / "none.pt"), inputs])
    assert res.exit_code == 1 and "none.pt" in res.output
    # A bad environment setting: one error before any recording, naming the variable and what it takes.
    res = runner.invoke(app, ["predict", ck, inputs, "--out", str(tmp_path / "env")], env={"ICTAL_CPU_SCAN": "maybe"})
    assert res.exit_code == 1 and "ICTAL_CPU_SCAN='maybe' must be 1/true/yes/on or 0" in res.output
    assert not (tmp_path / "env").exists()
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(EvaluationError, match="threshold_at_10fa"):
        resolve_threshold(config_from_dict({}).post, tmp_path / "x.json", PredictConfig().fa_target)


def test_find_recordings_reports_missing_inputs_and_name_clashes(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "empty").mkdir()
    for folder in ("a", "b"):
        (tmp_path / folder / "rec.edf").write_bytes(b"x")
    (tmp_path / "a" / "other.EDF").write_bytes(b"x")
    paths, problems = find_recordings(
        [tmp_path / "a", tmp_path / "a" / "rec.edf", tmp_path / "b", tmp_path / "empty", tmp_path / "gone.edf"]
    )
    assert [p.name for p in paths] == ["other.EDF", "rec.edf"]
    text = " | ".join(f"{p.path.name}: {p.problem}" for p in problems)
    assert "outputs would collide" in text and "no .edf files" in text and "no such file" in text
    # Output names are made file-safe, so names that differ only in unsafe characters collide too.
    (tmp_path / "c").mkdir()
    for name in ("x y.edf", "x_y.edf"):
        (tmp_path / "c" / name).write_bytes(b"x")
    paths, problems = find_recordings([tmp_path / "c"])
    assert len(paths) == 1 and len(problems) == 1 and "outputs would collide" in problems[0].problem


def test_events_tsv_without_events_is_one_background_row() -> None:
    text = events_tsv([], 120.0, None)
    lines = text.strip().split("\n")
    assert lines[0].split("\t") == list(TSV_COLUMNS)
    assert lines[1].split("\t") == ["0.0000", "120.0000", "bckg", "n/a", "n/a", "n/a", "120.0000"]
    clipped = events_tsv([SeizureEvent(110.0, 121.0, 0.9)], 120.0, datetime(2020, 1, 2, 3, 4, 5))
    assert clipped.strip().split("\n")[1].split("\t")[:4] == ["110.0000", "10.0000", "sz", "0.9000"]
    assert "2020-01-02 03:04:05" in clipped
