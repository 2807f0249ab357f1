"""Hand-made NEDC cases for all four scorers, expected numbers worked out by hand from ``scoring.md``.

Complements ``test_scoring_nedc.py`` (conformance on the NEDC sample, OVLP span/inside/touching, TAES parts and
walk-level quirks, EPOCH boundaries): here every case is scored by OVLP, TAES, EPOCH and DPALIGN through the
public functions, SEIZ label, pooled over files. Notation: ``b`` = bckg, ``s`` = seiz in label sequences;
EPOCH samples sit at 0.125 + 0.25 k s, a seizure ``(a, b)`` holds the samples ``a < t <= b`` (4 per second).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ictal.io.annotations import Annotation, Event
from ictal.scoring.common import NedcEvents, NedcResult
from ictal.scoring.nedc import score_intervals, score_nedc

Intervals = list[tuple[float, float]]
DAY = 86400.0


def score_all(refs: list[Intervals], hyps: list[Intervals], durations: list[float]) -> dict[str, NedcResult]:
    return score_intervals(refs, hyps, durations)


def one(ref: Intervals, hyp: Intervals, duration: float = 100.0) -> dict[str, NedcResult]:
    return score_all([ref], [hyp], [duration])


def counts(r: NedcResult) -> tuple[float, float, float, float]:
    return (r.targets, r.hits, r.misses, r.false_alarms)


def test_one_hypothesis_spanning_three_references() -> None:
    r = one([(10, 20), (30, 40), (50, 60)], [(5, 65)])
    # OVLP: every reference strictly overlapped -> 3 hits; the hypothesis overlaps one -> no false alarm.
    assert counts(r["ovlp"]) == (3, 3, 0, 0)
    # TAES: ref 1 vs hyp is "over": hit 1, fa min(1, (5 + 45) / 10) = 1. The hypothesis ends after ref 1, so
    # refs 2 and 3 (anyovlp with it) are whole misses: hit 1, miss 0 + 2, fa 1. Sensitivity 1/3.
    assert counts(r["taes"]) == pytest.approx((3, 1, 2, 1))
    assert r["taes"].sensitivity == pytest.approx(1 / 3)
    # EPOCH: 3 x 10 s = 120 seizure samples, all inside (5, 65]; the other 60 - 30 = 30 s are false alarms.
    assert counts(r["epoch"]) == (120, 120, 0, 120)
    assert r["epoch"].fa_per_24h == pytest.approx(120 * 0.25 / 100 * DAY)
    # DPALIGN: b s b s b s b vs b s b: the best alignment matches the hypothesis' three labels and deletes 4
    # (a substitution would cost more), so one s is a hit and two are misses.
    assert counts(r["dpalign"]) == (3, 1, 2, 0)


def test_three_hypotheses_inside_one_reference() -> None:
    r = one([(10, 50)], [(15, 20), (25, 30), (35, 40)])
    assert counts(r["ovlp"]) == (1, 1, 0, 0)
    # TAES: hyp 1 is inside (hit 5/40, fa 0) and ends first, so the later hypotheses that anyovlp the reference
    # add their inside credit: hit 3 x 0.125 = 0.375, miss 0.625, fa 0.
    assert counts(r["taes"]) == pytest.approx((1, 0.375, 0.625, 0))
    # EPOCH: 40 s of reference = 160 samples, 3 x 5 s = 60 of them detected.
    assert counts(r["epoch"]) == (160, 60, 100, 0)
    # DPALIGN: b s b vs b s b s b s b: 4 insertions (2 of them s), one s matched.
    assert counts(r["dpalign"]) == (1, 1, 0, 2)


def test_touching_hypotheses_merge_into_one_event() -> None:
    # (20, 30) and (30, 40) touch: the common step makes them one hypothesis (20, 40) around the reference.
    r = one([(25, 35)], [(20, 30), (30, 40)])
    assert counts(r["ovlp"]) == (1, 1, 0, 0)
    # TAES "over": hit 1, fa min(1, (5 + 5) / 10) = 1.
    assert counts(r["taes"]) == pytest.approx((1, 1, 0, 1))
    # EPOCH: (25, 35] = 40 samples, all detected; (20, 25] and (35, 40] = 40 false-alarm samples.
    assert counts(r["epoch"]) == (40, 40, 0, 40)
    assert counts(r["dpalign"]) == (1, 1, 0, 0)
    # Touching references merge too: one target.
    r = one([(10, 20), (20, 30)], [(12, 14)])
    assert counts(r["ovlp"]) == (1, 1, 0, 0)
    assert counts(r["taes"]) == pytest.approx((1, 0.1, 0.9, 0))  # inside: 2 / 20


def test_hypothesis_touching_the_reference_is_not_a_hit() -> None:
    r = one([(10, 20)], [(20, 30)])
    assert counts(r["ovlp"]) == (1, 0, 1, 1)
    # TAES: they share the integer second 20 (anyovlp), but the walk only starts at a reference that some
    # hypothesis strictly overlaps: a whole miss and a whole false alarm.
    assert counts(r["taes"]) == (1, 0, 1, 1)
    # EPOCH: no sample is in both: (10, 20] and (20, 30] are 40 samples each.
    assert counts(r["epoch"]) == (40, 0, 40, 40)
    # DPALIGN ignores times: b s b vs b s b is a hit.
    assert counts(r["dpalign"]) == (1, 1, 0, 0)


def test_taes_hypothesis_in_the_reference_start_second_gives_negative_credit() -> None:
    # hyp 1 = (2, 10.2) ends before the reference (10.5, 20) starts, in the same integer second 10; hyp 2 is
    # inside. D = 9.5. The walk takes hyp 1 first ("pre": hit (10.2 - 10.5) / 9.5 < 0, fa min(1, 8.5 / 9.5));
    # it ends before the reference, so hyp 2 adds its inside credit 2 / 9.5 and is used up.
    r = one([(10.5, 20)], [(2, 10.2), (12, 14)])
    hit = (-0.3 + 2.0) / 9.5
    assert counts(r["taes"]) == pytest.approx((1, hit, 1 - hit, 8.5 / 9.5))
    # OVLP: hyp 2 hits, hyp 1 overlaps nothing: a false alarm.
    assert counts(r["ovlp"]) == (1, 1, 0, 1)
    assert r["taes"].sensitivity <= r["ovlp"].sensitivity


def test_taes_later_reference_in_the_same_second_is_used_up_and_its_hit_becomes_a_false_alarm() -> None:
    # ref 1 = (10, 20.2), ref 2 = (20.6, 30); hyp 1 = (15, 20.4) overlaps ref 1 and shares the integer second 20
    # with ref 2; hyp 2 = (25, 28) is inside ref 2. Walk at ref 1: hyp 1 is "post": hit 5.2 / 10.2, fa 0.2 / 10.2;
    # it ends after ref 1, so ref 2 (anyovlp) is a whole miss and marked used. Ref 2 is then never walked, so
    # hyp 2 stays unused: one more false alarm.
    r = one([(10, 20.2), (20.6, 30)], [(15, 20.4), (25, 28)])
    hit = 5.2 / 10.2
    assert counts(r["taes"]) == pytest.approx((2, hit, (1 - hit) + 1, 0.2 / 10.2 + 1))
    # OVLP sees two hits and no false alarm.
    assert counts(r["ovlp"]) == (2, 2, 0, 0)


def test_empty_reference_counts_false_alarms_and_sensitivity_is_undefined() -> None:
    r = one([], [(10, 20), (30, 45)], duration=3600.0)
    for name in ("ovlp", "taes", "epoch", "dpalign"):
        assert r[name].targets == 0 and r[name].hits == 0 and r[name].misses == 0, name
        assert math.isnan(r[name].sensitivity), name
    assert r["ovlp"].false_alarms == 2 and r["ovlp"].fa_per_24h == pytest.approx(2 / 3600 * DAY)
    assert r["taes"].false_alarms == 2  # each unused hypothesis: fa += 1
    assert r["epoch"].false_alarms == 100  # 10 s + 15 s
    assert r["epoch"].fa_per_24h == pytest.approx(25 / 3600 * DAY)
    # DPALIGN: b vs b s b s b: four insertions, two of them s.
    assert r["dpalign"].false_alarms == 2
    # Nothing on either side: no counts, sensitivity undefined, rate 0.
    r = one([], [])
    for name in ("ovlp", "taes", "epoch", "dpalign"):
        assert counts(r[name]) == (0, 0, 0, 0) and math.isnan(r[name].sensitivity) and r[name].fa_per_24h == 0


def test_empty_hypothesis_misses_everything() -> None:
    r = one([(10, 20), (60, 62.5)], [])
    assert counts(r["ovlp"]) == (2, 0, 2, 0)
    assert counts(r["taes"]) == (2, 0, 2, 0)
    assert counts(r["epoch"]) == (50, 0, 50, 0)  # 40 + 10 samples
    # DPALIGN: b s b s b vs b: four deletions (keeping one b matched), both s missed.
    assert counts(r["dpalign"]) == (2, 0, 2, 0)
    for name in ("ovlp", "taes", "epoch", "dpalign"):
        assert r[name].sensitivity == 0 and r[name].fa_per_24h == 0


def test_events_at_the_start_and_the_very_end_of_the_recording() -> None:
    # Timelines s b s (no background before or after); hypotheses s b s b s.
    r = one([(0, 10), (90, 100)], [(0, 5), (50, 55), (95, 100)])
    assert counts(r["ovlp"]) == (2, 2, 0, 1)
    # TAES: (0, 5) vs (0, 10) is "pre" (starts together): hit 0.5, fa 0; (95, 100) vs (90, 100) is "post"
    # (ends together): hit 0.5, fa 0; (50, 55) overlaps nothing: fa 1.
    assert counts(r["taes"]) == pytest.approx((2, 1, 1, 1))
    # EPOCH: (0, 10] = samples 0.125 ... 9.875 (40), (90, 100] = 90.125 ... 99.875 (40); detected 20 + 20;
    # (50, 55] = 20 false-alarm samples.
    assert counts(r["epoch"]) == (80, 40, 40, 20)
    # DPALIGN: s b s vs s b s b s: two insertions (one s), both reference s matched.
    assert counts(r["dpalign"]) == (2, 2, 0, 1)
    # The last sample sits exactly on the duration (10.125 = 0.125 + 40 x 0.25): a seizure (10, 10.125] holds it.
    r = one([(10, 10.125)], [], duration=10.125)
    assert counts(r["epoch"]) == (1, 0, 1, 0)
    assert r["epoch"].bckg.targets == 40
    # An event past the end is kept as written, as the NEDC tool keeps it: (95, 120) in 100 s. EPOCH samples stop
    # at the duration, so it holds 95.125 ... 99.875 (20); TAES scores the whole rows: (99, 130) against
    # (95, 120) is "post", hit (120 - 99) / 25 = 0.84, fa (130 - 120) / 25 = 0.4.
    r = one([(95, 120)], [(99, 130)])
    assert counts(r["epoch"]) == (20, 4, 16, 0)
    assert counts(r["taes"]) == pytest.approx((1, 0.84, 0.16, 0.4))
    assert r["taes"].total_duration_s == 100.0


def test_two_files_pooled() -> None:
    # File A (1 h): ref (100, 200), hyp (150, 250). File B (1 h): no seizure, hyps (10, 20) and (30, 40).
    refs: list[Intervals] = [[(100, 200)], []]
    hyps: list[Intervals] = [[(150, 250)], [(10, 20), (30, 40)]]
    r = score_all(refs, hyps, [3600.0, 3600.0])
    assert counts(r["ovlp"]) == (1, 1, 0, 2)
    assert r["ovlp"].fa_per_24h == pytest.approx(2 / 7200 * DAY)  # 24 per day
    # TAES file A: "post", hit (200 - 150) / 100 = 0.5, fa min(1, 50 / 100) = 0.5; file B: fa 2.
    assert counts(r["taes"]) == pytest.approx((1, 0.5, 0.5, 2.5))
    assert r["taes"].fa_per_24h == pytest.approx(2.5 / 7200 * DAY)
    # EPOCH file A: (100, 200] = 400 samples, (150, 200] = 200 detected, (200, 250] = 200 false; file B: 80.
    assert counts(r["epoch"]) == (400, 200, 200, 280)
    assert r["epoch"].fa_per_24h == pytest.approx(280 * 0.25 / 7200 * DAY)
    assert counts(r["dpalign"]) == (1, 1, 0, 2)
    assert {res.total_duration_s for res in r.values()} == {7200.0}
    # The annotation path gives the same: labels other than seiz/bckg map as the common step says.
    pairs = [
        (
            Annotation([Event(0, 100, "bckg"), Event(100, 200, "cpsz"), Event(200, 3600, "bckg")], 3600.0),
            Annotation([Event(150, 250, "seiz")], 3600.0),
        ),
        (
            Annotation([Event(0, 3600, "bckg")], 3600.0),
            Annotation([Event(10, 20, "seiz"), Event(30, 40, "fnsz")], 3600.0),
        ),
    ]
    full = score_nedc(pairs)
    for name in r:
        assert counts(full[name]) == pytest.approx(counts(r[name])), name


def test_epoch_counts_equal_sampling_with_boundaries_on_sample_times() -> None:
    # Random 4-decimal event times, many of them exactly on a sample time (k / 8 s), against sampling by hand.
    rng = np.random.default_rng(11)
    durations = [float(np.round(rng.uniform(20, 200), 4)) for _ in range(20)]
    durations[0] = 40.125  # the last sample on the duration

    def random_events(d: float) -> Intervals:
        n = int(rng.integers(0, 6))
        exact = rng.integers(0, int(d * 8), size=2 * n) / 8.0
        fuzzy = np.round(rng.uniform(0, d, size=2 * n), 4)
        cuts = np.sort(np.where(rng.random(2 * n) < 0.5, exact, fuzzy))
        return [(float(a), float(b)) for a, b in cuts.reshape(-1, 2) if b > a]

    refs = [random_events(d) for d in durations]
    hyps = [random_events(d) for d in durations]
    r = score_intervals(refs, hyps, durations, per_file=True, scorers=["epoch"])["epoch"]
    ref_ev, hyp_ev = NedcEvents.from_intervals(refs, durations), NedcEvents.from_intervals(hyps, durations)
    for f, d in enumerate(durations):
        t = 0.125 + 0.25 * np.arange(int((d - 0.125) // 0.25) + 1)
        assert t[-1] <= d < t[-1] + 0.25

        def label(ev: NedcEvents, t: np.ndarray = t, f: int = f) -> np.ndarray:
            # The first event of the timeline with start <= t <= stop.
            events = ev.file_events(f)
            return np.array([next(lab for a, b, lab in events if a <= x <= b) == "seiz" for x in t])

        ref_s, hyp_s = label(ref_ev), label(hyp_ev)
        got = r.per_file[f]
        assert (got.seiz.targets, got.seiz.hits, got.seiz.false_alarms) == (
            ref_s.sum(),
            (ref_s & hyp_s).sum(),
            (~ref_s & hyp_s).sum(),
        )
        assert (got.bckg.targets, got.bckg.hits) == ((~ref_s).sum(), (~ref_s & ~hyp_s).sum())
