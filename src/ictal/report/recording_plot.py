"""The picture of one predicted recording: the probability trace over the whole recording with its events, and the
19 channels around each event, for a reviewer to check what the detector saw.

Layout (one PNG): a top panel with the seizure probability over the whole recording (hours or minutes), the
operating threshold and the detected events; below it one panel per shown event (the most confident first, at
most ``max_events``) with the 19 channels, band-passed and notched, in µV, stacked in canonical order, the event
shaded. A recording without events shows the stretch around its highest probability instead. Only the shown
stretches are read from the file, so the picture of a 24 h recording needs no more memory than one stretch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ictal.io.channels import CANONICAL_19  # noqa: E402
from ictal.post.events import SeizureEvent  # noqa: E402
from ictal.report.plots import save_figure  # noqa: E402
from ictal.signal.chunked import ArraySource, SampleSource, filtered_chunks  # noqa: E402
from ictal.signal.preprocess import PreprocessConfig  # noqa: E402

#: Points drawn for the whole-recording trace: longer traces are reduced to per-bin maxima (peaks stay visible).
TRACE_POINTS = 4000
#: Seconds read before a shown stretch and discarded, so the filters have settled.
FILTER_LEAD_S = 5.0


def trace_envelope(trace: np.ndarray, rate: float, points: int = TRACE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """``(times_s, values)`` of ``trace`` ``(n,)`` at ``rate`` Hz reduced to at most ``points`` per-bin maxima."""
    n = trace.shape[0]
    if n <= points:
        return np.arange(n) / rate, trace
    per = -(-n // points)
    padded = np.pad(trace, (0, -n % per), constant_values=-np.inf)
    return np.arange(padded.shape[0] // per) * per / rate, padded.reshape(-1, per).max(axis=1)


def read_stretch(
    source: SampleSource, cfg: PreprocessConfig, start_s: float, stop_s: float
) -> tuple[np.ndarray, float, float]:
    """Channels ``(C, n)`` in µV at ``cfg.target_sfreq`` between ``start_s`` and ``stop_s`` (clipped to the
    recording), band-passed and notched as in preprocessing but not z-scored; returns ``(data, rate, t0_s)``."""
    sfreq = source.sfreq
    first = max(0, int(np.floor((start_s - FILTER_LEAD_S) * sfreq)))
    last = min(source.n_samples, int(np.ceil(stop_s * sfreq)))
    raw = source.read(first, max(last, first + 1))
    filtered = np.concatenate(list(filtered_chunks(ArraySource(raw, sfreq), cfg, chunk_s=1e9)), axis=1)
    rate = cfg.target_sfreq
    skip = int(round((max(start_s, 0.0) - first / sfreq) * rate))
    return filtered[:, skip:], rate, first / sfreq + skip / rate


def _time_axis(duration_s: float) -> tuple[float, str]:
    return (3600.0, "h") if duration_s >= 3 * 3600 else (60.0, "min")


def _stretches(
    events: Sequence[SeizureEvent], trace: np.ndarray, rate: float, duration_s: float, max_events: int,
    context_s: float, max_span_s: float,
) -> list[tuple[float, float, SeizureEvent | None]]:  # fmt: skip
    """(start, stop, event) of each panel: the most confident events, shown in time order."""
    if events:
        chosen = sorted(sorted(events, key=lambda e: -e.confidence)[:max_events], key=lambda e: e.start_s)
        return [
            (max(0.0, e.start_s - context_s), min(duration_s, min(e.stop_s, e.start_s + max_span_s) + context_s), e)
            for e in chosen
        ]
    peak = float(np.argmax(trace)) / rate if trace.size else 0.0
    half = (max_span_s + 2 * context_s) / 2
    return [(max(0.0, peak - half), min(duration_s, peak + half), None)]


def plot_recording(
    source: SampleSource,
    cfg: PreprocessConfig,
    trace: np.ndarray,
    rate: float,
    events: Sequence[SeizureEvent],
    path: str | Path,
    *,
    title: str,
    threshold: float | None = None,
    max_events: int = 4,
    context_s: float = 10.0,
    max_span_s: float = 40.0,
    channel_names: Sequence[str] = CANONICAL_19,
) -> Path:
    """Write the recording's picture (see the module docstring) to ``path`` as PNG, atomically.

    Args:
        source: the recording (an open ``EdfSource`` or an ``ArraySource``): ``(19, n)`` µV at ``source.sfreq``.
        cfg: the preprocessing config (its band-pass and notch are applied to the shown channels).
        trace: the probability trace ``(m,)`` at ``rate`` Hz (16 Hz frames).
        events: the detected events; threshold: the operating threshold drawn on the trace.
        max_events: event panels at most (the most confident); context_s: seconds shown around each event;
            max_span_s: the longest part of an event shown (a 10 min event shows its first 40 s).
    """
    duration_s = source.n_samples / source.sfreq
    stretches = _stretches(events, trace, rate, duration_s, max_events, context_s, max_span_s)
    n_panels = len(stretches)
    fig = plt.figure(figsize=(14, 2.4 + 5.2 * n_panels))
    grid = fig.add_gridspec(1 + n_panels, 1, height_ratios=[1.0] + [3.6] * n_panels, hspace=0.4)

    unit, unit_name = _time_axis(duration_s)
    ax = fig.add_subplot(grid[0])
    t, p = trace_envelope(np.asarray(trace, dtype=np.float64), rate)
    ax.plot(t / unit, p, lw=0.7, color="C0", label="seizure probability")
    if threshold is not None:
        ax.axhline(threshold, color="0.4", lw=0.8, ls="--", label=f"threshold {threshold:.2f}")
    for detected in events:
        ax.axvspan(detected.start_s / unit, detected.stop_s / unit, color="C3", alpha=0.3, lw=0)
    for k, (_, _, shown) in enumerate(stretches):
        if shown is not None:
            ax.annotate(str(k + 1), (shown.start_s / unit, 1.02), fontsize=8, color="C3", ha="center")
    ax.plot([], [], color="C3", lw=6, alpha=0.3, label=f"{len(events)} detected event(s)")
    ax.set_xlim(0, max(duration_s / unit, 1e-3))
    ax.set_ylim(-0.02, 1.1)
    ax.set_xlabel(f"time ({unit_name})")
    ax.set_ylabel("p(seizure)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper right", fontsize=8, ncol=3)

    for k, (a, b, ev) in enumerate(stretches):
        ax = fig.add_subplot(grid[1 + k])
        data, srate, t0 = read_stretch(source, cfg, a, b)
        times = t0 + np.arange(data.shape[1]) / srate
        # One robust scale for all channels, so amplitudes compare across channels.
        spacing = max(float(np.percentile(np.abs(data), 99)) * 1.5, 1e-6) if data.size else 1.0
        offsets = spacing * np.arange(data.shape[0])[::-1]
        ax.plot(times, (data + offsets[:, None]).T, lw=0.45, color="k")
        if ev is not None:
            ax.axvspan(ev.start_s, ev.stop_s, color="C3", alpha=0.12, lw=0)
            heading = (
                f"event {k + 1}: {ev.start_s:.1f}-{ev.stop_s:.1f} s ({ev.duration_s:.1f} s), "
                f"confidence {ev.confidence:.2f}"
            )
        else:
            heading = "no event detected: the stretch around the highest probability"
        ax.set_yticks(offsets, list(channel_names)[: data.shape[0]], fontsize=7)
        ax.set_xlim(times[0] if times.size else a, times[-1] if times.size else b)
        ax.set_ylim(-spacing, offsets[0] + spacing if offsets.size else 1.0)
        ax.set_xlabel("time (s)")
        ax.set_title(f"{heading}; channel spacing {spacing:.0f} µV", fontsize=9)
    return save_figure(fig, path, dpi=100)
