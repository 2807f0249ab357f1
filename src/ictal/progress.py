"""The one progress bar of every long stage (synth, build-cache, train, evaluate, predict).

Each shows what runs, a bar, done/total, the stage's own figures (a rate, a status), elapsed time and time
left; it stays on screen when done, above the stage's summary table, and is off when output is not a
terminal (logs get the stages' own heartbeat lines instead).
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["progress_bar"]


def progress_bar(
    *figures: ProgressColumn, console: Console | None = None, enabled: bool = True, label: str = "{task.description}"
) -> Progress:
    """A Rich ``Progress`` with the common columns and ``figures`` (e.g. ``TextColumn("{task.fields[rate]}")``)
    after done/total. ``label``: the first column's template (each task's description by default); ``enabled``
    False gives a bar that draws nothing. Use it as a context manager, or call ``start()``/``stop()``."""
    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        *figures,
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    )
