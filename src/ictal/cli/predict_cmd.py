"""``ictal predict CHECKPOINT INPUT...``: seizure events for EDF recordings of any length (files or folders)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from ictal.cli.common import fail
from ictal.errors import IctalError
from ictal.progress import progress_bar

if TYPE_CHECKING:
    from ictal.infer.predict import PredictRun, Threshold


def _duration(seconds: float) -> str:
    hours, rest = divmod(int(round(seconds)), 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def summary_table(run: PredictRun, out_dir: Path, threshold: Threshold) -> Table:
    """One row per recording: duration, events, peak probability, time taken, or why it failed."""
    table = Table(title=f"{len(run.done)} recording(s) predicted into {out_dir}, threshold {threshold.value:.3f}")
    for col in ("recording", "duration", "events", "max p", "seconds", "status"):
        table.add_column(col, justify="left" if col in ("recording", "status") else "right")
    for s in run.done:
        status = f"[yellow]{s.quality}" if s.quality else "ok"
        table.add_row(s.name, _duration(s.duration_s), str(s.n_events), f"{s.max_probability:.2f}",
                      f"{s.seconds:.1f}", status)  # fmt: skip
    for f in run.failed:
        table.add_row(f.path.name, "", "", "", "", f"[red]failed: {f.problem}")
    table.caption = f"threshold from {threshold.source}"
    return table


def predict(
    checkpoint: Path = typer.Argument(..., help="A checkpoint written by `ictal train` (best.pt, last.pt, ...)."),
    inputs: list[Path] = typer.Argument(..., help="EDF files, or folders searched recursively for *.edf."),
    out: Path = typer.Option(Path("predictions"), "--out", help="Output folder (created)."),
    thresholds_from: Path | None = typer.Option(
        None, "--threshold-from", help="results.json of `ictal evaluate --split dev`: its threshold is applied."
    ),
    fa_target: float = typer.Option(10.0, "--fa-target", help="Which of its thresholds: 10, 5, 2.5 or 1 FA/24h."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    chunk_s: float = typer.Option(300.0, "--chunk-s", min=1.0, help="Seconds of EEG processed per step."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Windows per forward pass (default: 8)."),
    scoring: str = typer.Option("auto", "--scoring", help="auto, windows or continuous (streamable models)."),
    plot_events: int = typer.Option(4, "--plot-events", min=0, help="Event panels in each picture."),
) -> None:
    """Write <name>.csv_bi, <name>_events.tsv, <name>.json and <name>.png per recording; a summary at the end.

    A recording that cannot be read is reported and skipped; the exit code is 1 if any failed.
    """
    import pydantic

    from ictal.devices import resolve_device
    from ictal.infer.predict import PredictConfig, find_recordings, predict_files, resolve_threshold
    from ictal.io.atomic import check_writable
    from ictal.models.checkpoint import load_model
    from ictal.models.mamba.cpu_scan import cpu_scan_enabled

    console = Console()
    try:
        predict_cfg = pydantic.TypeAdapter(PredictConfig).validate_python(
            {"chunk_s": chunk_s, "batch_size": batch_size, "scoring": scoring, "fa_target": fa_target,
             "plot_events": plot_events}
        )  # fmt: skip
    except pydantic.ValidationError as exc:
        bad = "; ".join(f"--{'-'.join(str(e['loc'][0]).split('_'))}: {e['msg']}" for e in exc.errors())
        typer.echo(f"error: {bad}", err=True)
        raise typer.Exit(2) from None
    try:
        cpu_scan_enabled()  # a bad ICTAL_CPU_SCAN: one error now, not one per recording
        check_writable(out, "--out")  # before the model runs over every recording
        dev = resolve_device(device)
        model, cfg, meta = load_model(checkpoint, dev)
        threshold = resolve_threshold(cfg.post, thresholds_from, predict_cfg.fa_target)
    except IctalError as exc:
        raise fail(exc) from None
    paths, problems = find_recordings(inputs)
    console.print(f"{len(paths)} recording(s); threshold {threshold.value:.3f} from {threshold.source}")
    with progress_bar(console=console, enabled=console.is_terminal) as bar:
        files = bar.add_task("recordings", total=len(paths))
        chunks = bar.add_task("chunks", total=None)

        def on_recording(i: int, _total: int, path: Path) -> None:
            bar.update(files, completed=i)
            bar.reset(chunks, total=None, description=f"  {path.name} (2 passes)")

        run = predict_files(
            model, cfg, paths, out, threshold, predict=predict_cfg, device=dev, checkpoint_meta=meta,
            on_recording=on_recording,
            on_chunk=lambda done, total: bar.update(chunks, completed=done, total=total),
        )  # fmt: skip
        bar.update(files, completed=len(paths))
    run.failed[:0] = problems
    console.print(summary_table(run, out, threshold))
    for failure in run.failed:
        typer.echo(f"error: {failure.path}: {failure.problem}", err=True)
    if run.failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
