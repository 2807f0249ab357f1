"""build-cache / scan-cache / clean-cache: contents, resume after a kill, parameters, failures, manifest."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ictal.cli.main import app
from ictal.data.cache import (
    CacheError,
    CacheMismatchError,
    CacheParams,
    check_cache,
    list_cached,
    remove_dead_tmp_files,
)
from ictal.data.cache_build import build_cache, parse_shard
from ictal.data.config import DataConfig
from ictal.data.corpus import discover_corpus
from ictal.data.manifest import FULL, NONE, PARTIAL, WindowTable, read_manifest, scan_split
from ictal.io.annotations import intervals_to_mask, read_annotations
from ictal.io.edf import read_edf
from ictal.signal.preprocess import PreprocessConfig, preprocess

SMALL = DataConfig(window_s=10, stride_s=5)
REPO = Path(__file__).resolve().parents[1]


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` (build reports aside: they hold timings and this run's counts) -> its bytes."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith("build_report")
    }


def good_names(root: Path, split: str) -> list[str]:
    return [r.bname for r in list_cached(root, split)[0]]


def test_cached_recording_is_the_preprocessed_edf(synthetic_corpus: Path, synthetic_cache: Path) -> None:
    good, problems = list_cached(synthetic_cache, "train")
    corpus_train = discover_corpus(synthetic_corpus).split("train")
    assert problems == [] and [r.bname for r in good] == [r.bname for r in corpus_train]
    for rec, files in zip(good, corpus_train, strict=True):
        stored = rec.signal()
        assert isinstance(stored, np.memmap) and stored.dtype == np.float32 and stored.shape == (19, rec.n_samples)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # header repairs of the synthetic quirks
            eeg = read_edf(files.edf)
        np.testing.assert_array_equal(np.asarray(stored), preprocess(eeg.data, eeg.sfreq, PreprocessConfig()))
        ann = read_annotations(files.csv_bi)  # type: ignore[arg-type]
        np.testing.assert_allclose(np.asarray(rec.seizure_intervals).reshape(-1, 2),
                                   np.asarray(ann.seizure_intervals()).reshape(-1, 2), atol=1e-6)  # fmt: skip
        assert rec.meta["source"] == files.rel and rec.meta["montage"] == files.montage
        assert rec.meta["npy_bytes"] == rec.npy.stat().st_size
    params = json.loads((synthetic_cache / "cache.json").read_text())["params"]
    assert params["preprocess"]["notch_hz"] == 60 and params["dtype"] == "float32"
    assert params["label_source"] == "csv_bi" and "mysz" in params["seizure_labels"] and params["format_version"] == 1
    assert (params["window_s"], params["stride_s"]) == (10.0, 5.0)


def test_resume_after_kill_is_byte_identical(synthetic_corpus: Path, tmp_path: Path) -> None:
    """Kill a build (SIGKILL, mid-way), rerun it: the cache equals an uninterrupted build, byte for byte."""
    args = ["--data-dir", str(synthetic_corpus), "--split", "train", "--no-progress"]
    reference = tmp_path / "reference"
    build_cache(synthetic_corpus, reference, "train", progress=False)
    total = len(good_names(reference, "train"))

    cache = tmp_path / "resumed"
    cmd = [sys.executable, "-m", "ictal", "build-cache", "--cache-dir", str(cache), *args]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=REPO)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list((cache / "train").glob("*.json"))) >= 1:
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_at_kill = good_names(cache, "train")
    assert 1 <= len(done_at_kill) < total, "the build finished before it could be interrupted"
    assert not (cache / "train" / "manifest.csv").exists()

    report = build_cache(synthetic_corpus, cache, "train", progress=False)  # the rerun, here in-process
    assert (report.built, report.skipped, report.failed) == (total - len(done_at_kill), len(done_at_kill), [])
    assert not list((cache / "train").glob(".*.tmp"))
    assert tree_bytes(cache) == tree_bytes(reference)


def test_half_written_states_are_not_taken_as_good(synthetic_corpus: Path, tmp_path: Path) -> None:
    """Each state a kill can leave: a temporary file, an .npy without its .json, an .npy cut short."""
    cache = tmp_path / "cache"
    build_cache(synthetic_corpus, cache, "train", progress=False)
    reference = tree_bytes(cache)
    folder = cache / "train"
    names = good_names(cache, "train")
    (folder / f"{names[0]}.json").unlink()  # killed between the two renames
    npy = folder / f"{names[1]}.npy"
    npy.write_bytes(npy.read_bytes()[:1000])  # not possible with renames, but a damaged file must not pass
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    tmp = folder / f".{names[2]}.npy.{socket.gethostname()}-{dead.stdout.strip()}.abc123.tmp"
    tmp.write_bytes(b"\x93NUMPY partial")  # a writer that died mid-write
    good, problems = list_cached(cache, "train")
    assert [r.bname for r in good] == names[2:]
    assert len(problems) == 3 and any("temporary" in p for p in problems)
    report = build_cache(synthetic_corpus, cache, "train", progress=False)
    assert (report.built, report.skipped, report.failed) == (2, len(names) - 2, [])
    assert not tmp.exists()
    assert tree_bytes(cache) == reference


def test_live_writers_tmp_files_are_kept(tmp_path: Path) -> None:
    import socket

    live = tmp_path / f".x.npy.{socket.gethostname()}-{os.getpid()}.abc.tmp"
    other_host = tmp_path / ".y.npy.elsewhere-1.abc.tmp"
    live.write_bytes(b"")
    other_host.write_bytes(b"")
    assert remove_dead_tmp_files(tmp_path) == []
    os.utime(other_host, (time.time() - 7 * 3600,) * 2)
    assert remove_dead_tmp_files(tmp_path) == [other_host]


def test_parameter_mismatch_refused(synthetic_corpus: Path, synthetic_cache: Path, tmp_path: Path) -> None:
    europe = PreprocessConfig(notch_hz=50)
    with pytest.raises(CacheMismatchError) as err:
        check_cache(synthetic_cache, CacheParams.from_configs(europe, SMALL))
    text = str(err.value)
    assert "preprocess.notch_hz: cache has 60, this run wants 50" in text and "clean-cache" in text
    with pytest.raises(CacheMismatchError, match="data.cache_dtype"):
        check_cache(synthetic_cache, CacheParams.from_configs(None, DataConfig(cache_dtype="float16")))
    with pytest.raises(CacheMismatchError, match="data.label_source"):
        check_cache(synthetic_cache, CacheParams.from_configs(None, DataConfig(label_source="csv")))
    # Window and stride are cut at read time: another window reuses the arrays.
    check_cache(synthetic_cache, CacheParams.from_configs(None, DataConfig(window_s=60, stride_s=10)))
    # The CLI refuses too, before touching the cache.
    before = tree_bytes(synthetic_cache)
    config = tmp_path / "eu.yaml"
    config.write_text("preprocess:\n  notch_hz: 50\n")
    result = CliRunner().invoke(
        app,
        ["build-cache", "--data-dir", str(synthetic_corpus), "--cache-dir", str(synthetic_cache), "--split", "dev",
         "--config", str(config), "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 1 and "notch_hz" in result.output and "clean-cache" in result.output
    assert tree_bytes(synthetic_cache) == before


def test_corrupt_edf_reported_others_built(synthetic_corpus: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(synthetic_corpus, corpus)
    recs = discover_corpus(corpus).split("train")
    bad = recs[1]
    bad.edf.write_bytes(b"0       this is not an EDF file" + bytes(300))
    missing_labels = recs[2]
    missing_labels.csv_bi.unlink()  # type: ignore[union-attr]
    result = CliRunner().invoke(
        app,
        ["build-cache", "--data-dir", str(corpus), "--cache-dir", str(tmp_path / "c"), "--split", "train",
         "--workers", "2", "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"{len(recs) - 2} built, 0 skipped, 2 failed" in result.output
    assert f"FAILED {bad.rel}: {bad.edf}" in result.output
    assert f"FAILED {missing_labels.rel}" in result.output and "csv_bi" in result.output
    report = json.loads((tmp_path / "c" / "train" / "build_report.json").read_text())
    assert sorted(f["file"] for f in report["failed"]) == sorted([bad.rel, missing_labels.rel])
    assert good_names(tmp_path / "c", "train") == [r.bname for r in recs if r not in (bad, missing_labels)]
    strict = CliRunner().invoke(
        app,
        ["build-cache", "--data-dir", str(corpus), "--cache-dir", str(tmp_path / "c"), "--split", "train", "--strict",
         "--no-progress"],
    )  # fmt: skip
    assert strict.exit_code == 1 and f"0 built, {len(recs) - 2} skipped, 2 failed" in strict.output


def test_shards_and_workers_build_the_same_cache(synthetic_corpus: Path, synthetic_cache: Path, tmp_path: Path) -> None:
    cache = tmp_path / "sharded"
    first = build_cache(synthetic_corpus, cache, "train", data=SMALL, shard=(0, 2), workers=2, progress=False)
    n_train = len(discover_corpus(synthetic_corpus).split("train"))
    assert first.built == (n_train + 1) // 2
    assert (cache / "train" / "build_report.shard-0-of-2.json").is_file()
    build_cache(synthetic_corpus, cache, "train", data=SMALL, shard=(1, 2), progress=False)
    build_cache(synthetic_corpus, cache, "dev", data=SMALL, limit_files=1, progress=False)
    assert len(good_names(cache, "dev")) == 1
    build_cache(synthetic_corpus, cache, "dev", data=SMALL, progress=False)
    assert tree_bytes(cache) == tree_bytes(synthetic_cache)
    assert parse_shard("3/4") == (3, 4)
    for bad in ("4/4", "1", "a/b", "0/0"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)


def test_cache_location_refused(synthetic_corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(CacheError, match="inside"):
        build_cache(synthetic_corpus, synthetic_corpus / "cache", "dev", progress=False)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "thesis.tex").write_text("x")
    with pytest.raises(CacheError, match="not a cache"):
        build_cache(synthetic_corpus, tmp_path / "busy", "dev", progress=False)


def test_build_summary_counts(synthetic_corpus: Path, synthetic_cache: Path) -> None:
    report = build_cache(synthetic_corpus, synthetic_cache, "train", data=SMALL, progress=False)  # all skipped
    good, _ = list_cached(synthetic_cache, "train")
    assert (report.built, report.skipped, report.failed) == (0, len(good), [])
    assert report.hours == pytest.approx(sum(r.n_samples for r in good) / 256 / 3600)
    assert report.seizure_hours == pytest.approx(sum(r.seizure_s for r in good) / 3600)
    c = report.window_counts
    assert c["partial"] + c["full"] > 0 and c["none"] > 0
    assert report.seizure_ratio == pytest.approx((c["partial"] + c["full"]) / sum(c.values()))


# ------------------------------------------------------------------------------------------------- manifest


def test_manifest_categories_on_hand_made_labels(tmp_path: Path, fake_cache: Callable[..., None]) -> None:
    fake_cache(
        tmp_path,
        "train",
        [
            ("a_seizure_in_the_middle", 40 * 256, [(12.0, 27.0)]),
            ("b_almost_full", 20 * 256, [(0.05, 10.0), (10.15, 20.0)]),  # 9.95 s and 9.85 s of the first 10 s
            ("c_no_seizure", 30 * 256, []),
            ("d_shorter_than_a_window", 9 * 256, [(0.0, 9.0)]),
            ("e_seizure_everywhere", 15 * 256, [(0.0, 15.0)]),
        ],
    )
    good, _ = list_cached(tmp_path, "train")
    table = WindowTable.from_recordings(good, 10.0, 5.0)
    frac = {
        (good[r].bname[0], s // 256): f for r, s, f in zip(table.recording, table.start, table.fraction, strict=True)
    }
    assert frac[("a", 0)] == 0 and frac[("a", 5)] == pytest.approx(0.3) and frac[("a", 10)] == pytest.approx(0.8)
    assert frac[("a", 15)] == 1.0 and frac[("a", 20)] == pytest.approx(0.7) and frac[("a", 30)] == 0
    assert frac[("b", 0)] == pytest.approx(round(9.95 * 256) / 2560, abs=1e-3)  # >= 0.99: full
    assert frac[("b", 10)] == pytest.approx(1 - 0.15 * 256 / 2560, abs=1e-3)  # 0.985: partial
    assert not any(k[0] == "d" for k in frac)  # shorter than a window: no training window
    cats = dict(zip(frac, table.category.tolist(), strict=True))
    assert [cats[("a", s)] for s in range(0, 31, 5)] == [NONE, PARTIAL, PARTIAL, FULL, PARTIAL, PARTIAL, NONE]
    assert (cats[("b", 0)], cats[("b", 5)], cats[("b", 10)]) == (FULL, PARTIAL, PARTIAL)
    assert [cats[("e", s)] for s in (0, 5)] == [FULL, FULL]
    assert table.counts() == {"none": 2 + 5, "partial": 4 + 2, "full": 1 + 1 + 2}
    # The fraction is exactly the mean of the sample mask the loader uses.
    for r, s, f in zip(table.recording, table.start, table.fraction, strict=True):
        rec = good[r]
        mask = intervals_to_mask(rec.seizure_intervals, rec.n_samples, 256.0)
        assert f == mask[s : s + table.window].mean()


def test_scan_cache_cli(tmp_path: Path, fake_cache: Callable[..., None], synthetic_corpus: Path) -> None:
    fake_cache(tmp_path / "c", "train", [("a", 40 * 256, [(12.0, 27.0)]), ("c", 30 * 256, [])])
    runner = CliRunner()
    result = runner.invoke(app, ["scan-cache", "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert "none 7  partial 4  full 1" in result.output and "Seizure ratio: 41.7%" in result.output
    header, rows = read_manifest(tmp_path / "c" / "train" / "manifest.csv")
    assert header["window_s"] == "10" and len(rows) == 12
    assert rows[3] == ("a", 15.0, 1.0, "full")
    # Another window: the manifest is rewritten for it.
    result = runner.invoke(
        app, ["scan-cache", "--cache-dir", str(tmp_path / "c"), "--window-s", "20", "--stride-s", "10"]
    )
    assert "none 2  partial 3  full 0" in result.output
    # No seizure window anywhere: exit 2.
    fake_cache(tmp_path / "quiet", "dev", [("q", 60 * 256, [])])
    result = runner.invoke(app, ["scan-cache", "--cache-dir", str(tmp_path / "quiet")])
    assert result.exit_code == 2 and "Seizure ratio: 0.0%" in result.output and "no seizure window" in result.output
    # Stale and missing files against the corpus, and an interrupted entry.
    cache = tmp_path / "real"
    build_cache(synthetic_corpus, cache, "dev", limit_files=1, progress=False)
    dev = discover_corpus(synthetic_corpus).split("dev")
    meta_path = cache / "dev" / f"{dev[0].bname}.json"
    meta = json.loads(meta_path.read_text())
    meta["labels_sha1"] = "0" * 40
    meta_path.write_text(json.dumps(meta))
    (cache / "dev" / "orphan.npy").write_bytes(b"")
    scan = scan_split(cache, "dev", data_dir=synthetic_corpus)
    assert scan.missing == [r.rel for r in dev[1:]] and len(scan.stale) == 1 and dev[0].rel in scan.stale[0]
    assert any("orphan.npy" in p for p in scan.problems)
    result = runner.invoke(app, ["scan-cache", "--cache-dir", str(cache)])  # corpus found through cache.json
    assert "missing (in the corpus, not cached): 1" in result.output and "stale: 1" in result.output
    assert "orphan.npy" in result.output
    result = runner.invoke(app, ["scan-cache", "--cache-dir", str(tmp_path / "nothing")])
    assert result.exit_code == 1 and "not a cache" in result.output


def test_clean_cache(tmp_path: Path, fake_cache: Callable[..., None]) -> None:
    runner = CliRunner()
    not_cache = tmp_path / "data"
    not_cache.mkdir()
    (not_cache / "keep.edf").write_bytes(b"x")
    result = runner.invoke(app, ["clean-cache", "--cache-dir", str(not_cache), "--yes"])
    assert result.exit_code == 1 and "not a cache" in result.output and (not_cache / "keep.edf").exists()

    cache = tmp_path / "c"
    fake_cache(cache, "train", [("a", 20 * 256, [])])
    fake_cache(cache, "dev", [("b", 20 * 256, [])])
    result = runner.invoke(app, ["clean-cache", "--cache-dir", str(cache)], input="n\n")
    assert result.exit_code == 1 and "train/: 2 file(s)" in result.output and "nothing removed" in result.output
    assert (cache / "train" / "a.npy").exists()
    result = runner.invoke(app, ["clean-cache", "--cache-dir", str(cache), "--split", "dev"], input="y\n")
    assert result.exit_code == 0 and not (cache / "dev").exists() and (cache / "train" / "a.npy").exists()
    (cache / "train" / "notes.txt").write_text("mine")
    result = runner.invoke(app, ["clean-cache", "--cache-dir", str(cache), "--yes"])
    assert result.exit_code == 1 and "notes.txt" in result.output and (cache / "train" / "a.npy").exists()
    (cache / "train" / "notes.txt").unlink()
    result = runner.invoke(app, ["clean-cache", "--cache-dir", str(cache), "--yes"])
    assert result.exit_code == 0 and not cache.exists()


def test_changed_source_is_rebuilt(synthetic_corpus: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(synthetic_corpus / "dev", corpus / "dev")
    build_cache(corpus, tmp_path / "c", "dev", progress=False)
    rec = discover_corpus(corpus).split("dev")[0]
    labels = rec.csv_bi
    assert labels is not None
    labels.write_text(labels.read_text().rstrip("\n") + "\nTERM,1.0000,3.0000,seiz,1.0000\n")  # a seizure added
    assert any(rec.rel in s for s in scan_split(tmp_path / "c", "dev", data_dir=corpus).stale)
    report = build_cache(corpus, tmp_path / "c", "dev", progress=False)
    assert report.built == 1 and report.skipped == len(discover_corpus(corpus).split("dev")) - 1
    cached = {r.bname: r for r in list_cached(tmp_path / "c", "dev")[0]}[rec.bname]
    assert cached.seizure_intervals[0] == (1.0, 3.0)
    assert scan_split(tmp_path / "c", "dev", data_dir=corpus).stale == []
