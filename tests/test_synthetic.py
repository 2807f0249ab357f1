"""ictal.synthetic.corpus / synthetic_signal: TUSZ layout and formats, reproducibility, and the signal's design
(seizures with a 3-8 Hz peak, artifacts with more line length than seizures)."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import edfio
import mne
import numpy as np
import pytest
from scipy import signal as sps
from typer.testing import CliRunner

from ictal.errors import ConfigError, IctalError
from ictal.io.annotations import read_annotations
from ictal.io.channels import clean_label
from ictal.synthetic.corpus import (
    BIPOLAR_CHANNELS,
    CorpusSummary,
    SyntheticConfig,
    generate_corpus,
    plan_corpus,
    read_corpus_summary,
)
from ictal.synthetic.signal import SCALP, SOURCE_CHANNELS, place_seizures, synthesize_recording

# Small enough to generate in about a second, large enough to hold every case (>= 4 sessions: all 4 rates).
TINY = SyntheticConfig(patients=4, hours=0.3, seed=0, recording_minutes=(1.5, 3.0))
PATH_RE = re.compile(
    r"^(train|dev|eval)/([a-z]{8})/(s\d{3})_(\d{4})/(01_tcp_ar|02_tcp_le|03_tcp_ar_a)/\2_\3_t\d{3}\.(edf|csv|csv_bi)$"
)


def _hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _edf_header(path: Path) -> tuple[bytes, list[str], list[int], int]:
    """Main header bytes, labels, samples per record, number of records, read straight from the file."""
    raw = path.read_bytes()
    ns = int(raw[252:256])
    labels = [raw[256 + 16 * i : 256 + 16 * (i + 1)].decode("ascii").strip() for i in range(ns)]
    off = 256 + ns * (16 + 80 + 8 * 5 + 80)
    spr = [int(raw[off + 8 * i : off + 8 * (i + 1)]) for i in range(ns)]
    return raw[:256], labels, spr, int(raw[236:244])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> CorpusSummary:
    return generate_corpus(tmp_path_factory.mktemp("synth") / "corpus", config=TINY)


def test_layout_and_names_match_tusz(corpus: CorpusSummary) -> None:
    files = [p.relative_to(corpus.root).as_posix() for p in corpus.root.rglob("*") if p.is_file()]
    assert "corpus.json" in files
    data_files = [f for f in files if f != "corpus.json"]
    assert data_files and all(PATH_RE.match(f) for f in data_files), [f for f in data_files if not PATH_RE.match(f)]
    stems = Counter(f.rsplit(".", 1)[0] for f in data_files)
    assert set(stems.values()) == {3}  # every recording has .edf, .csv and .csv_bi
    assert len(stems) == len(corpus.files)
    for f in corpus.files:
        assert (corpus.root / f.edf).is_file()
        assert f.edf.parts[1] == f.patient and f.edf.parts[3] == f.montage and f.stem.startswith(f.patient + "_")


def test_patients_are_disjoint_and_every_split_has_seizures(corpus: CorpusSummary) -> None:
    by_split = {s: {p.name for p in (corpus.root / s).iterdir()} for s in ("train", "dev", "eval")}
    assert all(by_split.values())
    assert not (by_split["train"] & by_split["dev"] or by_split["train"] & by_split["eval"])
    assert not by_split["dev"] & by_split["eval"]
    assert sum(len(v) for v in by_split.values()) == TINY.patients
    stats = {s.split: s for s in corpus.split_stats()}
    assert all(stats[s].seizures >= 1 for s in ("train", "dev", "eval"))
    assert sum(f.duration for f in corpus.files) == round(TINY.hours * 3600)  # hours exactly
    with_seizures = sum(1 for f in corpus.files if f.seizures)
    assert 0 < with_seizures < len(corpus.files)


def test_splits_are_about_60_20_20() -> None:
    plans = plan_corpus(SyntheticConfig(patients=10, hours=2.0))
    patients = {s: len({p.patient for p in plans if p.split == s}) for s in ("train", "dev", "eval")}
    assert patients == {"train": 6, "dev": 2, "eval": 2}
    for n in (3, 4, 5):
        plans = plan_corpus(SyntheticConfig(patients=n, hours=0.5))
        assert {p.split for p in plans} == {"train", "dev", "eval"}


def test_montages_rates_and_channel_labels(corpus: CorpusSummary) -> None:
    assert {f.montage for f in corpus.files} == {"01_tcp_ar", "02_tcp_le", "03_tcp_ar_a"}
    assert {f.rate for f in corpus.files} == {250, 256, 400, 512}
    for f in corpus.files:
        _, labels, spr, n_records = _edf_header(corpus.root / f.edf)
        assert list(f.labels) == labels
        suffix = "-LE" if f.montage == "02_tcp_le" else "-REF"
        eeg = [lab for lab in labels if lab.startswith("EEG ")]
        assert all(lab.endswith(suffix) for lab in eeg)
        canonical = [clean_label(lab) for lab in labels if clean_label(lab)]
        assert len(canonical) == 19 - len(f.missing)
        assert "EEG FP1" + suffix in labels and "EEG T3" + suffix in labels  # TUSZ uppercase, 10-20 names
        # the EEG channels run at the file's rate; IBI/BURSTS/SUPPR at 1 Hz
        assert all(spr[labels.index(lab)] == f.rate for lab in labels if clean_label(lab))
        assert [spr[labels.index(x)] for x in ("IBI", "BURSTS", "SUPPR")] == [1, 1, 1]
        assert n_records == f.duration
        if f.montage == "03_tcp_ar_a":
            assert not any("A1" in lab or "A2" in lab for lab in labels)
            assert len(labels) < 30
        else:
            assert f"EEG A1{suffix}" in labels and f"EEG A2{suffix}" in labels
    all_labels = {lab for f in corpus.files for lab in f.labels}
    assert {"EMG-REF", "PHOTIC-REF", "EEG 26-REF", "EEG EKG1-REF", "EEG ROC-REF", "EEG T1-REF"} <= all_labels
    # non-EEG channels at other rates than the EEG: IBI/BURSTS/SUPPR at 1 Hz, and EKG/PHOTIC at half rate in some
    half_rate = [f for f in corpus.files if set(_edf_header(corpus.root / f.edf)[2]) - {1, f.rate}]
    assert half_rate
    for f in half_rate:
        labels, spr = _edf_header(corpus.root / f.edf)[1:3]
        assert {lab for lab, n in zip(labels, spr, strict=True) if n == f.rate // 2} <= {
            "PHOTIC-REF",
            "PHOTIC PH",
            "EEG EKG1-REF",
            "EEG EKG1-LE",
        }


def test_fz_pz_missing_only_in_average_reference_montages(corpus: CorpusSummary) -> None:
    missing = [f for f in corpus.files if f.missing]
    assert missing
    for f in corpus.files:
        labels = set(f.labels)
        suffix = "-LE" if f.montage == "02_tcp_le" else "-REF"
        has = {f"EEG FZ{suffix}", f"EEG PZ{suffix}"} <= labels
        assert has != bool(f.missing)
        if f.missing:
            assert f.missing == ("Fz", "Pz") and f.montage in ("01_tcp_ar", "03_tcp_ar_a")
    plans = plan_corpus(SyntheticConfig(patients=30, hours=8.0, recording_minutes=(2.0, 4.0)))
    assert not any(p.missing_fz_pz for p in plans if p.montage == "02_tcp_le")
    assert {p.montage for p in plans if p.missing_fz_pz} == {"01_tcp_ar", "03_tcp_ar_a"}


def test_header_quirks_are_in_the_raw_bytes(corpus: CorpusSummary) -> None:
    seen = set()
    for f in corpus.files:
        head = _edf_header(corpus.root / f.edf)[0]
        date = head[168:176]
        if "colon_date" in f.quirks:
            assert re.fullmatch(rb"\d\d:\d\d:\d\d", date)
        elif "zero_date" in f.quirks:
            assert date == b"00.00.00"
        else:
            assert re.fullmatch(rb"\d\d\.\d\d\.\d\d", date) and date != b"00.00.00"
        patient = head[8:88]
        assert ("nonascii_patient" in f.quirks) == (max(patient) > 127)
        seen.update(f.quirks)
        # none truncated: the file holds every record it announces
        _, _, spr, n_records = _edf_header(corpus.root / f.edf)
        assert (corpus.root / f.edf).stat().st_size == 256 * (len(spr) + 1) + 2 * n_records * sum(spr)
    assert seen == set(TINY.header_quirks)


def test_annotations_agree_with_each_other_and_the_edf(corpus: CorpusSummary) -> None:
    for f in corpus.files:
        edf = corpus.root / f.edf
        bi = read_annotations(edf.with_suffix(".csv_bi"))
        per_channel = read_annotations(edf.with_suffix(".csv"))
        assert bi.duration == per_channel.duration == f.duration
        assert bi.bname == per_channel.bname == f.stem
        assert {e.channel for e in bi.events} == {"TERM"}
        assert {e.channel for e in per_channel.events} == set(BIPOLAR_CHANNELS[f.montage])
        # .csv_bi seizures == union of the .csv seizure rows == the seizures generated
        np.testing.assert_allclose(
            np.reshape(per_channel.seizure_intervals(), (-1, 2)), np.reshape(bi.seizure_intervals(), (-1, 2)), atol=1e-4
        )
        np.testing.assert_allclose(
            np.reshape(bi.seizure_intervals(), (-1, 2)), np.reshape(f.seizure_intervals(), (-1, 2))
        )
        seizure_labels = {e.label for e in per_channel.events if e.is_seizure}
        assert seizure_labels == {s.label for s in f.seizures}
        assert seizure_labels <= {"gnsz", "fnsz", "cpsz", "absz", "spsz", "tcsz", "tnsz", "mysz"}
        # background rows tile the rest of the recording on every channel
        for channel in BIPOLAR_CHANNELS[f.montage]:
            rows = sorted((e.start, e.stop) for e in per_channel.events if e.channel == channel)
            assert rows[0][0] == 0 and rows[-1][1] == f.duration
            assert all(a[1] == pytest.approx(b[0]) for a, b in zip(rows, rows[1:], strict=False))
    text = (corpus.root / corpus.files[0].edf).with_suffix(".csv_bi").read_text().splitlines()
    assert text[0] == "# version = csv_v1.0.0"
    assert text[1] == f"# bname = {corpus.files[0].stem}"
    assert re.fullmatch(r"# duration = \d+\.\d{4} secs", text[2])
    assert text[3:5] == ["#", "channel,start_time,stop_time,label,confidence"]


def test_edfio_and_mne_read_the_files(corpus: CorpusSummary) -> None:
    plain = [f for f in corpus.files if not f.quirks]
    assert plain
    for f in plain:
        edf = edfio.read_edf(corpus.root / f.edf)
        assert edf.duration == f.duration
        assert [s.label for s in edf.signals] == list(f.labels)
        fp1 = next(s for s in edf.signals if clean_label(s.label) == "Fp1")
        assert fp1.sampling_frequency == f.rate
        assert 5 < np.std(fp1.data) < 500  # microvolts
    one = plain[0]
    raw = mne.io.read_raw_edf(corpus.root / one.edf, preload=True, verbose="error")
    assert raw.ch_names == list(one.labels)
    assert raw.n_times / raw.info["sfreq"] == one.duration
    fp1 = next(s for s in edfio.read_edf(corpus.root / one.edf).signals if clean_label(s.label) == "Fp1")
    if raw.info["sfreq"] == one.rate:
        np.testing.assert_allclose(raw.get_data(picks=[fp1.label])[0] * 1e6, fp1.data, atol=1e-3)


def test_summary_json_round_trips(corpus: CorpusSummary) -> None:
    doc = json.loads((corpus.root / "corpus.json").read_text())
    assert doc["seed"] == TINY.seed and doc["config"]["patients"] == TINY.patients
    assert len(doc["files"]) == len(corpus.files)
    back = read_corpus_summary(corpus.root)
    assert back.files == corpus.files
    assert back.config == corpus.config


def test_same_seed_same_bytes_other_seed_other_bytes(corpus: CorpusSummary, tmp_path: Path) -> None:
    again = generate_corpus(tmp_path / "again", config=TINY, workers=2)  # in parallel: same bytes
    assert _hashes(again.root) == _hashes(corpus.root)
    other = generate_corpus(tmp_path / "other", config=TINY, seed=1)
    edf_hashes = {h for name, h in _hashes(other.root).items() if name.endswith(".edf")}
    assert not edf_hashes & set(_hashes(corpus.root).values())


def test_refuses_a_foreign_non_empty_folder(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(IctalError, match="not empty"):
        generate_corpus(target, config=TINY)
    assert (target / "notes.txt").exists() and not (target / "train").exists()
    generate_corpus(target, config=TINY, overwrite=True)
    assert (target / "notes.txt").exists() and (target / "corpus.json").exists()
    # an earlier synthetic corpus is replaced without --overwrite, leaving no stale file
    generate_corpus(target, config=TINY, patients=3, hours=0.2)
    assert len(read_corpus_summary(target).files) == sum(1 for _ in target.rglob("*.edf"))


def test_too_few_hours_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="hours"):
        generate_corpus(tmp_path / "x", patients=10, hours=0.1)


def test_cli_synth(tmp_path: Path) -> None:
    from ictal.cli.main import app

    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["synth", str(out), "--patients", "3", "--hours", "0.15", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert "seizure hours" in result.output and "total" in result.output
    assert read_corpus_summary(out).config.seed == 2
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "x").write_text("")
    result = CliRunner().invoke(app, ["synth", str(tmp_path / "foreign"), "--hours", "0.15", "--patients", "3"])
    assert result.exit_code == 1 and "--overwrite" in result.output


# ---------------------------------------------------------------------------------------------------------
# the signal

RATE = 256


@pytest.fixture(scope="module")
def recordings() -> list:
    return [synthesize_recording(300, RATE, 2, np.random.default_rng(seed)) for seed in range(8)]


def _highpassed(rec) -> np.ndarray:  # (23, T) scalp sources, µV, drift removed
    sos = sps.butter(3, 0.5, btype="high", fs=RATE, output="sos")
    return sps.sosfiltfilt(sos, rec.data[: len(SCALP)].astype(np.float64), axis=1)


def test_seizures_are_exactly_where_annotated(recordings: list) -> None:
    for seed, rec in enumerate(recordings[:3]):
        quiet = synthesize_recording(300, RATE, 0, np.random.default_rng(seed))
        # same generator stream up to the seizures: the difference is the seizure activity alone
        diff = np.abs(rec.data[: len(SCALP)] - quiet.data[: len(SCALP)]).max(0)
        active = diff > 1e-3
        mask = np.zeros_like(active)
        for s in rec.seizures:
            mask[int(np.ceil(s.start * RATE - 1e-9)) : int(np.ceil(s.stop * RATE - 1e-9))] = True
        assert rec.seizures and not (active & ~mask).any()
        assert active[mask].mean() > 0.99


def test_seizures_have_a_clear_3_to_8_hz_peak(recordings: list) -> None:
    low_ratio, high_ratio = [], []
    for rec in recordings:
        x = _highpassed(rec)
        ictal = np.zeros(x.shape[1], dtype=bool)
        for s in rec.seizures:
            ictal[int(s.start * RATE) : int(s.stop * RATE)] = True
        for s in rec.seizures:
            ch = SCALP.index(s.focus or "F3")
            seg = x[ch, int((s.start + 2) * RATE) : int((s.stop - 1) * RATE)]
            f, p_sz = sps.welch(seg, fs=RATE, nperseg=2 * RATE)
            _, p_bg = sps.welch(x[ch, ~ictal], fs=RATE, nperseg=2 * RATE)
            ratio = p_sz / p_bg
            low_ratio.append(ratio[(f >= 3) & (f <= 8)].max())
            high_ratio.append(ratio[(f >= 13) & (f <= 30)].max())
    assert len(low_ratio) >= 12
    assert min(low_ratio) > 2.0 and np.median(low_ratio) > 5.0
    assert np.median(low_ratio) > 2 * np.median(high_ratio)


def test_artifacts_beat_seizures_in_line_length(recordings: list) -> None:
    """Per event: 1-s line length (µV/s) on the most affected channel; muscle, chewing and pops exceed seizures."""
    ll: dict[str, list[float]] = {}
    for rec in recordings:
        x = _highpassed(rec)
        d = np.abs(np.diff(x, axis=1))
        per_second = sps.oaconvolve(d, np.ones((1, RATE)), mode="valid", axes=1)  # LL of every 1-s window
        for a in rec.artifacts:
            rows = [SCALP.index(c) for c in a.channels if c in SCALP]
            i0, i1 = int(a.start * RATE), min(int(a.stop * RATE), per_second.shape[1])
            if a.kind != "blink" and rows and i1 > i0:
                ll.setdefault(a.kind, []).append(float(per_second[rows, i0:i1].max()))
        for s in rec.seizures:
            rows = [SCALP.index(c) for c in s.electrode_onsets]
            seg = per_second[rows, int(s.start * RATE) : int(s.stop * RATE) - RATE]
            ll.setdefault("seizure", []).append(float(np.median(seg, axis=1).max()))
    seizure = np.array(ll["seizure"])
    artifacts = np.concatenate([ll["muscle"], ll["pop"], ll.get("chewing", [])])
    assert artifacts.mean() > 2 * seizure.mean()
    assert np.median(ll["muscle"]) > np.percentile(seizure, 75)
    assert np.median(ll["pop"]) > np.median(seizure)


def test_seizure_types_and_spread(recordings: list) -> None:
    seizures = [s for rec in recordings for s in rec.seizures]
    for s in seizures:
        assert 15 <= s.stop - s.start <= 120
        assert min(s.electrode_onsets.values()) == s.start
        if s.focus is None:
            assert len(s.electrode_onsets) == len(SCALP)
            assert max(s.electrode_onsets.values()) - s.start <= 0.4 + 1e-6
        else:
            assert s.electrode_onsets[s.focus] == s.start
            later = [t for e, t in s.electrode_onsets.items() if e != s.focus]
            assert all(t > s.start for t in later)  # neighbours join after the focus
    assert any(s.focus for s in seizures) and any(s.focus is None for s in seizures)


def test_place_seizures_fits_short_recordings() -> None:
    rng = np.random.default_rng(0)
    for duration in (30.0, 60.0, 300.0):
        for count in (1, 2, 3):
            placed = place_seizures(rng, duration, count, (15.0, 120.0))
            assert placed
            assert all(5 <= a < b <= duration - 1 for a, b in placed)
            assert all(b1 + 20 <= a2 + 1e-6 for (_, b1), (a2, _) in zip(placed, placed[1:], strict=False))


def test_sources_cover_every_channel_and_rate() -> None:
    for rate in (250, 400, 512):
        rec = synthesize_recording(20, rate, 0, np.random.default_rng(1))
        assert rec.data.shape == (len(SOURCE_CHANNELS), 20 * rate) and rec.data.dtype == np.float32
        assert np.isfinite(rec.data).all()
        assert rec.duration == 20
