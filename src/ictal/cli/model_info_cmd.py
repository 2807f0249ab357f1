"""``ictal model-info CONFIG_OR_PRESET``: parameters and MACs per component, and the active Mamba path."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from ictal.cli.common import config_exit
from ictal.errors import ConfigError
from ictal.frames import FRAME_RATE, SAMPLE_RATE, SAMPLES_PER_FRAME, n_frames


def model_info(
    config: str = typer.Argument(..., help="preset name (tiny, base) or YAML config with a 'model:' section"),
    window_s: float = typer.Option(60.0, "--window-s", help="window length in seconds for the MAC count"),
    device: str = typer.Option("cpu", "--device", help="torch device to build the model on (cpu, cuda)"),
) -> None:
    """Print the V3 model's parameters and MACs per window for each component, and which Mamba path runs."""
    import torch

    from ictal.models.config import load_v3_config
    from ictal.models.info import macs_per_window, parameter_counts
    from ictal.models.mamba.cpu_scan import cpu_scan_enabled
    from ictal.models.mamba.mamba2 import mamba_backend
    from ictal.models.mamba.parallel import block_workers
    from ictal.models.v3 import V3Detector

    try:
        cfg = load_v3_config(config)
        cpu_scan_enabled()  # environment settings the forward pass reads: refused here, not as a traceback
        block_workers()
    except ConfigError as exc:
        raise config_exit(exc) from None
    n_samples = int(round(window_s * FRAME_RATE)) * SAMPLES_PER_FRAME
    if n_samples <= 0:
        typer.echo(f"--window-s: got {window_s}; give a positive length in seconds", err=True)
        raise typer.Exit(1)
    torch.manual_seed(0)
    model = V3Detector(cfg).to(device)
    params = parameter_counts(model)
    macs = macs_per_window(model, torch.randn(1, 19, n_samples, device=device))

    table = Table(
        title=f"V3 model ({cfg.preset or 'custom'}): {n_samples / SAMPLE_RATE:g} s window, {n_frames(n_samples)} frames"
    )
    table.add_column("component")
    table.add_column("parameters", justify="right")
    table.add_column("MMACs / window", justify="right")
    for name in [*params.keys()]:
        table.add_row(name, f"{params[name]:,}", f"{macs.get(name, 0) / 1e6:,.1f}")
    console = Console()
    console.print(table)
    g = cfg.graph
    pe = f"dynamic, every {g.semi_dynamic_interval} frames" if g.use_dynamic_pe else "static (10-20 montage)"
    console.print(f"Laplacian PE: {pe}, k={g.pe_k}")
    console.print(f"Mamba backend: {mamba_backend(model)} (device {device})")
    console.print("MACs count matrix products and convolutions (torch.utils.flop_counter), not element-wise work.")


def register(app: typer.Typer) -> None:
    app.command("model-info")(model_info)
