"""Operating points: the threshold sweep, choosing thresholds on one split and applying them to another."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

import ictal.post.thresholds as thresholds_module
import ictal.scoring.operating_points as op
from ictal.io.annotations import Annotation, Event
from ictal.post.config import PostConfig
from ictal.post.events import detect_events
from ictal.post.thresholds import tau_off_for
from ictal.scoring.common import NedcEvents, ScoringError
from ictal.scoring.nedc import score_events, score_intervals
from ictal.scoring.operating_points import (
    ChosenThresholds,
    choose_thresholds,
    operating_points,
    sweep_thresholds,
    taes_seiz_counts,
    with_threshold,
)
from ictal.scoring.szcore import score_szcore

RATE = 16.0
HOUR = 3600.0


def recording(
    duration: float, seizures: list[tuple[float, float, float]], bumps: list[tuple[float, float, float]]
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """A 16 Hz trace at 0.01 with plateaus ``(start_s, stop_s, height)``; returns it and the seizure intervals."""
    p = np.full(round(duration * RATE), 0.01)
    for a, b, h in seizures + bumps:
        p[round(a * RATE) : round(b * RATE)] = h
    return p, [(a, b) for a, b, _ in seizures]


def split_with_bumps(
    bump_heights: list[float], seizure_heights: list[float], hours: float = 8.0, n_files: int = 3
) -> tuple[list[np.ndarray], list[list[tuple[float, float]]], list[float]]:
    """``n_files`` recordings of ``hours`` each; 10 s false-alarm plateaus and 60 s seizures, dealt round-robin."""
    duration = hours * HOUR
    per_file: list[tuple[list, list]] = [([], []) for _ in range(n_files)]
    for i, h in enumerate(bump_heights):
        start = 600.0 + (i // n_files) * 600.0
        per_file[i % n_files][1].append((start, start + 10.0, h))
    for i, h in enumerate(seizure_heights):
        start = duration - 3000.0 + (i // n_files) * 600.0
        per_file[i % n_files][0].append((start, start + 60.0, h))
    traces, refs = [], []
    for seizures, bumps in per_file:
        trace, ref = recording(duration, seizures, bumps)
        traces.append(trace)
        refs.append(ref)
    return traces, refs, [duration] * n_files


# Dev: 24 h in all, so FA/24h is the number of false alarms. Bumps at 0.25 (x12), 0.45 (x6), 0.65 (x3), 0.85
# (x1): a threshold theta detects the bumps at or above it. Seizures at 0.95, 0.95, 0.75, 0.55.
DEV_BUMPS = [0.25] * 12 + [0.45] * 6 + [0.65] * 3 + [0.85]
DEV_SEIZURES = [0.95, 0.95, 0.75, 0.55]
GRID = np.round(np.arange(1, 10) * 0.1, 1)


@pytest.fixture(scope="module")
def dev() -> op.SweepResult:
    traces, refs, durations = split_with_bumps(DEV_BUMPS, DEV_SEIZURES)
    return sweep_thresholds(traces, RATE, refs, durations, PostConfig(), thresholds=GRID)


def test_sweep_counts_the_constructed_false_alarms_and_hits(dev: op.SweepResult) -> None:
    np.testing.assert_array_equal(dev.thresholds, GRID)
    # FA(theta) = bumps with height >= theta; 24 h in total, so that is also FA/24h.
    expected_fa = [22, 22, 10, 10, 4, 4, 1, 1, 0]
    np.testing.assert_allclose(dev.curve("ovlp").fa_per_24h, expected_fa)
    np.testing.assert_allclose(dev.curve("ovlp").false_alarms, expected_fa)
    # Each bump is one whole false alarm for TAES too; EPOCH counts its 10 s (40 epochs).
    np.testing.assert_allclose(dev.curve("taes").fa_per_24h, expected_fa)
    np.testing.assert_allclose(dev.curve("epoch").fa_per_24h, np.array(expected_fa) * 10.0)
    # Seizures detected: all 4 up to 0.5, then 3 (0.55 lost), then 2 (0.75 lost).
    np.testing.assert_allclose(dev.curve("ovlp").sensitivity, [1, 1, 1, 1, 1, 0.75, 0.75, 0.5, 0.5])
    # Detected seizures match the reference exactly: full TAES and EPOCH credit.
    np.testing.assert_allclose(dev.curve("taes").sensitivity, dev.curve("ovlp").sensitivity)
    np.testing.assert_allclose(dev.curve("epoch").sensitivity, dev.curve("ovlp").sensitivity)
    assert dev.n_ref_events == 4 and dev.total_duration_s == 24 * HOUR
    np.testing.assert_allclose(dev.tau_off, np.maximum(0.0, GRID - 0.08))


def test_thresholds_chosen_are_the_most_sensitive_then_the_fewest_false_alarms(dev: op.SweepResult) -> None:
    chosen = choose_thresholds(dev, targets=(10, 5, 2.5, 1, 0.5))
    # 10 FA/24h: 0.3, 0.4 and 0.5 all find every seizure; 0.5 does it with 4 false alarms instead of 10.
    assert chosen == {10.0: 0.5, 5.0: 0.5, 2.5: 0.7, 1.0: 0.7, 0.5: 0.9}
    assert chosen.unmet == frozenset() and chosen.scorer == "ovlp"
    fa, sens = dev.curve("ovlp").fa_per_24h, dev.curve("ovlp").sensitivity
    for target, theta in chosen.items():
        i = dev.index_of(theta)
        assert i is not None
        assert fa[i] <= target  # the target is met on the choosing split
        admissible = fa <= target
        assert sens[i] == sens[admissible].max()  # no admissible threshold is more sensitive
        higher_same = [j for j in range(i + 1, len(fa)) if admissible[j] and sens[j] == sens[i]]
        assert not higher_same  # and none above it is as sensitive (it would have fewer alarms)
    # EPOCH's rate is seconds per day: 10 s per bump.
    assert choose_thresholds(dev, targets=(45,), scorer="epoch") == {45.0: 0.5}


def test_unreachable_target_takes_the_highest_threshold_and_is_flagged() -> None:
    traces, refs, durations = split_with_bumps([1.0, 1.0], [0.95])  # two plateaus at 1.0: no threshold drops them
    sweep = sweep_thresholds(traces, RATE, refs, durations, PostConfig(), thresholds=GRID)
    chosen = choose_thresholds(sweep, targets=(10, 1))
    # 10 FA/24h is met everywhere with the seizure found up to 0.9: the highest such threshold is taken.
    assert chosen == {10.0: 0.9, 1.0: 0.9}
    assert chosen.unmet == {1.0}
    ops = operating_points(sweep, chosen)
    assert ops["target_met_at_10fa"] is True and ops["target_met_at_1fa"] is False
    assert ops["ovlp_fa_per_24h_at_1fa"] == pytest.approx(2.0)


def events_at(traces: list[np.ndarray], theta: float, post: PostConfig) -> list[list[tuple[float, float]]]:
    cfg = with_threshold(post, theta)
    return [[(e.start_s, e.stop_s) for e in detect_events(t, RATE, cfg)] for t in traces]


def test_dev_thresholds_applied_unchanged_to_another_split(dev: op.SweepResult) -> None:
    chosen = choose_thresholds(dev)  # {10: 0.5, 5: 0.5, 2.5: 0.7, 1: 0.7}
    # Eval: more false alarms at every level, other seizures; its own grid does not hold 0.7.
    traces, refs, durations = split_with_bumps([0.55] * 14 + [0.75] * 3, [0.95, 0.6, 0.45], n_files=4, hours=6)
    eval_sweep = sweep_thresholds(traces, RATE, refs, durations, PostConfig(), thresholds=[0.5, 0.9])
    ops = operating_points(eval_sweep, chosen)
    for target, theta in chosen.items():
        t = op.target_label(target)
        assert ops[f"threshold_at_{t}fa"] == theta  # unchanged, not re-chosen on eval
        hyps = events_at(traces, theta, PostConfig())
        ovlp = score_intervals(refs, hyps, durations, scorers=["ovlp"])["ovlp"]
        taes = score_intervals(refs, hyps, durations, scorers=["taes"])["taes"]
        epoch = score_intervals(refs, hyps, durations, scorers=["epoch"])["epoch"]
        assert ops[f"ovlp_sensitivity_at_{t}fa"] == pytest.approx(ovlp.sensitivity)
        assert ops[f"ovlp_fa_per_24h_at_{t}fa"] == pytest.approx(ovlp.fa_per_24h)
        assert ops[f"taes_sensitivity_at_{t}fa"] == pytest.approx(taes.sensitivity)
        assert ops[f"taes_fa_per_24h_at_{t}fa"] == pytest.approx(taes.fa_per_24h)
        assert ops[f"epoch_sensitivity_at_{t}fa"] == pytest.approx(epoch.sensitivity)
        assert ops[f"epoch_fa_per_24h_at_{t}fa"] == pytest.approx(epoch.fa_per_24h)
    # At 0.5 eval has 17 false alarms in 24 h: over the target, reported as it is.
    assert ops["ovlp_fa_per_24h_at_10fa"] == pytest.approx(17.0)
    assert ops["ovlp_sensitivity_at_10fa"] == pytest.approx(2 / 3)
    assert ops["ovlp_sensitivity_at_2.5fa"] == pytest.approx(1 / 3)
    # A plain mapping works too (no target_met keys).
    assert "target_met_at_10fa" not in operating_points(eval_sweep, {10: 0.5})


def test_key_names(dev: op.SweepResult) -> None:
    chosen = choose_thresholds(dev)
    ops = operating_points(dev, chosen)
    expected = set()
    for t in ("10", "5", "2.5", "1"):
        expected |= {f"threshold_at_{t}fa", f"target_met_at_{t}fa"}
        for s in ("ovlp", "taes", "epoch", "szcore"):
            expected |= {f"{s}_sensitivity_at_{t}fa", f"{s}_fa_per_24h_at_{t}fa"}
    assert set(ops) == expected
    assert [op.target_label(t) for t in (10, 5.0, 2.5, 1)] == ["10", "5", "2.5", "1"]
    traces, refs, durations = split_with_bumps([0.5], [0.9])
    only = sweep_thresholds(traces, RATE, refs, durations, scorers=["taes"])
    assert set(operating_points(only, {5: 0.5})) == {
        "threshold_at_5fa",
        "taes_sensitivity_at_5fa",
        "taes_fa_per_24h_at_5fa",
    }


def test_szcore_at_chosen_thresholds_matches_the_wrapper(dev: op.SweepResult) -> None:
    traces, refs, durations = split_with_bumps(DEV_BUMPS, DEV_SEIZURES)
    ops = operating_points(dev, {10: 0.3, 1: 0.7})
    for t, theta in (("10", 0.3), ("1", 0.7)):
        hyps = events_at(traces, theta, PostConfig())
        pairs = [
            (
                Annotation([Event(a, b, "seiz") for a, b in r], d),
                Annotation([Event(a, b, "seiz") for a, b in h], d),
            )
            for r, h, d in zip(refs, hyps, durations, strict=True)
        ]
        pooled = score_szcore(pairs)["event"].pooled
        assert ops[f"szcore_sensitivity_at_{t}fa"] == pytest.approx(pooled.sensitivity)
        assert ops[f"szcore_fa_per_24h_at_{t}fa"] == pytest.approx(pooled.fp_per_24h)
    # The whole curve, computed on demand, agrees with the points.
    curve = dev.curve("szcore")
    assert curve.fa_per_24h[dev.index_of(0.3)] == pytest.approx(ops["szcore_fa_per_24h_at_10fa"])


def bumpy_trace(rng: np.random.Generator, seconds: float, dtype: type = np.float64) -> np.ndarray:
    """Noisy background, spikes and plateaus, values on a 0.01 grid (so many equal a threshold exactly)."""
    n = round(seconds * RATE)
    p = np.convolve(rng.random(n), np.ones(8) / 8, mode="same") * 0.5
    for _ in range(int(rng.integers(2, 8))):
        length = int(rng.uniform(0.5, 120) * RATE)
        a = int(rng.integers(0, max(1, n - length)))
        p[a : a + length] += rng.uniform(0.2, 0.6)
    return np.round(np.clip(p, 0, 1), 2).astype(dtype)


@pytest.mark.parametrize("crossing_limit", [thresholds_module.MAX_CROSSINGS, 0])
@pytest.mark.parametrize(
    "post",
    [
        PostConfig(),
        PostConfig(tau_on=0.6, tau_off=0.3, min_on_s=0.5, min_off_s=1.0, max_duration_s=30.0),
        PostConfig(opening_s=0.0, closing_s=0.0, min_duration_s=0.0, merge_gap_s=5.0, long_event_policy="drop"),
    ],
)
def test_sweep_events_equal_detect_events_per_recording(
    post: PostConfig, crossing_limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(thresholds_module, "MAX_CROSSINGS", crossing_limit)  # both ways of finding the runs
    rng = np.random.default_rng(7)
    traces = [bumpy_trace(rng, s, dt) for s, dt in ((300, np.float64), (61.3, np.float32), (0.5, np.float64))]
    traces.append(np.full(160, 0.42))  # constant, equal to a tau_off
    durations = [t.size / RATE for t in traces]
    thresholds = np.array([0.0, 0.05, 0.3, 0.42, 0.5, 0.5 + 1e-9, 0.77, 0.78, 0.86, 1.0])
    sweep = sweep_thresholds(traces, RATE, [[]] * len(traces), durations, post, thresholds=thresholds)
    assert sweep.thresholds.size == thresholds.size
    for t, theta in enumerate(sweep.thresholds):
        assert sweep.hypotheses[t].per_file(len(traces)) == events_at(traces, float(theta), post), theta


def test_taes_seiz_counts_equal_the_full_walk() -> None:
    rng = np.random.default_rng(3)
    durations = [float(d) for d in rng.integers(60, 400, size=30)]

    def random_file(duration: float, n_max: int) -> list[tuple[float, float]]:
        n = int(rng.integers(0, n_max + 1))
        cuts = np.sort(rng.choice(np.arange(1, int(duration * 4)), size=2 * n, replace=False)) / 4.0
        return [(float(a), float(b)) for a, b in cuts.reshape(-1, 2)]

    ref = NedcEvents.from_intervals([random_file(d, 4) for d in durations], durations)
    hyp = NedcEvents.from_intervals([random_file(d, 6) for d in durations], durations)
    full = score_events(ref, hyp, per_file=False, scorers=["taes"])["taes"]
    assert taes_seiz_counts(ref, hyp) == pytest.approx((full.hits, full.misses, full.false_alarms))


def test_higher_threshold_never_adds_ovlp_false_alarms_on_single_peaked_bumps() -> None:
    # Each bump rises to one peak and falls: raising the threshold shrinks or removes its event, never splits it.
    # (Not true of every trace: once tau_off reaches the background, a whole recording is one event, fewer
    # false alarms than its bumps; the thresholds here keep tau_off above the background of 0.)
    rng = np.random.default_rng(5)
    traces = []
    for _ in range(4):
        p = np.zeros(round(3600 * RATE))
        for start in np.arange(60, 3500, 100):
            width = int(rng.uniform(5, 40) * RATE)
            a = int(start * RATE)
            p[a : a + width] = rng.uniform(0.1, 1.0) * np.sin(np.linspace(0, np.pi, width))
        traces.append(p)
    sweep = sweep_thresholds(traces, RATE, [[]] * 4, [3600.0] * 4, PostConfig(), thresholds=np.linspace(0.1, 1, 37))
    fa = sweep.curve("ovlp").false_alarms
    assert fa[0] > fa[-1]
    assert np.all(np.diff(fa) <= 0)
    assert np.all(np.diff(sweep.curve("epoch").false_alarms) <= 0)


def test_tau_off_keeps_the_gap_and_is_clipped_at_zero() -> None:
    post = PostConfig()  # 0.86 / 0.78
    np.testing.assert_allclose(tau_off_for(np.array([0.05, 0.1, 0.5, 0.86, 1.0]), post), [0, 0.02, 0.42, 0.78, 0.92])
    assert tau_off_for(np.array([0.1]), post)[0] == 0.02  # rounded: not 0.020000000000000004
    cfg = with_threshold(post, 0.6)
    assert (cfg.tau_on, cfg.tau_off) == (0.6, pytest.approx(0.52))
    assert replace(cfg, tau_on=0.86, tau_off=0.78) == post


def test_empty_reference_gives_nan_sensitivity_and_counts_false_alarms() -> None:
    traces, _, durations = split_with_bumps([0.5, 0.5], [])
    sweep = sweep_thresholds(traces, RATE, [[]] * 3, durations, thresholds=[0.4, 0.6])
    assert all(math.isnan(s) for s in sweep.curve("ovlp").sensitivity)
    np.testing.assert_allclose(sweep.curve("ovlp").fa_per_24h, [2.0, 0.0])
    ops = operating_points(sweep, choose_thresholds(sweep, targets=(1,)))
    assert ops["threshold_at_1fa"] == 0.6 and math.isnan(ops["ovlp_sensitivity_at_1fa"])


def test_bad_input_is_named() -> None:
    trace = np.zeros(160)
    with pytest.raises(ScoringError, match="1 traces, 2 reference lists"):
        sweep_thresholds([trace], RATE, [[], []], [10.0])
    with pytest.raises(ScoringError, match=r"recording 0: its trace of 160 samples at 256 Hz"):
        sweep_thresholds([trace], 256.0, [[]], [10.0])
    with pytest.raises(ScoringError, match="unknown scorer"):
        sweep_thresholds([trace], RATE, [[]], [10.0], scorers=["ovlp", "nedc"])
    with pytest.raises(ScoringError, match=r"probabilities in \[0, 1\]"):
        sweep_thresholds([trace], RATE, [[]], [10.0], thresholds=[0.5, 1.5])
    with pytest.raises(ValueError, match="recording 0 has 1 non-finite"):
        sweep_thresholds([np.concatenate((trace[:-1], [np.nan]))], RATE, [[]], [10.0])
    sweep = sweep_thresholds([trace], RATE, [[]], [10.0], scorers=["ovlp"])
    with pytest.raises(ScoringError, match="did not score taes"):
        choose_thresholds(sweep, scorer="taes")
    assert isinstance(choose_thresholds(sweep), ChosenThresholds)
