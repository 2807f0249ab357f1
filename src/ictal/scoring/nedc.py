"""NEDC v6-compatible scoring (OVLP, TAES, EPOCH, DPALIGN): the public entry points.

>>> pairs = [(read_annotations(r), read_annotations(h)) for r, h in zip(ref_paths, hyp_paths)]
>>> results = score_nedc(pairs)                  # {"ovlp": NedcResult, "taes": ..., "epoch": ..., "dpalign": ...}
>>> results["ovlp"].sensitivity, results["ovlp"].fa_per_24h

Every result is the SEIZ label, pooled over files (sums of counts, one total duration), with per-file detail.
The implementations live in ``nedc_ovlp``, ``nedc_taes``, ``nedc_epoch`` and ``nedc_dpalign``; the common step
and result types in ``common``. For threshold sweeps use the ``*_intervals`` functions or build
:class:`NedcEvents` once for the reference and call the ``*_events`` functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ictal.io.annotations import Annotation
from ictal.scoring.common import (
    FileScore,
    LabelCounts,
    NedcEvents,
    NedcResult,
    ScoringError,
    events_from_pairs,
)
from ictal.scoring.nedc_dpalign import score_dpalign, score_dpalign_events, score_dpalign_intervals
from ictal.scoring.nedc_epoch import score_epoch, score_epoch_events, score_epoch_intervals
from ictal.scoring.nedc_ovlp import score_ovlp, score_ovlp_events, score_ovlp_intervals
from ictal.scoring.nedc_taes import score_taes, score_taes_events, score_taes_intervals

EventScorer = Callable[[NedcEvents, NedcEvents, Sequence[tuple[str, str]] | None, bool], NedcResult]

#: The NEDC scorers by name, in the order the reference tool prints them.
NEDC_SCORERS: dict[str, EventScorer] = {
    "dpalign": score_dpalign_events,
    "epoch": score_epoch_events,
    "ovlp": score_ovlp_events,
    "taes": score_taes_events,
}


def score_nedc(
    pairs: Sequence[tuple[Annotation, Annotation]],
    scorers: Sequence[str] = ("ovlp", "taes", "epoch", "dpalign"),
    per_file: bool = True,
) -> dict[str, NedcResult]:
    """Run the named NEDC scorers on (reference, hypothesis) pairs, the common step done once.

    Raises:
        ScoringError: an unknown scorer name, or a pair whose durations differ (naming the files).
    """
    unknown = [s for s in scorers if s not in NEDC_SCORERS]
    if unknown:
        raise ScoringError(f"unknown NEDC scorer(s) {', '.join(unknown)}; choose from {', '.join(NEDC_SCORERS)}")
    ref, hyp, names = events_from_pairs(pairs)
    return {name: NEDC_SCORERS[name](ref, hyp, names, per_file) for name in scorers}


__all__ = [
    "NEDC_SCORERS",
    "FileScore",
    "LabelCounts",
    "NedcEvents",
    "NedcResult",
    "ScoringError",
    "score_dpalign",
    "score_dpalign_events",
    "score_dpalign_intervals",
    "score_epoch",
    "score_epoch_events",
    "score_epoch_intervals",
    "score_nedc",
    "score_ovlp",
    "score_ovlp_events",
    "score_ovlp_intervals",
    "score_taes",
    "score_taes_events",
    "score_taes_intervals",
]
