"""NEDC DPALIGN scoring: Levenshtein alignment of the label sequences, times ignored.

Unit costs for insertion, deletion and substitution. False alarms are insertions (of the hypothesis label),
misses are deletions plus substitutions (of the reference label), hits are matches; a reference label counts
as a target wherever the alignment has one. Ties are broken as the reference tool does (substitution, then
insertion, then deletion, each taken only when strictly cheaper), which decides which label a miss goes to.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ictal.scoring.common import (
    BCKG,
    LABELS,
    SEIZ,
    NedcEvents,
    PerFileCounts,
)

_SUB, _INS, _DEL = 0, 1, 2
#: Padding symbol at both ends of each sequence, as in the reference tool.
_NULL = -1


def align_labels(ref: Sequence[int], hyp: Sequence[int]) -> list[tuple[int | None, int | None]]:
    """Minimum-edit alignment of two label sequences (labels as ints).

    Returns the aligned pairs in order: ``(r, h)`` for a match or substitution, ``(r, None)`` for a deletion,
    ``(None, h)`` for an insertion. The DP runs column by column (one hypothesis symbol at a time), each
    column vectorised over the reference: the deletion recurrence ``d[i] = min(a[i], d[i-1] + 1)`` is a
    running minimum of ``a[i] - i``.
    """
    r = np.array([_NULL, *ref, _NULL], dtype=np.int64)
    h = np.array([_NULL, *hyp, _NULL], dtype=np.int64)
    m, n = r.size, h.size
    rows = np.arange(m, dtype=np.float64)
    etype = np.empty((m, n), dtype=np.int8)
    etype[:, 0] = _DEL
    etype[0, :] = _INS
    etype[0, 0] = _SUB
    prev = rows.copy()  # column 0: deletions only
    for j in range(1, n):
        sub = prev[:-1] + (r[1:] != h[j])
        ins = prev[1:] + 1.0
        best = np.minimum(sub, ins)  # insertion only when strictly cheaper than substitution
        col = np.empty(m)
        col[0] = float(j)
        base = np.concatenate(([col[0]], best)) - rows
        col = np.minimum.accumulate(base) + rows
        kind = np.where(ins < sub, _INS, _SUB).astype(np.int8)
        # Deletion only when strictly cheaper than the better of substitution and insertion.
        kind[col[:-1] + 1.0 < best] = _DEL
        etype[1:, j] = kind
        prev = col
    pairs: list[tuple[int | None, int | None]] = []
    i, j = m - 1, n - 1
    while i >= 0 and j >= 0:
        step = etype[i, j]
        if step == _DEL:
            pairs.append((int(r[i]), None))
            i -= 1
        elif step == _INS:
            pairs.append((None, int(h[j])))
            j -= 1
        else:
            pairs.append((int(r[i]), int(h[j])))
            i -= 1
            j -= 1
    pairs.reverse()
    # Drop the first and last pair (the padding), and read a padding symbol aligned inside as a gap.
    return [(None if a == _NULL else a, None if b == _NULL else b) for a, b in pairs[1:-1]]


def dpalign_counts(ref: NedcEvents, hyp: NedcEvents) -> PerFileCounts:
    """Per-file DPALIGN counts of both labels (columns targets, hits, misses, false alarms)."""
    code = {label: k for k, label in enumerate(LABELS)}
    out = np.zeros((len(LABELS), ref.n_files, 4))
    # Each event's label code, in timeline order.
    ref_codes = np.where(ref.is_seiz, code[SEIZ], code[BCKG]).tolist()
    hyp_codes = np.where(hyp.is_seiz, code[SEIZ], code[BCKG]).tolist()
    ref_bounds, hyp_bounds = ref.timeline.bounds.tolist(), hyp.timeline.bounds.tolist()
    for f in range(ref.n_files):
        ref_seq = ref_codes[ref_bounds[f] : ref_bounds[f + 1]]
        hyp_seq = hyp_codes[hyp_bounds[f] : hyp_bounds[f + 1]]
        for r, h in align_labels(ref_seq, hyp_seq):
            if r is None:
                if h is not None:
                    out[h, f, 3] += 1
                continue
            out[r, f, 0] += 1
            out[r, f, 1 if r == h else 2] += 1
    return PerFileCounts(seiz=out[code[SEIZ]], bckg=out[code[BCKG]])
