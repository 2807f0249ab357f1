"""Mamba2's selective scan on a CPU: the numba-compiled recurrence against the chunked SSD scan it replaces there.

For each Mamba stack of the ``base`` preset, one block of sequences as the PyTorch path hands it to the scan (node
stream: 3 electrode sequences of 960 frames, d_inner 128, d_state 16; edge stream: 13 pair sequences, d_inner 32,
d_state 8; the first of the block sizes ``Mamba2.block_sizes`` gives at batch 1), from a randomly initialised
layer's own in_proj and conv outputs: ``ictal.models.mamba.cpu_scan.selective_scan_cpu`` against
``ictal.models.mamba.ssd.ssd_chunked_scan``, both with softplus(dt), the decay and the D skip: forward without autograd
(inference), and forward + backward (the gradients with respect to the conv output, dt, dt_bias, A_log and D, as in
training). Each is timed ``--calls`` times in a row, alternating, ``--repeats`` rounds; the best round is reported
per call, with the ratio, and the largest absolute difference between the two outputs. One intra-op thread
(``--threads``): the model runs its blocks one per worker thread, each with one thread.

    python benchmarks/scan.py [--threads 1] [--repeats 5] [--calls 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ictal.io.atomic import write_text_atomic
from ictal.models.config import V3Config
from ictal.models.mamba.cpu_scan import cpu_scan_available, selective_scan_cpu
from ictal.models.mamba.mamba2 import Mamba2
from ictal.models.mamba.ssd import ssd_chunked_scan

FRAMES = 960


def measure(stream: str, cfg: Any, sequences: int, repeats: int, calls: int) -> dict[str, Any]:
    torch.manual_seed(0)
    layer = Mamba2(cfg.d_model, d_state=cfg.d_state, expand=cfg.expand, headdim=cfg.headdim)
    with torch.no_grad():
        z, xbc, dt_raw = layer._split_proj(layer.in_proj(torch.randn(sequences, FRAMES, cfg.d_model)))
        xbc, _ = layer._causal_conv(xbc, None, None)
    sizes = {"nheads": layer.nheads, "headdim": layer.headdim, "ngroups": layer.ngroups, "d_state": cfg.d_state}
    grad_y = torch.randn(sequences, FRAMES, layer.d_inner)

    def ssd(xbc: torch.Tensor, dt_raw: torch.Tensor) -> torch.Tensor:
        xh, b, c = layer._split_xbc(xbc)
        dt = F.softplus(dt_raw + layer.dt_bias)
        return ssd_chunked_scan(xh, dt, -torch.exp(layer.A_log), b, c, layer.D, layer.chunk_size)[0].flatten(2)

    def compiled(xbc: torch.Tensor, dt_raw: torch.Tensor) -> torch.Tensor:
        a = -torch.exp(layer.A_log)
        return selective_scan_cpu(xbc, dt_raw, layer.dt_bias, a, layer.D, **sizes)[0]

    def forward(scan: Any) -> Any:
        def run() -> None:
            with torch.inference_mode():
                scan(xbc, dt_raw)

        return run

    def forward_backward(scan: Any) -> Any:
        inputs = [xbc.clone().requires_grad_(), dt_raw.clone().requires_grad_()]
        wrt = [*inputs, layer.dt_bias, layer.A_log, layer.D]

        def run() -> None:
            torch.autograd.grad((scan(*inputs) * grad_y).sum(), wrt)

        return run

    with torch.no_grad():
        difference = float((ssd(xbc, dt_raw) - compiled(xbc, dt_raw)).abs().max())
    figures: dict[str, Any] = {"stream": stream, "block": [sequences, FRAMES, layer.d_inner, cfg.d_state]}
    for what, make in (("forward", forward), ("forward_backward", forward_backward)):
        runs = {"ssd": make(ssd), "numba": make(compiled)}
        best = {name: float("inf") for name in runs}
        for name in runs:
            runs[name]()  # warm-up (numba compiles here)
        for _ in range(repeats):
            for name, run in runs.items():
                start = time.perf_counter()
                for _ in range(calls):
                    run()
                best[name] = min(best[name], (time.perf_counter() - start) / calls)
        figures[what] = {"ssd_ms": best["ssd"] * 1e3, "numba_ms": best["numba"] * 1e3,
                         "speedup": best["ssd"] / best["numba"]}  # fmt: skip
    figures["max_abs_difference"] = difference
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=5, help="rounds (best reported)")
    parser.add_argument("--calls", type=int, default=10, help="calls per round")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    if not cpu_scan_available():
        raise SystemExit("numba is not importable (or ICTAL_CPU_SCAN=0): nothing to compare")
    torch.set_num_threads(args.threads)
    base = V3Config.from_preset("base")
    rows = []
    for stream, cfg in (("node", base.node), ("edge", base.edge)):
        layer = Mamba2(cfg.d_model, d_state=cfg.d_state, expand=cfg.expand, headdim=cfg.headdim)
        sequences = layer.block_sizes(19 if stream == "node" else 171, FRAMES)[0]
        rows.append(measure(stream, cfg, sequences, args.repeats, args.calls))
    print(f"Selective scan per block, {args.threads} thread(s), best of {args.repeats} rounds of {args.calls} calls:")
    for r in rows:
        seqs, frames, width, state = r["block"]
        print(f"  {r['stream']} stream, {seqs} x {frames} frames, d_inner {width}, d_state {state} "
              f"(outputs differ by at most {r['max_abs_difference']:.1e}):")  # fmt: skip
        for what, label in (("forward", "forward, no autograd"), ("forward_backward", "forward + backward")):
            f = r[what]
            print(f"    {label}: SSD scan {f['ssd_ms']:.2f} ms, numba scan {f['numba_ms']:.2f} ms: "
                  f"{f['speedup']:.2f}x faster")  # fmt: skip
    if args.json:
        write_text_atomic(args.json, json.dumps({"threads": args.threads, "blocks": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
