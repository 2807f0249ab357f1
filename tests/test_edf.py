"""EDF reader: real headers from four corpora, in-memory header repair, channel mapping, Fz/Pz
reconstruction, chunked reads, batch reading. Bad inputs are made in a tmp folder, never in shared/."""

from __future__ import annotations

import hashlib
import shutil
import warnings
from datetime import datetime
from pathlib import Path

import edfio
import numpy as np
import pytest

from ictal.errors import EdfReadError
from ictal.io.channels import CANONICAL_19, ELECTRODE_POSITIONS_MM, clean_label, interpolation_weights
from ictal.io.edf import (
    EdfRepairWarning,
    EegRecording,
    open_edf,
    read_edf,
    read_many,
    recording_from_mne,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURES = SHARED / "fixtures" / "real_headers"
ALL_FIXTURES = sorted(FIXTURES.rglob("*.edf")) if FIXTURES.is_dir() else []
BIPOLAR_FIXTURES = [p for p in ALL_FIXTURES if p.name.startswith("chb")]
READABLE_FIXTURES = [p for p in ALL_FIXTURES if not p.name.startswith("chb")]
TUSZ_AR = "data/tuh/dev/aaaaahln/s003_2011/01_tcp_ar/aaaaahln_s003_t001.edf"

needs_fixtures = pytest.mark.skipif(
    not ALL_FIXTURES, reason=f"shared EDF fixtures not found at {FIXTURES} (the ../shared folder is absent)"
)

TUSZ_REF_LABELS = [f"EEG {name.upper()}-REF" for name in CANONICAL_19]


def _fixture_id(path: Path) -> str:
    return str(path.relative_to(FIXTURES))


def _expected_rate(path: Path) -> float:
    """Sampling rates of the real recordings these headers come from."""
    text = _fixture_id(path)
    if "siena" in text or text.startswith("PN"):
        return 512.0
    if "03_tcp_ar_a" in text:
        return 400.0
    if "aaaaarnq_s003" in text or "aaaaarnq_s004" in text:
        return 256.0
    return 250.0  # other TUSZ files, SeizeIT


def write_edf(
    path: Path,
    labels: list[str],
    *,
    seconds: int = 10,
    rates: dict[str, float] | None = None,
    dimensions: dict[str, str] | None = None,
    values: dict[str, np.ndarray] | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Write a small EDF with edfio (1 s records); returns each label's physical signal as stored."""
    rng = np.random.default_rng(seed)
    signals = []
    for i, label in enumerate(labels):
        rate = (rates or {}).get(label, 250.0)
        t = np.arange(int(seconds * rate)) / rate
        if values and label in values:
            data = values[label]
        else:
            data = 40 * np.sin(2 * np.pi * (3 + i % 7) * t) + rng.normal(0, 10, t.size)
        signals.append(
            edfio.EdfSignal(
                data,
                rate,
                label=label,
                physical_dimension=(dimensions or {}).get(label, "uV"),
                physical_range=(-1000.0, 1000.0),
            )
        )
    edfio.Edf(signals, data_record_duration=1).write(path)
    stored = edfio.read_edf(path)
    return {s.label: s.data for s in stored.signals}


def patch(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_quietly(path: Path, reconstruct_missing: tuple[str, ...] = ("Fz", "Pz")) -> EegRecording:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EdfRepairWarning)
        return read_edf(path, reconstruct_missing=reconstruct_missing)


# --------------------------------------------------------------------------- real headers


@needs_fixtures
def test_fixture_set_is_complete() -> None:
    folders = {p.parent.name for p in ALL_FIXTURES}
    assert {"01_tcp_ar", "02_tcp_le", "03_tcp_ar_a"} <= folders
    assert any("siena" in str(p) for p in ALL_FIXTURES) and any("seizeit" in str(p) for p in ALL_FIXTURES)
    assert len(BIPOLAR_FIXTURES) >= 5 and len(READABLE_FIXTURES) >= 40


@needs_fixtures
@pytest.mark.parametrize("path", READABLE_FIXTURES, ids=_fixture_id)
def test_real_fixture_reads_19_channels_in_order(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", EdfRepairWarning)  # these headers need no repair
        rec = read_edf(path)
    assert rec.channel_names == CANONICAL_19
    assert rec.data.dtype == np.float32 and rec.data.shape == (19, rec.meta.n_samples)
    assert rec.sfreq == _expected_rate(path)
    assert rec.meta.duration_s == 2.0 and rec.n_samples == int(2 * rec.sfreq)
    assert rec.reconstructed == () and rec.meta.repairs == []
    assert [clean_label(label or "") for label in rec.source_labels] == list(CANONICAL_19)

    # values equal an independent reader's physical values for the same raw labels
    reference = edfio.read_edf(path)
    by_label = {s.label: s for s in reference.signals}
    for row, label in enumerate(rec.source_labels):
        assert label is not None
        np.testing.assert_allclose(rec.data[row], by_label[label].data, rtol=1e-5, atol=1e-3)


@needs_fixtures
def test_tusz_metadata_from_path() -> None:
    rec = read_edf(FIXTURES / TUSZ_AR)
    meta = rec.meta
    assert (meta.patient, meta.session, meta.token, meta.montage) == ("aaaaahln", "s003", "t001", "01_tcp_ar")
    assert meta.start == datetime(2011, 1, 1, 0, 0, 0)
    assert rec.source_labels[0] == "EEG FP1-REF"
    le = read_edf(FIXTURES / "data/tuh/dev/aaaaahln/s001_2008/02_tcp_le/aaaaahln_s001_t000.edf")
    assert le.meta.montage == "02_tcp_le" and le.source_labels[0] == "EEG FP1-LE"
    siena = read_edf(FIXTURES / "data/siena/PN00/PN00-1.edf")
    assert (siena.meta.patient, siena.meta.montage) == (None, None)
    assert siena.meta.start == datetime(2016, 1, 1, 19, 39, 33)


@needs_fixtures
@pytest.mark.parametrize("path", BIPOLAR_FIXTURES, ids=_fixture_id)
def test_chbmit_bipolar_montage_is_refused_clearly(path: Path) -> None:
    with pytest.raises(EdfReadError) as info:
        read_edf(path)
    message = str(info.value)
    assert path.name in message
    assert "no unipolar (referential)" in message and "bipolar montage" in message
    assert "T8-P8" in message  # the duplicate label is named


@needs_fixtures
def test_chunks_equal_full_read_on_real_file() -> None:
    path = FIXTURES / TUSZ_AR
    full = read_edf(path).data
    with open_edf(path) as source:
        assert source.n_samples == full.shape[1] and source.sfreq == 250.0
        for start, stop in [(0, 1), (0, 250), (3, 251), (249, 500), (17, 404), (500, 500)]:
            np.testing.assert_array_equal(source.read(start, stop), full[:, start:stop])


# --------------------------------------------------------------------------- header repair


@pytest.fixture
def tusz_copy(tmp_path: Path) -> Path:
    """A real TUSZ file copied into tmp (shared is read-only); a synthetic one when shared is absent."""
    target = tmp_path / "aaaaahln_s003_t001.edf"
    if ALL_FIXTURES:
        shutil.copyfile(FIXTURES / TUSZ_AR, target)
    else:
        write_edf(target, TUSZ_REF_LABELS + ["EEG EKG1-REF"], seconds=2)
    return target


def _read_repaired(path: Path, expect: str) -> EegRecording:
    digest = sha256(path)
    with pytest.warns(EdfRepairWarning, match=path.name):
        rec = read_edf(path)
    assert any(expect in line for line in rec.meta.repairs), rec.meta.repairs
    assert sha256(path) == digest, "the user's file must never be modified"
    return rec


def test_colon_start_date_is_repaired(tusz_copy: Path) -> None:
    original = read_quietly(tusz_copy)
    patch(tusz_copy, 168, b"01:02:11")
    rec = _read_repaired(tusz_copy, "non-standard separators")
    assert rec.meta.start is not None and rec.meta.start.date() == datetime(2011, 2, 1).date()
    np.testing.assert_array_equal(rec.data, original.data)


def test_zero_start_date_gives_unknown_start(tusz_copy: Path) -> None:
    patch(tusz_copy, 168, b"00.00.00")
    rec = _read_repaired(tusz_copy, "not a valid date")
    assert rec.meta.start is None and rec.data.shape[0] == 19


@pytest.mark.parametrize(("field", "expect"), [(b"-1      ", "not a positive count"), (b"99      ", "truncated")])
def test_wrong_record_count_uses_file_size(tusz_copy: Path, field: bytes, expect: str) -> None:
    original = read_quietly(tusz_copy)
    patch(tusz_copy, 236, field)
    rec = _read_repaired(tusz_copy, expect)
    np.testing.assert_array_equal(rec.data, original.data)


def test_non_ascii_and_nul_padded_fields(tusz_copy: Path) -> None:
    patch(tusz_copy, 8, "Pätient Ø".encode("latin-1"))
    patch(tusz_copy, 256, b"EEG FP1-REF\x00\x00\x00\x00\x00")  # label 0, NUL- instead of space-padded
    rec = _read_repaired(tusz_copy, "non-ASCII")
    assert any("NUL-padded" in line for line in rec.meta.repairs)
    assert rec.source_labels[0] == "EEG FP1-REF"


def test_wrong_header_size_field(tusz_copy: Path) -> None:
    patch(tusz_copy, 184, b"12345   ")
    rec = _read_repaired(tusz_copy, "header-size field")
    assert rec.data.shape == (19, 500)


def test_truncated_mid_record_drops_partial_record(tmp_path: Path) -> None:
    path = tmp_path / "cut.edf"
    write_edf(path, TUSZ_REF_LABELS + ["EEG EKG1-REF"], seconds=10)
    original = read_edf(path)
    header_bytes = 256 * (len(TUSZ_REF_LABELS) + 2)
    record_bytes = 2 * 250 * (len(TUSZ_REF_LABELS) + 1)
    with open(path, "r+b") as fh:
        fh.truncate(header_bytes + 6 * record_bytes + record_bytes // 2)
    rec = _read_repaired(path, "partial last data record dropped")
    assert rec.meta.duration_s == 6.0
    np.testing.assert_array_equal(rec.data, original.data[:, : 6 * 250])


def test_truncated_before_first_record_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "stub.edf"
    write_edf(path, TUSZ_REF_LABELS, seconds=2)
    with open(path, "r+b") as fh:
        fh.truncate(256 * (len(TUSZ_REF_LABELS) + 1) + 100)
    with pytest.raises(EdfReadError, match="no complete data record") as info:
        read_edf(path)
    assert info.value.path == path


def test_header_shorter_than_declared(tmp_path: Path) -> None:
    path = tmp_path / "short.edf"
    write_edf(path, TUSZ_REF_LABELS, seconds=2)
    with open(path, "r+b") as fh:
        fh.truncate(256 + 3 * 256)
    with pytest.raises(EdfReadError, match="header shorter than declared"):
        read_edf(path)


def test_bad_record_duration_cannot_be_inferred(tusz_copy: Path) -> None:
    patch(tusz_copy, 244, b"abc     ")
    with pytest.raises(EdfReadError, match="data-record duration"):
        read_edf(tusz_copy)


def test_bad_scale_fatal_only_for_a_used_channel(tmp_path: Path) -> None:
    labels = [*TUSZ_REF_LABELS, "EEG EKG1-REF"]
    physical_min = 256 + len(labels) * (16 + 80 + 8)  # the physical-min fields of all signals
    path = tmp_path / "scale.edf"
    write_edf(path, labels, seconds=2)
    patch(path, physical_min + 8 * labels.index("EEG EKG1-REF"), b"abc     ")  # ignored channel: fine
    assert read_edf(path).data.shape == (19, 500)
    patch(path, physical_min + 8 * labels.index("EEG C3-REF"), b"abc     ")
    with pytest.raises(EdfReadError, match=r"'EEG C3-REF' has an unusable physical/digital range"):
        read_edf(path)
    samples_per_record = 256 + len(labels) * (16 + 80 + 8 * 5 + 80)
    patch(path, samples_per_record + 8 * labels.index("EEG EKG1-REF"), b"x       ")
    with pytest.raises(EdfReadError, match="samples-per-record"):
        read_edf(path)


def test_discontinuous_edf_plus_is_noted(tusz_copy: Path) -> None:
    patch(tusz_copy, 192, b"EDF+D")
    with pytest.warns(EdfRepairWarning, match="EDF\\+D"):
        rec = read_edf(tusz_copy)
    assert any("discontinuous" in line for line in rec.meta.warnings) and rec.meta.repairs == []


@pytest.mark.parametrize("content", [b"", b"hello, this is not EEG\n" * 40, b"\xffBIOSEMI" + b"\x00" * 300])
def test_not_an_edf(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.edf"
    path.write_bytes(content)
    with pytest.raises(EdfReadError) as info:
        read_edf(path)
    assert str(path) in str(info.value) and ("not an EDF" in str(info.value) or "BDF" in str(info.value))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(EdfReadError, match="file not found"):
        read_edf(tmp_path / "absent.edf")
    with pytest.raises(EdfReadError, match="directory"):
        read_edf(tmp_path)


# --------------------------------------------------------------------------- channels


def test_missing_non_midline_channel_is_named(tmp_path: Path) -> None:
    path = tmp_path / "no_c3.edf"
    write_edf(path, [label for label in TUSZ_REF_LABELS if "C3" not in label and "FZ" not in label], seconds=2)
    with pytest.raises(EdfReadError) as info:
        read_edf(path)
    message = str(info.value)
    assert "missing EEG channel(s) C3" in message and "cannot be used" in message and "Fz" not in message.split(";")[0]


def _smooth_field() -> dict[str, float]:
    """A potential linear in electrode position (mm): smooth, so interpolation should recover it closely."""
    return {name: 1.0 + (0.5 * x + 0.3 * y + 0.8 * z) / 100.0 for name, (x, y, z) in ELECTRODE_POSITIONS_MM.items()}


def test_missing_fz_pz_reconstructed_from_neighbours(tmp_path: Path) -> None:
    field = _smooth_field()
    rate, seconds = 250.0, 8
    t = np.arange(int(rate * seconds)) / rate
    source = 100 * np.sin(2 * np.pi * 6 * t)
    names = [name for name in CANONICAL_19 if name not in ("Fz", "Pz")]
    labels = [f"EEG {name.upper()}-REF" for name in names]
    values = {label: field[name] * source for label, name in zip(labels, names, strict=True)}
    path = tmp_path / "aaaaaaaa_s001_t000.edf"
    write_edf(path, [*labels, "EEG A1-REF"], seconds=seconds, values=values)

    with pytest.warns(EdfRepairWarning, match=r"aaaaaaaa_s001_t000\.edf.*Fz, Pz"):
        rec = read_edf(path)
    assert rec.reconstructed == ("Fz", "Pz")
    fz, pz = CANONICAL_19.index("Fz"), CANONICAL_19.index("Pz")
    assert rec.source_labels[fz] is None and rec.source_labels[pz] is None
    for row, name in ((fz, "Fz"), (pz, "Pz")):
        truth = field[name] * source
        assert np.max(np.abs(rec.data[row] - truth)) < 0.05 * np.max(np.abs(truth))
    # the rows are exactly the spline weights applied to the present channels
    present = [i for i in range(19) if i not in (fz, pz)]
    weights = interpolation_weights(tuple(names), ("Fz", "Pz")).astype(np.float32)
    np.testing.assert_allclose(rec.data[[fz, pz]], weights @ rec.data[present], rtol=1e-5, atol=1e-3)

    with pytest.raises(EdfReadError, match="missing EEG channel"):
        read_quietly(path, reconstruct_missing=())
    with pytest.raises(EdfReadError, match="cannot be interpolated from only 1 channel"):
        read_edf(path, channels=("Fz", "Cz"))


def test_interpolation_weights_match_mne_spline() -> None:
    present = tuple(name for name in CANONICAL_19 if name not in ("Fz", "Pz"))
    weights = interpolation_weights(present, ("Fz", "Pz"))
    assert weights.shape == (2, 17)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-9)
    # the nearest electrodes dominate: Cz (and F3/F4) for Fz, Cz (and P3/P4) for Pz
    assert present[int(np.argmax(weights[0]))] in {"Cz", "F3", "F4"}
    assert present[int(np.argmax(weights[1]))] in {"Cz", "P3", "P4"}
    interpolation = pytest.importorskip("mne.channels.interpolation")
    from ictal.io.channels import _unit_sphere_positions

    expected = interpolation._make_interpolation_matrix(
        _unit_sphere_positions(present), _unit_sphere_positions(("Fz", "Pz"))
    )
    np.testing.assert_allclose(weights, expected, atol=1e-6)


def test_electrode_positions_match_mne_montage() -> None:
    mne = pytest.importorskip("mne")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # 'standard_1020' renamed in newer MNE
        positions = mne.channels.make_standard_montage("standard_1020").get_positions()["ch_pos"]
    for name in CANONICAL_19:
        np.testing.assert_allclose(np.array(ELECTRODE_POSITIONS_MM[name]) / 1000.0, positions[name], atol=1e-6)


def test_duplicate_labels_prefer_plain_referential(tmp_path: Path) -> None:
    labels = [label for label in TUSZ_REF_LABELS if label not in ("EEG FP1-REF", "EEG T3-REF")]
    labels = ["FP1-AVG", "EEG T7-REF", *labels, "EEG FP1-REF", "EEG T3-REF"]
    path = tmp_path / "dups.edf"
    stored = write_edf(path, labels, seconds=2)
    with pytest.warns(EdfRepairWarning, match="ignored duplicate"):
        rec = read_edf(path)
    fp1, t3 = CANONICAL_19.index("Fp1"), CANONICAL_19.index("T3")
    assert rec.source_labels[fp1] == "EEG FP1-REF" and rec.source_labels[t3] == "EEG T3-REF"
    np.testing.assert_allclose(rec.data[fp1], stored["EEG FP1-REF"], atol=1e-3)
    assert any("'FP1-AVG'" in line for line in rec.meta.warnings)


def test_ten_ten_names_and_non_eeg_ignored(tmp_path: Path) -> None:
    ten_ten = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}
    labels = [ten_ten.get(name, name) for name in CANONICAL_19]
    path = tmp_path / "tenten.edf"
    extra = ["ECG", "EMG", "PHOTIC-REF", "IBI", "BURSTS", "SUPPR", "EEG 26-REF", "A1", "EEG ROC-REF", "DC1-DC"]
    write_edf(path, [*extra, *labels[::-1]], seconds=2, rates={"IBI": 1.0, "BURSTS": 1.0, "SUPPR": 1.0})
    with warnings.catch_warnings():
        warnings.simplefilter("error", EdfRepairWarning)
        rec = read_edf(path)
    assert rec.source_labels == tuple(labels) and rec.sfreq == 250.0


def test_no_eeg_labels_at_all(tmp_path: Path) -> None:
    path = tmp_path / "ecg_only.edf"
    write_edf(path, ["ECG", "RESP"], seconds=2)
    with pytest.raises(EdfReadError, match="none of the 10-20 EEG channels"):
        read_edf(path)


def test_custom_channel_order(tmp_path: Path) -> None:
    path = tmp_path / "order.edf"
    write_edf(path, TUSZ_REF_LABELS, seconds=2)
    full = read_edf(path)
    order = tuple(reversed(CANONICAL_19))
    rec = read_edf(path, channels=order)
    assert rec.channel_names == order
    np.testing.assert_array_equal(rec.data, full.data[::-1])
    with pytest.raises(ValueError, match="not one of the 10-20"):
        read_edf(path, channels=("Fp1", "EKG"))


# --------------------------------------------------------------------------- units and rates


@pytest.mark.parametrize(("dimension", "factor"), [("mV", 1e3), ("V", 1e6), ("nV", 1e-3), ("uV", 1.0)])
def test_physical_units_converted_to_microvolts(tmp_path: Path, dimension: str, factor: float) -> None:
    path = tmp_path / "units.edf"
    stored = write_edf(path, TUSZ_REF_LABELS, seconds=2, dimensions={"EEG C3-REF": dimension})
    rec = read_edf(path)
    c3 = CANONICAL_19.index("C3")
    np.testing.assert_allclose(rec.data[c3], stored["EEG C3-REF"] * factor, rtol=1e-5, atol=1e-3 * factor)


def test_latin1_micro_sign_unit(tmp_path: Path) -> None:
    path = tmp_path / "micro.edf"
    stored = write_edf(path, TUSZ_REF_LABELS, seconds=2, dimensions={"EEG C3-REF": "mV"})
    c3 = TUSZ_REF_LABELS.index("EEG C3-REF")
    patch(path, 256 + len(TUSZ_REF_LABELS) * (16 + 80) + 8 * c3, "µV".encode("latin-1"))  # edfio writes ASCII only
    rec = _read_repaired(path, "non-ASCII")
    np.testing.assert_allclose(rec.data[CANONICAL_19.index("C3")], stored["EEG C3-REF"], atol=1e-3)


def test_unknown_unit_assumed_microvolts(tmp_path: Path) -> None:
    path = tmp_path / "units.edf"
    stored = write_edf(path, TUSZ_REF_LABELS, seconds=2, dimensions={"EEG O2-REF": "mm"})
    rec = _read_repaired(path, "assumed µV")
    np.testing.assert_allclose(rec.data[CANONICAL_19.index("O2")], stored["EEG O2-REF"], atol=1e-3)


def test_mixed_eeg_rates_resampled_and_chunks_match(tmp_path: Path) -> None:
    """Fz stored at 125 Hz and C4 at 200 Hz among 250 Hz channels, Pz missing: one 250 Hz grid."""
    seconds = 12
    labels = [label for label in TUSZ_REF_LABELS if label != "EEG PZ-REF"] + ["IBI"]
    rates = {"EEG FZ-REF": 125.0, "EEG C4-REF": 200.0, "IBI": 1.0}
    values = {}
    for label, rate in rates.items():
        t = np.arange(int(seconds * rate)) / rate
        values[label] = 50 * np.sin(2 * np.pi * 4 * t)
    path = tmp_path / "mixed.edf"
    write_edf(path, labels, seconds=seconds, rates=rates, values=values)
    with pytest.warns(EdfRepairWarning, match="resampled"):
        rec = read_edf(path)
    assert rec.sfreq == 250.0 and rec.data.shape == (19, seconds * 250)
    assert sum("resampled" in line for line in rec.meta.repairs) == 2  # IBI is not EEG: no note
    t = np.arange(seconds * 250) / 250.0
    for name in ("Fz", "C4"):
        interior = slice(250, -250)  # away from the zero-padded ends of the polyphase filter
        np.testing.assert_allclose(
            rec.data[CANONICAL_19.index(name), interior], 50 * np.sin(2 * np.pi * 4 * t)[interior], atol=1.0
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EdfRepairWarning)
        source = open_edf(path)
    with source:
        bounds = [0, 1, 37, 251, 999, 1000, 1733, 2400, 2999, 3000]
        chunks = [source.read(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    np.testing.assert_allclose(np.concatenate(chunks, axis=1), rec.data, rtol=1e-6, atol=1e-4)


# --------------------------------------------------------------------------- source handle and batches


def test_source_bounds_and_close(tmp_path: Path) -> None:
    path = tmp_path / "src.edf"
    write_edf(path, TUSZ_REF_LABELS, seconds=3)
    source = open_edf(path)
    assert (source.sfreq, source.n_samples, source.duration_s) == (250.0, 750, 3.0)
    assert source.channel_names == CANONICAL_19 and source.meta.n_samples == 750
    with pytest.raises(ValueError, match="outside"):
        source.read(0, 751)
    with pytest.raises(ValueError, match="outside"):
        source.read(10, 5)
    source.close()
    with pytest.raises(ValueError, match="closed"):
        source.read(0, 10)


def test_read_many_reports_bad_file_and_reads_the_rest(tmp_path: Path) -> None:
    good_a, good_b, bad = tmp_path / "a.edf", tmp_path / "b.edf", tmp_path / "bad.edf"
    write_edf(good_a, TUSZ_REF_LABELS, seconds=2)
    write_edf(good_b, TUSZ_REF_LABELS, seconds=3)
    bad.write_bytes(b"not an edf at all" * 30)
    recordings, errors = read_many([good_a, bad, good_b])
    assert [r.meta.path for r in recordings] == [good_a, good_b]
    assert len(errors) == 1 and errors[0].path == bad and "not an EDF" in errors[0].problem


def test_to_mne_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("mne")
    path = tmp_path / "mne.edf"
    write_edf(path, TUSZ_REF_LABELS, seconds=2)
    rec = read_edf(path)
    raw = rec.to_mne()
    assert raw.ch_names == list(CANONICAL_19) and raw.info["sfreq"] == 250.0
    np.testing.assert_allclose(raw.get_data() * 1e6, rec.data, rtol=1e-5, atol=1e-3)


def test_recording_from_mne_is_the_inverse_of_to_mne(tmp_path: Path) -> None:
    path = tmp_path / "pat_s001_t000.edf"
    write_edf(path, TUSZ_REF_LABELS, seconds=3)
    rec = read_edf(path)
    back = recording_from_mne(rec.to_mne())
    assert back.channel_names == CANONICAL_19 and back.sfreq == rec.sfreq and back.data.dtype == np.float32
    np.testing.assert_allclose(back.data, rec.data, rtol=1e-6, atol=1e-4)  # µV in, µV out
    assert back.meta.start == rec.meta.start and back.reconstructed == () and back.meta.path == Path("<mne Raw>")
    # Straight from a file MNE reads (here the EDF itself): its labels are matched as ours are, the file is named.
    mne = pytest.importorskip("mne")
    from_file = recording_from_mne(mne.io.read_raw_edf(path, verbose="error"))
    assert from_file.meta.path == path and from_file.source_labels == tuple(TUSZ_REF_LABELS)
    np.testing.assert_allclose(from_file.data, rec.data, rtol=1e-6, atol=1e-3)


def test_recording_from_mne_maps_names_reorders_and_reconstructs(tmp_path: Path) -> None:
    path = tmp_path / "a.edf"
    write_edf(path, TUSZ_REF_LABELS, seconds=2)
    rec = read_edf(path)
    raw = rec.to_mne()
    raw.rename_channels({"T3": "T7", "Fp1": "EEG FP1-LE"})  # 10-10 name, TUSZ-style label
    raw.reorder_channels(list(reversed(raw.ch_names)))
    back = recording_from_mne(raw)
    np.testing.assert_allclose(back.data, rec.data, rtol=1e-6, atol=1e-4)
    assert back.source_labels[CANONICAL_19.index("T3")] == "T7"

    raw.drop_channels(["Fz"])
    with pytest.warns(EdfRepairWarning, match="<mne Raw>: reconstructed missing channel.*Fz"):
        missing_fz = recording_from_mne(raw)
    present = tuple(c for c in CANONICAL_19 if c != "Fz")
    expected = interpolation_weights(present, ("Fz",)) @ rec.data[[CANONICAL_19.index(c) for c in present]]
    np.testing.assert_allclose(missing_fz.data[CANONICAL_19.index("Fz")], expected[0], rtol=1e-5, atol=1e-3)
    assert missing_fz.reconstructed == ("Fz",)


def test_recording_from_mne_treats_bad_channels_as_absent(tmp_path: Path) -> None:
    path = tmp_path / "a.edf"
    write_edf(path, TUSZ_REF_LABELS, seconds=2)
    raw = read_edf(path).to_mne()
    raw.info["bads"] = ["C3"]
    with pytest.raises(EdfReadError, match=r"<mne Raw>: missing EEG channel\(s\) C3"):
        recording_from_mne(raw)
    raw.info["bads"] = ["Pz"]
    with pytest.warns(EdfRepairWarning) as caught:
        assert recording_from_mne(raw).reconstructed == ("Pz",)
    assert [str(w.message).split(": ", 1)[1][:30] for w in caught] == [
        "channel(s) marked bad, not use",
        "reconstructed missing channel(",
    ]
