"""Scoring time of the four NEDC scorers on a synthetic evaluation set the size of TUSZ eval.

The set (seeded): 865 recordings, 127.7 h, about 470 reference seizures in about a third of the recordings, and
a few thousand hypothesis events (detections near most seizures, some split in two, and false alarms), every
time with 4 decimals as in TUSZ files. For scale: the NEDC tool itself takes about 0.7 s for its 30-file sample.

Ours: the NEDC common step (``NedcEvents.from_intervals``) and OVLP, TAES, EPOCH and DPALIGN with per-file
results, as ``score_nedc`` runs them. Baseline, written here: the same four scorers as straightforward
per-event Python, the way the NEDC tool computes them: ``tests/nedc_oracle.py``, the tests' transcription of
``scoring.md`` (per file: sort, fill and join the timeline; OVLP by comparing every reference event with every
hypothesis event; the TAES walk with integer-second sets; EPOCH by looking up the label of every 0.25 s sample
in the event list; DPALIGN by a full edit-distance table; both labels). The script checks that both give the
same SEIZ counts and prints the check. With ``--overlapping`` every hypothesis event is written twice, the
second row shifted and overlapping the first, so that every file takes the scorers' general path (events
that overlap: EPOCH labels such files sample by sample, TAES tests every event). Times are CPU seconds
of this process (single-threaded code, so a busy machine changes them less than wall time), best of
``--repeats`` for ours, one run of the baseline.

With ``--sweep`` it also times the operating-point sweep (``ictal.scoring.operating_points.sweep_thresholds``:
post-processing and OVLP, TAES and EPOCH at each of the 52 default thresholds) on synthetic 16 Hz probability
traces the size of TUSZ dev (1,800 recordings, 435 h, 25 million samples): ``smooth`` traces (a low background
with seizure-like plateaus and false-alarm bumps, like a trained model's) and ``noisy`` ones (a mid-range
background whose noise crosses many thresholds, like an untrained model's). One run each, CPU seconds.

    python benchmarks/score.py [--repeats 5] [--overlapping] [--sweep] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ictal.post.config import PostConfig
from ictal.scoring.common import NedcEvents, NedcResult
from ictal.scoring.nedc import score_events
from ictal.scoring.operating_points import DEFAULT_THRESHOLDS, sweep_thresholds

N_FILES = 865
HOURS = 127.7
N_SEIZURES = 470
SCORERS = ("ovlp", "taes", "epoch", "dpalign")

Intervals = list[tuple[float, float]]


# ---- the synthetic set ---------------------------------------------------------------------------------------


def synthetic_set(seed: int = 0) -> tuple[list[Intervals], list[Intervals], list[float]]:
    """Reference and hypothesis seizure intervals per recording, and the durations (seconds, 4 decimals)."""
    rng = np.random.default_rng(seed)
    weights = rng.lognormal(0.0, 0.7, N_FILES)
    durations = np.round(weights / weights.sum() * HOURS * 3600.0, 4)
    # Seizures go to about a third of the recordings, more to the longer ones.
    with_seizures = rng.choice(N_FILES, size=N_FILES // 3, replace=False, p=weights / weights.sum())
    owner = rng.choice(with_seizures, size=N_SEIZURES)
    refs: list[Intervals] = [[] for _ in range(N_FILES)]
    hyps: list[Intervals] = [[] for _ in range(N_FILES)]
    for f in range(N_FILES):
        d = float(durations[f])
        k = int((owner == f).sum())
        if k:
            # k disjoint seizures of 10 s to 5 min, at random places that leave room for them.
            lengths = np.minimum(rng.lognormal(4.0, 0.7, k), 300.0) + 10.0
            lengths = np.minimum(lengths, 0.8 * d / k)
            slack = d - lengths.sum()
            gaps = np.diff(np.concatenate(([0.0], np.sort(rng.uniform(0.0, slack, k)))))
            starts = np.cumsum(gaps) + np.concatenate(([0.0], np.cumsum(lengths)[:-1]))
            for a, length in zip(starts, lengths, strict=True):
                refs[f].append((round(float(a), 4), round(float(a + length), 4)))
        for a, b in refs[f]:
            if rng.random() < 0.75:  # detected, with jittered edges, sometimes in two pieces
                s = max(0.0, a + rng.normal(5.0, 10.0))
                e = min(d, b + rng.normal(0.0, 15.0))
                if e - s > 2.0:
                    if rng.random() < 0.25:
                        mid = (s + e) / 2
                        hyps[f] += [(s, mid - 1.0), (mid + 1.0, e)]
                    else:
                        hyps[f].append((s, e))
        # False alarms: about 20 per hour of recording, 3 s to 2 min.
        for _ in range(int(rng.poisson(20.0 * d / 3600.0))):
            s = float(rng.uniform(0.0, d))
            hyps[f].append((s, min(d, s + float(rng.lognormal(2.5, 0.8)) + 3.0)))
        hyps[f] = sorted((round(a, 4), round(b, 4)) for a, b in hyps[f] if b > a)
    return refs, hyps, [float(d) for d in durations]


# ---- ours ----------------------------------------------------------------------------------------------------


def ours(refs: list[Intervals], hyps: list[Intervals], durations: list[float]) -> dict[str, NedcResult]:
    ref = NedcEvents.from_intervals(refs, durations)
    hyp = NedcEvents.from_intervals(hyps, durations)
    return score_events(ref, hyp, SCORERS)


# ---- baseline: per-event Python, as the NEDC tool does it ----------------------------------------------------

# The slow, literal transcription of scoring.md that the tests use as their oracle.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import nedc_oracle  # noqa: E402


def baseline(refs: list[Intervals], hyps: list[Intervals], durations: list[float]) -> dict[str, list[float]]:
    """SEIZ ``[targets, hits, misses, false alarms]`` of each scorer, summed over files (both labels scored)."""
    totals = {name: [0.0, 0.0, 0.0, 0.0] for name in SCORERS}
    for ref_iv, hyp_iv, d in zip(refs, hyps, durations, strict=True):
        ref = nedc_oracle.common_step([(a, b, nedc_oracle.SEIZ) for a, b in ref_iv], d)
        hyp = nedc_oracle.common_step([(a, b, nedc_oracle.SEIZ) for a, b in hyp_iv], d)
        for name in SCORERS:
            counts = nedc_oracle.SCORERS[name](ref, hyp)[nedc_oracle.SEIZ]
            totals[name] = [t + c for t, c in zip(totals[name], counts, strict=True)]
    return totals


def overlapping(hyps: list[Intervals]) -> list[Intervals]:
    """Each hypothesis event written twice, the second row shifted by 40 % of its length: every file's rows
    overlap, as per-channel detections flattened to TERM rows do, so every file takes the scorers' general path."""
    return [sorted(h + [(round(a + 0.4 * (b - a), 4), round(b + 0.4 * (b - a), 4)) for a, b in h]) for h in hyps]


# ---- the operating-point sweep -------------------------------------------------------------------------------

DEV_FILES = 1800
DEV_HOURS = 435.0
TRACE_RATE = 16.0


def dev_traces(background: float, seed: int = 1) -> tuple[list[np.ndarray], list[Intervals], list[float]]:
    """TUSZ-dev-sized float32 traces at 16 Hz around ``background``, with their seizures and durations."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    weights = rng.lognormal(0.0, 0.8, DEV_FILES)
    durations = np.round(weights / weights.sum() * DEV_HOURS * 3600.0, 4)
    traces, refs = [], []
    for d in durations.tolist():
        n = int(np.ceil(d * TRACE_RATE))
        # AR(1) noise (about 1 s memory) scaled to the background, then seizures and false-alarm bumps.
        p = background * (1.0 + lfilter([0.1], [1.0, -0.9], rng.standard_normal(n)))
        ref: Intervals = []
        for _ in range(int(rng.poisson(0.3))):
            a = float(rng.uniform(0.0, d))
            b = min(d, a + float(rng.exponential(60.0)) + 5.0)
            ref.append((a, b))
            p[int(a * TRACE_RATE) : int(b * TRACE_RATE)] += rng.uniform(0.3, 0.95)
        for _ in range(int(rng.poisson(1.0))):
            a = int(rng.uniform(0, n))
            p[a : a + int(rng.exponential(20.0) * TRACE_RATE)] += rng.uniform(0.2, 0.95)
        traces.append(np.clip(p, 0.0, 1.0).astype(np.float32))
        refs.append(sorted(ref))
    return traces, refs, [float(d) for d in durations]


def time_sweep(background: float) -> float:
    traces, refs, durations = dev_traces(background)
    t0 = time.process_time()
    sweep_thresholds(traces, TRACE_RATE, refs, durations, PostConfig(), scorers=("ovlp", "taes", "epoch"))
    return time.process_time() - t0


# ---- running -------------------------------------------------------------------------------------------------


def cpu_seconds(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    best, out = math.inf, None
    for _ in range(repeats):
        t0 = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t0)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="runs of ours (the best counts); the baseline runs once")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overlapping", action="store_true", help="every hypothesis row twice, overlapping")
    parser.add_argument("--sweep", action="store_true", help="also time the operating-point sweep on dev-sized traces")
    parser.add_argument("--json", type=Path, default=None, help="write the figures as a flat JSON object")
    args = parser.parse_args()

    refs, hyps, durations = synthetic_set(args.seed)
    if args.overlapping:
        hyps = overlapping(hyps)
    ours(refs, hyps, durations)  # warm-up (imports, first allocations)
    seconds, results = cpu_seconds(lambda: ours(refs, hyps, durations), args.repeats)
    assert isinstance(results, dict)
    ref_ev = NedcEvents.from_intervals(refs, durations)
    hyp_ev = NedcEvents.from_intervals(hyps, durations)
    per_scorer = {}
    for name in SCORERS:

        def run(name: str = name) -> dict[str, NedcResult]:
            return score_events(ref_ev, hyp_ev, [name])

        per_scorer[name] = cpu_seconds(run, args.repeats)[0]
    base_seconds, base = cpu_seconds(lambda: baseline(refs, hyps, durations), 1)
    assert isinstance(base, dict)

    hours = sum(durations) / 3600.0
    print(
        f"set: {len(durations)} recordings, {hours:.1f} h, {len(ref_ev.seiz)} reference seizures, "
        f"{len(hyp_ev.seiz)} hypothesis events (after the common step)"
    )
    same = True
    for name in SCORERS:
        r = results[name]
        got = (r.targets, r.hits, r.misses, r.false_alarms)
        agree = all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) for a, b in zip(got, base[name], strict=True))
        same &= agree
        print(
            f"  {name:8s} targets {got[0]:8.0f} hits {got[1]:10.2f} misses {got[2]:10.2f} FA {got[3]:10.2f}   "
            f"baseline {'same' if agree else 'DIFFERENT: ' + str(base[name])}"
        )
    print(f"check: ours and the baseline give {'the same' if same else 'DIFFERENT'} SEIZ counts for all four scorers")
    detail = ", ".join(f"{name} {s:.4f}" for name, s in per_scorer.items())
    print(f"ours: {seconds:.3f} CPU-s for the common step and all four scorers ({detail})")
    print(f"baseline (per-event Python): {base_seconds:.2f} CPU-s   ratio {base_seconds / seconds:.0f}x")
    sweep_figures: dict[str, float] = {}
    if args.sweep:
        for name, background in (("smooth", 0.02), ("noisy", 0.3)):
            seconds_sweep = time_sweep(background)
            sweep_figures[f"sweep_seconds_{name}"] = round(seconds_sweep, 2)
            print(
                f"sweep ({name} traces): {DEV_FILES} recordings, {DEV_HOURS:.0f} h at {TRACE_RATE:g} Hz, "
                f"{DEFAULT_THRESHOLDS.size} thresholds, OVLP+TAES+EPOCH: {seconds_sweep:.2f} CPU-s"
            )
    if args.json:
        figures = {
            "seconds_all_nedc": round(seconds, 4),
            "n_files": len(durations),
            "hours": round(hours, 2),
            "overlapping_rows": args.overlapping,
            "n_ref_events": len(ref_ev.seiz),
            "n_hyp_events": len(hyp_ev.seiz),
            "baseline_seconds_all_nedc": round(base_seconds, 3),
            "ratio": round(base_seconds / seconds, 1),
            "counts_match_baseline": same,
            **{f"seconds_{name}": round(s, 4) for name, s in per_scorer.items()},
            **sweep_figures,
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"wrote {args.json}")
    if not same:
        raise SystemExit("ours and the baseline disagree")


if __name__ == "__main__":
    main()
