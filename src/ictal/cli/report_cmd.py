"""``ictal report RESULTS_DIR``: one self-contained HTML page (plots embedded) from an ``ictal evaluate`` folder."""

from __future__ import annotations

from pathlib import Path

import typer

from ictal.cli.common import fail
from ictal.errors import IctalError


def report(
    results_dir: Path = typer.Argument(..., help="The --out folder of `ictal evaluate` (holds results.json)."),
    out: Path | None = typer.Option(None, "--out", help="HTML file to write (default: RESULTS_DIR/report.html)."),
) -> None:
    """Metrics per scorer, sensitivity-FA curves, per-recording timelines, config and versions, in one file."""
    from ictal.report.html import write_report

    try:
        path = write_report(results_dir, out)
    except IctalError as exc:
        raise fail(exc) from None
    typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, self-contained)")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
