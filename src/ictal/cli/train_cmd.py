"""``ictal train CONFIG`` and ``ictal preflight CONFIG``: thin wrappers over :mod:`ictal.train`.

Every option overrides its config key (``--device`` -> ``training.device`` ...) and the run stores the config
with the overrides applied, so what ran is what the checkpoint says. Several processes: start the same command
under ``torchrun`` (``docs/training.md``). Exit codes: 0 done (or all checks passed), 1 refused (config, cache,
device, a failed preflight check), 3 stopped after too many non-finite steps, 130 interrupted.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ictal.cli.common import fail, load_config_or_exit
from ictal.errors import DiskFullError, IctalError

if TYPE_CHECKING:
    pass

DEVICE = typer.Option(None, "--device", help="auto, cpu or cuda (training.device)")
RUN_DIR = typer.Option(None, "--run-dir", help="run folder for checkpoints and logs (training.run_dir)")


def _setup_logging() -> None:
    from ictal.train.distributed import launcher_rank

    rank = launcher_rank()
    # Rank 0 tells the story; the other ranks speak only about problems, with their rank in front.
    level = logging.INFO if rank == 0 else logging.WARNING
    prefix = "" if rank == 0 else f"[rank {rank}] "
    logging.basicConfig(level=level, format=f"%(asctime)s {prefix}%(message)s", datefmt="%H:%M:%S")
    logging.getLogger("ictal").setLevel(level)


def train_command(
    config: Path = typer.Argument(..., help="YAML config file"),
    resume: bool = typer.Option(False, "--resume", help="continue from last.pt in the run folder, exactly"),
    device: str | None = DEVICE,
    run_dir: Path | None = RUN_DIR,
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="training.epochs"),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="training.batch_size (per process)"),
    precision: str | None = typer.Option(None, "--precision", help="auto, bf16, fp16 or no (training.mixed_precision)"),
    max_minutes: float | None = typer.Option(None, "--max-minutes", min=0.01, help="training.max_minutes budget"),
    max_steps_per_epoch: int | None = typer.Option(
        None, "--max-steps-per-epoch", min=1, help="training.max_steps_per_epoch"
    ),
    progress: bool | None = typer.Option(
        None, "--progress/--no-progress", help="progress bar (default: when a terminal); heartbeat lines otherwise"
    ),
) -> None:
    """Train the detector on the cached train split, validating on dev; checkpoints in the run folder."""
    from ictal.io.atomic import check_writable
    from ictal.train.distributed import launcher_rank, shutdown_distributed
    from ictal.train.trainer import Trainer, TrainingDivergedError, default_run_dir

    cfg = load_config_or_exit(
        config,
        {
            "training.device": device,
            "training.run_dir": run_dir,
            "training.epochs": epochs,
            "training.batch_size": batch_size,
            "training.mixed_precision": precision,
            "training.max_minutes": max_minutes,
            "training.max_steps_per_epoch": max_steps_per_epoch,
        },
    )
    _setup_logging()
    log = logging.getLogger("ictal.train")
    try:
        check_writable(default_run_dir(cfg), "--run-dir (training.run_dir)")
        result = Trainer(cfg, resume=resume, progress=progress).fit()
    except TrainingDivergedError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(3) from None
    except DiskFullError as exc:
        raise fail(f"{exc}; continue with --resume: the last checkpoint written is intact") from None
    except IctalError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        typer.echo("interrupted; continue with --resume (from the last checkpoint written)", err=True)
        raise typer.Exit(130) from None
    finally:
        shutdown_distributed()
    if launcher_rank() == 0:
        best = f"{result.best_checkpoint} ({result.monitor_name} {result.best_monitor:.4f})"
        log.info(
            "done (%s): %d epoch(s), %d steps on %s x %d, %s; %d non-finite step(s) skipped; best %s; last %s",
            result.stopped, result.epochs_completed, result.steps, result.device, result.world_size,
            result.precision, result.nonfinite_steps, best if result.best_checkpoint else "none",
            result.last_checkpoint,
        )  # fmt: skip


def preflight_command(
    config: Path = typer.Argument(..., help="YAML config file"),
    device: str | None = DEVICE,
    run_dir: Path | None = RUN_DIR,
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="training.batch_size"),
    precision: str | None = typer.Option(None, "--precision", help="auto, bf16, fp16 or no (training.mixed_precision)"),
    steps: int = typer.Option(2, "--steps", min=1, help="timed training steps after the first (throughput)"),
) -> None:
    """Check a training run before starting it: cache, splits, sampler, device, one step, time estimates."""
    from rich.console import Console
    from rich.table import Table

    from ictal.train.preflight import run_preflight

    cfg = load_config_or_exit(
        config,
        {
            "training.device": device,
            "training.run_dir": run_dir,
            "training.batch_size": batch_size,
            "training.mixed_precision": precision,
        },
    )
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    report = run_preflight(cfg, steps=steps)
    table = Table(title=f"preflight {config}", show_lines=False)
    table.add_column("check")
    table.add_column("")
    table.add_column("detail", overflow="fold")
    marks = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}
    for check in report.checks:
        table.add_row(check.name, marks[check.status], check.detail)
    Console(width=max(100, Console().width)).print(table)
    if not report.ok:
        for check in report.failures():
            typer.echo(f"error: {check.name}: {check.detail}", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("preflight")(preflight_command)
