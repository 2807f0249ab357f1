"""The NEDC v6 common step and the result types shared by the NEDC scorers (OVLP, TAES, EPOCH, DPALIGN).

Common step, per file, for reference and hypothesis alike, as the NEDC tool v6.0.0 does it:

1. the rows sorted by start (ties by stop, then by their order in the file);
2. a ``bckg`` filler wherever the previous row's stop (0 before the first row) and the next row's start differ
   once both are rounded to 4 decimals, and one from the last row's stop to the duration; where two rows
   overlap, the filler runs backwards (negative length) from the first one's stop to the second one's start;
3. each run of consecutive events with the same label joined into one, from the first one's start to the
   last one's stop.

So rows that touch (to 4 decimals) become one event, rows that overlap or nest stay separate events that each
scorer scores on its own, and a row keeps its own digits (only the fillers are rounded). Events past the
duration are kept as they are. A file's scored duration is the stop of its last event. Every label in
``SEIZURE_LABELS`` scores as ``seiz``, every other label as ``bckg``; runs join on the label as written.

All files of a list are held together in one :class:`NedcEvents`, their events concatenated in file order, so
OVLP and EPOCH are a few array operations over the whole list rather than a Python loop per file or per event.

Where this differs from the reference tool (each shown by a test in ``tests/test_scoring_oracle.py``):

* a label outside the tool's map (``seiz``, ``bckg``) stops the tool; here TUH's seizure types score as ``seiz``
  and its background and artifact labels as ``bckg`` (``ictal score`` stops on any other label, as the tool does,
  unless ``--map`` says how to score it; the Python API scores it as ``bckg``);
* a file without ``TERM`` rows (a per-channel ``.csv``) is empty to the tool; here it is scored on the union of
  its channels' seizure rows;
* TAES on a zero-length reference event that a hypothesis overlaps divides by zero in the tool; here it is a
  :class:`ScoringError` naming the file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ictal.errors import IctalError
from ictal.io.annotations import SEIZURE_LABELS, Annotation, merge_intervals

SEIZ = "seiz"
BCKG = "bckg"
#: Labels in NEDC's scoring order (its parameter file lists SEIZ first).
LABELS: tuple[str, str] = (SEIZ, BCKG)
#: Decimals to which NEDC rounds times when it fills gaps and compares durations.
NEDC_DECIMALS = 4
SECONDS_PER_DAY = 86400.0
#: The channel of term-level rows (``.csv_bi``), the only rows the NEDC tool scores.
TERM_CHANNEL = "TERM"

#: A file's seizure intervals, ``(start, stop)`` seconds.
IntervalList = Sequence[tuple[float, float]]

# Label codes of the common step's rows: 0 and 1 are the two NEDC labels, other labels follow.
_BCKG_CODE, _SEIZ_CODE = 0, 1


class ScoringError(IctalError):
    """Inputs that cannot be scored together (durations differ, list lengths differ, a missing file)."""


class FileScoringError(ScoringError):
    """A file of a list that cannot be scored, by its index: the entry points put the file's name on it."""

    def __init__(self, file: int, message: str) -> None:
        super().__init__(f"file {file}: {message}")
        self.file = file
        self.message = message


def round_nedc(seconds: np.ndarray | Sequence[float] | float) -> np.ndarray:
    """Python's ``round(x, 4)`` elementwise, exactly: the rounding the NEDC tool applies.

    ``np.round`` scales by 1e4 first and so can round the other way when ``x * 1e4`` lies within a unit in
    the last place of a half; those few values are rounded by Python itself.
    """
    x = np.asarray(seconds, dtype=np.float64)
    scaled = x * 10.0**NEDC_DECIMALS
    out = np.rint(scaled) / 10.0**NEDC_DECIMALS
    near_half = np.abs(scaled - np.floor(scaled) - 0.5) <= 4.0 * np.spacing(np.abs(scaled))
    if near_half.any():
        out[near_half] = [round(v, NEDC_DECIMALS) for v in x[near_half].tolist()]
    return out


@dataclass(frozen=True)
class Intervals:
    """Events of one label for many files, grouped by file and in timeline order within a file.

    ``start``/``stop`` are seconds from the start of their own file, shape ``(n,)``; ``file`` is the file
    index, shape ``(n,)``, non-decreasing; ``bounds`` has shape ``(F + 1,)``: the events of file ``f`` are
    ``bounds[f]:bounds[f + 1]``. Starts of the rows increase, but events may overlap, and a background filler
    between overlapping rows has ``stop < start``.
    """

    start: np.ndarray
    stop: np.ndarray
    file: np.ndarray
    bounds: np.ndarray

    @classmethod
    def grouped(cls, start: np.ndarray, stop: np.ndarray, file: np.ndarray, n_files: int) -> Intervals:
        """From arrays already grouped by file (``file`` non-decreasing), their order kept."""
        file = np.asarray(file, dtype=np.int64)
        bounds = np.searchsorted(file, np.arange(n_files + 1), side="left")
        return cls(np.asarray(start, dtype=np.float64), np.asarray(stop, dtype=np.float64), file, bounds)

    def __len__(self) -> int:
        return int(self.start.size)

    def counts(self) -> np.ndarray:
        """Number of events per file, shape ``(F,)``."""
        return np.diff(self.bounds)

    def for_file(self, f: int) -> tuple[np.ndarray, np.ndarray]:
        """Local ``(start, stop)`` arrays of file ``f``."""
        lo, hi = self.bounds[f], self.bounds[f + 1]
        return self.start[lo:hi], self.stop[lo:hi]


@dataclass(frozen=True)
class NedcEvents:
    """The events of a list of files after the NEDC common step.

    ``durations`` (shape ``(F,)``, seconds) are the stated durations rounded to 4 decimals, which a reference
    and its hypothesis must share. ``timeline`` holds every event of every file in timeline order, labels
    alternating within a file; ``is_seiz`` (shape ``(n,)``) says which are ``seiz``.
    """

    durations: np.ndarray
    timeline: Intervals
    is_seiz: np.ndarray

    @property
    def n_files(self) -> int:
        return int(self.durations.size)

    @cached_property
    def seiz(self) -> Intervals:
        return self._of(self.is_seiz)

    @cached_property
    def bckg(self) -> Intervals:
        return self._of(~self.is_seiz)

    def _of(self, mask: np.ndarray) -> Intervals:
        t = self.timeline
        return Intervals.grouped(t.start[mask], t.stop[mask], t.file[mask], self.n_files)

    def intervals(self, label: str) -> Intervals:
        return self.seiz if label == SEIZ else self.bckg

    @property
    def scored_durations(self) -> np.ndarray:
        """Each file's scored duration, the stop of its last event (seconds, shape ``(F,)``)."""
        return self.timeline.stop[self.timeline.bounds[1:] - 1]

    def file_events(self, f: int) -> list[tuple[float, float, str]]:
        """File ``f``'s events in timeline order, as ``(start, stop, label)``."""
        lo, hi = self.timeline.bounds[f], self.timeline.bounds[f + 1]
        t = self.timeline
        return [
            (float(a), float(b), SEIZ if s else BCKG)
            for a, b, s in zip(t.start[lo:hi], t.stop[lo:hi], self.is_seiz[lo:hi], strict=True)
        ]

    def labels(self, f: int) -> list[str]:
        """File ``f``'s label sequence (what NEDC prints on its ``Ref:`` / ``Hyp:`` lines)."""
        return [label for _, _, label in self.file_events(f)]

    @classmethod
    def from_intervals(cls, seizures: Sequence[IntervalList], durations: Sequence[float]) -> NedcEvents:
        """Build from each file's seizure ``(start, stop)`` seconds and its duration in seconds."""
        if len(seizures) != len(durations):
            raise ScoringError(f"{len(seizures)} interval lists but {len(durations)} durations")
        counts = np.array([len(s) for s in seizures], dtype=np.int64)
        arr = np.asarray([pair for s in seizures for pair in s], dtype=np.float64).reshape(-1, 2)
        file = np.repeat(np.arange(len(seizures), dtype=np.int64), counts)
        return cls.from_arrays(arr[:, 0], arr[:, 1], file, np.asarray(durations, dtype=np.float64))

    @classmethod
    def from_arrays(cls, start: np.ndarray, stop: np.ndarray, file: np.ndarray, durations: np.ndarray) -> NedcEvents:
        """Build from flat seizure arrays: ``start``/``stop`` seconds and ``file`` index, shape ``(n,)`` each."""
        code = np.full(np.asarray(start).size, _SEIZ_CODE, dtype=np.int64)
        return cls.from_rows(start, stop, code, file, durations, np.array([False, True]))

    @classmethod
    def from_annotations(cls, annotations: Sequence[Annotation]) -> NedcEvents:
        """Build from annotations: their ``TERM`` rows, labels as written (seizure types score as ``seiz``).

        A file without ``TERM`` rows (per-channel ``.csv``) contributes the union of its seizure rows.
        """
        vocabulary = {BCKG: _BCKG_CODE, SEIZ: _SEIZ_CODE}
        start: list[float] = []
        stop: list[float] = []
        code: list[int] = []
        file: list[int] = []
        for f, ann in enumerate(annotations):
            term = [e for e in ann.events if e.channel.upper() == TERM_CHANNEL]
            if term or not ann.events:
                rows = [(e.start, e.stop, e.label) for e in term]
            else:
                rows = [(a, b, SEIZ) for a, b in merge_intervals((e.start, e.stop) for e in ann.events if e.is_seizure)]
            for a, b, label in rows:
                start.append(a)
                stop.append(b)
                code.append(vocabulary.setdefault(label, len(vocabulary)))
                file.append(f)
        names = sorted(vocabulary, key=vocabulary.__getitem__)
        seiz_codes = np.array([name in SEIZURE_LABELS for name in names])
        durations = np.array([a.duration for a in annotations], dtype=np.float64)
        return cls.from_rows(
            np.array(start), np.array(stop), np.array(code, dtype=np.int64), np.array(file), durations, seiz_codes
        )

    @classmethod
    def from_rows(
        cls,
        start: np.ndarray,
        stop: np.ndarray,
        code: np.ndarray,
        file: np.ndarray,
        durations: np.ndarray,
        seiz_codes: np.ndarray,
    ) -> NedcEvents:
        """The common step on annotation rows of many files.

        Args:
            start, stop: seconds, shape ``(n,)``, as written in the files.
            code: each row's label as an index into ``seiz_codes``, shape ``(n,)``; 0 must be ``bckg``.
            file: each row's file index, shape ``(n,)``, any order.
            durations: each file's stated duration in seconds, shape ``(F,)``.
            seiz_codes: whether each label code scores as ``seiz``, shape ``(n_codes,)``.
        """
        durations = np.asarray(durations, dtype=np.float64).reshape(-1)
        n_files = durations.size
        start = np.asarray(start, dtype=np.float64).reshape(-1)
        stop = np.asarray(stop, dtype=np.float64).reshape(-1)
        code = np.asarray(code, dtype=np.int64).reshape(-1)
        file = np.asarray(file, dtype=np.int64).reshape(-1)
        rounded_durations = round_nedc(durations)
        if n_files == 0:
            empty = Intervals.grouped(np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64), 0)
            return cls(rounded_durations, empty, np.zeros(0, dtype=bool))
        # A file without rows is one background event over its stated duration, as in the tool.
        no_rows = np.flatnonzero(np.bincount(file, minlength=n_files) == 0)
        start = np.concatenate((start, np.zeros(no_rows.size)))
        stop = np.concatenate((stop, durations[no_rows]))
        code = np.concatenate((code, np.full(no_rows.size, _BCKG_CODE, dtype=np.int64)))
        file = np.concatenate((file, no_rows))
        order = np.lexsort((stop, start, file))  # stable: equal rows keep their order in the file
        start, stop, code, file = start[order], stop[order], code[order], file[order]
        start_r, stop_r = round_nedc(start), round_nedc(stop)
        first = np.ones(start.size, dtype=bool)
        first[1:] = file[1:] != file[:-1]
        last = np.ones(start.size, dtype=bool)
        last[:-1] = first[1:]
        previous_stop = np.concatenate(([0.0], stop_r[:-1]))
        previous_stop[first] = 0.0
        gap_before = previous_stop != start_r
        gap_after = last & (stop_r != rounded_durations[file])
        # Each row takes a slot, preceded by a filler slot where there is a gap before it and followed by one
        # after the last row of a file that ends short of (or past) the duration.
        ends = np.cumsum(gap_before.astype(np.int64) + 1 + gap_after)
        row_at = ends - 1 - gap_after
        size = int(ends[-1])
        seq_start, seq_stop = np.empty(size), np.empty(size)
        seq_code, seq_file = np.full(size, _BCKG_CODE, dtype=np.int64), np.empty(size, dtype=np.int64)
        seq_start[row_at], seq_stop[row_at], seq_code[row_at], seq_file[row_at] = start, stop, code, file
        before = np.flatnonzero(gap_before)
        at = row_at[before] - 1
        seq_start[at], seq_stop[at], seq_file[at] = previous_stop[before], start_r[before], file[before]
        after = np.flatnonzero(gap_after)
        at = row_at[after] + 1
        seq_start[at], seq_stop[at], seq_file[at] = stop_r[after], rounded_durations[file[after]], file[after]
        # Runs of consecutive events with the same label become one event.
        run_first = np.flatnonzero(
            np.concatenate(([True], (seq_file[1:] != seq_file[:-1]) | (seq_code[1:] != seq_code[:-1])))
        )
        run_last = np.concatenate((run_first[1:], [size])) - 1
        timeline = Intervals.grouped(seq_start[run_first], seq_stop[run_last], seq_file[run_first], n_files)
        is_seiz = np.asarray(seiz_codes, dtype=bool)[seq_code[run_first]]
        return cls(rounded_durations, timeline, is_seiz)


def any_strict_overlap(a: Intervals, b: Intervals) -> np.ndarray:
    """For each event of ``a``, whether some event of ``b`` in the same file strictly overlaps it.

    Strict overlap is ``b.stop > a.start and b.start < a.stop``; any events (overlapping, unsorted, of negative
    length) are allowed. The times are replaced by their ranks among all of them, exact integers, so that
    ``file * width + rank`` orders (file, time) pairs; then the ``b`` that start before ``a`` stops are a
    prefix of ``b`` in that order, and the running maximum of their stops says whether one reaches past
    ``a.start``. Shape ``(len(a),)``.
    """
    na, nb = len(a), len(b)
    if na == 0 or nb == 0:
        return np.zeros(na, dtype=bool)
    values, rank = np.unique(np.concatenate((a.start, a.stop, b.start, b.stop)), return_inverse=True)
    width = np.int64(values.size + 1)
    a_start, a_stop, b_start, b_stop = (
        r.astype(np.int64) for r in np.split(rank.reshape(-1), [na, 2 * na, 2 * na + nb])
    )
    order = np.lexsort((b_start, b.file))
    b_start_key = (b.file * width + b_start)[order]
    # A file's keys lie above every earlier file's, so the running maximum never carries one file's reach
    # into a later file's comparisons.
    b_reach = np.maximum.accumulate((b.file * width + b_stop)[order])
    started = np.searchsorted(b_start_key, a.file * width + a_stop, side="left")
    reach = np.where(started > 0, b_reach[np.maximum(started - 1, 0)], -1)
    return reach > a.file * width + a_start


def check_same_durations(ref: NedcEvents, hyp: NedcEvents, names: Sequence[tuple[str, str]] | None = None) -> None:
    """Raise :class:`ScoringError` naming the first pair whose durations differ (to 4 decimals)."""
    if ref.n_files != hyp.n_files:
        raise ScoringError(f"{ref.n_files} reference files but {hyp.n_files} hypothesis files")
    differ = np.flatnonzero(ref.durations != hyp.durations)
    if differ.size:
        f = int(differ[0])
        which = f"{names[f][1]} vs {names[f][0]}" if names else f"file {f}"
        raise ScoringError(
            f"{which}: durations differ ({hyp.durations[f]:.4f} s vs {ref.durations[f]:.4f} s); the hypothesis "
            "must state the reference recording's duration"
        )


@dataclass(frozen=True)
class LabelCounts:
    """Targets, hits, misses and false alarms of one label (fractional for TAES)."""

    targets: float
    hits: float
    misses: float
    false_alarms: float

    @property
    def sensitivity(self) -> float:
        """hits / (hits + misses), a fraction; NaN when there is nothing to detect."""
        denom = self.hits + self.misses
        return self.hits / denom if denom else math.nan


@dataclass(frozen=True)
class FileScore:
    """One file pair's counts, for ``seiz`` and ``bckg`` (NEDC's per-file tables add the two)."""

    ref_path: str
    hyp_path: str
    duration_s: float
    seiz: LabelCounts
    bckg: LabelCounts

    @property
    def all_labels(self) -> LabelCounts:
        """Sum over both labels: the Hit / Miss / False Alarms of NEDC's per-file tables."""
        s, b = self.seiz, self.bckg
        return LabelCounts(s.targets + b.targets, s.hits + b.hits, s.misses + b.misses, s.false_alarms + b.false_alarms)


@dataclass(frozen=True)
class NedcResult:
    """One NEDC scorer's SEIZ result, pooled over files, with per-file detail.

    ``sensitivity`` is a fraction (NaN with no reference seizure). ``fa_per_24h`` is the SEIZ label's false
    alarms per 24 h: events for OVLP/TAES/DPALIGN, seconds of false-alarm epochs for EPOCH.
    """

    scorer: str
    targets: float
    hits: float
    misses: float
    false_alarms: float
    sensitivity: float
    fa_per_24h: float
    total_duration_s: float
    bckg: LabelCounts
    per_file: list[FileScore] = field(default_factory=list)

    @property
    def seiz(self) -> LabelCounts:
        return LabelCounts(self.targets, self.hits, self.misses, self.false_alarms)


@dataclass(frozen=True)
class PerFileCounts:
    """Counts per file as arrays, shape ``(F, 4)``: columns targets, hits, misses, false alarms."""

    seiz: np.ndarray
    bckg: np.ndarray

    def totals(self) -> tuple[LabelCounts, LabelCounts]:
        return _counts(self.seiz.sum(axis=0)), _counts(self.bckg.sum(axis=0))


def _counts(row: np.ndarray) -> LabelCounts:
    return LabelCounts(*(float(v) for v in row))


def build_result(
    scorer: str,
    counts: PerFileCounts,
    durations: np.ndarray,
    names: Sequence[tuple[str, str]] | None,
    fa_seconds: float | None = None,
    per_file: bool = True,
) -> NedcResult:
    """Pool per-file counts into a :class:`NedcResult`.

    Args:
        fa_seconds: ``None`` for a rate of false-alarm events; the epoch length for EPOCH, whose rate is
            false-alarm seconds per 24 h.
    """
    seiz, bckg = counts.totals()
    total = float(durations.sum())
    fa = seiz.false_alarms * (fa_seconds if fa_seconds is not None else 1.0)
    rate = fa / total * SECONDS_PER_DAY if total > 0 else math.nan
    files: list[FileScore] = []
    if per_file:
        for f in range(durations.size):
            ref_name, hyp_name = names[f] if names else (f"ref[{f}]", f"hyp[{f}]")
            files.append(
                FileScore(ref_name, hyp_name, float(durations[f]), _counts(counts.seiz[f]), _counts(counts.bckg[f]))
            )
    return NedcResult(
        scorer=scorer,
        targets=seiz.targets,
        hits=seiz.hits,
        misses=seiz.misses,
        false_alarms=seiz.false_alarms,
        sensitivity=seiz.sensitivity,
        fa_per_24h=rate,
        total_duration_s=total,
        bckg=bckg,
        per_file=files,
    )


def pair_names(pairs: Sequence[tuple[Annotation, Annotation]]) -> list[tuple[str, str]]:
    """``(ref path, hyp path)`` of each pair, as strings (``ref[i]`` / ``hyp[i]`` when a path is unknown)."""
    return [
        (str(r.path) if r.path else f"ref[{i}]", str(h.path) if h.path else f"hyp[{i}]")
        for i, (r, h) in enumerate(pairs)
    ]


def events_from_pairs(
    pairs: Sequence[tuple[Annotation, Annotation]],
) -> tuple[NedcEvents, NedcEvents, list[tuple[str, str]]]:
    """The common step on (reference, hypothesis) annotation pairs; checks their durations agree."""
    names = pair_names(pairs)
    ref = NedcEvents.from_annotations([r for r, _ in pairs])
    hyp = NedcEvents.from_annotations([h for _, h in pairs])
    check_same_durations(ref, hyp, names)
    return ref, hyp, names


def events_from_intervals(
    ref: Sequence[IntervalList], hyp: Sequence[IntervalList], durations: Sequence[float]
) -> tuple[NedcEvents, NedcEvents]:
    """The common step on seizure interval lists of the same files (one duration per file, seconds)."""
    if len(ref) != len(hyp):
        raise ScoringError(f"{len(ref)} reference interval lists but {len(hyp)} hypothesis interval lists")
    return NedcEvents.from_intervals(ref, durations), NedcEvents.from_intervals(hyp, durations)
