"""One self-contained HTML page from an ``ictal evaluate`` output folder (``ictal report RESULTS_DIR``).

The page needs nothing but the folder (no model, no cache, no network): every picture is embedded as a base64
``data:`` URI. Sections:

1. the run: detector, split, recordings, hours, reference seizures, where the thresholds were chosen, AUROC, ECE;
2. one metrics table per scorer, each naming the scorer, the label (SEIZ) and the aggregation, with the
   threshold, sensitivity and false alarms at 10 / 5 / 2.5 / 1 FA/24h;
3. the sensitivity-FA curves (``sensitivity_fa.png``, or drawn from ``results.json`` when the picture is missing);
4. per-recording timelines: an event chart of every recording (reference against detected, from ``ref.list`` /
   ``hyp.list``; at most :data:`MAX_CHART_ROWS` rows, recordings with events first), the probability-trace
   timelines of ``timelines/*.png``, and a table of every recording;
5. the run's config (YAML) and the software versions: those that evaluated, and those the checkpoint recorded
   about its training run, both as ``results.json`` holds them.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ictal.errors import IctalError  # noqa: E402
from ictal.io.annotations import read_annotations  # noqa: E402
from ictal.io.atomic import write_text_atomic  # noqa: E402
from ictal.report.plots import SCORER_TITLES, plot_sensitivity_fa  # noqa: E402

__all__ = ["ReportError", "RecordingRow", "build_report", "read_recordings", "write_report"]

TARGETS = (10.0, 5.0, 2.5, 1.0)
#: Rows of the event chart; a split has up to ~1,000 recordings, the chart shows those with events first.
MAX_CHART_ROWS = 40

_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
.meta td { text-align: left; } .note { color: #555; font-size: .9em; }
img { max-width: 100%; border: 1px solid #eee; margin: .4em 0; }
pre { background: #f7f7f7; padding: .8em; overflow-x: auto; font-size: .85em; }
.leak { color: #b00; font-weight: bold; }
"""


class ReportError(IctalError):
    """The folder is not an ``ictal evaluate`` output (or its results.json cannot be read)."""


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure_png(fig: Figure, dpi: int = 100) -> bytes:
    try:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
        return buffer.getvalue()
    finally:
        plt.close(fig)


def _img(data: bytes, alt: str) -> str:
    return f'<img src="{_png_uri(data)}" alt="{html.escape(alt)}">'


def _fmt(value: Any, scale: float = 1.0, digits: int = 2) -> str:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "n/a"
    return f"{value * scale:.{digits}f}"


class RecordingRow:
    """One recording of the evaluated split, from the reference and hypothesis ``.csv_bi`` files."""

    def __init__(self, name: str, duration_s: float, ref: list[tuple[float, float]], hyp: list[tuple[float, float]]):
        self.name, self.duration_s, self.ref, self.hyp = name, duration_s, ref, hyp


def read_recordings(results_dir: Path) -> list[RecordingRow]:
    """Pair ``ref.list`` and ``hyp.list`` line by line (paths relative to the folder) into recordings."""
    ref_list, hyp_list = results_dir / "ref.list", results_dir / "hyp.list"
    if not (ref_list.is_file() and hyp_list.is_file()):
        return []
    refs = [line.strip() for line in ref_list.read_text(encoding="utf-8").splitlines() if line.strip()]
    hyps = [line.strip() for line in hyp_list.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = []
    for ref_name, hyp_name in zip(refs, hyps, strict=False):
        ref = read_annotations(results_dir / ref_name)
        hyp = read_annotations(results_dir / hyp_name)
        rows.append(RecordingRow(ref.bname, ref.duration, ref.seizure_intervals(), hyp.seizure_intervals()))
    return rows


def _event_chart(rows: Sequence[RecordingRow]) -> tuple[bytes, int]:
    """Reference (green) against detected (red) events, one row per recording; returns (PNG, rows shown)."""
    order = sorted(rows, key=lambda r: (-(len(r.ref) > 0), -(len(r.hyp) > 0), r.name))[:MAX_CHART_ROWS]
    fig, ax = plt.subplots(figsize=(11, 0.9 + 0.32 * max(len(order), 1)))
    longest = max((r.duration_s for r in order), default=60.0)
    unit, unit_name = (3600.0, "h") if longest >= 3 * 3600 else (60.0, "min")
    for i, r in enumerate(order):
        y = len(order) - 1 - i
        ax.broken_barh([(0, r.duration_s / unit)], (y - 0.4, 0.8), color="0.92")
        ax.broken_barh([(a / unit, (b - a) / unit) for a, b in r.ref], (y - 0.05, 0.42), color="C2")
        ax.broken_barh([(a / unit, (b - a) / unit) for a, b in r.hyp], (y - 0.4, 0.35), color="C3")
    ax.set_yticks(range(len(order)), [r.name for r in reversed(order)], fontsize=7)
    ax.set_xlabel(f"time ({unit_name})")
    ax.set_xlim(0, longest / unit)
    ax.plot([], [], color="C2", lw=6, label="reference seizure")
    ax.plot([], [], color="C3", lw=6, label="detected event")
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8, ncol=2, frameon=False)
    ax.set_title("events per recording (recordings with events first)", fontsize=10, loc="left")
    return _figure_png(fig), len(order)


def _curves_png(results: Mapping[str, Any], results_dir: Path) -> bytes | None:
    """``sensitivity_fa.png`` from the folder, or drawn anew from the curves in ``results.json``."""
    existing = results_dir / "sensitivity_fa.png"
    if existing.is_file():
        return existing.read_bytes()
    curves = results.get("curves")
    if not isinstance(curves, dict) or not curves:
        return None
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = plot_sensitivity_fa(curves, Path(tmp) / "curves.png", title="sensitivity against false alarms",
                                   operating=results)  # fmt: skip
        return path.read_bytes()


def _metrics_tables(results: Mapping[str, Any]) -> str:
    scorers = results.get("scorers") or {}
    label = results.get("label", "SEIZ")
    parts = []
    for scorer, aggregation in scorers.items():
        fa_unit = "FA s/24h" if scorer == "epoch" else "FA/24h"
        head = (
            f"<h3>{html.escape(SCORER_TITLES.get(scorer, scorer))}</h3>"
            f'<p class="note">scorer <b>{html.escape(scorer)}</b>; label <b>{html.escape(str(label))}</b>; '
            f"aggregation: {html.escape(str(aggregation))}</p>"
        )
        rows = [
            f'<tr><th class="l">target FA/24h</th><th>threshold</th><th>sensitivity %</th><th>{fa_unit}</th>'
            "<th>target met on the threshold split</th></tr>"
        ]
        for target in TARGETS:
            key = f"{target:g}fa"
            met = results.get(f"target_met_at_{key}")
            rows.append(
                f'<tr><td class="l">{target:g}</td><td>{_fmt(results.get(f"threshold_at_{key}"), digits=3)}</td>'
                f"<td>{_fmt(results.get(f'{scorer}_sensitivity_at_{key}'), 100.0, 1)}</td>"
                f"<td>{_fmt(results.get(f'{scorer}_fa_per_24h_at_{key}'))}</td>"
                f"<td>{'n/a' if met is None else ('yes' if met else 'no')}</td></tr>"
            )
        parts.append(head + "<table>" + "".join(rows) + "</table>")
    return "".join(parts) or '<p class="note">results.json lists no scorers.</p>'


def _run_table(results: Mapping[str, Any]) -> str:
    chosen = str(results.get("thresholds_chosen_on", "unknown"))
    chosen_html = html.escape(chosen)
    if "leak" in chosen:
        chosen_html = f'<span class="leak">{chosen_html}</span>'
    items = [
        ("detector", html.escape(str(results.get("detector", "?")))),
        ("split", html.escape(str(results.get("split", "?")))),
        ("recordings", html.escape(str(results.get("n_recordings", "?")))),
        ("hours of EEG", _fmt(results.get("hours"))),
        ("reference seizures", html.escape(str(results.get("n_ref_seizures", "?")))),
        ("thresholds chosen on", chosen_html),
        ("frame AUROC", _fmt(results.get("auroc"), digits=3)),
        ("calibration error (ECE)", _fmt(results.get("ece"), digits=3)),
        ("checkpoint", html.escape(str(results.get("checkpoint", "n/a")))),
        ("checkpoint epoch", html.escape(str(results.get("checkpoint_epoch", "n/a")))),
    ]
    return (
        '<table class="meta">'
        + "".join(f"<tr><th class='l'>{k}</th><td>{v}</td></tr>" for k, v in items)
        + ("</table>")
    )


def _recorded_versions(results: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """``(software that evaluated, facts of the checkpoint's training run)`` as ``results.json`` records them."""
    software = results.get("software") or {}
    trained = (results.get("model") or {}).get("trained_with") or {}
    return (
        {str(k): str(v) for k, v in software.items()},
        {str(k): str(v) for k, v in trained.items() if v is not None},
    )


def _key_value_table(heading: tuple[str, str], items: Mapping[str, str]) -> str:
    rows = [f'<tr><th class="l">{html.escape(heading[0])}</th><th class="l">{html.escape(heading[1])}</th></tr>']
    rows += [
        f'<tr><td class="l">{html.escape(k)}</td><td class="l">{html.escape(v)}</td></tr>' for k, v in items.items()
    ]
    return "<table>" + "".join(rows) + "</table>"


def _versions_table(evaluated: Mapping[str, str], trained: Mapping[str, str]) -> str:
    out = _key_value_table(("component", "the evaluation"), evaluated) if evaluated else ""
    if trained:
        out += _key_value_table(("recorded in the checkpoint", "value"), trained)
    return out or '<p class="note">results.json records no versions (written by an older ictal).</p>'


def _recordings_table(rows: Sequence[RecordingRow]) -> str:
    lines = [
        '<tr><th class="l">recording</th><th>duration (s)</th><th>reference seizures</th>'
        "<th>detected events</th><th>reference s</th><th>detected s</th></tr>"
    ]
    for r in rows:
        ref_s = sum(b - a for a, b in r.ref)
        hyp_s = sum(b - a for a, b in r.hyp)
        lines.append(
            f'<tr><td class="l">{html.escape(r.name)}</td><td>{r.duration_s:.1f}</td><td>{len(r.ref)}</td>'
            f"<td>{len(r.hyp)}</td><td>{ref_s:.1f}</td><td>{hyp_s:.1f}</td></tr>"
        )
    return "<table>" + "".join(lines) + "</table>"


def build_report(results_dir: str | Path) -> str:
    """The HTML text of the report for an ``ictal evaluate`` output folder."""
    folder = Path(results_dir)
    results_path = folder / "results.json"
    if not results_path.is_file():
        raise ReportError(f"{folder}: no results.json; give the folder written by `ictal evaluate` (its --out folder)")
    try:
        results: dict[str, Any] = json.loads(results_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportError(f"{results_path}: not readable JSON ({exc}); rerun `ictal evaluate`") from None
    recordings = read_recordings(folder)
    title = f"ictal evaluation: {results.get('detector', '?')} on {results.get('split', '?')}"
    body = [f"<h1>{html.escape(title)}</h1>",
            f'<p class="note">from {html.escape(str(folder.resolve()))}, written '
            f"{datetime.now(UTC).isoformat(timespec='seconds')}</p>",
            "<h2>Run</h2>", _run_table(results),
            "<h2>Metrics per scorer</h2>", _metrics_tables(results),
            "<h2>Sensitivity against false alarms</h2>"]  # fmt: skip
    curves = _curves_png(results, folder)
    body.append(_img(curves, "sensitivity-FA curves") if curves else '<p class="note">no curves in results.json</p>')
    body.append("<h2>Per-recording timelines</h2>")
    if recordings:
        chart, shown = _event_chart(recordings)
        body.append(
            f'<p class="note">{shown} of {len(recordings)} recordings shown; green: reference seizures, red: events '
            "detected at the 10 FA/24h threshold.</p>" + _img(chart, "event chart")
        )
    for png in sorted((folder / "timelines").glob("*.png")):
        body.append(f"<h3>{html.escape(png.stem)}</h3>" + _img(png.read_bytes(), f"timeline of {png.stem}"))
    if recordings:
        body.append("<h3>Every recording</h3>" + _recordings_table(recordings))
    config = results.get("config")
    body.append("<h2>Config</h2>")
    if config:
        body.append(f"<pre>{html.escape(yaml.safe_dump(config, sort_keys=False))}</pre>")
    else:
        body.append('<p class="note">results.json holds no config.</p>')
    body.append("<h2>Versions</h2>")
    body.append(_versions_table(*_recorded_versions(results)))
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def write_report(results_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the report of ``results_dir`` to ``out`` (default ``results_dir/report.html``), atomically."""
    path = Path(out) if out is not None else Path(results_dir) / "report.html"
    return write_text_atomic(path, build_report(results_dir))
