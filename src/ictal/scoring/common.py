"""The NEDC v6 common step and the result types shared by the NEDC scorers (OVLP, TAES, EPOCH, DPALIGN).

Common step, per file, for reference and hypothesis alike (``scoring.md``): times rounded to 4 decimals (the
precision of the TUSZ files, and what comparing "to 4 decimals" means), sorted, clipped to ``[0, duration]``,
overlapping or touching seizure events merged into one, every gap filled with ``bckg``. Every label in
``SEIZURE_LABELS`` scores as ``seiz``; every other label (``bckg``, artifacts) as ``bckg``. The result is a
timeline that alternates ``bckg`` and ``seiz`` events and covers ``[0, duration]`` exactly.

All files of a list are held together in one :class:`NedcEvents`, their events concatenated on one global time
axis (file ``f`` starts at ``offsets[f]``, files kept at least 1 s apart), so OVLP and EPOCH are one
``np.searchsorted`` over the whole list rather than a Python loop per file or per event.

Where this differs from the reference tool (identical on well-formed TUSZ files, whose times have 4 decimals
and whose rows do not overlap): the tool keeps digits beyond the 4th in event times (only its gap filling rounds);
it leaves overlapping rows unmerged, with a negative-length ``bckg`` filler between them (``scoring.md`` asks
for one merged event, which is what this does); and it stops on any label outside its map (here mapped).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ictal.errors import IctalError
from ictal.io.annotations import Annotation

SEIZ = "seiz"
BCKG = "bckg"
#: Labels in NEDC's scoring order (its parameter file lists SEIZ first).
LABELS: tuple[str, str] = (SEIZ, BCKG)
#: Decimals to which NEDC compares times and durations.
NEDC_DECIMALS = 4
TICKS_PER_SECOND = 10.0**NEDC_DECIMALS
SECONDS_PER_DAY = 86400.0

#: A file's seizure intervals, ``(start, stop)`` seconds.
IntervalList = Sequence[tuple[float, float]]


class ScoringError(IctalError):
    """Inputs that cannot be scored together (durations differ, list lengths differ, a missing file)."""


@dataclass(frozen=True)
class Intervals:
    """Events of one label for many files, sorted by (file, start) and non-overlapping within a file.

    ``start``/``stop`` are seconds from the start of their own file, shape ``(n,)``; ``file`` is the file
    index, shape ``(n,)``; ``bounds`` has shape ``(F + 1,)``: the events of file ``f`` are
    ``bounds[f]:bounds[f + 1]``.
    """

    start: np.ndarray
    stop: np.ndarray
    file: np.ndarray
    bounds: np.ndarray

    @classmethod
    def build(cls, start: np.ndarray, stop: np.ndarray, file: np.ndarray, n_files: int) -> Intervals:
        order = np.lexsort((start, file))
        start, stop, file = start[order], stop[order], file[order]
        bounds = np.searchsorted(file, np.arange(n_files + 1), side="left")
        return cls(start.astype(np.float64), stop.astype(np.float64), file.astype(np.int64), bounds)

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

    ``durations`` (seconds, rounded to 4 decimals) and ``offsets`` (the global time of each file's 0) have
    shape ``(F,)``. ``seiz`` and ``bckg`` tile each file's ``[0, duration]`` between them.
    """

    durations: np.ndarray
    offsets: np.ndarray
    seiz: Intervals
    bckg: Intervals

    @property
    def n_files(self) -> int:
        return int(self.durations.size)

    @classmethod
    def from_intervals(cls, seizures: Sequence[IntervalList], durations: Sequence[float]) -> NedcEvents:
        """Build from each file's seizure ``(start, stop)`` seconds and its duration in seconds."""
        if len(seizures) != len(durations):
            raise ScoringError(f"{len(seizures)} interval lists but {len(durations)} durations")
        counts = np.array([len(s) for s in seizures], dtype=np.int64)
        flat = [pair for s in seizures for pair in s]
        arr = np.asarray(flat, dtype=np.float64).reshape(-1, 2)
        file = np.repeat(np.arange(len(seizures), dtype=np.int64), counts)
        return cls.from_arrays(arr[:, 0], arr[:, 1], file, np.asarray(durations, dtype=np.float64))

    @classmethod
    def from_annotations(cls, annotations: Sequence[Annotation]) -> NedcEvents:
        """Build from annotations: every seizure-labelled row is ``seiz``, every other row background."""
        return cls.from_intervals(
            [[(e.start, e.stop) for e in a.events if e.is_seizure] for a in annotations],
            [a.duration for a in annotations],
        )

    @classmethod
    def from_arrays(cls, start: np.ndarray, stop: np.ndarray, file: np.ndarray, durations: np.ndarray) -> NedcEvents:
        """Build from flat seizure arrays: ``start``/``stop`` seconds and ``file`` index, shape ``(n,)`` each."""
        n_files = int(np.asarray(durations).size)
        # Work in integer ticks of 1e-4 s: exact comparisons, and ticks / 1e4 is the 4-decimal value.
        dur = _ticks(durations)
        file = np.asarray(file, dtype=np.int64)
        start = np.maximum(_ticks(start), 0)
        stop = np.minimum(_ticks(stop), dur[file])
        # Zero-length events carry no time (and would make TAES divide by zero): dropped.
        keep = stop > start
        seiz = _merge_touching(start[keep], stop[keep], file[keep])
        bckg = _complement(*seiz, dur)
        # Integer offsets with a >= 1 s gap: no event of one file can touch or overlap another file's.
        dur_s = dur / TICKS_PER_SECOND
        widths = np.ceil(dur_s) + 1.0
        offsets = np.concatenate(([0.0], np.cumsum(widths)[:-1])) if n_files else np.zeros(0)
        return cls(dur_s, offsets, _intervals(*seiz, n_files), _intervals(*bckg, n_files))

    def intervals(self, label: str) -> Intervals:
        return self.seiz if label == SEIZ else self.bckg

    def global_times(self, label: str) -> tuple[np.ndarray, np.ndarray]:
        """``(start, stop)`` of every event of ``label`` on the global axis (``offsets[file]`` added)."""
        iv = self.intervals(label)
        off = self.offsets[iv.file]
        return iv.start + off, iv.stop + off

    def file_events(self, f: int) -> list[tuple[float, float, str]]:
        """File ``f``'s events in time order, as ``(start, stop, label)``."""
        s_start, s_stop = self.seiz.for_file(f)
        b_start, b_stop = self.bckg.for_file(f)
        events = [(float(a), float(b), SEIZ) for a, b in zip(s_start, s_stop, strict=True)]
        events += [(float(a), float(b), BCKG) for a, b in zip(b_start, b_stop, strict=True)]
        return sorted(events)

    def labels(self, f: int) -> list[str]:
        """File ``f``'s label sequence (what NEDC prints on its ``Ref:`` / ``Hyp:`` lines)."""
        return [label for _, _, label in self.file_events(f)]


def _ticks(seconds: np.ndarray | Sequence[float]) -> np.ndarray:
    return np.rint(np.asarray(seconds, dtype=np.float64) * TICKS_PER_SECOND).astype(np.int64)


def _intervals(start: np.ndarray, stop: np.ndarray, file: np.ndarray, n_files: int) -> Intervals:
    return Intervals.build(start / TICKS_PER_SECOND, stop / TICKS_PER_SECOND, file, n_files)


Ticks = tuple[np.ndarray, np.ndarray, np.ndarray]


def _merge_touching(start: np.ndarray, stop: np.ndarray, file: np.ndarray) -> Ticks:
    """Merge overlapping or touching intervals (integer ticks) of the same file: one sort, one running max."""
    if start.size == 0:
        return start, stop, file
    order = np.lexsort((start, file))
    start, stop, file = start[order], stop[order], file[order]
    # Running max of stops within a file, exact in int64: a file's key range lies above every earlier file's.
    span = int(stop.max()) + 1
    running = np.maximum.accumulate(stop + file * span) - file * span
    new_run = np.ones(start.size, dtype=bool)
    new_run[1:] = (file[1:] != file[:-1]) | (start[1:] > running[:-1])
    first = np.flatnonzero(new_run)
    return start[first], np.maximum.reduceat(stop, first), file[first]


def _complement(start: np.ndarray, stop: np.ndarray, file: np.ndarray, durations: np.ndarray) -> Ticks:
    """The background: the gaps of sorted, merged seizures (ticks) in each file's ``[0, duration]``.

    Gap ``k`` of a file runs from the stop of seizure ``k - 1`` (or 0) to the start of seizure ``k`` (or the
    duration); empty gaps are dropped, as NEDC adds no zero-length filler.
    """
    n_files = int(durations.size)
    first_start = durations.copy()
    first_of_file = np.ones(file.size, dtype=bool)
    first_of_file[1:] = file[1:] != file[:-1]
    first_start[file[first_of_file]] = start[first_of_file]
    last_of_file = np.ones(file.size, dtype=bool)
    last_of_file[:-1] = file[1:] != file[:-1]
    next_start = np.empty_like(start)
    next_start[:-1] = start[1:]
    next_start = np.where(last_of_file, durations[file], next_start)
    gap_start = np.concatenate((np.zeros(n_files, dtype=np.int64), stop))
    gap_stop = np.concatenate((first_start, next_start))
    gap_file = np.concatenate((np.arange(n_files, dtype=np.int64), file))
    keep = gap_stop > gap_start
    return gap_start[keep], gap_stop[keep], gap_file[keep]


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
