"""``ictal stream CHECKPOINT EDF``: feed a recording chunk by chunk, as an acquisition system would, and print each
seizure event as soon as it closes, with its latency."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from ictal.cli.common import checked, fail
from ictal.errors import IctalError


def stream(
    checkpoint: Path = typer.Argument(..., help="A checkpoint written by `ictal train`."),
    edf: Path = typer.Argument(..., help="The EDF recording to replay as a live feed."),
    realtime: bool = typer.Option(False, "--realtime", help="Deliver the EEG at its own pace (wall clock)."),
    chunk_s: float = typer.Option(1.0, "--chunk-s", min=0.01, help="Seconds of EEG delivered per step."),
    thresholds_from: Path | None = typer.Option(
        None, "--threshold-from", help="results.json of `ictal evaluate --split dev`: its threshold is applied."
    ),
    fa_target: float = typer.Option(10.0, "--fa-target", help="Which of its thresholds: 10, 5, 2.5 or 1 FA/24h."),
    stats: str = typer.Option(
        "calibration",
        "--stats",
        help="z-score statistics: 'calibration' (first --calibration-s of the stream, then frozen; live-capable) "
        "or 'recording' (the whole file read first; equals `ictal predict`).",
    ),  # fmt: skip
    calibration_s: float = typer.Option(300.0, "--calibration-s", min=1.0, help="Calibration period, seconds."),
    scoring: str = typer.Option("auto", "--scoring", help="auto, windows or continuous (streamable models)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Stream one recording through the model; events are printed when they close."""
    from ictal.devices import resolve_device
    from ictal.infer.predict import resolve_threshold, window_samples
    from ictal.infer.scorers import ScoringMode
    from ictal.infer.stream import StatsMode, StreamEvent, stream_recording
    from ictal.models.checkpoint import load_model

    console = Console()
    stats_mode: StatsMode = checked("--stats", stats, StatsMode)
    scoring_mode: ScoringMode = checked("--scoring", scoring, ScoringMode)

    def show(item: StreamEvent) -> None:
        ev = item.event
        console.print(
            f"[bold red]seizure[/] {ev.start_s:9.2f}-{ev.stop_s:9.2f} s ({ev.duration_s:6.1f} s), confidence "
            f"{ev.confidence:.2f}; closed at {item.emitted_s:.2f} s of EEG: latency {item.latency_s:.2f} s "
            f"after its end (wall {item.wall_s:.1f} s)"
        )

    try:
        dev = resolve_device(device)
        model, cfg, _meta = load_model(checkpoint, dev)
        threshold = resolve_threshold(cfg.post, thresholds_from, fa_target)
        window, stride = window_samples(cfg)
        console.print(
            f"streaming {edf.name} in {chunk_s:g} s chunks{' at real-time pace' if realtime else ''}; "
            f"threshold {threshold.value:.3f} from {threshold.source}"
        )
        result = stream_recording(
            model, edf, preprocess=cfg.preprocess, post=threshold.post, window=window, stride=stride,
            chunk_s=chunk_s, realtime=realtime, stats_mode=stats_mode, calibration_s=calibration_s,
            scoring=scoring_mode, device=dev, on_event=show,
        )  # fmt: skip
    except IctalError as exc:
        raise fail(exc) from None
    latencies = [e.latency_s for e in result.events]
    typer.echo(
        f"{len(result.events)} event(s) in {result.duration_s:.1f} s of EEG, streamed in {result.wall_s:.1f} s "
        f"({result.duration_s / max(result.wall_s, 1e-9):.0f}x real time); "
        + (f"latency after event end {min(latencies):.2f}-{max(latencies):.2f} s; " if latencies else "")
        + f"scoring: {result.scoring}; z-score statistics: {result.stats}"
    )


def register(app: typer.Typer) -> None:
    app.command("stream")(stream)
