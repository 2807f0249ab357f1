"""The NEDC scorers against the slow transcription of ``scoring.md`` (``nedc_oracle``) on generated hard cases.

A seeded property test: a few hundred random lists of reference/hypothesis files per run, built to hold the
inputs that break scorers (overlapping, nested, duplicate and touching rows; gaps below 1e-4 s, some over a
sample time of EPOCH; one hypothesis over several references and several inside one; events at 0 s, at the
duration and past it; times with more than 4 decimals; zero-length rows; explicit background rows; empty
files). Counts must be equal exactly, TAES fractions to 1e-9. Then hand-made cases of overlapping rows, worked
out by hand, and the remaining differences from the NEDC tool, each shown.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nedc_oracle as oracle
from ictal.io.annotations import Annotation, Event
from ictal.scoring.common import NedcEvents, ScoringError, round_nedc
from ictal.scoring.nedc import NEDC_SCORERS, score_nedc

Row = tuple[float, float, str]
FilePair = tuple[float, list[Row], list[Row]]

DURATIONS = (60.0, 100.0, 123.4567, 200.000041, 59.99999, 90.125)
#: Fractional parts that land on or near 4-decimal rounding ties and on EPOCH sample times (k + 0.125).
TAILS = (0.0, 0.0, 0.00002, 0.00004, 0.00005, 0.00007, 0.125, 0.12504, 0.12498, 0.5, 0.99999)


@st.composite
def a_time(draw: st.DrawFn, duration: float) -> float:
    kind = draw(st.sampled_from(("integer", "decimals", "bound")))
    if kind == "bound":
        return draw(st.sampled_from((0.0, duration)))
    if kind == "integer":
        return float(draw(st.integers(0, int(duration)))) + draw(st.sampled_from(TAILS))
    return round(draw(st.floats(0.0, duration, allow_nan=False)), draw(st.sampled_from((4, 6, 9))))


@st.composite
def a_row(draw: st.DrawFn, duration: float) -> tuple[float, float]:
    start = draw(a_time(duration))
    length = draw(st.sampled_from((0.0, 0.5, 3.0, 17.25, 40.0, 120.0)))
    length += draw(st.sampled_from(TAILS))
    return start, start + length


@st.composite
def a_related_row(draw: st.DrawFn, duration: float, refs: list[tuple[float, float]]) -> tuple[float, float]:
    """A row placed against the reference rows: the hard cases."""
    if not refs:
        return draw(a_row(duration))
    a, b = draw(st.sampled_from(refs))
    kind = draw(st.sampled_from(("overlap", "nested", "touching", "tiny_gap", "spanning", "duplicate", "shifted")))
    if kind == "overlap":
        return a + (b - a) / 2, b + 5.0
    if kind == "nested":
        return a + (b - a) / 4, a + (b - a) / 2
    if kind == "touching":
        return b, b + draw(st.sampled_from((0.5, 9.0)))
    if kind == "tiny_gap":
        return b + draw(st.sampled_from((0.00002, 0.00004, 0.00006, 0.0001))), b + 7.0
    if kind == "spanning":
        lo, hi = min(r[0] for r in refs), max(r[1] for r in refs)
        return max(0.0, lo - 2.0), hi + 2.0
    if kind == "duplicate":
        return a, b
    return max(0.0, a + draw(st.sampled_from((-3.0, -0.5, 0.3)))), b + draw(st.sampled_from((-2.0, 0.0, 4.0)))


def _background(rows: list[tuple[float, float]], duration: float) -> list[Row]:
    """Explicit ``bckg`` rows over the gaps, as TUSZ files and ictal's own outputs have them."""
    out: list[Row] = []
    now = 0.0
    for a, b in sorted(rows):
        if a > now:
            out.append((now, a, "bckg"))
        now = max(now, b)
    if now < duration:
        out.append((now, duration, "bckg"))
    return out


@st.composite
def a_file_pair(draw: st.DrawFn) -> FilePair:
    duration = draw(st.sampled_from(DURATIONS))
    refs = draw(st.lists(a_row(duration), max_size=4))
    if draw(st.booleans()) and refs:  # a second reference row against the first: overlapping references too
        refs.append(draw(a_related_row(duration, refs)))
    hyps = draw(st.lists(st.one_of(a_row(duration), a_related_row(duration, refs)), max_size=5))
    seam: list[Row] = []
    if draw(st.integers(0, 7)) == 0:
        # A gap below 1e-4 s right over a sample time (k + 0.125) between a seizure and a background row: no
        # filler and no event holds that sample, so the tool gives it the file's last label, a seizure where
        # the file ends in one.
        k = float(draw(st.integers(0, int(duration) - 2)))
        seam = [(k, k + 0.12498, "seiz"), (k + 0.12503, k + 1.0, "bckg")]
    if draw(st.integers(0, 5)) == 0:
        # A last seizure at the duration or 2e-5 s short of it: a sample past its stop takes its label.
        seam.append((duration - 0.5, duration - draw(st.sampled_from((0.0, 0.00002))), "seiz"))

    def rows(intervals: list[tuple[float, float]]) -> list[Row]:
        out: list[Row] = [(a, b, "seiz") for a, b in intervals]
        extra = draw(st.sampled_from(("none", "none", "complement", "random")))
        if extra == "complement":
            out += _background(intervals, duration)
        elif extra == "random":
            out += [(a, min(b, duration), "bckg") for a, b in draw(st.lists(a_row(duration), max_size=2)) if a <= b]
        return draw(st.permutations(out)) if draw(st.booleans()) else sorted(out)

    return duration, rows(refs), rows(hyps) + seam


def annotation(rows: list[Row], duration: float) -> Annotation:
    return Annotation([Event(a, b, label) for a, b, label in rows], duration=duration)


def assert_counts_equal(ours: list[float], expected: list[float], what: str) -> None:
    assert ours[:3] == pytest.approx(expected[:3], abs=1e-9, rel=0), what
    assert ours[3] == pytest.approx(expected[3], abs=1e-9, rel=0), what


@settings(max_examples=300, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.lists(a_file_pair(), min_size=1, max_size=3))
def test_scorers_equal_the_transcription_of_the_spec(files: list[FilePair]) -> None:
    pairs = [(annotation(ref, d), annotation(hyp, d)) for d, ref, hyp in files]
    expected = [oracle.score_file(ref, hyp, d) for d, ref, hyp in files]
    durations = [oracle.scored_duration(oracle.common_step(ref, d)) for d, ref, _ in files]
    for name in NEDC_SCORERS:
        if any("error" in e[name] for e in expected):
            with pytest.raises(ScoringError, match="zero-length reference event"):
                score_nedc(pairs, [name])
            continue
        result = score_nedc(pairs, [name])[name]
        assert result.total_duration_s == pytest.approx(sum(durations), abs=1e-9)
        for f, (file_score, exp) in enumerate(zip(result.per_file, expected, strict=True)):
            for label, counts in (("seiz", file_score.seiz), ("bckg", file_score.bckg)):
                ours = [counts.targets, counts.hits, counts.misses, counts.false_alarms]
                assert_counts_equal(ours, exp[name][label], f"{name} {label} file {f}: {files[f]}")
        pooled = np.sum([e[name]["seiz"] for e in expected], axis=0)
        assert_counts_equal([result.targets, result.hits, result.misses, result.false_alarms], list(pooled), name)


@settings(max_examples=100, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.lists(a_file_pair(), min_size=1, max_size=3))
def test_interval_fast_path_equals_the_annotation_path(files: list[FilePair]) -> None:
    """Seizure rows alone, as predictions and sweeps give them: the same events as from annotations."""
    seiz = [[(a, b) for a, b, label in ref if label == "seiz"] for _, ref, _ in files]
    durations = [d for d, _, _ in files]
    from_intervals = NedcEvents.from_intervals(seiz, durations)
    from_annotations = NedcEvents.from_annotations(
        [annotation([(a, b, "seiz") for a, b in s], d) for s, d in zip(seiz, durations, strict=True)]
    )
    for f in range(len(files)):
        assert from_intervals.file_events(f) == from_annotations.file_events(f)
        assert from_intervals.file_events(f) == oracle.common_step([(a, b, "seiz") for a, b in seiz[f]], durations[f])


# ---- hand-made overlapping rows ------------------------------------------------------------------------------


def score_one(ref: list[Row], hyp: list[Row], duration: float = 100.0) -> dict[str, tuple[float, ...]]:
    results = score_nedc([(annotation(ref, duration), annotation(hyp, duration))])
    return {name: (r.targets, r.hits, r.misses, r.false_alarms) for name, r in results.items()}


def test_two_overlapping_hypotheses_without_a_reference_are_two_false_alarms() -> None:
    # Ref: one seizure (10, 20). Hyp rows (40, 60) and (50, 70) overlap. The tool's timeline for the hypothesis:
    # bckg (0, 40), seiz (40, 60), bckg (60, 50) [negative], seiz (50, 70), bckg (70, 100): two events.
    r = score_one([(10, 20, "seiz")], [(40, 60, "seiz"), (50, 70, "seiz")])
    # OVLP: the reference is missed; each hypothesis overlaps no reference: 2 false alarms (merged: 1).
    assert r["ovlp"] == (1, 0, 1, 2)
    # TAES: no hypothesis meets the reference: miss 1; both hypotheses unused: fa 2.
    assert r["taes"] == pytest.approx((1, 0, 1, 2))
    # DPALIGN: ref b s b, hyp b s b s b: the reference s aligns with the first hypothesis s (the tool's ties),
    # and the second hypothesis s plus a b are insertions; seiz: 1 target, 1 hit, 0 misses, 1 false alarm.
    assert r["dpalign"] == (1, 1, 0, 1)
    # EPOCH is about samples, not events: (40, 70] holds 120 false-alarm samples either way.
    assert r["epoch"] == (40, 0, 40, 120)


def test_overlapping_hypotheses_over_one_reference() -> None:
    # Ref (10, 30). Hyp rows (5, 20) and (15, 40): both overlap the reference.
    r = score_one([(10, 30, "seiz")], [(5, 20, "seiz"), (15, 40, "seiz")])
    # OVLP: 1 hit, and neither hypothesis is a false alarm.
    assert r["ovlp"] == (1, 1, 0, 0)
    # TAES: j = (5, 20) is "pre": hit (20 - 10) / 20 = 0.5, fa (10 - 5) / 20 = 0.25; it stops before the
    # reference does, so later hypotheses meeting the reference add theirs: (15, 40) is "post": hit
    # (30 - 15) / 20 = 0.75, fa (40 - 30) / 20 = 0.5. Hit 1.25, miss 1 - 1.25 = -0.25, fa 0.75: the tool's
    # credit, over-counted, exactly as it computes it (merged, (5, 40) is "over": hit 1, fa 0.75).
    assert r["taes"] == pytest.approx((1, 1.25, -0.25, 0.75))


def test_nested_hypothesis_rows_and_a_long_one_over_two_references() -> None:
    # Ref (10, 20) and (30, 40). Hyp rows (0, 50) and (12, 14) nested inside it.
    r = score_one([(10, 20, "seiz"), (30, 40, "seiz")], [(0, 50, "seiz"), (12, 14, "seiz")])
    # OVLP: both references hit (by (0, 50)); (12, 14) overlaps the first: no false alarm.
    assert r["ovlp"] == (2, 2, 0, 0)
    # TAES: ref (10, 20) with j = (0, 50), "over": hit 1, fa min(1, (30 + 10) / 10) = 1; it runs past the
    # reference, so the later reference (30, 40) it meets is a whole miss: miss 0 + 1. The walk over
    # hypotheses goes on for the same reference: (12, 14) is "inside": hit 2 / 10 = 0.2, miss 0.8, fa 0.
    # Totals: hit 1.2, miss 1.8, fa 1 (merged, (12, 14) would vanish into (0, 50): hit 1, miss 1, fa 1).
    assert r["taes"] == pytest.approx((2, 1.2, 1.8, 1))
    # DPALIGN: ref b s b s b (5), hyp s b s b (the nested row after a negative filler): ref's first b deleted,
    # then s-s, b-b, s-s, b-b: seiz 2 targets, 2 hits.
    assert r["dpalign"] == (2, 2, 0, 0)


def test_touching_rows_still_join_and_overlap_to_four_decimals_counts_as_touching() -> None:
    # (10, 20.00003) and (20.00001, 30) both round to 20.0 at the seam: no filler, one event (10, 30).
    r = score_one([(10, 30, "seiz")], [(10, 20.00003, "seiz"), (20.00001, 30, "seiz")])
    assert r["ovlp"] == (1, 1, 0, 0)
    assert r["taes"] == pytest.approx((1, 1, 0, 0))
    assert r["dpalign"] == (1, 1, 0, 0)


# ---- the documented differences from the tool ----------------------------------------------------------------


def test_difference_labels_outside_the_tools_map_are_mapped() -> None:
    # The tool stops on a label outside its map (seiz, bckg); here seizure types score as seiz, others as bckg.
    r = score_one([(10, 20, "fnsz")], [(12, 18, "gnsz"), (40, 50, "artf")])
    assert r["ovlp"] == (1, 1, 0, 0)


def test_difference_a_file_without_term_rows_is_its_channels_union() -> None:
    # The tool reads only TERM rows, so a per-channel file is empty to it; here the union of its seizure rows.
    ref = Annotation([Event(10, 20, "seiz", "FP1-F7"), Event(15, 25, "seiz", "F7-T3")], duration=100)
    hyp = Annotation([Event(12, 14, "seiz")], duration=100)
    assert NedcEvents.from_annotations([ref]).file_events(0) == [(0, 10, "bckg"), (10, 25, "seiz"), (25, 100, "bckg")]
    assert score_nedc([(ref, hyp)], ["ovlp"])["ovlp"].hits == 1


def test_difference_taes_zero_length_reference_is_an_error_naming_the_file() -> None:
    # The tool stops with ZeroDivisionError; here one error that names the file and the event.
    ref = Annotation([Event(5, 5, "seiz")], duration=100)
    ref.path = None
    pairs = [(ref, Annotation([Event(0, 50, "seiz")], duration=100))]
    with pytest.raises(ScoringError, match=r"ref\[0\]: a zero-length reference event at 5"):
        score_nedc(pairs, ["taes"])
    # The other scorers score it as the tool does: OVLP hits it.
    assert score_nedc(pairs, ["ovlp"])["ovlp"].hits == 1


def test_rounding_is_pythons_round_not_numpys() -> None:
    values = [0.00005, 1.00005, 2.675049999, 10.12505, 123.45675, 0.03125, 5e-05, 99999.99995]
    assert round_nedc(values).tolist() == [round(v, 4) for v in values]
    assert any(round(v, 4) != float(np.round(v, 4)) for v in values)  # where NumPy's rounding differs
    rng = np.random.default_rng(0)
    x = np.round(rng.uniform(0, 1e5, 20000), 5)
    assert round_nedc(x).tolist() == [round(v, 4) for v in x.tolist()]
    assert not math.isnan(float(round_nedc(0.0)))
