"""TUSZ .csv_bi / .csv reading and writing, label set, masks, malformed rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ictal.errors import AnnotationError
from ictal.io.annotations import (
    SEIZURE_LABELS,
    Annotation,
    Event,
    format_annotations,
    intervals_to_mask,
    mask_to_intervals,
    read_annotations,
    term_annotation,
    write_annotations,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
CSV_BI = """# version = csv_v1.0.0
# bname = aaaaaasf_s001_t000
# duration = 1289.0000 secs
# montage_file = montage_eeg_resnet_v00.txt
#
channel,start_time,stop_time,label,confidence
TERM,0.0000,49.0000,bckg,1.0000
TERM,49.0000,674.0000,seiz,1.0000
TERM,674.0000,767.0000,bckg,1.0000
"""
CSV = """# version = csv_v1.0.0
# bname = aaaaaaac_s001_t000
# duration = 301.0000 secs
#
channel,start_time,stop_time,label,confidence
FP1-F7,36.8868,183.3055,cpsz,1.0000
F7-T3,40.0000,190.0000,cpsz,1.0000
C3-P3,250.0000,260.0000,mysz,1.0000
T3-T5,0.0000,301.0000,bckg,1.0000
"""


def test_csv_bi_round_trip_exact(tmp_path: Path) -> None:
    src = tmp_path / "a.csv_bi"
    src.write_text(CSV_BI)
    ann = read_annotations(src)
    assert ann.duration == 1289.0 and ann.bname == "aaaaaasf_s001_t000"
    assert ann.seizure_intervals() == [(49.0, 674.0)]
    out = tmp_path / "b.csv_bi"
    write_annotations(out, ann)
    assert out.read_text() == CSV_BI  # same header, same rows, byte for byte
    again = read_annotations(out)
    assert again.events == ann.events and again.header == ann.header


def test_csv_union_and_all_nine_labels(tmp_path: Path) -> None:
    src = tmp_path / "a.csv"
    src.write_text(CSV)
    ann = read_annotations(src)
    # union over channels; mysz counts (the old parser turned it into background)
    assert ann.seizure_intervals() == [(36.8868, 190.0), (250.0, 260.0)]
    assert {"seiz", "gnsz", "fnsz", "cpsz", "absz", "spsz", "tcsz", "tnsz", "mysz"} == SEIZURE_LABELS
    for label in SEIZURE_LABELS:
        assert Event(0, 1, label).is_seizure
    for label in ("bckg", "artf", "eyem", "musc"):
        assert not Event(0, 1, label).is_seizure
    out = tmp_path / "b.csv"
    write_annotations(out, ann)
    assert out.read_text() == CSV


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ("TERM,50.0,40.0,seiz,1.0", "stop_time 40.0 is before start_time 50.0"),
        ("TERM,abc,40.0,seiz,1.0", "start_time 'abc' is not a number"),
        ("TERM,1.0,nan,seiz,1.0", "not finite"),
        ("TERM,1.0,2.0", "expected 5 comma-separated fields"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path: Path, row: str, needle: str) -> None:
    bad = tmp_path / "bad.csv_bi"
    bad.write_text(CSV_BI + row + "\n")
    with pytest.raises(AnnotationError) as info:
        read_annotations(bad)
    msg = str(info.value)
    assert f"{bad}:10:" in msg and needle in msg


def test_missing_duration_and_missing_columns(tmp_path: Path) -> None:
    f = tmp_path / "x.csv_bi"
    f.write_text("channel,start_time,stop_time,label,confidence\nTERM,0,1,seiz,1\n")
    with pytest.raises(AnnotationError, match="duration"):
        read_annotations(f)
    assert read_annotations(f, duration=10).duration == 10
    f.write_text("# duration = 5 secs\nTERM,0,1,seiz,1\n")
    with pytest.raises(AnnotationError, match="column line"):
        read_annotations(f)


def test_batch_carries_on_after_a_bad_file(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.csv_bi", tmp_path / "bad.csv_bi"
    good.write_text(CSV_BI)
    bad.write_text(CSV_BI + "TERM,9,x,seiz,1\n")
    read, errors = [], []
    for path in (bad, good):
        try:
            read.append(read_annotations(path))
        except AnnotationError as exc:
            errors.append(exc)
    assert len(read) == 1 and len(errors) == 1 and errors[0].path == bad


def test_term_annotation_fills_background() -> None:
    ann = term_annotation([(10.0, 20.0), (30.0, 35.5)], 60.0, "x_s001_t000")
    labels = [(e.start, e.stop, e.label) for e in ann.events]
    assert labels == [
        (0, 10, "bckg"),
        (10, 20, "seiz"),
        (20, 30, "bckg"),
        (30, 35.5, "seiz"),
        (35.5, 60, "bckg"),
    ]
    assert "# duration = 60.0000 secs" in format_annotations(ann)


@pytest.mark.parametrize("rate", [256.0, 16.0])
def test_mask_round_trip(rate: float) -> None:
    intervals = [(1.0, 2.5), (4.0, 4.0625), (10.0, 12.0)]
    n = int(15 * rate)
    mask = intervals_to_mask(intervals, n, rate)
    assert mask.sum() == round(sum(b - a for a, b in intervals) * rate)
    assert mask_to_intervals(mask, rate) == intervals
    assert mask_to_intervals(np.zeros(5, bool), rate) == []
    assert mask_to_intervals(np.ones(4, bool), rate) == [(0.0, 4 / rate)]


def test_real_tusz_csv_bi_files() -> None:
    root = SHARED / "fixtures" / "real_headers" / "data" / "tuh"
    if not root.is_dir():
        pytest.skip(f"shared fixtures not found at {root} (they ship beside the repository, not inside it)")
    files = sorted(root.rglob("*.csv_bi"))
    assert files
    for f in files:
        ann = read_annotations(f)
        assert ann.duration > 2.0  # original length, longer than the 2 s of signal kept in the fixture
        assert all(e.stop <= ann.duration + 1e-6 for e in ann.events)
        assert isinstance(ann, Annotation)
