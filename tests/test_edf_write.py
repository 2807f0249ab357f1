"""ictal.io.edf_write: round trip through edfio and MNE, header fields, quirks, errors, atomic writes."""

from __future__ import annotations

import math
import re
from datetime import datetime
from pathlib import Path

import edfio
import mne
import numpy as np
import pytest

from ictal.io.edf_write import QUIRK_NAMES, EdfQuirks, format_edf_number, write_edf


def _signals(seconds: int = 10) -> tuple[list[np.ndarray], list[int], list[str], list[str]]:
    rng = np.random.default_rng(7)
    signals = [
        rng.normal(0, 30, 256 * seconds).astype(np.float32),
        rng.normal(5, 300, 256 * seconds),
        (1000 * np.sin(np.arange(512 * seconds) / 20)).astype(np.float32),
        np.zeros(seconds),
    ]
    return signals, [256, 256, 512, 1], ["EEG FP1-REF", "EEG C3-REF", "EMG-REF", "IBI"], ["uV", "uV", "uV", "sec"]


def _main_header(path: Path) -> bytes:
    return path.read_bytes()[:256]


def test_edfio_round_trip_with_mixed_rates(tmp_path: Path) -> None:
    signals, rates, labels, units = _signals()
    start = datetime(2011, 3, 4, 5, 6, 7)
    path = write_edf(tmp_path / "a.edf", signals, rates, labels, physical_dimension=units, start=start)
    edf = edfio.read_edf(path)
    assert edf.num_signals == 4
    assert edf.duration == 10
    assert (edf.startdate, edf.starttime) == (start.date(), start.time())
    for sig, x, rate, label, unit in zip(edf.signals, signals, rates, labels, units, strict=True):
        assert sig.label == label
        assert sig.sampling_frequency == rate
        assert sig.physical_dimension == unit
        assert sig.digital_min == -32768 and sig.digital_max == 32767
        # the physical range holds every sample, and values come back within half a quantisation step
        assert sig.physical_min <= x.min() and sig.physical_max >= x.max()
        step = (sig.physical_max - sig.physical_min) / 65535
        np.testing.assert_allclose(sig.data, x, atol=0.51 * step + 1e-3 * np.abs(x).max() * 1e-3)


def test_mne_reads_it(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(0, 40, (3, 250 * 4))
    path = write_edf(tmp_path / "m.edf", x, 250, ["EEG FP1-LE", "EEG FZ-LE", "EEG O2-LE"])
    raw = mne.io.read_raw_edf(path, preload=True, verbose="error")
    assert raw.info["sfreq"] == 250
    assert raw.ch_names == ["EEG FP1-LE", "EEG FZ-LE", "EEG O2-LE"]
    np.testing.assert_allclose(raw.get_data() * 1e6, x, atol=0.01)


def test_header_layout_is_standard(tmp_path: Path) -> None:
    signals, rates, labels, units = _signals(seconds=3)
    path = write_edf(tmp_path / "h.edf", signals, rates, labels, physical_dimension=units, patient="aaaaaaac")
    raw = path.read_bytes()
    head = raw[:256]
    assert head[:8] == b"0       "
    assert head[8:88].rstrip(b" ") == b"aaaaaaac"
    assert int(head[184:192]) == 256 * 5
    assert int(head[236:244]) == 3  # records
    assert head[244:252].strip() == b"1"  # record duration
    assert int(head[252:256]) == 4
    spr = [int(raw[256 + 4 * 216 + 8 * i : 256 + 4 * 216 + 8 * (i + 1)]) for i in range(4)]
    assert spr == [256, 256, 512, 1]
    assert len(raw) == 256 * 5 + 3 * 2 * sum(spr)


def test_physical_fields_are_rounded_outwards(tmp_path: Path) -> None:
    x = np.array([-123.456789, 98765.4321, 0.0, 1.0])
    path = write_edf(tmp_path / "r.edf", [x], [4], ["EEG CZ-REF"])
    raw = path.read_bytes()
    pmin, pmax = float(raw[256 + 104 : 256 + 112]), float(raw[256 + 112 : 256 + 120])
    assert pmin <= x.min() and pmax >= x.max()
    assert math.isclose(pmin, x.min(), abs_tol=1e-3) and math.isclose(pmax, x.max(), abs_tol=1e-2)


@pytest.mark.parametrize("value", [0.0, -0.1, 1e-9, 123.456789, -29483.0123, 4999.8471, 99999999.0, -9999998.4])
def test_format_edf_number(value: float) -> None:
    down, up, near = (format_edf_number(value, rounding=r) for r in ("down", "up", "nearest"))
    for text in (down, up, near):
        assert len(text) <= 8
    assert float(down) <= value <= float(up)
    assert abs(float(near) - value) <= max(abs(float(up) - value), abs(float(down) - value))


def test_format_edf_number_refuses_huge_values() -> None:
    with pytest.raises(ValueError, match="8 characters"):
        format_edf_number(-123456789.0)


def test_flat_channel_gets_a_valid_range(tmp_path: Path) -> None:
    path = write_edf(tmp_path / "z.edf", [np.zeros(5), np.full(5, 7.0)], [1, 1], ["SUPPR", "BURSTS"])
    edf = edfio.read_edf(path)
    assert [s.physical_min < s.physical_max for s in edf.signals] == [True, True]
    np.testing.assert_allclose(edf.signals[1].data, 7.0, atol=1e-3)


def test_quirks_are_written(tmp_path: Path) -> None:
    signals, rates, labels, units = _signals(seconds=4)
    start = datetime(2011, 1, 1, 0, 0, 0)
    kw = {"physical_dimension": units, "start": start, "patient": "aaaaaaac"}

    colon = write_edf(tmp_path / "c.edf", signals, rates, labels, quirks=EdfQuirks(colon_date=True), **kw)
    assert _main_header(colon)[168:176] == b"01:01:11"
    zero = write_edf(tmp_path / "0.edf", signals, rates, labels, quirks=EdfQuirks(zero_date=True), **kw)
    assert _main_header(zero)[168:176] == b"00.00.00"
    latin = write_edf(tmp_path / "p.edf", signals, rates, labels, quirks=EdfQuirks(nonascii_patient=True), **kw)
    patient = _main_header(latin)[8:88]
    assert len(patient) == 80 and b"\xe9" in patient and patient.endswith(b"\x00")
    minus = write_edf(tmp_path / "n.edf", signals, rates, labels, quirks=EdfQuirks(unknown_record_count=True), **kw)
    assert _main_header(minus)[236:244].strip() == b"-1"

    full = write_edf(tmp_path / "f.edf", signals, rates, labels, **kw)
    cut = write_edf(tmp_path / "t.edf", signals, rates, labels, quirks=EdfQuirks(truncated=True), **kw)
    record_bytes = 2 * sum(rates)
    header_bytes = 256 * (len(labels) + 1)
    assert full.stat().st_size == header_bytes + 4 * record_bytes
    size = cut.stat().st_size
    assert header_bytes + 3 * record_bytes < size < header_bytes + 4 * record_bytes  # cut inside the last record
    assert _main_header(cut)[236:244].strip() == b"4"  # ... while the header still counts it
    assert cut.read_bytes() == full.read_bytes()[:size]


def test_quirks_from_names() -> None:
    assert EdfQuirks.from_names(["zero_date", "truncated"]).names == ("zero_date", "truncated")
    assert set(EdfQuirks.from_names(list(QUIRK_NAMES[2:])).names) == set(QUIRK_NAMES[2:])
    with pytest.raises(ValueError, match="unknown EDF quirk"):
        EdfQuirks.from_names(["colon"])
    with pytest.raises(ValueError, match="choose one"):
        EdfQuirks(colon_date=True, zero_date=True)


@pytest.mark.parametrize(
    ("signals", "rates", "labels", "message"),
    [
        ([np.zeros(256), np.zeros(255)], [256, 256], ["A", "B"], "'B' has 255 samples"),
        ([np.zeros(256), np.zeros(512)], [256, 256], ["A", "B"], "'B' covers 2 records"),
        ([np.zeros(250)], [250.5], ["A"], "whole number"),
        ([np.full(4, np.nan)], [4], ["EEG X"], "'EEG X' contains NaN"),
        ([np.zeros(4)], [4], ["A" * 17], "longer than its 16-character"),
        ([np.zeros(4)], [4], ["EEG Ü"], "not ASCII"),
        ([np.zeros(4)], [4], ["A", "B"], "2 labels for 1 signals"),
        ([np.zeros((2, 4))], [4], ["A"], "must be 1-D"),
    ],
)
def test_bad_input_names_file_and_channel(
    tmp_path: Path, signals: list[np.ndarray], rates: list[float], labels: list[str], message: str
) -> None:
    target = tmp_path / "bad.edf"
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        write_edf(target, signals, rates, labels)
    assert str(target) in str(info.value)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_write_is_atomic_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "x.edf"
    write_edf(target, [np.zeros(8)], [8], ["A"])
    first = target.read_bytes()
    write_edf(target, [np.ones(16)], [8], ["A"])
    assert target.read_bytes() != first
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.edf"]


def test_writes_a_long_recording_fast(tmp_path: Path) -> None:
    """30 channels x 20 min at 512 Hz (18 M samples) go out vectorised, well under a few seconds."""
    import time

    x = np.random.default_rng(0).normal(0, 50, (30, 512 * 1200)).astype(np.float32)
    t0 = time.perf_counter()
    write_edf(tmp_path / "long.edf", x, 512, [f"EEG {i}-REF" for i in range(30)])
    assert time.perf_counter() - t0 < 10.0
    assert (tmp_path / "long.edf").stat().st_size == 256 * 31 + 2 * x.size
