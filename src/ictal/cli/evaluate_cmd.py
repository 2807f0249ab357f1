"""``ictal evaluate CHECKPOINT --split dev|eval``: every scorer, thresholds from dev, files and plots."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from ictal.cli.common import fail
from ictal.errors import IctalError
from ictal.progress import progress_bar

if TYPE_CHECKING:  # the evaluation stack (torch) loads when the command runs, not when the CLI starts
    from ictal.infer.evaluate import EvaluationResult


def results_table(result: EvaluationResult, baselines: dict[str, Any] | None = None) -> Table:
    from ictal.infer.evaluate import headline

    m = result.metrics
    table = Table(
        title=(
            f"{result.detector} on {result.split}: {m['n_recordings']} recordings, {m['hours']:.2f} h, "
            f"{m['n_ref_seizures']} seizures; thresholds chosen on {result.thresholds_chosen_on}"
        )
    )
    for col in ("scorer / label SEIZ / aggregation", "target FA/24h", "sensitivity %", "FA/24h"):
        table.add_column(col, justify="left" if col.startswith("scorer") else "right")
    for row in headline(m):
        table.add_row(*row)
    caption = [f"frame AUROC {m['auroc']:.3f}, ECE {m['ece']:.3f}"]
    for name, b in (baselines or {}).items():
        sens, fa = b.get("ovlp_sensitivity_at_10fa"), b.get("ovlp_fa_per_24h_at_10fa")
        if sens is not None and fa is not None:
            caption.append(f"{name.replace('_', ' ')} detector: NEDC OVLP {100 * sens:.1f} % at {fa:.2f} FA/24h")
    table.caption = "; ".join(caption)
    return table


def evaluate(
    checkpoint: Path = typer.Argument(..., help="A checkpoint written by `ictal train` (best.pt, last.pt, ...)."),
    split: str = typer.Option(..., "--split", help="dev or eval (or any split folder of the cache)."),
    thresholds_from: Path | None = typer.Option(
        None, "--thresholds-from", help="results.json of a dev run: its thresholds are applied unchanged."
    ),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default: next to the checkpoint)."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Cache root (default: the checkpoint's config)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Windows per forward pass."),
    choose_on_split: bool = typer.Option(
        False, "--choose-on-split", help="Choose thresholds on this (non-dev) split: a leak, labelled as such."
    ),
) -> None:
    """Run the model over every recording of a cached split and score it with every scorer."""
    from ictal.data.cache import CacheParams
    from ictal.devices import resolve_device
    from ictal.infer.evaluate import (
        all_seizure_traces,
        baselines_block,
        evaluate_baselines,
        evaluate_split,
        read_baseline_thresholds,
        read_thresholds,
        split_traces,
        write_evaluation,
        write_plots,
    )
    from ictal.io.atomic import check_writable
    from ictal.models.checkpoint import load_model

    console = Console()
    try:
        dev = resolve_device(device)
        model, cfg, meta = load_model(checkpoint, dev)
        root = cache_dir or cfg.data.cache_dir
        if root is None:
            raise IctalError("no cache: pass --cache-dir or set data.cache_dir in the training config")
        thresholds, chosen_on = (None, None)
        if thresholds_from is not None:
            thresholds, chosen_on = read_thresholds(thresholds_from)
            if chosen_on == split and split != "dev":
                console.print(f"[yellow]warning: thresholds in {thresholds_from} were chosen on {split} itself")
        out_dir = check_writable(out or checkpoint.parent / f"evaluate-{split}", "--out")
        with progress_bar(console=console, enabled=console.is_terminal) as bar:
            task = bar.add_task(f"evaluate {split}", total=None)
            traces = split_traces(
                root, split, model=model, window_s=cfg.data.window_s, stride_s=cfg.data.stride_s,
                batch_size=batch_size, device=dev, expect=CacheParams.from_configs(cfg.preprocess, cfg.data),
                progress=lambda _name, done, total: bar.update(task, completed=done, total=total),
            )  # fmt: skip
        result = evaluate_split(
            traces,
            cfg.post,
            cfg.szcore,
            thresholds=thresholds,
            thresholds_chosen_on=chosen_on,
            allow_choose_on_this_split=True if choose_on_split else None,
        )
        # What two trivial detectors get on the same split by the same rules (thresholds from the dev run's own
        # baselines when evaluating with dev thresholds).
        line_length = split_traces(root, split, detector="line_length")
        baselines = evaluate_baselines(
            {"all_seizure": all_seizure_traces(traces), "line_length": line_length}, cfg.post, cfg.szcore,
            thresholds=read_baseline_thresholds(thresholds_from) if thresholds_from is not None else None,
        )  # fmt: skip
        block, warnings = baselines_block(result, baselines)
        path = write_evaluation(
            result, out_dir, cfg=cfg, checkpoint_meta=meta, device=dev, extra={"baselines": block, "warnings": warnings}
        )
        write_plots(result, out_dir)
    except IctalError as exc:
        raise fail(exc) from None
    console.print(results_table(result, block))
    for line in warnings:
        console.print(f"[yellow]warning: {line}", highlight=False)
    console.print(f"wrote {path}, {out_dir}/ref.list, {out_dir}/hyp.list and plots in {out_dir}/")


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
