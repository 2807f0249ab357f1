"""Operating points: sensitivity at fixed false-alarm rates (10, 5, 2.5 and 1 FA/24h), thresholds chosen on one split.

>>> dev = sweep_thresholds(dev_traces, 16.0, dev_refs, dev_durations, PostConfig())
>>> chosen = choose_thresholds(dev, targets=(10, 5, 2.5, 1), scorer="ovlp")   # {10.0: 0.62, 5.0: 0.74, ...}
>>> ev = sweep_thresholds(eval_traces, 16.0, eval_refs, eval_durations, PostConfig(), thresholds=chosen.values())
>>> operating_points(ev, chosen)        # {"ovlp_sensitivity_at_10fa": ..., "threshold_at_10fa": 0.62, ...}

Choosing on ``dev`` and applying unchanged to ``eval`` is the field's protocol; choosing on ``eval`` is
a leak. :func:`operating_points` never re-chooses: it evaluates exactly the thresholds it is given, on whatever
split the sweep was run on (a threshold outside the sweep's grid is post-processed and scored on demand).

What a threshold means. For a candidate threshold ``theta`` each recording's probability trace goes through the
full post-processing of :mod:`ictal.post.events` with ``tau_on = theta`` and
``tau_off = max(0, theta - (post.tau_on - post.tau_off))``: the hysteresis gap of the config is kept while the
operating threshold moves (with the defaults 0.86 / 0.78, ``theta = 0.5`` runs at 0.5 / 0.42). Every other
post-processing setting (opening, closing, durations, merging) is the config's.

Scores, all SEIZ and pooled over recordings: NEDC OVLP, TAES and EPOCH (``sensitivity`` a fraction,
``fa_per_24h`` false alarms per 24 h: events for OVLP, fractional events for TAES, false-alarm seconds per day for
EPOCH, as the NEDC tool defines them), and SzCORE event scoring (pooled over recordings, not the EpilepsyBench
mean over subjects; ``fa_per_24h`` is false-positive events per 24 h). SzCORE goes through ``timescoring`` file by
file, which is slow next to the vectorised NEDC scorers, so it is computed lazily: only at the thresholds
:func:`operating_points` reports, or at every threshold when its curve is asked for
(``sweep.curve("szcore")``, e.g. by ``choose_thresholds(sweep, scorer="szcore")``).

The sweep detects the events of every threshold at once (:mod:`ictal.post.thresholds`), puts each threshold's
events straight into :class:`~ictal.scoring.common.NedcEvents` and scores them against the reference prepared
once (OVLP and EPOCH vectorised over every file; TAES walks only the files that have both reference and
hypothesis seizures).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ictal.io.annotations import Annotation, Event
from ictal.post.config import PostConfig, validated_post_config
from ictal.post.events import as_trace
from ictal.post.thresholds import HypothesisEvents, detect_at_thresholds, tau_off_for
from ictal.scoring.common import SECONDS_PER_DAY, IntervalList, NedcEvents, ScoringError
from ictal.scoring.nedc_epoch import EPOCH_S, epoch_counts
from ictal.scoring.nedc_ovlp import ovlp_counts
from ictal.scoring.nedc_taes import taes_file_counts
from ictal.scoring.szcore import SzcoreConfig, SzcoreCounts, score_szcore

#: False-alarm targets (per 24 h) at which seizure detectors are compared.
DEFAULT_TARGETS: tuple[float, ...] = (10.0, 5.0, 2.5, 1.0)
#: Candidate thresholds: 0.02 to 0.98 in steps of 0.02, and a finer tail for the low false-alarm targets.
DEFAULT_THRESHOLDS: np.ndarray = np.concatenate((np.round(np.arange(1, 50) * 0.02, 2), [0.99, 0.995, 0.999]))
#: Scorers a sweep can report, in display order.
SWEEP_SCORERS: tuple[str, ...] = ("ovlp", "taes", "epoch", "szcore")
_NEDC_SWEEP_SCORERS = ("ovlp", "taes", "epoch")


# ---- results -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Curve:
    """One scorer's SEIZ result at each threshold of a sweep; every array has shape ``(T,)``.

    ``sensitivity`` is a fraction (NaN without reference seizures); ``fa_per_24h`` is in the scorer's own unit
    (see the module docstring). ``false_alarms`` is the scorer's raw count (epochs for EPOCH).
    """

    scorer: str
    sensitivity: np.ndarray
    fa_per_24h: np.ndarray
    hits: np.ndarray
    misses: np.ndarray
    false_alarms: np.ndarray


class ChosenThresholds(dict[float, float]):
    """FA/24h target -> threshold, as chosen by :func:`choose_thresholds`.

    ``unmet`` holds the targets that no swept threshold met on the choosing split (their threshold is the
    highest swept one); ``scorer`` names the scorer whose false-alarm rate was used.
    """

    def __init__(self, items: Mapping[float, float], scorer: str, unmet: Iterable[float] = ()) -> None:
        super().__init__(items)
        self.scorer = scorer
        self.unmet = frozenset(unmet)


@dataclass(frozen=True)
class _Source:
    """What a sweep was run on, kept so that other thresholds can be evaluated on the same split later."""

    traces: list[np.ndarray]
    rate: float
    post: PostConfig
    ref: NedcEvents
    ref_intervals: list[list[tuple[float, float]]]
    durations: np.ndarray
    szcore: SzcoreConfig


@dataclass
class SweepResult:
    """Scores of every candidate threshold on one split.

    Attributes:
        thresholds: the operating thresholds (``tau_on``), ascending, shape ``(T,)``.
        tau_off: the ``tau_off`` used with each, shape ``(T,)``.
        scorers: the scorers this sweep reports (``SWEEP_SCORERS`` order).
        curves: the NEDC scorers' curves (SzCORE through :meth:`curve`, computed when first asked for).
        hypotheses: the detected events at each threshold, length ``T``.
        total_duration_s: summed duration of the recordings, seconds.
        n_ref_events: reference seizures after the NEDC common step.
    """

    thresholds: np.ndarray
    tau_off: np.ndarray
    scorers: tuple[str, ...]
    curves: dict[str, Curve]
    hypotheses: list[HypothesisEvents]
    total_duration_s: float
    n_ref_events: int
    _source: _Source = field(repr=False)
    _szcore_at: dict[float, tuple[float, float]] = field(default_factory=dict, repr=False)
    _extra: dict[float, SweepResult] = field(default_factory=dict, repr=False)

    @property
    def n_files(self) -> int:
        return self._source.ref.n_files

    def index_of(self, theta: float) -> int | None:
        """Index of ``theta`` in :attr:`thresholds` (exact match), or ``None``."""
        hit = np.flatnonzero(self.thresholds == float(theta))
        return int(hit[0]) if hit.size else None

    def curve(self, scorer: str) -> Curve:
        """The curve of ``scorer`` over every threshold (SzCORE computed here on first use, file by file)."""
        _check_scorers([scorer])
        if scorer in self.curves:
            return self.curves[scorer]
        if scorer != "szcore":
            raise ScoringError(f"this sweep did not score {scorer}; run sweep_thresholds with scorers={scorer!r}")
        points = [self._szcore(float(t), h) for t, h in zip(self.thresholds, self.hypotheses, strict=True)]
        sens = np.array([p[0] for p in points])
        fa = np.array([p[1] for p in points])
        nan = np.full(sens.shape, math.nan)
        self.curves[scorer] = Curve(scorer, sens, fa, nan, nan, nan)
        return self.curves[scorer]

    def scores_at(self, theta: float) -> dict[str, tuple[float, float]]:
        """``{scorer: (sensitivity, fa_per_24h)}`` at one threshold, on this sweep's split.

        A threshold outside the swept grid is post-processed and scored here (and kept for later calls).
        """
        theta = float(theta)
        if not 0.0 <= theta <= 1.0:
            raise ScoringError(f"threshold {theta} is not a probability in [0, 1]")
        i = self.index_of(theta)
        if i is None:
            if theta not in self._extra:
                self._extra[theta] = _sweep(self._source, np.array([theta]), self.scorers)
            return self._extra[theta].scores_at(theta)
        out: dict[str, tuple[float, float]] = {}
        for s in self.scorers:
            if s in self.curves:
                out[s] = (float(self.curves[s].sensitivity[i]), float(self.curves[s].fa_per_24h[i]))
            else:  # szcore, not yet computed at this threshold
                out[s] = self._szcore(theta, self.hypotheses[i])
        return out

    def _szcore(self, theta: float, hyp: HypothesisEvents) -> tuple[float, float]:
        if theta not in self._szcore_at:
            pooled = szcore_pooled(self._source, hyp)
            self._szcore_at[theta] = (pooled.sensitivity, pooled.fp_per_24h)
        return self._szcore_at[theta]


# ---- the sweep -----------------------------------------------------------------------------------------------


def sweep_thresholds(
    traces: Sequence[np.ndarray],
    rate: float,
    refs: Sequence[IntervalList],
    durations: Sequence[float],
    post: PostConfig | None = None,
    thresholds: Iterable[float] | np.ndarray | None = None,
    scorers: Sequence[str] = SWEEP_SCORERS,
    szcore: SzcoreConfig | None = None,
) -> SweepResult:
    """Post-process every recording at each candidate threshold and score the events against the reference.

    Args:
        traces: one probability trace per recording, shape ``(n_f,)`` at ``rate`` Hz, values in [0, 1]
            (e.g. the stitched 16 Hz frame trace of :func:`ictal.post.stitch.stitch_windows`).
        rate: samples per second of the traces.
        refs: each recording's reference seizures, ``(start, stop)`` seconds.
        durations: each recording's duration, seconds (the reference annotation's).
        post: post-processing settings; its ``tau_on``/``tau_off`` only set the hysteresis gap (see the module
            docstring). Defaults to ``PostConfig()``.
        thresholds: candidate operating thresholds in [0, 1] (deduplicated and sorted); default
            ``DEFAULT_THRESHOLDS``.
        scorers: any of ``"ovlp"``, ``"taes"``, ``"epoch"``, ``"szcore"``.
        szcore: SzCORE parameters; default ``SzcoreConfig()``.

    Raises:
        ScoringError: lists of different lengths, an unknown scorer, a threshold outside [0, 1], or a trace
            whose length does not match its recording's duration at ``rate`` (naming the recording).
        ValueError: a trace that is not 1-D or not finite (from :func:`ictal.post.events.as_trace`).
    """
    if not rate > 0:
        raise ScoringError(f"rate must be positive (samples per second of the traces), got {rate}")
    _check_scorers(scorers)
    if not (len(traces) == len(refs) == len(durations)):
        raise ScoringError(
            f"{len(traces)} traces, {len(refs)} reference lists and {len(durations)} durations: give one of each "
            "per recording, in the same order"
        )
    cfg = validated_post_config(post)
    dur = np.asarray(durations, dtype=np.float64)
    checked = [as_trace(t, f"probability trace of recording {i}") for i, t in enumerate(traces)]
    for i, p in enumerate(checked):
        covered = p.size / rate
        if abs(covered - dur[i]) > max(1.0, 0.05 * dur[i]):
            raise ScoringError(
                f"recording {i}: its trace of {p.size} samples at {rate:g} Hz covers {covered:.1f} s but its "
                f"duration is {dur[i]:.1f} s; pass the trace's own rate and the reference's duration"
            )
    ref_lists = [[(float(a), float(b)) for a, b in r] for r in refs]
    source = _Source(
        traces=checked,
        rate=float(rate),
        post=cfg,
        ref=NedcEvents.from_intervals(ref_lists, dur.tolist()),
        ref_intervals=ref_lists,
        durations=dur,
        szcore=szcore or SzcoreConfig(),
    )
    grid = DEFAULT_THRESHOLDS if thresholds is None else np.asarray(list(thresholds), dtype=np.float64)
    grid = np.unique(grid)
    if grid.size == 0 or not np.all((grid >= 0.0) & (grid <= 1.0)):
        raise ScoringError(f"thresholds must be a non-empty set of probabilities in [0, 1], got {grid.tolist()}")
    ordered = tuple(s for s in SWEEP_SCORERS if s in scorers)
    return _sweep(source, grid, ordered)


def _check_scorers(scorers: Iterable[str]) -> None:
    unknown = [s for s in scorers if s not in SWEEP_SCORERS]
    if unknown:
        raise ScoringError(f"unknown scorer(s) {', '.join(unknown)}; choose from {', '.join(SWEEP_SCORERS)}")


def _sweep(source: _Source, thresholds: np.ndarray, scorers: tuple[str, ...]) -> SweepResult:
    tau_off = tau_off_for(thresholds, source.post)
    hypotheses = detect_at_thresholds(source.traces, source.rate, source.post, thresholds, tau_off)
    nedc = [s for s in scorers if s in _NEDC_SWEEP_SCORERS]
    counts = {s: np.zeros((thresholds.size, 3)) for s in nedc}  # hits, misses, false alarms
    for t, hyp in enumerate(hypotheses):
        hyp_ev = NedcEvents.from_arrays(hyp.start_s, hyp.stop_s, hyp.file, source.durations)
        for s in nedc:
            counts[s][t] = _seiz_counts(s, source.ref, hyp_ev)
    total = float(source.ref.durations.sum())
    curves = {}
    for s in nedc:
        hits, misses, fas = counts[s].T
        with np.errstate(invalid="ignore", divide="ignore"):
            sens = np.where(hits + misses > 0, hits / (hits + misses), math.nan)
        unit = EPOCH_S if s == "epoch" else 1.0
        rate = fas * unit / total * SECONDS_PER_DAY if total > 0 else np.full(fas.shape, math.nan)
        curves[s] = Curve(s, sens, rate, hits, misses, fas)
    return SweepResult(
        thresholds=thresholds,
        tau_off=tau_off,
        scorers=scorers,
        curves=curves,
        hypotheses=hypotheses,
        total_duration_s=total,
        n_ref_events=len(source.ref.seiz),
        _source=source,
    )


def _seiz_counts(scorer: str, ref: NedcEvents, hyp: NedcEvents) -> tuple[float, float, float]:
    """SEIZ ``(hits, misses, false alarms)`` pooled over files, for one NEDC scorer."""
    if scorer == "ovlp":
        _, hits, misses, fas = ovlp_counts(ref, hyp).seiz.sum(axis=0)
        return float(hits), float(misses), float(fas)
    if scorer == "epoch":
        _, hits, misses, fas = epoch_counts(ref, hyp).seiz.sum(axis=0)
        return float(hits), float(misses), float(fas)
    return taes_seiz_counts(ref, hyp)


def taes_seiz_counts(ref: NedcEvents, hyp: NedcEvents) -> tuple[float, float, float]:
    """TAES SEIZ ``(hits, misses, false alarms)`` pooled over files, as :func:`~ictal.scoring.nedc_taes.taes_counts`."""
    _, hits, misses, fas = taes_file_counts(ref.seiz, hyp.seiz).sum(axis=0).tolist()
    return hits, misses, fas


# ---- SzCORE --------------------------------------------------------------------------------------------------


def szcore_pooled(source: _Source, hyp: HypothesisEvents) -> SzcoreCounts:
    """SzCORE event scoring of one threshold's events, counts pooled over recordings."""
    hyp_lists = hyp.per_file(source.ref.n_files)
    pairs = []
    for ref_iv, hyp_iv, d in zip(source.ref_intervals, hyp_lists, source.durations.tolist(), strict=True):
        ref_ann = Annotation([Event(a, b, "seiz") for a, b in ref_iv], duration=d)
        hyp_ann = Annotation([Event(a, b, "seiz") for a, b in hyp_iv], duration=d)
        pairs.append((ref_ann, hyp_ann))
    return score_szcore(pairs, source.szcore)["event"].pooled


# ---- choosing and reporting ----------------------------------------------------------------------------------


def choose_thresholds(
    sweep: SweepResult, targets: Iterable[float] = DEFAULT_TARGETS, scorer: str = "ovlp"
) -> ChosenThresholds:
    """For each FA/24h target, the threshold of the most sensitive admissible operating point on this split.

    Admissible: the ``scorer``'s FA/24h is ``<= target``. Among the admissible thresholds with the highest
    sensitivity the highest threshold is taken: a lower one with the same sensitivity only adds false alarms
    (it is dominated), and on a split scored with the chosen threshold those extra alarms are the first to push the
    FA rate over its target. When no threshold meets a target its threshold is the highest swept one and the
    target is listed in ``ChosenThresholds.unmet``.
    """
    curve = sweep.curve(scorer)
    fa, sens = curve.fa_per_24h, curve.sensitivity
    chosen: dict[float, float] = {}
    unmet = []
    for target in targets:
        ok = np.flatnonzero(fa <= float(target))  # NaN (no duration) is never admissible
        if ok.size:
            s = sens[ok]  # NaN everywhere without reference seizures: then the lowest admissible threshold
            pick = ok[s >= np.nanmax(s)][-1] if np.isfinite(s).any() else ok[0]
            chosen[float(target)] = float(sweep.thresholds[pick])
        else:
            chosen[float(target)] = float(sweep.thresholds[-1])
            unmet.append(float(target))
    return ChosenThresholds(chosen, scorer, unmet)


def target_label(target: float) -> str:
    """A target as it appears in key names: ``10``, ``5``, ``2.5``, ``1``."""
    return f"{float(target):g}"


def operating_points(sweep: SweepResult, thresholds_by_target: Mapping[float, float]) -> dict[str, float | bool]:
    """Sensitivity and FA/24h of every scorer of ``sweep`` at the given thresholds, on the sweep's split.

    Keys, for each target ``t`` (formatted by :func:`target_label`) and scorer ``s``: ``threshold_at_{t}fa``,
    ``{s}_sensitivity_at_{t}fa`` (a fraction) and ``{s}_fa_per_24h_at_{t}fa``; with a :class:`ChosenThresholds`,
    also ``target_met_at_{t}fa``: whether the threshold met its target on the split it was chosen on.
    The thresholds are used unchanged (choose them on dev, apply them to eval).
    """
    out: dict[str, float | bool] = {}
    for target, theta in thresholds_by_target.items():
        t = target_label(target)
        out[f"threshold_at_{t}fa"] = float(theta)
        if isinstance(thresholds_by_target, ChosenThresholds):
            out[f"target_met_at_{t}fa"] = float(target) not in thresholds_by_target.unmet
        for s, (sens, fa) in sweep.scores_at(theta).items():
            out[f"{s}_sensitivity_at_{t}fa"] = sens
            out[f"{s}_fa_per_24h_at_{t}fa"] = fa
    return out


def with_threshold(post: PostConfig, theta: float) -> PostConfig:
    """``post`` run at operating threshold ``theta`` (``tau_off`` keeps the config's gap below it)."""
    return replace(post, tau_on=float(theta), tau_off=float(tau_off_for(np.array([theta]), post)[0]))
