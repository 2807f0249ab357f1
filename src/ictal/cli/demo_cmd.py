"""``ictal demo``: the whole chain on a generated synthetic corpus, on CPU (what ``make demo`` runs)."""

from __future__ import annotations

from pathlib import Path

import typer

from ictal.cli.common import fail


def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", help="Folder for the corpus, cache, run and results."),
    patients: int = typer.Option(24, "--patients", min=4, help="Synthetic patients (train, dev and eval)."),
    hours: float = typer.Option(12.0, "--hours", min=0.1, help="Hours of synthetic EEG in all."),
    seed: int = typer.Option(0, "--seed", help="Seed of the corpus and the training run."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Cache-building processes (default: <= 2)."),
    train_minutes: float = typer.Option(8.0, "--train-minutes", min=0.1, help="Training budget (wall clock)."),
    train_steps: int = typer.Option(400, "--train-steps", min=1, help="Optimizer steps (the schedule's length)."),
    overrides: list[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE", help="Override a config key of the run, e.g. training.loss=bce (repeatable)."
    ),
) -> None:
    """Generate a corpus, build the cache, train the tiny V3, evaluate on dev and eval, predict, write the report."""
    from ictal.config.schema import parse_overrides
    from ictal.demo import run_demo
    from ictal.errors import IctalError

    try:
        parsed = parse_overrides(overrides)
    except ValueError as exc:
        typer.echo(f"error: --set {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        code = run_demo(
            out, patients=patients, hours=hours, seed=seed, workers=workers, train_minutes=train_minutes,
            train_steps=train_steps, overrides=parsed,
        )  # fmt: skip
    except IctalError as exc:
        raise fail(exc) from None
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
