"""Corpus discovery, annotation pairing, patient parsing and the split-leakage check."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ictal.cli.main import app
from ictal.data.corpus import (
    FLAT_SPLIT,
    CorpusError,
    SplitLeakageError,
    discover_corpus,
    official_splits,
    parse_stem,
    patient_overlaps,
    select_split,
)


def _touch_recording(
    root: Path, split: str, patient: str, session: str, token: str, montage: str = "01_tcp_ar"
) -> Path:
    """An (empty) EDF and its two annotation files in TUSZ layout; discovery looks at names only."""
    folder = root / split / patient / f"{session}_2003" / montage
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{patient}_{session}_{token}"
    for suffix in (".edf", ".csv", ".csv_bi"):
        (folder / f"{stem}{suffix}").write_bytes(b"")
    return folder / f"{stem}.edf"


def test_parse_stem() -> None:
    assert parse_stem("aaaaaaac_s001_t000") == ("aaaaaaac", "s001", "t000")
    assert parse_stem("chb01_03") == (None, None, None)
    assert parse_stem("AAAAAAAC_s001_t000") == (None, None, None)


def test_synthetic_corpus_discovered_and_paired(synthetic_corpus: Path) -> None:
    corpus = discover_corpus(synthetic_corpus)
    assert corpus.layout == "tusz"
    assert corpus.splits() == ("train", "dev", "eval")
    n_edf = len(list(synthetic_corpus.rglob("*.edf")))
    assert len(corpus.recordings) == n_edf
    for rec in corpus.recordings:
        assert rec.edf.is_file() and rec.csv_bi is not None and rec.csv is not None
        assert rec.csv_bi.stem == rec.bname == rec.edf.stem
        assert rec.labels("csv_bi") == rec.csv_bi and rec.labels("csv") == rec.csv
        assert rec.rel.startswith(f"{rec.split}/{rec.patient}/")
        assert rec.montage in ("01_tcp_ar", "02_tcp_le", "03_tcp_ar_a")
        assert rec.session is not None and rec.token is not None
    assert corpus.patient_overlaps() == {}
    splits = official_splits(synthetic_corpus)
    assert sum(len(v) for v in splits.values()) == n_edf
    # Patient-disjoint by construction.
    patients = [{r.patient for r in recs} for recs in splits.values()]
    assert not (patients[0] & patients[1]) and not (patients[0] & patients[2]) and not (patients[1] & patients[2])


def test_leakage_detected_and_listed(tmp_path: Path) -> None:
    _touch_recording(tmp_path, "train", "aaaaaaab", "s001", "t000")
    _touch_recording(tmp_path, "train", "aaaaaaac", "s001", "t000")
    _touch_recording(tmp_path, "dev", "aaaaaaac", "s002", "t000")  # aaaaaaac in train and dev
    _touch_recording(tmp_path, "eval", "aaaaaaad", "s001", "t000")
    _touch_recording(tmp_path, "eval", "aaaaaaab", "s003", "t001")  # aaaaaaab in train and eval
    corpus = discover_corpus(tmp_path)
    assert corpus.patient_overlaps() == {"aaaaaaab": ("train", "eval"), "aaaaaaac": ("train", "dev")}
    with pytest.raises(SplitLeakageError) as err:
        official_splits(tmp_path)
    assert "aaaaaaab (train+eval)" in str(err.value) and "aaaaaaac (train+dev)" in str(err.value)
    assert "aaaaaaad" not in str(err.value)
    # Asking for one split still checks all of them.
    with pytest.raises(SplitLeakageError):
        select_split(tmp_path, "eval")


def test_build_cache_refuses_leaky_splits(tmp_path: Path) -> None:
    _touch_recording(tmp_path / "data", "train", "aaaaaaac", "s001", "t000")
    _touch_recording(tmp_path / "data", "eval", "aaaaaaac", "s002", "t000")
    result = CliRunner().invoke(
        app,
        ["build-cache", "--data-dir", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "c"), "--split", "train"],
    )
    assert result.exit_code != 0
    assert "aaaaaaac" in result.output
    assert not (tmp_path / "c").exists()  # refused before anything was written


def test_patient_from_folder_when_stem_is_not_tusz(tmp_path: Path) -> None:
    folder = tmp_path / "train" / "pat01" / "s001_2003" / "01_tcp_ar"
    folder.mkdir(parents=True)
    (folder / "rec_a.edf").write_bytes(b"")
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "rec_b.edf").write_bytes(b"")
    corpus = discover_corpus(tmp_path)
    assert [r.patient for r in corpus.recordings] == ["pat01", "rec_b"]  # a file directly in a split: its own patient
    assert corpus.recordings[0].csv_bi is None and corpus.recordings[0].labels("csv") is None
    assert corpus.patient_overlaps() == {}
    (tmp_path / "eval" / "pat01").mkdir(parents=True)
    (tmp_path / "eval" / "pat01" / "rec_c.edf").write_bytes(b"")
    assert discover_corpus(tmp_path).patient_overlaps() == {"pat01": ("train", "eval")}


def test_flat_folder_and_edf_subfolder(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    (flat / "sub").mkdir(parents=True)
    for name in ("chb01_03.edf", "sub/chb02_01.EDF", "notes.txt"):
        (flat / name).write_bytes(b"")
    (flat / "chb01_03.csv_bi").write_bytes(b"")
    corpus = discover_corpus(flat)
    assert corpus.layout == "flat" and corpus.splits() == (FLAT_SPLIT,)
    assert [r.bname for r in corpus.split(FLAT_SPLIT)] == ["chb01_03", "chb02_01"]
    assert corpus.recordings[0].csv_bi is not None and corpus.recordings[1].csv_bi is None
    with pytest.raises(CorpusError, match="'all'"):
        corpus.split("train")
    # TUSZ unpacks as <root>/edf/{train,dev,eval}: the root above it is accepted.
    _touch_recording(tmp_path / "tusz" / "edf", "dev", "aaaaaaac", "s001", "t000")
    corpus = discover_corpus(tmp_path / "tusz")
    assert corpus.layout == "tusz" and corpus.root == tmp_path / "tusz" / "edf"
    assert [r.rel for r in corpus.split("dev")] == ["dev/aaaaaaac/s001_2003/01_tcp_ar/aaaaaaac_s001_t000.edf"]
    # A lone split folder keeps its split name.
    lone = discover_corpus(tmp_path / "tusz" / "edf" / "dev")
    assert lone.splits() == ("dev",) and lone.recordings[0].patient == "aaaaaaac"


def test_duplicate_names_and_missing_folders_refused(tmp_path: Path, synthetic_corpus: Path) -> None:
    with pytest.raises(CorpusError, match="not found"):
        discover_corpus(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no .edf"):
        discover_corpus(tmp_path / "empty")
    _touch_recording(tmp_path / "dup", "train", "aaaaaaac", "s001", "t000", montage="01_tcp_ar")
    _touch_recording(tmp_path / "dup", "train", "aaaaaaac", "s001", "t000", montage="02_tcp_le")
    with pytest.raises(CorpusError, match="more than once"):
        discover_corpus(tmp_path / "dup")


def test_leakage_on_a_copy_of_the_synthetic_corpus(tmp_path: Path, synthetic_corpus: Path) -> None:
    """Copying one train patient's folder into dev makes the real corpus leaky."""
    copy = tmp_path / "corpus"
    shutil.copytree(synthetic_corpus, copy)
    patient = discover_corpus(copy).split("train")[0].patient
    shutil.copytree(copy / "train" / patient, copy / "dev" / patient)
    # The copied files keep their names: a duplicate name is reported first, so rename the copies' sessions.
    for path in sorted((copy / "dev" / patient).rglob("*_s0*")):
        path.rename(path.with_name(path.name.replace("_s0", "_s9")))
    assert patient in patient_overlaps(discover_corpus(copy).recordings)
    with pytest.raises(SplitLeakageError, match=patient):
        official_splits(copy)
