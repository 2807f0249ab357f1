"""Plots of an evaluation: sensitivity against FA/24h per scorer, and per-recording timelines.

Matplotlib with the Agg backend (no display needed); every function writes one PNG atomically and returns its path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ictal.io.atomic import write_atomic  # noqa: E402

SCORER_TITLES = {"ovlp": "NEDC OVLP", "taes": "NEDC TAES", "epoch": "NEDC EPOCH (FA s/24h)", "szcore": "SzCORE event"}


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Save ``fig`` as PNG atomically; closes the figure."""
    try:
        return write_atomic(path, lambda fh: fig.savefig(fh, format="png", dpi=dpi, bbox_inches="tight"))
    finally:
        plt.close(fig)


def plot_sensitivity_fa(
    curves: Mapping[str, Mapping[str, Sequence[float] | np.ndarray]],
    path: str | Path,
    *,
    title: str,
    operating: Mapping[str, Any] | None = None,
    targets: Sequence[float] = (10, 5, 2.5, 1),
) -> Path:
    """One panel per scorer: sensitivity (%) against FA/24h (log axis), the FA targets marked.

    ``curves[scorer]`` has ``fa_per_24h`` and ``sensitivity`` (fractions) over the swept thresholds;
    ``operating`` (a results mapping) adds the chosen operating points as dots.
    """
    scorers = list(curves)
    fig, axes = plt.subplots(1, len(scorers), figsize=(4.2 * len(scorers), 3.8), squeeze=False)
    for ax, s in zip(axes[0], scorers, strict=True):
        fa = np.asarray(curves[s]["fa_per_24h"], dtype=float)
        sens = 100 * np.asarray(curves[s]["sensitivity"], dtype=float)
        ok = np.isfinite(fa) & np.isfinite(sens)
        order = np.argsort(fa[ok])
        ax.plot(np.maximum(fa[ok][order], 1e-2), sens[ok][order], "-o", ms=2.5, lw=1.2)
        if s != "epoch":
            for t in targets:
                ax.axvline(t, color="0.8", lw=0.8, ls="--")
        if operating is not None:
            for t in targets:
                key = f"{t:g}fa"
                x, y = operating.get(f"{s}_fa_per_24h_at_{key}"), operating.get(f"{s}_sensitivity_at_{key}")
                if x is not None and y is not None and np.isfinite(x) and np.isfinite(y):
                    ax.plot(max(x, 1e-2), 100 * y, "s", color="C3", ms=5)
        ax.set_xscale("log")
        ax.set_ylim(-2, 102)
        ax.set_xlabel("false alarms per 24 h" if s != "epoch" else "false-alarm seconds per 24 h")
        ax.set_ylabel("sensitivity (%)")
        ax.set_title(SCORER_TITLES.get(s, s), fontsize=10)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)


def plot_timeline(
    trace: np.ndarray,
    rate: float,
    ref: Sequence[tuple[float, float]],
    hyp: Sequence[tuple[float, float]],
    path: str | Path,
    *,
    title: str,
    threshold: float | None = None,
) -> Path:
    """A recording's probability trace with reference (green) and hypothesis (red) events below it."""
    t = np.arange(trace.shape[0]) / rate
    fig, ax = plt.subplots(figsize=(11, 2.8))
    ax.plot(t / 60, trace, lw=0.8, color="C0", label="seizure probability")
    if threshold is not None:
        ax.axhline(threshold, color="0.5", lw=0.8, ls="--", label=f"threshold {threshold:.2f}")
    for a, b in ref:
        ax.axvspan(a / 60, b / 60, ymin=0.0, ymax=0.08, color="C2", alpha=0.9)
    for a, b in hyp:
        ax.axvspan(a / 60, b / 60, ymin=0.09, ymax=0.17, color="C3", alpha=0.9)
    ax.plot([], [], color="C2", lw=6, label="reference")
    ax.plot([], [], color="C3", lw=6, label="detected")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(0, max(t[-1] / 60 if t.size else 1, 1e-3))
    ax.set_xlabel("time (min)")
    ax.set_ylabel("p(seizure)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper right", fontsize=8, ncol=4)
    return save_figure(fig, path)
