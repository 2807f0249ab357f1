"""NEDC OVLP (any-overlap) scoring, vectorised over every event of every file.

Per label: a reference event is a hit if some hypothesis event of its label strictly overlaps it
(``hyp.stop > ref.start and hyp.start < ref.stop``), else a miss; a hypothesis event that strictly overlaps no
reference event of its label is one false alarm. No guard band. Overlapping events of one file are each scored
on their own (two overlapping hypothesis rows without a reference seizure are two false alarms).
"""

from __future__ import annotations

import numpy as np

from ictal.scoring.common import (
    LABELS,
    SEIZ,
    NedcEvents,
    PerFileCounts,
    any_strict_overlap,
)


def ovlp_counts(ref: NedcEvents, hyp: NedcEvents) -> PerFileCounts:
    """Per-file OVLP counts of both labels (columns targets, hits, misses, false alarms)."""
    n = ref.n_files
    out = {}
    for label in LABELS:
        r, h = ref.intervals(label), hyp.intervals(label)
        hit = any_strict_overlap(r, h)
        false_alarm = ~any_strict_overlap(h, r)
        r_file, h_file = r.file, h.file
        targets = np.bincount(r_file, minlength=n).astype(np.float64)
        hits = np.bincount(r_file, weights=hit.astype(np.float64), minlength=n)
        fas = np.bincount(h_file, weights=false_alarm.astype(np.float64), minlength=n)
        out[label] = np.stack([targets, hits, targets - hits, fas], axis=1)
    return PerFileCounts(seiz=out[SEIZ], bckg=out["bckg"])
