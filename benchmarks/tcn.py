"""TCN encoder time per 60 s window: ictal's multi-rate encoder against the reference V3 design, one run.

Reference design (what the reference system ran): 8 dilated Conv1d layers, kernel 7, dilation 2^i, widths
64-128-256-512-64-128-256-512, each with a residual (1x1 where widths differ), BatchNorm and ReLU, all at the
full 256 Hz rate, then a stride-16 convolution down to 960 frames. BatchNorm in eval mode is the cheapest
normalisation there is, so the reference is, if anything, favoured.

Ours: ``ictal.models.tcn.TCNEncoder`` with the ``base`` preset's sizes (or ``--preset tiny``): the same 8 layers
and receptive field, decimated between layers (see the module docstring).

Both take ``(B, 19, 15360)`` and give ``(B, C, 960)``; wall-clock time is the median of ``--repeats`` runs after
one warm-up, divided by the batch size. Forward runs in eval mode without gradients; forward+backward in train
mode with a sum loss. MACs are counted with ``torch.utils.flop_counter``.

OpenMP threads wait passively (``OMP_WAIT_POLICY=PASSIVE`` unless set otherwise): on a machine whose cores are
shared, spinning threads make wall-clock times swing by several times from run to run.

    python benchmarks/tcn.py [--preset base] [--batch 2] [--threads 2] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read by OpenMP when torch loads

import torch  # noqa: E402
from torch import nn  # noqa: E402

from ictal.io.atomic import write_text_atomic  # noqa: E402
from ictal.models.config import V3Config  # noqa: E402
from ictal.models.info import macs_per_window  # noqa: E402
from ictal.models.tcn import TCNEncoder  # noqa: E402

WINDOW_SAMPLES = 15_360  # 60 s at 256 Hz


class ReferenceBlock(nn.Module):
    """``(B, C_in, T) -> (B, C_out, T)`` at full rate: dilated conv, BatchNorm, ReLU, residual."""

    def __init__(self, c_in: int, c_out: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, 7, dilation=dilation, padding=3 * dilation)
        self.norm = nn.BatchNorm1d(c_out)
        self.skip: nn.Module = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + torch.relu(self.norm(self.conv(x)))


class ReferenceTCN(nn.Module):
    """The reference V3 encoder: ``(B, 19, T)`` at 256 Hz -> ``(B, 512, T / 16)``."""

    def __init__(self) -> None:
        super().__init__()
        widths = (64, 128, 256, 512, 64, 128, 256, 512)
        blocks, c_prev = [], 19
        for i, w in enumerate(widths):
            blocks.append(ReferenceBlock(c_prev, w, 2**i))
            c_prev = w
        self.layers = nn.Sequential(*blocks)
        self.downsample = nn.Conv1d(c_prev, c_prev, 16, stride=16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.layers(x))


def median_seconds(fn: object, repeats: int) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` runs, after one warm-up run."""
    assert callable(fn)
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_encoder(model: nn.Module, x: torch.Tensor, repeats: int) -> tuple[float, float]:
    """(forward, forward+backward) seconds per window for ``x``: ``(B, 19, T)``."""

    def forward() -> None:
        model.eval()
        with torch.no_grad():
            model(x)

    def train_step() -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        model(x).sum().backward()

    batch = x.shape[0]
    return median_seconds(forward, repeats) / batch, median_seconds(train_step, repeats) / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="base", choices=["tiny", "base"], help="sizes of our encoder")
    parser.add_argument("--batch", type=int, default=2, help="windows per forward pass")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median)")
    parser.add_argument("--json", type=Path, help="also write the figures as one flat JSON object")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 19, WINDOW_SAMPLES)
    ours = TCNEncoder(V3Config.from_preset(args.preset).tcn)
    reference = ReferenceTCN()
    assert ours(x[:1]).shape[-1] == reference(x[:1]).shape[-1] == WINDOW_SAMPLES // 16

    ref_fwd, ref_train = time_encoder(reference, x, args.repeats)
    our_fwd, our_train = time_encoder(ours, x, args.repeats)
    figures = {
        "batch_windows": args.batch,
        "threads": args.threads,
        "reference_forward_ms_per_window": 1e3 * ref_fwd,
        "ours_forward_ms_per_window": 1e3 * our_fwd,
        "forward_speedup_ratio": ref_fwd / our_fwd,
        "reference_train_step_ms_per_window": 1e3 * ref_train,
        "ours_train_step_ms_per_window": 1e3 * our_train,
        "train_step_speedup_ratio": ref_train / our_train,
        "reference_gmacs_per_window": macs_per_window(reference, x[:1])["total"] / 1e9,
        "ours_gmacs_per_window": macs_per_window(ours, x[:1])["total"] / 1e9,
        "reference_params": sum(p.numel() for p in reference.parameters()),
        "ours_params": sum(p.numel() for p in ours.parameters()),
        "reference_receptive_field_s": (1 + 6 * (2**8 - 1) + 15) / 256,
        "ours_receptive_field_s": ours.receptive_field_samples / 256,
    }
    print(f"TCN encoder, ours = {args.preset} preset, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value:.3f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    if args.json:
        write_text_atomic(args.json, json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
