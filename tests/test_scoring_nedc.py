"""NEDC v6 scorers: the shipped sample reproduced to the printed digit, and hand-made cases from the definitions."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from ictal.io.annotations import Annotation, Event, read_annotations
from ictal.scoring.common import NedcEvents, ScoringError
from ictal.scoring.nedc import score_events, score_intervals, score_nedc
from ictal.scoring.nedc_dpalign import align_labels
from ictal.scoring.nedc_taes import taes_part, taes_walk

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "nedc_v6_sample"
needs_sample = pytest.mark.skipif(
    not SAMPLE.is_dir(), reason=f"NEDC v6 sample not found at {SAMPLE} (the shared folder beside the repo)"
)

#: summary.txt section title of each scorer.
SECTIONS = {
    "dpalign": "NEDC DP ALIGNMENT SCORING SUMMARY",
    "epoch": "NEDC EPOCH SCORING SUMMARY",
    "ovlp": "NEDC OVERLAP SCORING SUMMARY",
    "taes": "NEDC TAES SCORING SUMMARY",
}


# ---- reading the reference tool's output ---------------------------------------------------------------------


def summary_section(scorer: str) -> str:
    text = (SAMPLE / "results" / "summary.txt").read_text()
    start = text.index(SECTIONS[scorer])
    end = text.find("=" * 20, start)
    return text[start:end]


def label_block(section: str, label: str) -> dict[str, str]:
    """The printed value strings of one ``LABEL:`` block, keyed by field name."""
    start = section.index(f"LABEL: {label}")
    end = section.find("LABEL:", start + 1)
    end = section.index("SUMMARY:", start) if end < 0 else end
    fields = {}
    for name, value in re.findall(r"^\s*([A-Za-z][A-Za-z ().,]*?):\s+(-?[\d.]+)", section[start:end], re.M):
        fields[name.strip()] = value
    return fields


def total_duration(section: str) -> str:
    match = re.search(r"Total Duration:\s+([\d.]+) secs", section)
    assert match
    return match.group(1)


def per_file_table(scorer: str) -> list[dict[str, object]]:
    """Each file's block in ``summary_<scorer>.txt``: ref/hyp names, label sequences, printed counts."""
    text = (SAMPLE / "results" / f"summary_{scorer}.txt").read_text()
    rows = []
    pattern = (
        r"^\s*\d+: (\S+)\n\s+(\S+)\n\s+Ref: (.*)\n\s+Hyp: (.*)\n\s+\(Hit: (\S+)\s+Miss: (\S+)\s+"
        r"False Alarms: (\S+)\s+Total: (\S+)\)"
    )
    for m in re.finditer(pattern, text, re.M):
        rows.append(
            {
                "ref": Path(m.group(1)).name,
                "hyp": Path(m.group(2)).name,
                "ref_labels": m.group(3).split(),
                "hyp_labels": m.group(4).split(),
                "printed": m.group(5, 6, 7, 8),
            }
        )
    return rows


def same_digits(value: float, printed: str, scale: float = 1.0) -> bool:
    """Whether ``value * scale`` prints as ``printed`` with as many decimals as it has."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return f"{value * scale:.{decimals}f}" == printed


def sample_pairs() -> list[tuple[Annotation, Annotation]]:
    def listed(name: str) -> list[Path]:
        return [SAMPLE / line.strip() for line in (SAMPLE / name).read_text().splitlines() if line.strip()]

    refs, hyps = listed("ref.list"), listed("hyp.list")
    return [(read_annotations(r), read_annotations(h)) for r, h in zip(refs, hyps, strict=True)]


# ---- conformance ---------------------------------------------------------------------------------------------


@needs_sample
def test_sample_summary_reproduced_for_every_scorer() -> None:
    results = score_nedc(sample_pairs())
    for scorer, result in results.items():
        section = summary_section(scorer)
        seiz, bckg = label_block(section, "SEIZ"), label_block(section, "BCKG")
        for got, field in (
            (result.targets, "Targets"),
            (result.hits, "Hits"),
            (result.misses, "Misses"),
            (result.false_alarms, "False Alarms"),
        ):
            assert same_digits(got, seiz[field]), (scorer, field, got, seiz[field])
        assert same_digits(result.sensitivity, seiz["Sensitivity (TPR, Recall)"], 100.0), scorer
        assert same_digits(result.fa_per_24h, seiz["False Alarm Rate"]), (scorer, result.fa_per_24h)
        assert same_digits(result.total_duration_s, total_duration(section))
        for got, field in (
            (result.bckg.targets, "Targets"),
            (result.bckg.hits, "Hits"),
            (result.bckg.misses, "Misses"),
            (result.bckg.false_alarms, "False Alarms"),
        ):
            assert same_digits(got, bckg[field]), (scorer, "BCKG", field)


@needs_sample
def test_sample_figures_quoted_in_the_spec() -> None:
    r = score_nedc(sample_pairs())
    assert (r["ovlp"].targets, r["ovlp"].hits, r["ovlp"].misses, r["ovlp"].false_alarms) == (701, 604, 97, 2)
    assert f"{r['ovlp'].sensitivity * 100:.4f} {r['ovlp'].fa_per_24h:.4f}" == "86.1626 3.8165"
    assert f"{r['taes'].hits:.2f} {r['taes'].false_alarms:.2f}" == "46.41 47.99"
    assert f"{r['taes'].sensitivity * 100:.4f} {r['taes'].fa_per_24h:.4f}" == "6.6199 91.5814"
    assert (r["epoch"].targets, r["epoch"].hits, r["epoch"].false_alarms) == (76420, 68142, 47354)
    assert (r["dpalign"].hits, r["dpalign"].misses, r["dpalign"].false_alarms) == (58, 643, 0)
    assert {res.total_duration_s for res in r.values()} == {45277.0}
    # TAES can never exceed OVLP.
    assert r["taes"].sensitivity <= r["ovlp"].sensitivity


@needs_sample
@pytest.mark.parametrize("scorer", ["ovlp", "taes"])
def test_sample_per_file_tables(scorer: str) -> None:
    pairs = sample_pairs()
    result = score_nedc(pairs, [scorer])[scorer]
    ref_events = NedcEvents.from_annotations([r for r, _ in pairs])
    hyp_events = NedcEvents.from_annotations([h for _, h in pairs])
    table = per_file_table(scorer)
    assert len(table) == len(result.per_file) == 30
    for f, (row, score) in enumerate(zip(table, result.per_file, strict=True)):
        assert (Path(score.ref_path).name, Path(score.hyp_path).name) == (row["ref"], row["hyp"])
        # The label sequences after the common step, as the tool prints them (its TAES leaves "Hyp:" empty).
        assert ref_events.labels(f) == row["ref_labels"]
        assert (hyp_events.labels(f) if scorer == "ovlp" else []) == row["hyp_labels"]
        c = score.all_labels
        total = c.misses + c.false_alarms if scorer == "taes" else c.hits + c.misses + c.false_alarms
        got = (c.hits, c.misses, c.false_alarms, total)
        printed = row["printed"]
        assert all(same_digits(g, p) for g, p in zip(got, printed, strict=True)), (f, got, printed)


@needs_sample
def test_interval_fast_path_matches_annotation_path_on_sample() -> None:
    pairs = sample_pairs()
    refs = [r.seizure_intervals() for r, _ in pairs]
    hyps = [h.seizure_intervals() for _, h in pairs]
    durations = [r.duration for r, _ in pairs]
    full = score_nedc(pairs)
    fast = score_intervals(refs, hyps, durations)
    for name, r in fast.items():
        assert (r.targets, r.hits, r.misses, r.false_alarms) == pytest.approx(
            (full[name].targets, full[name].hits, full[name].misses, full[name].false_alarms)
        )
        assert r.per_file == []


# ---- the common step -----------------------------------------------------------------------------------------


def events(intervals: list[tuple[float, float]], duration: float = 100.0) -> NedcEvents:
    return NedcEvents.from_intervals([intervals], [duration])


def test_common_step_sorts_joins_touching_keeps_overlapping_and_fills_background() -> None:
    ev = events([(50, 60), (10, 20), (20, 30), (25, 28), (59.99996, 70)])
    assert ev.file_events(0) == [
        (0, 10, "bckg"),
        (10, 30, "seiz"),  # (10, 20) and (20, 30) touch: one event
        (30, 25, "bckg"),  # (25, 28) overlaps it: a filler of negative length between, as the NEDC tool does
        (25, 28, "seiz"),
        (28, 50, "bckg"),
        (50, 70, "seiz"),  # 59.99996 is 60.0 to 4 decimals: touching, joined; the row keeps its digits
        (70, 100, "bckg"),
    ]


def test_common_step_keeps_rows_past_the_duration_and_zero_length_rows() -> None:
    ev = events([(0, 5), (40, 40), (90, 120)])
    assert ev.file_events(0) == [
        (0, 5, "seiz"),
        (5, 40, "bckg"),
        (40, 40, "seiz"),
        (40, 90, "bckg"),
        (90, 120, "seiz"),
        (120, 100, "bckg"),  # back to the duration: the scored duration stays 100 s
    ]
    assert ev.scored_durations.tolist() == [100.0]
    assert events([]).labels(0) == ["bckg"]
    assert events([(0, 100)]).labels(0) == ["seiz"]


def test_common_step_reads_annotation_labels() -> None:
    ann = Annotation(
        [Event(0, 10, "bckg"), Event(10, 20, "fnsz"), Event(20, 30, "artf"), Event(30, 40, "seiz")], duration=50
    )
    assert NedcEvents.from_annotations([ann]).file_events(0) == [
        (0, 10, "bckg"),
        (10, 20, "seiz"),
        (20, 30, "bckg"),
        (30, 40, "seiz"),
        (40, 50, "bckg"),
    ]


def test_durations_must_agree_to_four_decimals() -> None:
    ref = Annotation([Event(1, 2, "seiz")], duration=100.0, path=Path("r/a.csv_bi"))
    ok = Annotation([], duration=100.00004, path=Path("h/a.csv_bi"))
    bad = Annotation([], duration=100.001, path=Path("h/b.csv_bi"))
    assert score_nedc([(ref, ok)], ["ovlp"])["ovlp"].misses == 1
    with pytest.raises(ScoringError, match=r"h/b\.csv_bi.*durations differ"):
        score_nedc([(ref, bad)], ["ovlp"])["ovlp"]


# ---- OVLP ----------------------------------------------------------------------------------------------------


def ovlp(ref: list[tuple[float, float]], hyp: list[tuple[float, float]], duration: float = 1000.0):
    return score_intervals([ref], [hyp], [duration], scorers=["ovlp"])["ovlp"]


def test_ovlp_one_long_hypothesis_over_k_references_is_k_hits() -> None:
    r = ovlp([(10, 20), (30, 40), (50, 60), (70, 80)], [(5, 85)])
    assert (r.targets, r.hits, r.misses, r.false_alarms) == (4, 4, 0, 0)


def test_ovlp_k_hypotheses_inside_one_reference_is_one_hit_no_false_alarm() -> None:
    r = ovlp([(10, 100)], [(20, 25), (30, 35), (40, 45)])
    assert (r.targets, r.hits, r.misses, r.false_alarms) == (1, 1, 0, 0)


def test_ovlp_touching_is_not_overlap() -> None:
    r = ovlp([(10, 20)], [(20, 30), (0, 10)])
    assert (r.hits, r.misses, r.false_alarms) == (0, 1, 2)
    r = ovlp([(10, 20)], [(19.9999, 30)])
    assert (r.hits, r.misses, r.false_alarms) == (1, 0, 0)


def test_ovlp_false_alarm_rate_and_empty_cases() -> None:
    r = ovlp([(10, 20)], [], duration=86400.0)
    assert (r.targets, r.hits, r.misses, r.false_alarms, r.sensitivity, r.fa_per_24h) == (1, 0, 1, 0, 0.0, 0.0)
    r = ovlp([], [(10, 20), (30, 40)], duration=43200.0)
    assert (r.targets, r.hits, r.false_alarms) == (0, 0, 2)
    assert math.isnan(r.sensitivity)
    assert r.fa_per_24h == pytest.approx(4.0)


def naive_ovlp(ref: list[tuple[float, float]], hyp: list[tuple[float, float]]) -> tuple[int, int]:
    hits = sum(any(h1 > r0 and h0 < r1 for h0, h1 in hyp) for r0, r1 in ref)
    fas = sum(not any(h1 > r0 and h0 < r1 for r0, r1 in ref) for h0, h1 in hyp)
    return hits, fas


def random_file(rng: np.random.Generator, duration: float, n_max: int) -> list[tuple[float, float]]:
    """Disjoint, non-touching random seizures on a 0.5 s grid (so the definitions need no merging)."""
    n = int(rng.integers(0, n_max + 1))
    cuts = np.sort(rng.choice(np.arange(1, int(duration * 2)), size=2 * n, replace=False)) / 2.0
    return [(float(a), float(b)) for a, b in cuts.reshape(-1, 2)]


def test_ovlp_vectorised_matches_the_definition_on_random_files() -> None:
    rng = np.random.default_rng(0)
    durations = [float(d) for d in rng.integers(60, 400, size=40)]
    refs = [random_file(rng, d, 6) for d in durations]
    hyps = [random_file(rng, d, 8) for d in durations]
    r = score_intervals(refs, hyps, durations, per_file=True, scorers=["ovlp"])["ovlp"]
    for f, score in enumerate(r.per_file):
        assert (score.seiz.hits, score.seiz.false_alarms) == naive_ovlp(refs[f], hyps[f])
        assert score.seiz.targets == len(refs[f])
    assert r.hits == sum(naive_ovlp(a, b)[0] for a, b in zip(refs, hyps, strict=True))


# ---- TAES ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hyp", "hit", "fa"),
    [
        ((5.0, 15.0), 0.5, 0.5),  # pre
        ((0.0, 12.0), 0.2, 1.0),  # pre, false alarm capped at 1
        ((15.0, 30.0), 0.5, 1.0),  # post
        ((12.0, 20.0), 0.8, 0.0),  # post, flush with the end
        ((8.0, 22.0), 1.0, 0.4),  # over
        ((12.0, 14.0), 0.2, 0.0),  # inside
    ],
)
def test_taes_part_cases(hyp: tuple[float, float], hit: float, fa: float) -> None:
    assert taes_part(10.0, 20.0, *hyp) == pytest.approx((hit, fa))


def walk(ref: list[tuple[float, float]], hyp: list[tuple[float, float]]) -> tuple[float, float, float]:
    r, h = np.array(ref, dtype=float).reshape(-1, 2), np.array(hyp, dtype=float).reshape(-1, 2)
    return taes_walk(r[:, 0], r[:, 1], h[:, 0], h[:, 1])


def test_taes_single_pairs_give_fractional_credit() -> None:
    assert walk([(10, 20)], [(5, 15)]) == pytest.approx((0.5, 0.5, 0.5))
    assert walk([(10, 20)], [(12, 14)]) == pytest.approx((0.2, 0.8, 0.0))
    assert walk([(10, 20)], [(8, 22)]) == pytest.approx((1.0, 0.0, 0.4))
    assert walk([(10, 20)], []) == (0.0, 1.0, 0.0)
    assert walk([], [(10, 20)]) == (0.0, 0.0, 1.0)
    assert walk([(10, 20)], [(30, 40)]) == (0.0, 1.0, 1.0)


def test_taes_several_hypotheses_inside_one_reference_add_up() -> None:
    assert walk([(10, 20)], [(12, 14), (16, 18)]) == pytest.approx((0.4, 0.6, 0.0))


def test_taes_long_hypothesis_makes_later_references_whole_misses() -> None:
    # First reference: post case (hit 0.5, fa capped at 1); the second one it touches is a whole miss.
    assert walk([(0, 10), (12, 20)], [(5, 30)]) == pytest.approx((0.5, 1.5, 1.0))


def test_taes_integer_second_overlap_quirk() -> None:
    # The second hypothesis shares only the integer second 20 with the reference: the tool still scores it
    # against the reference (post case), which gives a negative partial hit, and it is no longer a false alarm.
    d = 10.3
    hit, miss, fa = walk([(10.0, 20.3)], [(12.0, 14.0), (20.6, 25.0)])
    assert hit == pytest.approx(2.0 / d + (20.3 - 20.6) / d)
    assert miss == pytest.approx(1.0 - hit)
    assert fa == pytest.approx(min(1.0, 4.7 / d))
    # Sharing an integer second without strict overlap is not enough to start the walk at a reference.
    assert walk([(10.2, 20.5)], [(20.7, 30.0)]) == (0.0, 1.0, 1.0)


def test_taes_sensitivity_never_exceeds_ovlp_on_random_cases() -> None:
    rng = np.random.default_rng(1)
    for _ in range(30):
        durations = [float(d) for d in rng.integers(60, 300, size=5)]
        refs = [random_file(rng, d, 5) for d in durations]
        hyps = [random_file(rng, d, 7) for d in durations]
        if not any(refs):
            continue
        ref_ev, hyp_ev = NedcEvents.from_intervals(refs, durations), NedcEvents.from_intervals(hyps, durations)
        o, t = (
            score_events(ref_ev, hyp_ev, scorers=["ovlp"])["ovlp"],
            score_events(ref_ev, hyp_ev, scorers=["taes"])["taes"],
        )
        assert t.sensitivity <= o.sensitivity + 1e-12
        assert t.hits <= o.hits + 1e-12
        assert t.targets == o.targets


# ---- EPOCH ---------------------------------------------------------------------------------------------------


def test_epoch_samples_every_quarter_second_boundary_goes_to_earlier_event() -> None:
    ref_ev = events([(10.125, 20.125)], duration=100.0)
    hyp_ev = events([], duration=100.0)
    r = score_events(ref_ev, hyp_ev, scorers=["epoch"])["epoch"]
    # Samples at 0.125 + k * 0.25 <= 100: 400 of them. At 10.125 the background before the seizure wins; at
    # 20.125 the seizure does: 10.375 ... 20.125 is 40 samples.
    assert r.targets == 40
    assert r.targets + r.bckg.targets == 400
    assert (r.hits, r.misses, r.false_alarms) == (0, 40, 0)
    assert r.bckg.misses == 0


def test_epoch_false_alarm_rate_is_seconds_per_day() -> None:
    r = score_intervals([[]], [[(0.0, 10.0)]], [86400.0], scorers=["epoch"])["epoch"]
    assert r.false_alarms == 40
    assert r.fa_per_24h == pytest.approx(10.0)
    assert r.bckg.misses == 40 and r.bckg.false_alarms == 0


def test_epoch_matches_sampling_by_hand_on_random_files() -> None:
    rng = np.random.default_rng(2)
    durations = [float(d) + 0.3 for d in rng.integers(20, 120, size=10)]
    refs = [random_file(rng, d, 4) for d in durations]
    hyps = [random_file(rng, d, 4) for d in durations]
    r = score_intervals(refs, hyps, durations, per_file=True, scorers=["epoch"])["epoch"]
    for f, d in enumerate(durations):
        t = 0.125 + 0.25 * np.arange(int((d - 0.125) // 0.25) + 1)

        def label(ivs: list[tuple[float, float]], t: np.ndarray = t) -> np.ndarray:
            # The first event containing t: a seizure (a, b] unless t == a, where the background before wins.
            return np.array([any(a < x <= b for a, b in ivs) for x in t])

        ref_s, hyp_s = label(refs[f]), label(hyps[f])
        got = r.per_file[f].seiz
        assert (got.targets, got.hits, got.false_alarms) == (ref_s.sum(), (ref_s & hyp_s).sum(), (~ref_s & hyp_s).sum())


# ---- DPALIGN -------------------------------------------------------------------------------------------------


def levenshtein(a: list[int], b: list[int]) -> int:
    d = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, d[0] = d[0], i
        for j, y in enumerate(b, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (x != y))
    return d[-1]


def test_dpalign_alignment_cost_is_the_levenshtein_distance() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        a = rng.integers(0, 2, size=int(rng.integers(0, 12))).tolist()
        b = rng.integers(0, 2, size=int(rng.integers(0, 12))).tolist()
        pairs = align_labels(a, b)
        assert [r for r, _ in pairs if r is not None] == a
        assert [h for _, h in pairs if h is not None] == b
        assert sum(r != h for r, h in pairs) == levenshtein(a, b)


def test_dpalign_counts() -> None:
    # ref bckg seiz bckg seiz bckg vs hyp bckg seiz bckg: one seizure deleted (with a background).
    r = score_intervals([[(10, 20), (30, 40)]], [[(12, 18)]], [100.0], scorers=["dpalign"])["dpalign"]
    assert (r.targets, r.hits, r.misses, r.false_alarms) == (2, 1, 1, 0)
    assert r.bckg.targets == 3 and r.bckg.hits == 2
    # A hypothesis seizure where the reference has none: an insertion, i.e. a false alarm.
    r = score_intervals([[]], [[(12, 18)]], [100.0], scorers=["dpalign"])["dpalign"]
    assert (r.targets, r.hits, r.false_alarms) == (0, 0, 1)
    # An empty hypothesis: every reference seizure is missed.
    r = score_events(events([(10, 20)]), events([]), scorers=["dpalign"])["dpalign"]
    assert (r.targets, r.hits, r.misses, r.false_alarms) == (1, 0, 1, 0)
