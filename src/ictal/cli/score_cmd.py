"""``ictal score REF_LIST HYP_LIST``: NEDC (OVLP, TAES, EPOCH, DPALIGN) and SzCORE scoring of two list files."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from ictal.errors import IctalError
from ictal.io.atomic import check_writable
from ictal.scoring.score_lists import (
    ALL_SCORERS,
    parse_label_map,
    parse_scorers,
    report_tables,
    score_lists,
    write_report_json,
)


def score(
    ref_list: Path = typer.Argument(..., help="List of reference .csv_bi files, one path per line."),
    hyp_list: Path = typer.Argument(..., help="List of hypothesis .csv_bi files, paired with REF_LIST by order."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write every figure to this JSON file."),
    scorers: str = typer.Option(
        "ovlp,taes,epoch,dpalign", "--scorers", help=f"Comma-separated scorers from {','.join(ALL_SCORERS)}."
    ),
    label_map: list[str] = typer.Option(
        [],
        "--map",
        metavar="LABEL=seiz|bckg",
        help="Score a label outside the known ones as seizure or background (repeatable; said in every output).",
    ),  # fmt: skip
) -> None:
    """Score hypothesis annotations against references, like the NEDC tool (SEIZ label, pooled over files)."""
    console = Console()
    err = Console(stderr=True)
    try:
        names = parse_scorers(scorers)
        if json_out is not None:
            check_writable(json_out, "--json", folder=False)
        report = score_lists(ref_list, hyp_list, names, label_map=parse_label_map(label_map))
    except IctalError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    for warning in report.warnings:
        err.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)
    for table in report_tables(report):
        console.print(table)
    if json_out is not None:
        write_report_json(json_out, report)
        console.print(f"wrote {json_out}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("score")(score)
