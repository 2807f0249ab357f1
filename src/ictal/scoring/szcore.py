"""SzCORE (EpilepsyBench) event and sample scoring, through the ``timescoring`` package.

Per file, ``timescoring`` counts true positives, false positives and reference events (event scoring: events
closer than 90 s merged, events longer than 300 s split, each reference event extended 30 s before and 60 s
after, any overlap a hit; sample scoring: masks compared sample by sample). Two aggregations, always named:

* pooled: counts summed over all files, then the metrics;
* subject mean: counts summed over each subject's files (subject = TUSZ patient id, the file name before the
  first ``_``), the metrics per subject, then their mean over subjects, a subject with an undefined metric
  (no reference seizure for sensitivity, no detection for precision) left out of that metric's mean.

sensitivity = TP / reference events, precision = TP / (TP + FP), F1 = 2 TP / (2 TP + FP + FN), FP per 24 h =
FP / duration x 86400 (for sample scoring, FP is in samples of ``1 / sample_rate_hz`` s, as ``timescoring``
reports it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import pydantic
from timescoring import annotations as ts_annotations
from timescoring import scoring as ts_scoring

from ictal.io.annotations import Annotation
from ictal.scoring.common import SECONDS_PER_DAY, ScoringError


@pydantic.with_config(pydantic.ConfigDict(extra="forbid"))
@dataclass
class SzcoreConfig:
    """SzCORE scoring parameters (the EpilepsyBench defaults)."""

    #: Rate of the binary masks built from the annotations, Hz (event scoring resamples to 10 Hz itself).
    sample_rate_hz: Annotated[int, pydantic.Field(ge=1)] = 10
    #: Merge events separated by less than this, seconds.
    merge_s: Annotated[float, pydantic.Field(ge=0)] = 90.0
    #: Split events longer than this, seconds.
    split_s: Annotated[float, pydantic.Field(gt=0)] = 300.0
    #: Tolerance before each reference event, seconds.
    tolerance_before_s: Annotated[float, pydantic.Field(ge=0)] = 30.0
    #: Tolerance after each reference event, seconds.
    tolerance_after_s: Annotated[float, pydantic.Field(ge=0)] = 60.0
    #: Minimum relative overlap for a hit; 0 means any overlap.
    min_overlap: Annotated[float, pydantic.Field(ge=0, le=1)] = 0.0


@dataclass(frozen=True)
class SzcoreCounts:
    """Summed counts of one file, subject or list, and the metrics they give (NaN where undefined)."""

    tp: float
    fp: float
    ref_events: float
    duration_s: float

    @property
    def sensitivity(self) -> float:
        return self.tp / self.ref_events if self.ref_events else math.nan

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else math.nan

    @property
    def f1(self) -> float:
        denom = 2 * self.tp + self.fp + (self.ref_events - self.tp)
        return 2 * self.tp / denom if denom else math.nan

    @property
    def fp_per_24h(self) -> float:
        return self.fp / self.duration_s * SECONDS_PER_DAY if self.duration_s else math.nan

    def __add__(self, other: SzcoreCounts) -> SzcoreCounts:
        return SzcoreCounts(
            self.tp + other.tp,
            self.fp + other.fp,
            self.ref_events + other.ref_events,
            self.duration_s + other.duration_s,
        )


@dataclass(frozen=True)
class SzcoreMetrics:
    """Sensitivity, precision, F1 (fractions) and FP per 24 h; ``n_subjects`` counts subjects in each mean."""

    sensitivity: float
    precision: float
    f1: float
    fp_per_24h: float
    n_subjects: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SzcoreResult:
    """One SzCORE scoring (``"event"`` or ``"sample"``): pooled, per subject, and the mean over subjects."""

    scoring: str
    pooled: SzcoreCounts
    subjects: dict[str, SzcoreCounts]
    subject_mean: SzcoreMetrics
    per_file: list[tuple[str, str, SzcoreCounts]]

    @property
    def n_files(self) -> int:
        return len(self.per_file)


def subject_id(path: str | Path) -> str:
    """TUSZ patient id of a file: its name up to the first ``_`` (``aaaaaasf_s001_t000.csv_bi`` -> ``aaaaaasf``)."""
    return Path(path).name.split("_", 1)[0]


def _mask_annotation(ann: Annotation, duration: float, fs: int) -> ts_annotations.Annotation:
    """A ``timescoring`` annotation of ``ann``'s merged seizures clipped to ``duration`` s, mask at ``fs`` Hz."""
    events = [(max(0.0, a), min(duration, b)) for a, b in ann.seizure_intervals()]
    events = [(a, b) for a, b in events if b > a]
    return ts_annotations.Annotation(events, fs, round(duration * fs))


def _file_counts(ref: Annotation, hyp: Annotation, config: SzcoreConfig) -> tuple[SzcoreCounts, SzcoreCounts]:
    fs = config.sample_rate_hz
    # Both masks on the reference duration, so they have the same length (durations agree to 4 decimals).
    ref_ts, hyp_ts = _mask_annotation(ref, ref.duration, fs), _mask_annotation(hyp, ref.duration, fs)
    params = ts_scoring.EventScoring.Parameters(
        toleranceStart=config.tolerance_before_s,
        toleranceEnd=config.tolerance_after_s,
        minOverlap=config.min_overlap,
        maxEventDuration=config.split_s,
        minDurationBetweenEvents=config.merge_s,
    )
    event = ts_scoring.EventScoring(ref_ts, hyp_ts, params)
    sample = ts_scoring.SampleScoring(ref_ts, hyp_ts, fs=fs)
    duration = ref.duration

    def counts(score: ts_scoring.EventScoring | ts_scoring.SampleScoring) -> SzcoreCounts:
        return SzcoreCounts(float(score.tp), float(score.fp), float(score.refTrue), duration)

    return counts(event), counts(sample)


def _mean_over_subjects(subjects: dict[str, SzcoreCounts]) -> SzcoreMetrics:
    values: dict[str, float] = {}
    used: dict[str, int] = {}
    for metric in ("sensitivity", "precision", "f1", "fp_per_24h"):
        per_subject = np.array([getattr(c, metric) for c in subjects.values()], dtype=np.float64)
        defined = per_subject[~np.isnan(per_subject)]
        values[metric] = float(defined.mean()) if defined.size else math.nan
        used[metric] = int(defined.size)
    return SzcoreMetrics(n_subjects=used, **values)


def _aggregate(scoring: str, files: list[tuple[str, str, SzcoreCounts]]) -> SzcoreResult:
    pooled = SzcoreCounts(0.0, 0.0, 0.0, 0.0)
    subjects: dict[str, SzcoreCounts] = {}
    for ref_path, _, c in files:
        pooled = pooled + c
        sid = subject_id(ref_path)
        subjects[sid] = subjects[sid] + c if sid in subjects else c
    return SzcoreResult(scoring, pooled, subjects, _mean_over_subjects(subjects), files)


def score_szcore(
    pairs: Sequence[tuple[Annotation, Annotation]], config: SzcoreConfig | None = None
) -> dict[str, SzcoreResult]:
    """SzCORE event and sample scoring of (reference, hypothesis) pairs: ``{"event": ..., "sample": ...}``.

    Raises:
        ScoringError: a pair whose durations differ (to 4 decimals), naming the files.
    """
    config = config or SzcoreConfig()
    event_files: list[tuple[str, str, SzcoreCounts]] = []
    sample_files: list[tuple[str, str, SzcoreCounts]] = []
    for i, (ref, hyp) in enumerate(pairs):
        ref_name = str(ref.path) if ref.path else f"ref[{i}]"
        hyp_name = str(hyp.path) if hyp.path else f"hyp[{i}]"
        if round(ref.duration, 4) != round(hyp.duration, 4):
            raise ScoringError(
                f"{hyp_name} vs {ref_name}: durations differ ({hyp.duration:.4f} s vs {ref.duration:.4f} s)"
            )
        event, sample = _file_counts(ref, hyp, config)
        event_files.append((ref_name, hyp_name, event))
        sample_files.append((ref_name, hyp_name, sample))
    return {"event": _aggregate("event", event_files), "sample": _aggregate("sample", sample_files)}
