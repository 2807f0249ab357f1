"""``ictal validate CONFIG``: schema, values and paths, one line per problem."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ictal.cli.common import load_config_or_exit
from ictal.config.schema import config_summary


def validate(config: Path = typer.Argument(..., help="YAML config file")) -> None:
    """Check a config: unknown keys, bad values, missing paths. Exit 0 with a summary, else 1."""
    console = Console()
    cfg = load_config_or_exit(config)
    table = Table(title=f"{config}: valid", show_header=False)
    for key, value in config_summary(cfg):
        table.add_row(key, value)
    console.print(table)
    unset = [
        key
        for key, value in (("data.data_dir", cfg.data.data_dir), ("data.cache_dir", cfg.data.cache_dir))
        if value is None
    ]
    if unset:
        typer.echo(
            f"note: {', '.join(unset)} not set: build-cache, train and evaluate need "
            + ("them" if len(unset) > 1 else "it"),
            err=True,
        )


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
