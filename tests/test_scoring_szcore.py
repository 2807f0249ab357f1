"""SzCORE event and sample scoring through timescoring: hand-made cases, pooled vs subject mean."""

from __future__ import annotations

import math
from pathlib import Path

import pydantic
import pytest

from ictal.io.annotations import Annotation, Event
from ictal.scoring.common import ScoringError
from ictal.scoring.szcore import SzcoreConfig, score_szcore, subject_id


def ann(name: str, seizures: list[tuple[float, float]], duration: float = 3600.0) -> Annotation:
    return Annotation([Event(a, b, "seiz") for a, b in seizures], duration=duration, path=Path(name))


def test_event_scoring_by_the_definitions() -> None:
    ref = ann("aaaaaaaa_s001_t000.csv_bi", [(1000, 1060)])
    # A hit overlapping the start; a detection 40-50 s after the seizure, inside the 60 s tolerance (no FP,
    # and more than 90 s after the first so not merged with it); a detection far away: one FP.
    hyp = ann("aaaaaaaa_s001_t000.csv_bi", [(990, 1000.5), (1100, 1110), (2000, 2010)])
    r = score_szcore([(ref, hyp)])["event"]
    assert (r.pooled.tp, r.pooled.fp, r.pooled.ref_events) == (1, 1, 1)
    assert r.pooled.sensitivity == 1.0
    assert r.pooled.precision == 0.5
    assert r.pooled.f1 == pytest.approx(2 / 3)
    assert r.pooled.fp_per_24h == pytest.approx(24.0)


def test_event_scoring_merges_close_and_splits_long_events() -> None:
    # Two reference seizures 50 s apart merge into one event; a 700 s seizure splits into 300 + 300 + 100.
    ref = ann("b_s001_t000.csv_bi", [(100, 120), (170, 190), (1000, 1700)])
    hyp = ann("b_s001_t000.csv_bi", [])
    r = score_szcore([(ref, hyp)])["event"]
    assert r.pooled.ref_events == 4
    assert r.pooled.tp == 0 and r.pooled.fp == 0
    assert math.isnan(r.pooled.precision)


def test_event_scoring_tolerance_is_configurable() -> None:
    ref = ann("c_s001_t000.csv_bi", [(1000, 1060)])
    hyp = ann("c_s001_t000.csv_bi", [(1100, 1110)])
    assert score_szcore([(ref, hyp)])["event"].pooled.fp == 0
    strict = SzcoreConfig(tolerance_after_s=0.0)
    r = score_szcore([(ref, hyp)], strict)["event"]
    assert (r.pooled.tp, r.pooled.fp) == (0, 1)


def test_sample_scoring_counts_mask_samples() -> None:
    ref = ann("d_s001_t000.csv_bi", [(100, 200)], duration=1000.0)
    hyp = ann("d_s001_t000.csv_bi", [(150, 250)], duration=1000.0)
    r = score_szcore([(ref, hyp)])["sample"]
    # 10 Hz masks: 1000 reference samples, 500 shared, 500 false positive.
    assert (r.pooled.ref_events, r.pooled.tp, r.pooled.fp) == (1000, 500, 500)
    assert r.pooled.sensitivity == 0.5


def test_pooled_and_subject_mean_differ() -> None:
    pairs = [
        # Subject A: one seizure, detected.
        (ann("aaaaaaaa_s001_t000.csv_bi", [(500, 560)]), ann("aaaaaaaa_s001_t000.csv_bi", [(510, 520)])),
        # Subject B: three seizures over two files, none detected.
        (ann("bbbbbbbb_s001_t000.csv_bi", [(500, 560)]), ann("bbbbbbbb_s001_t000.csv_bi", [])),
        (
            ann("bbbbbbbb_s002_t001.csv_bi", [(500, 560), (2000, 2060)]),
            ann("bbbbbbbb_s002_t001.csv_bi", [(3000, 3010)]),
        ),
    ]
    r = score_szcore(pairs)["event"]
    assert set(r.subjects) == {"aaaaaaaa", "bbbbbbbb"}
    assert r.pooled.sensitivity == pytest.approx(1 / 4)
    assert r.subject_mean.sensitivity == pytest.approx((1.0 + 0.0) / 2)
    # FP per 24 h: pooled 1 FP over 3 h; per subject 0 and 1 FP over 2 h, mean 6.
    assert r.pooled.fp_per_24h == pytest.approx(8.0)
    assert r.subject_mean.fp_per_24h == pytest.approx(6.0)
    # Subject B made one detection, all wrong: precision 0; A's is 1.
    assert r.subject_mean.precision == pytest.approx(0.5)
    assert r.subject_mean.n_subjects["sensitivity"] == 2


def test_subject_without_seizures_is_left_out_of_the_sensitivity_mean() -> None:
    pairs = [
        (ann("aaaaaaaa_s001_t000.csv_bi", [(500, 560)]), ann("aaaaaaaa_s001_t000.csv_bi", [(510, 520)])),
        (ann("cccccccc_s001_t000.csv_bi", []), ann("cccccccc_s001_t000.csv_bi", [(100, 110)])),
    ]
    r = score_szcore(pairs)["event"]
    assert r.subject_mean.sensitivity == 1.0
    assert r.subject_mean.n_subjects["sensitivity"] == 1
    assert r.subject_mean.n_subjects["fp_per_24h"] == 2


def test_subject_id_and_errors() -> None:
    assert subject_id("/x/y/aaaaaasf_s001_t000.csv_bi") == "aaaaaasf"
    ref = ann("e_s001_t000.csv_bi", [], duration=100.0)
    hyp = ann("e_s001_t000.csv_bi", [], duration=101.0)
    with pytest.raises(ScoringError, match="durations differ"):
        score_szcore([(ref, hyp)])
    with pytest.raises(pydantic.ValidationError):
        pydantic.TypeAdapter(SzcoreConfig).validate_python({"merge_s": 90, "bogus": 1})
    with pytest.raises(pydantic.ValidationError):
        pydantic.TypeAdapter(SzcoreConfig).validate_python({"sample_rate_hz": 0})
