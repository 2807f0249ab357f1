"""Seizure events for new recordings of any length (``ictal predict``), in memory bounded by a chunk.

Per recording (an EDF file):

1. read, resample, filter and z-score in chunks (:func:`ictal.signal.chunked.preprocess_chunks`; two passes over
   the file, so the z-score uses the whole recording's statistics exactly as training and evaluation did);
2. score the preprocessed chunks as they come (:func:`ictal.infer.scorers.make_scorer`, the scorers evaluation
   and streaming use): overlapping windows stitched into the 16 Hz probability trace, or, for a model built with
   ``model.streamable: true``, the causal model run continuously with its state carried across chunks;
3. events with :func:`~ictal.post.events.detect_events` at the operating threshold: ``threshold_at_{N}fa`` of an
   ``ictal evaluate`` results.json (``--threshold-from``; 10 FA/24h by default) or, without one, the config's
   ``post.tau_on``; every output says which;
4. outputs, each written atomically: ``<name>.csv_bi`` (TUSZ term annotation: ``ictal score`` and the NEDC tool
   read it), ``<name>_events.tsv`` (BIDS events in the SzCORE convention: onset, duration, eventType ``sz``,
   confidence, channels, dateTime, recordingDuration), ``<name>.json`` (events, confidences, model, threshold,
   configs, software versions) and ``<name>.png`` (:func:`~ictal.report.recording_plot.plot_recording`).

Memory: one chunk (``chunk_s``, 5 min by default) of signal through the chain, one window plus one batch of
windows, and the 16 Hz trace (5.5 MB for 24 h); never the whole recording's signal.

>>> model, cfg, meta = load_model("runs/smoke/best.pt")
>>> threshold = resolve_threshold(cfg.post, "runs/smoke/evaluate-dev/results.json")
>>> pred = predict_recording(model, "patient.edf", cfg, threshold)
>>> pred.events          # [SeizureEvent(start_s, stop_s, confidence), ...]
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import pydantic
import torch

from ictal.errors import IctalError
from ictal.frames import FRAME_RATE
from ictal.infer.evaluate import EvaluationError, read_thresholds
from ictal.infer.scorers import ScoringMode, make_scorer
from ictal.io.annotations import write_annotations
from ictal.io.atomic import write_text_atomic
from ictal.io.channels import CANONICAL_19
from ictal.io.edf import EegRecording, RecordingMeta, open_edf
from ictal.io.json_files import write_json_atomic
from ictal.post.config import PostConfig
from ictal.post.events import SeizureEvent, detect_events, events_to_annotation
from ictal.provenance import checkpoint_provenance, software_versions
from ictal.scoring.operating_points import DEFAULT_TARGETS, target_label, with_threshold
from ictal.signal.chunked import ArraySource, SampleSource, preprocess_chunks
from ictal.signal.preprocess import ChannelStats, PreprocessConfig
from ictal.signal.quality import ChannelProblem, QualityTap, recording_note

if TYPE_CHECKING:
    from ictal.config.schema import IctalConfig

__all__ = [
    "PredictConfig",
    "PredictFailure",
    "PredictRun",
    "PredictSummary",
    "RecordingPrediction",
    "Threshold",
    "events_tsv",
    "find_recordings",
    "predict_eeg",
    "predict_files",
    "predict_recording",
    "resolve_threshold",
    "scored_trace",
    "write_prediction",
]

#: File suffixes of the outputs, per recording name.
OUTPUT_SUFFIXES = {"csv_bi": ".csv_bi", "tsv": "_events.tsv", "json": ".json", "png": ".png"}
#: SzCORE / HED-SCORE event type of a seizure of unknown type, and of a recording without one.
SEIZURE_EVENT_TYPE = "sz"
BACKGROUND_EVENT_TYPE = "bckg"
TSV_COLUMNS = ("onset", "duration", "eventType", "confidence", "channels", "dateTime", "recordingDuration")


#: Windows per forward pass when ``PredictConfig.batch_size`` is None.
DEFAULT_BATCH_SIZE = 8


@pydantic.with_config(pydantic.ConfigDict(extra="forbid"))
@dataclass
class PredictConfig:
    """How ``ictal predict`` runs (every field is a command-line option of the same name)."""

    #: Seconds of EEG read, preprocessed and scored per step: memory scales with this, not with the recording.
    chunk_s: Annotated[float, pydantic.Field(gt=0)] = 300.0
    #: Windows per forward pass (windowed scoring); None: :data:`DEFAULT_BATCH_SIZE`, 8, on a GPU and on a CPU too
    #: (batch 1 has too few blocks to share among threads; benchmarks/RESULTS.md, benchmarks/predict.py).
    batch_size: Annotated[int, pydantic.Field(ge=1)] | None = None
    #: ``auto``: continuous for a streamable model, overlapping windows otherwise; or force one.
    scoring: ScoringMode = "auto"
    #: The FA/24h target whose threshold is read from ``--threshold-from`` (one of 10, 5, 2.5, 1).
    fa_target: Annotated[float, pydantic.Field(gt=0)] = 10.0
    #: Event panels in the picture (the most confident events).
    plot_events: Annotated[int, pydantic.Field(ge=0)] = 4


@dataclass(frozen=True)
class Threshold:
    """The operating point: ``post`` is the post-processing config run at it; ``source`` says where it came from."""

    value: float
    post: PostConfig
    source: str
    fa_target: float | None = None


def resolve_threshold(
    post: PostConfig, thresholds_from: str | Path | None = None, fa_target: float = 10.0
) -> Threshold:
    """The threshold ``predict`` applies: ``threshold_at_{fa_target}fa`` of an evaluate ``results.json`` (dev),
    with ``tau_off`` kept at the config's gap below it, or ``post.tau_on`` when no results are given.

    Raises:
        EvaluationError: unreadable results, or a target they do not hold.
    """
    if thresholds_from is None:
        return Threshold(post.tau_on, post, "post.tau_on of the checkpoint's config (no --threshold-from given)")
    if float(fa_target) not in DEFAULT_TARGETS:
        known = ", ".join(f"{t:g}" for t in DEFAULT_TARGETS)
        raise EvaluationError(f"--fa-target {fa_target:g}: thresholds exist for {known} FA/24h; choose one of those")
    thresholds, split = read_thresholds(thresholds_from)
    theta = thresholds[float(fa_target)]
    key = f"threshold_at_{target_label(fa_target)}fa"
    return Threshold(theta, with_threshold(post, theta), f"{key} of {thresholds_from} (chosen on {split})", fa_target)


def find_recordings(inputs: Iterable[str | Path]) -> tuple[list[Path], list[PredictFailure]]:
    """EDF files named or found (recursively, ``*.edf`` in any case) under ``inputs``, in order, each once.

    Returns ``(paths, problems)``: an input that does not exist, a folder without EDF files, or a second file
    with the same name as an earlier one (their outputs would overwrite each other) is a problem, not an error.
    """
    paths: list[Path] = []
    problems: list[PredictFailure] = []
    seen: dict[str, Path] = {}
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() == ".edf")
            if not found:
                problems.append(PredictFailure(p, "no .edf files in this folder or below it"))
        elif p.is_file():
            found = [p]
        else:
            problems.append(PredictFailure(p, "no such file or folder"))
            continue
        for f in found:
            earlier = seen.get(output_name(f))
            if earlier is not None and earlier.resolve() == f.resolve():
                continue
            if earlier is not None:
                problems.append(
                    PredictFailure(f, f"same name as {earlier}: outputs would collide; predict it into another --out")
                )
                continue
            seen[output_name(f)] = f
            paths.append(f)
    return paths, problems


def scored_trace(
    model: torch.nn.Module,
    source: SampleSource,
    preprocess: PreprocessConfig,
    *,
    window: int,
    stride: int,
    chunk_s: float = 300.0,
    batch_size: int = 8,
    scoring: ScoringMode = "auto",
    device: str | torch.device = "cpu",
    stats: ChannelStats | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, str]:
    """The 16 Hz probability trace of ``source`` (``(ceil(T / 16),)`` float32, ``T`` samples at 256 Hz), computed
    chunk by chunk; returns ``(trace, description of the scoring)``.

    ``stats`` (z-score statistics) skips the first pass over the file; ``on_chunk(done, total)`` counts chunks of
    both passes.
    """
    scorer = make_scorer(model, window=window, stride=stride, mode=scoring, batch_size=batch_size, device=device)
    parts = [scorer.push(chunk) for chunk in preprocess_chunks(source, preprocess, chunk_s, stats, on_chunk)]
    parts.append(scorer.finish())
    return np.concatenate(parts).astype(np.float32, copy=False), scorer.describe()


@dataclass
class RecordingPrediction:
    """One recording's result: ``trace`` at 16 Hz, ``events`` at ``threshold``."""

    path: Path
    name: str
    duration_s: float
    sfreq: float
    start: datetime | None
    trace: np.ndarray
    events: list[SeizureEvent]
    threshold: Threshold
    scoring: str
    seconds: float
    notes: list[str] = field(default_factory=list)
    #: Channels that carried no usable EEG (flat, disconnected, railing): :mod:`ictal.signal.quality`.
    channel_problems: list[ChannelProblem] = field(default_factory=list)

    @property
    def quality(self) -> str | None:
        """One line when channels carried no usable EEG (the table's status, the JSON's and csv_bi's note)."""
        return recording_note(self.channel_problems, len(CANONICAL_19))

    @property
    def max_probability(self) -> float:
        return float(self.trace.max()) if self.trace.size else 0.0


def batch_size_for(batch_size: int | None) -> int:
    """``batch_size``, or when None the default, :data:`DEFAULT_BATCH_SIZE`."""
    return DEFAULT_BATCH_SIZE if batch_size is None else batch_size


def output_name(path: Path) -> str:
    """The file name of a recording's outputs: its stem made file-safe (an in-memory Raw's ``<mne Raw>`` becomes
    ``mne_Raw``); also what :func:`find_recordings` checks for clashes."""
    return re.sub(r"[^\w.-]+", "_", path.stem).strip("_") or "recording"


def window_samples(cfg: IctalConfig) -> tuple[int, int]:
    """``data.window_s`` and ``data.stride_s`` in samples at the preprocessing rate."""
    rate = cfg.preprocess.target_sfreq
    return int(round(cfg.data.window_s * rate)), int(round(cfg.data.stride_s * rate))


def predict_recording(
    model: torch.nn.Module,
    path: str | Path,
    cfg: IctalConfig,
    threshold: Threshold,
    *,
    predict: PredictConfig | None = None,
    device: str | torch.device = "cpu",
    on_chunk: Callable[[int, int], None] | None = None,
) -> RecordingPrediction:
    """Read, preprocess and score the EDF at ``path`` chunk by chunk; events at ``threshold``.

    ``cfg`` is the checkpoint's config: its ``preprocess``, ``data.window_s/stride_s`` are what the model was
    trained with. Raises :class:`~ictal.errors.EdfReadError` for a file that cannot be used.
    """
    t0 = time.perf_counter()
    with open_edf(path) as source:
        return _predict_source(model, source, source.meta, cfg, threshold, predict, device, on_chunk, t0)


def predict_eeg(
    model: torch.nn.Module,
    recording: EegRecording,
    cfg: IctalConfig,
    threshold: Threshold,
    *,
    predict: PredictConfig | None = None,
    device: str | torch.device = "cpu",
    on_chunk: Callable[[int, int], None] | None = None,
) -> RecordingPrediction:
    """:func:`predict_recording` for a recording already in memory: ``recording.data`` ``(19, T)`` µV, e.g. from
    :func:`~ictal.io.edf.read_edf` or an MNE ``Raw`` through :func:`~ictal.io.edf.recording_from_mne`.

    The same chain, chunked the same way, so the trace equals ``predict_recording``'s on the file it came from.

    >>> raw = mne.io.read_raw_brainvision("patient.vhdr")
    >>> pred = predict_eeg(model, recording_from_mne(raw), cfg, threshold)
    """
    if tuple(recording.channel_names) != CANONICAL_19:
        raise ValueError(
            f"predict_eeg needs the 19 canonical channels in order ({', '.join(CANONICAL_19)}), got "
            f"{', '.join(recording.channel_names)}; read the recording with the default channels"
        )
    t0 = time.perf_counter()
    source = ArraySource(recording.data, recording.sfreq)
    return _predict_source(model, source, recording.meta, cfg, threshold, predict, device, on_chunk, t0)


def _predict_source(
    model: torch.nn.Module,
    source: SampleSource,
    meta: RecordingMeta,
    cfg: IctalConfig,
    threshold: Threshold,
    predict: PredictConfig | None,
    device: str | torch.device,
    on_chunk: Callable[[int, int], None] | None,
    t0: float,
) -> RecordingPrediction:
    predict = predict or PredictConfig()
    window, stride = window_samples(cfg)
    tap = QualityTap(source, CANONICAL_19)  # the raw µV of the first pass: flat, disconnected, railing channels
    trace, scoring = scored_trace(
        model, tap, cfg.preprocess, window=window, stride=stride, chunk_s=predict.chunk_s,
        batch_size=batch_size_for(predict.batch_size), scoring=predict.scoring, device=device,
        on_chunk=on_chunk,
    )  # fmt: skip
    problems = tap.problems()
    note = recording_note(problems, len(CANONICAL_19))
    return RecordingPrediction(
        path=meta.path,
        name=output_name(meta.path),
        duration_s=source.n_samples / source.sfreq,
        sfreq=source.sfreq,
        start=meta.start,
        trace=trace,
        events=detect_events(trace, FRAME_RATE, threshold.post),
        threshold=threshold,
        scoring=scoring,
        seconds=time.perf_counter() - t0,
        notes=[*meta.repairs, *meta.warnings, *([note] if note else [])],
        channel_problems=problems,
    )


def events_tsv(events: Sequence[SeizureEvent], duration_s: float, start: datetime | None) -> str:
    """BIDS ``*_events.tsv`` text in the SzCORE convention: one ``sz`` row per event (onset and duration in
    seconds, confidence in [0, 1], channels ``n/a`` = all), or a single ``bckg`` row spanning a recording
    without events; ``dateTime`` is the recording start (``n/a`` when the EDF header has none)."""
    stamp = start.strftime("%Y-%m-%d %H:%M:%S") if start is not None else "n/a"
    rows = ["\t".join(TSV_COLUMNS)]
    clipped = [(max(0.0, e.start_s), min(duration_s, e.stop_s), e.confidence) for e in events]
    kept: list[tuple[float, float, float | None]] = [(a, b, c) for a, b, c in clipped if b > a]
    for a, b, c in kept or [(0.0, duration_s, None)]:
        kind = SEIZURE_EVENT_TYPE if c is not None else BACKGROUND_EVENT_TYPE
        conf = f"{c:.4f}" if c is not None else "n/a"
        rows.append(f"{a:.4f}\t{b - a:.4f}\t{kind}\t{conf}\tn/a\t{stamp}\t{duration_s:.4f}")
    return "\n".join(rows) + "\n"


def write_prediction(
    pred: RecordingPrediction,
    out_dir: str | Path,
    cfg: IctalConfig,
    *,
    model_info: Mapping[str, Any] | None = None,
    versions: Mapping[str, str] | None = None,
    plot_events: int = 4,
    recording: EegRecording | None = None,
) -> dict[str, Path]:
    """Write the four outputs of one recording into ``out_dir`` (atomically); returns ``{kind: path}``.

    The picture reads its stretches of signal from ``pred.path``, or from ``recording`` when given (a recording
    predicted in memory with :func:`predict_eeg`)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {kind: out / f"{pred.name}{suffix}" for kind, suffix in OUTPUT_SUFFIXES.items()}
    # A recording's outputs are written all or none: into a staging folder first, moved into place once all four
    # exist. A failure (a full disk) leaves neither a partial set nor damage to an earlier run's outputs.
    staging = out / f".{pred.name}.writing"
    shutil.rmtree(staging, ignore_errors=True)
    staged = {kind: staging / path.name for kind, path in paths.items()}
    try:
        staging.mkdir()
        _write_outputs(pred, staged, cfg, model_info, versions, plot_events, recording)
        for kind, path in paths.items():
            os.replace(staged[kind], path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return paths


def _write_outputs(
    pred: RecordingPrediction,
    paths: dict[str, Path],
    cfg: IctalConfig,
    model_info: Mapping[str, Any] | None,
    versions: Mapping[str, str] | None,
    plot_events: int,
    recording: EegRecording | None,
) -> None:
    annotation = events_to_annotation(pred.events, pred.duration_s, pred.name)
    if pred.quality:
        annotation.header.append(("note", pred.quality))
    write_annotations(paths["csv_bi"], annotation)
    write_text_atomic(paths["tsv"], events_tsv(pred.events, pred.duration_s, pred.start))
    payload = {
        "recording": str(pred.path),
        "name": pred.name,
        "duration_s": pred.duration_s,
        "sampling_rate_hz": pred.sfreq,
        "start": pred.start.isoformat() if pred.start is not None else None,
        "events": [
            {"onset_s": e.start_s, "duration_s": e.duration_s, "stop_s": e.stop_s, "confidence": e.confidence}
            for e in pred.events
        ],
        "n_events": len(pred.events),
        "max_probability": pred.max_probability,
        "threshold": pred.threshold.value,
        "tau_off": pred.threshold.post.tau_off,
        "threshold_source": pred.threshold.source,
        "fa_target_per_24h": pred.threshold.fa_target,
        "confidence": f"{pred.threshold.post.confidence} of the seizure probability over the event",
        "scoring": pred.scoring,
        "zscore_statistics": "whole recording (two passes over the file)",
        "trace_rate_hz": FRAME_RATE,
        "model": dict(model_info or {}),
        "post": asdict(pred.threshold.post),
        "preprocess": asdict(cfg.preprocess),
        "window_s": cfg.data.window_s,
        "stride_s": cfg.data.stride_s,
        "software": dict(versions or software_versions()),
        "seconds": pred.seconds,
        "notes": pred.notes,
        "channel_problems": [p.to_json() for p in pred.channel_problems],
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_json_atomic(paths["json"], payload)
    from ictal.report.recording_plot import plot_recording

    where = f"{pred.threshold.value:.2f} ({pred.threshold.source.split(' of ')[0]})"
    with contextlib.ExitStack() as stack:
        if recording is not None:
            source: SampleSource = ArraySource(recording.data, recording.sfreq)
        else:
            source = stack.enter_context(open_edf(pred.path))
        plot_recording(
            source, cfg.preprocess, pred.trace, FRAME_RATE, pred.events, paths["png"],
            title=f"{pred.name}: {len(pred.events)} event(s) at threshold {where}", threshold=pred.threshold.value,
            max_events=plot_events,
        )  # fmt: skip


@dataclass(frozen=True)
class PredictFailure:
    """An input that was not predicted, and why."""

    path: Path
    problem: str


@dataclass(frozen=True)
class PredictSummary:
    """One predicted recording, without its trace (for the summary table)."""

    path: Path
    name: str
    duration_s: float
    n_events: int
    max_probability: float
    seconds: float
    outputs: dict[str, Path]
    #: None when every channel looked like EEG; else one line saying which did not.
    quality: str | None = None


@dataclass
class PredictRun:
    """Every recording of a ``predict`` call: those done and those that failed."""

    done: list[PredictSummary] = field(default_factory=list)
    failed: list[PredictFailure] = field(default_factory=list)

    @property
    def hours(self) -> float:
        return sum(s.duration_s for s in self.done) / 3600.0


def predict_files(
    model: torch.nn.Module,
    cfg: IctalConfig,
    paths: Sequence[Path],
    out_dir: str | Path,
    threshold: Threshold,
    *,
    predict: PredictConfig | None = None,
    device: str | torch.device = "cpu",
    checkpoint_meta: Mapping[str, Any] | None = None,
    on_recording: Callable[[int, int, Path], None] | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> PredictRun:
    """Predict every file of ``paths`` into ``out_dir``; a file that cannot be read is reported in
    ``failed`` and the others are still done. ``on_recording(index, total, path)`` is called before each file.

    ``checkpoint_meta`` is the ``meta`` of :func:`~ictal.train.checkpoint.load_model`: each JSON then says which
    checkpoint, trained how, made the prediction (:func:`ictal.provenance.checkpoint_provenance`)."""
    predict = predict or PredictConfig()
    run = PredictRun()
    versions = software_versions(model)
    model_info = checkpoint_provenance(cfg, checkpoint_meta, device) if checkpoint_meta is not None else None
    for i, path in enumerate(paths):
        if on_recording is not None:
            on_recording(i, len(paths), path)
        try:
            pred = predict_recording(model, path, cfg, threshold, predict=predict, device=device, on_chunk=on_chunk)
            outputs = write_prediction(
                pred, out_dir, cfg, model_info=model_info, versions=versions, plot_events=predict.plot_events
            )
        except (IctalError, OSError) as exc:
            run.failed.append(PredictFailure(path, str(exc).removeprefix(f"{path}: ")))
            continue
        summary = PredictSummary(
            path, pred.name, pred.duration_s, len(pred.events), pred.max_probability, pred.seconds, outputs,
            pred.quality,
        )  # fmt: skip
        run.done.append(summary)
    return run
