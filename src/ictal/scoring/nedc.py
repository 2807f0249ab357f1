"""NEDC v6-compatible scoring (OVLP, TAES, EPOCH, DPALIGN): the entry points, one per kind of input.

>>> pairs = [(read_annotations(r), read_annotations(h)) for r, h in zip(ref_paths, hyp_paths)]
>>> results = score_nedc(pairs)                  # {"ovlp": NedcResult, "taes": ..., "epoch": ..., "dpalign": ...}
>>> results["ovlp"].sensitivity, results["ovlp"].fa_per_24h
>>> score_intervals(ref_seizures, hyp_seizures, durations, ["ovlp"])["ovlp"]   # (start, stop) lists per file

Every result is the SEIZ label, pooled over files (sums of counts, one total duration), with per-file detail.
The counting kernels live in ``nedc_ovlp``, ``nedc_taes``, ``nedc_epoch`` and ``nedc_dpalign``; the common step
and result types in ``common``. To score many hypotheses against one reference, build :class:`NedcEvents` once
for the reference and call :func:`score_events`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ictal.io.annotations import Annotation
from ictal.scoring.common import (
    FileScore,
    FileScoringError,
    IntervalList,
    LabelCounts,
    NedcEvents,
    NedcResult,
    PerFileCounts,
    ScoringError,
    build_result,
    check_same_durations,
    events_from_intervals,
    events_from_pairs,
)
from ictal.scoring.nedc_dpalign import dpalign_counts
from ictal.scoring.nedc_epoch import EPOCH_S, epoch_counts
from ictal.scoring.nedc_ovlp import ovlp_counts
from ictal.scoring.nedc_taes import taes_counts


@dataclass(frozen=True)
class NedcScorer:
    """One NEDC scorer: its per-file counting kernel, and the seconds one false alarm stands for (EPOCH's
    epochs) where its rate is not in events."""

    count: Callable[[NedcEvents, NedcEvents], PerFileCounts]
    fa_seconds: float | None = None


#: The NEDC scorers by name, in the order the reference tool prints them.
NEDC_SCORERS: dict[str, NedcScorer] = {
    "dpalign": NedcScorer(dpalign_counts),
    "epoch": NedcScorer(epoch_counts, fa_seconds=EPOCH_S),
    "ovlp": NedcScorer(ovlp_counts),
    "taes": NedcScorer(taes_counts),
}
ALL_NEDC: tuple[str, ...] = ("ovlp", "taes", "epoch", "dpalign")


def score_events(
    ref: NedcEvents,
    hyp: NedcEvents,
    scorers: Sequence[str] = ALL_NEDC,
    *,
    names: Sequence[tuple[str, str]] | None = None,
    per_file: bool = True,
) -> dict[str, NedcResult]:
    """The named scorers on events already through the common step (one :class:`NedcEvents` per side).

    Raises:
        ScoringError: an unknown scorer name, durations that differ, or a file a scorer cannot score (naming
            the file when ``names`` are given).
    """
    unknown = [s for s in scorers if s not in NEDC_SCORERS]
    if unknown:
        raise ScoringError(f"unknown NEDC scorer(s) {', '.join(unknown)}; choose from {', '.join(NEDC_SCORERS)}")
    check_same_durations(ref, hyp, names)
    results = {}
    for name in scorers:
        scorer = NEDC_SCORERS[name]
        try:
            counts = scorer.count(ref, hyp)
        except FileScoringError as exc:
            which = names[exc.file][0] if names else f"ref[{exc.file}]"
            raise ScoringError(f"{which}: {exc.message}") from None
        results[name] = build_result(
            name, counts, ref.scored_durations, names, fa_seconds=scorer.fa_seconds, per_file=per_file
        )
    return results


def score_nedc(
    pairs: Sequence[tuple[Annotation, Annotation]],
    scorers: Sequence[str] = ALL_NEDC,
    per_file: bool = True,
) -> dict[str, NedcResult]:
    """The named NEDC scorers on (reference, hypothesis) annotation pairs, the common step done once.

    Raises:
        ScoringError: an unknown scorer name, a pair whose durations differ (naming the files), or a file a
            scorer cannot score (naming it).
    """
    ref, hyp, names = events_from_pairs(pairs)
    return score_events(ref, hyp, scorers, names=names, per_file=per_file)


def score_intervals(
    ref: Sequence[IntervalList],
    hyp: Sequence[IntervalList],
    durations: Sequence[float],
    scorers: Sequence[str] = ALL_NEDC,
    per_file: bool = False,
) -> dict[str, NedcResult]:
    """The named NEDC scorers on seizure ``(start, stop)`` second lists, one list per file, with each file's
    duration in seconds: no annotation objects, for predictions and sweeps."""
    ref_ev, hyp_ev = events_from_intervals(ref, hyp, durations)
    return score_events(ref_ev, hyp_ev, scorers, per_file=per_file)


__all__ = [
    "ALL_NEDC",
    "NEDC_SCORERS",
    "FileScore",
    "LabelCounts",
    "NedcEvents",
    "NedcResult",
    "NedcScorer",
    "ScoringError",
    "score_events",
    "score_intervals",
    "score_nedc",
]
