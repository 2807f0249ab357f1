"""Streaming inference: a recording fed chunk by chunk, as an acquisition system delivers it, events printed as
they close.

    raw chunk (19, n) µV  -> OnlinePreprocessor -> (19, m) z-units at 256 Hz
                          -> trace scorer        -> finished stretch of the 16 Hz probability trace
                          -> PostProcessor       -> events that can no longer change

The trace scorers (:mod:`ictal.infer.scorers`) are those of ``ictal predict``, so a stream and ``predict``
compute the same trace; their events are equal when the z-score uses the same statistics. ``predict`` takes them
from the whole recording (two passes over the file); a live stream cannot, so :func:`stream_recording` by default
calibrates them on the first ``calibration_s`` seconds and freezes them (``stats_mode="calibration"``);
``stats_mode="recording"`` reads the file once beforehand (a replay of a stored recording) and then equals
``predict`` exactly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ictal.frames import FRAME_RATE
from ictal.infer.scorers import ScoringMode, make_scorer
from ictal.io.edf import open_edf
from ictal.post.config import PostConfig
from ictal.post.events import SeizureEvent
from ictal.post.streaming import PostProcessor
from ictal.signal.chunked import OnlinePreprocessor, recording_stats
from ictal.signal.preprocess import ChannelStats, PreprocessConfig

__all__ = ["StatsMode", "StreamEvent", "StreamResult", "stream_recording"]

StatsMode = Literal["calibration", "recording"]


@dataclass(frozen=True)
class StreamEvent:
    """An event as the stream emitted it: ``emitted_s`` is the recording time (seconds of EEG acquired) at which
    it closed, ``latency_s = emitted_s - event.stop_s``; ``wall_s`` the wall-clock seconds since the start."""

    event: SeizureEvent
    emitted_s: float
    latency_s: float
    wall_s: float


@dataclass
class StreamResult:
    """What :func:`stream_recording` did: every event with its latency, and how the trace was made."""

    path: Path
    duration_s: float
    events: list[StreamEvent]
    scoring: str
    stats: str
    threshold: float
    wall_s: float
    n_frames: int
    trace: np.ndarray | None = field(default=None, repr=False)


def stream_recording(
    model: torch.nn.Module,
    path: str | Path,
    *,
    preprocess: PreprocessConfig,
    post: PostConfig,
    window: int,
    stride: int,
    chunk_s: float = 1.0,
    realtime: bool = False,
    stats_mode: StatsMode = "calibration",
    calibration_s: float = 300.0,
    stats: ChannelStats | None = None,
    scoring: ScoringMode = "auto",
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    keep_trace: bool = False,
    on_event: Callable[[StreamEvent], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> StreamResult:
    """Feed the EDF at ``path`` through the model ``chunk_s`` seconds at a time; report each event when it closes.

    Args:
        model: the detector (streamable or not: see :func:`make_scorer`).
        preprocess, post: the checkpoint's ``preprocess`` config and ``post`` config at the operating threshold
            (e.g. :func:`~ictal.scoring.operating_points.with_threshold`).
        window, stride: samples at 256 Hz for windowed scoring (the config's ``data.window_s/stride_s``).
        chunk_s: seconds of EEG delivered per step (an acquisition system's block).
        realtime: pace the chunks at the recording's own speed (wall clock), as a live feed would arrive.
        stats_mode: z-score statistics from the first ``calibration_s`` seconds (``calibration``, live-capable) or
            from the whole file read beforehand (``recording``: equals ``ictal predict``). ``stats`` overrides both.
        on_event: called with each :class:`StreamEvent` as soon as it closes.
        sleep: the pause used by ``realtime`` (replaceable in tests).

    Returns:
        A :class:`StreamResult`; with ``keep_trace`` it holds the whole probability trace too.
    """
    t0 = time.perf_counter()
    events: list[StreamEvent] = []
    parts: list[np.ndarray] = []
    with open_edf(path) as source:
        if stats is None and stats_mode == "recording" and preprocess.zscore:
            stats = recording_stats(source, preprocess)
            stats_text = "whole recording (read beforehand)"
        elif stats is not None:
            stats_text = "given"
        else:
            stats_text = f"first {calibration_s:g} s of the stream, then frozen" if preprocess.zscore else "none"
        pre = OnlinePreprocessor(
            source.sfreq, len(source.channel_names), preprocess, stats=stats, calibration_s=calibration_s
        )
        scorer = make_scorer(model, window=window, stride=stride, mode=scoring, batch_size=batch_size, device=device)
        post_processor = PostProcessor(FRAME_RATE, post)
        step = max(1, int(round(chunk_s * source.sfreq)))
        n = source.n_samples

        def emit(found: list[SeizureEvent], acquired: int) -> None:
            now = acquired / source.sfreq
            for ev in found:
                item = StreamEvent(ev, now, now - ev.stop_s, time.perf_counter() - t0)
                events.append(item)
                if on_event is not None:
                    on_event(item)

        def feed(trace: np.ndarray, acquired: int) -> None:
            if keep_trace:
                parts.append(trace)
            emit(post_processor.push(trace), acquired)

        for start in range(0, n, step):
            stop = min(start + step, n)
            if realtime:
                wait = stop / source.sfreq - (time.perf_counter() - t0)
                if wait > 0:
                    sleep(wait)
            feed(scorer.push(pre.push(source.read(start, stop))), stop)
        feed(scorer.push(pre.finish()), n)
        feed(scorer.finish(), n)
        emit(post_processor.finish(), n)
    trace = np.concatenate(parts) if keep_trace and parts else None
    return StreamResult(
        path=Path(path),
        duration_s=n / source.sfreq,
        events=events,
        scoring=scorer.describe(),
        stats=stats_text,
        threshold=post.tau_on,
        wall_s=time.perf_counter() - t0,
        n_frames=post_processor.samples_seen,
        trace=trace,
    )
