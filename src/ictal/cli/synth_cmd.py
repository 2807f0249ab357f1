"""``ictal synth OUT_DIR``: write a seeded synthetic corpus with TUSZ's layout (see :mod:`ictal.synthetic.corpus`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import ProgressColumn, Task
from rich.table import Table
from rich.text import Text

from ictal.cli.common import fail
from ictal.errors import IctalError
from ictal.progress import progress_bar

if TYPE_CHECKING:
    from ictal.synthetic.corpus import CorpusSummary, SyntheticFile


class _FileRateColumn(ProgressColumn):
    """Files written per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f} files/s" if speed else "- files/s", style="progress.data.speed")


def summary_table(summary: CorpusSummary) -> Table:
    """Per split: patients, files, hours, seizures, seizure hours; and the totals."""
    table = Table(title=f"Synthetic corpus {summary.root} (seed {summary.config.seed})")
    for name in ("split", "patients", "files", "hours", "seizures", "seizure hours"):
        table.add_column(name, justify="left" if name == "split" else "right")
    stats = summary.split_stats()
    for s in stats:
        table.add_row(
            s.split, str(s.patients), str(s.files), f"{s.hours:.2f}", str(s.seizures), f"{s.seizure_hours:.3f}"
        )
    table.add_row(
        "total",
        str(sum(s.patients for s in stats)),
        str(sum(s.files for s in stats)),
        f"{sum(s.hours for s in stats):.2f}",
        str(sum(s.seizures for s in stats)),
        f"{sum(s.seizure_hours for s in stats):.3f}",
        style="bold",
    )
    return table


def synth(
    out_dir: Path = typer.Argument(..., help="Corpus root to write (train/ dev/ eval/ and corpus.json)."),
    patients: int = typer.Option(10, "--patients", min=1, help="Number of patients (about 60/20/20 split)."),
    hours: float = typer.Option(5.0, "--hours", min=0.01, help="Total hours of EEG in the corpus."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed; the same seed gives byte-identical files."),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes generating files in parallel."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Write into a non-empty folder that is not a synthetic corpus (deletes its splits)."
    ),
) -> None:
    """Generate a synthetic TUSZ-like corpus: EDF + .csv + .csv_bi per recording, seizures and artifacts."""
    # Imported here: the generator loads SciPy, which `ictal --help` and the other commands need not wait for.
    from ictal.synthetic.corpus import check_out_dir, generate_corpus

    console = Console()
    started = time.perf_counter()
    try:
        check_out_dir(out_dir, overwrite)
        with progress_bar(_FileRateColumn(), console=console) as bar:
            task = bar.add_task("synth", total=None)

            def on_file(_file: SyntheticFile, done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            summary = generate_corpus(
                out_dir,
                patients=patients,
                hours=hours,
                seed=seed,
                workers=workers,
                overwrite=overwrite,
                progress=on_file,
            )
    except IctalError as exc:
        raise fail(exc) from None
    console.print(summary_table(summary))
    console.print(
        f"Wrote {len(summary.files)} recordings ({summary.hours:.2f} h) to {out_dir} "
        f"in {time.perf_counter() - started:.1f} s; details in {out_dir / 'corpus.json'}"
    )


def register(app: typer.Typer) -> None:
    app.command("synth")(synth)
