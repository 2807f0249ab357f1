"""Training throughput (windows per second) and peak memory of the real training loop, ``tiny`` and ``base``.

Each preset runs in its own process (so its peak RSS is its own) through ``ictal.train.trainer.Trainer``: a
noise cache of 60 s windows (written to a temporary folder with the cache API), the balanced sampler, the data
loader, the forward pass under the precision the device gets (``training.mixed_precision: auto``: fp32 on CPU,
bf16 on a bf16 GPU), focal loss, backward, clipping and the AdamW step. Validation is switched off (a no-op
validator) so only training is timed. The rate counts the steps after the first (which includes start-up) up
to the last: windows / wall-clock seconds between the end of step 1 and the end of the last step.

On CPU the ``base`` preset takes about a minute per 60 s window and ~10 GB of memory, so its default is one
window per step and two steps; give ``--base-batch``/``--base-steps`` to change that. With a CUDA device
(``--device auto`` finds it) the same runs happen on the GPU, and peak GPU memory is reported too.

    python benchmarks/train.py [--device auto|cpu|cuda] [--threads 2] [--json out.json]

JSON keys: ``tiny_windows_per_s``, ``tiny_peak_rss_mb``, ``base_windows_per_s``, ``base_peak_rss_mb``, and per
preset ``*_batch``, ``*_steps``, ``*_step_s``, ``*_precision``, ``*_device`` (``*_peak_gpu_mb`` on CUDA).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

SFREQ = 256
RECORDING_MINUTES = 10
SEIZURES_S = ((150.0, 260.0), (400.0, 430.0))  # long and short: full, partial and background windows


def write_noise_cache(root: Path, window_s: float, seed: int = 0) -> None:
    """Two 10 min recordings of z-scored noise with seizure labels, as ``ictal build-cache`` would store them."""
    from ictal.data.cache import CacheParams, init_cache, write_json_atomic, write_npy_atomic
    from ictal.data.config import DataConfig
    from ictal.signal.preprocess import PreprocessConfig

    params = CacheParams.from_configs(PreprocessConfig(), DataConfig(window_s=window_s, stride_s=10))
    init_cache(root, params, root / "no-corpus")
    rng = np.random.default_rng(seed)
    n = RECORDING_MINUTES * 60 * SFREQ
    for i in range(2):
        bname = f"aaaaaaa{'ab'[i]}_s001_t000"
        npy_bytes = write_npy_atomic(root / "train" / f"{bname}.npy", rng.standard_normal((19, n), dtype=np.float32))
        meta = {
            "bname": bname,
            "n_samples": n,
            "sfreq": float(SFREQ),
            "seizure_intervals": [list(iv) for iv in SEIZURES_S],
            "npy_bytes": npy_bytes,
        }
        write_json_atomic(root / "train" / f"{bname}.json", meta)


class NoValidation:
    """Validation switched off: training alone is timed."""

    monitor_name = "none"

    def __call__(self, model: nn.Module, ctx: Any) -> dict[str, float]:
        return {"monitor": 0.0}


def run_preset(preset: str, device: str, batch: int, steps: int, threads: int, window_s: float) -> dict[str, Any]:
    """Train ``steps`` steps of ``preset`` in this process; the figures as a dict."""
    from ictal.config.schema import config_from_dict
    from ictal.train.preflight import peak_rss_mb
    from ictal.train.trainer import StepInfo, TrainCallback, Trainer

    ends: list[float] = []
    windows: list[int] = []

    class Clock(TrainCallback):
        def on_step_end(self, trainer: Trainer, info: StepInfo) -> None:
            if trainer.device.type == "cuda":
                torch.cuda.synchronize(trainer.device)
            ends.append(time.perf_counter())
            windows.append(info.windows)

    with tempfile.TemporaryDirectory(prefix="ictal-bench-train-") as tmp:
        cache = Path(tmp) / "cache"
        write_noise_cache(cache, window_s)
        cfg = config_from_dict(
            {
                "name": f"bench-{preset}",
                "data": {"cache_dir": str(cache), "window_s": window_s, "stride_s": 10},
                "model": {"preset": preset},
                "training": {
                    "batch_size": batch,
                    "epochs": 1,
                    "max_steps_per_epoch": steps + 1,
                    "device": device,
                    "mixed_precision": "auto",
                    "num_threads": threads,
                    "tensorboard": False,
                    "run_dir": str(Path(tmp) / "run"),
                    "log_every_s": 3600,
                },
            }
        )
        trainer = Trainer(cfg, validator=NoValidation(), callbacks=[Clock()], progress=False)
        result = trainer.fit()
    seconds = ends[-1] - ends[0]
    figures: dict[str, Any] = {
        "windows_per_s": sum(windows[1:]) / seconds,
        "peak_rss_mb": peak_rss_mb(),
        "batch": batch,
        "steps": len(ends) - 1,
        "step_s": seconds / (len(ends) - 1),
        "precision": result.precision,
        "device": result.device,
        "window_s": window_s,
        "threads": threads,
    }
    if result.device.startswith("cuda"):
        figures["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
        figures["device_name"] = torch.cuda.get_device_name()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="training.device")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (CPU)")
    parser.add_argument("--window-s", type=float, default=60.0, help="window length in seconds")
    parser.add_argument("--tiny-batch", type=int, default=8)
    parser.add_argument("--tiny-steps", type=int, default=5, help="timed steps after the first")
    parser.add_argument("--base-batch", type=int, default=None, help="default: 1 on CPU, 8 on CUDA")
    parser.add_argument("--base-steps", type=int, default=None, help="default: 1 on CPU, 5 on CUDA")
    parser.add_argument("--presets", default="tiny,base", help="comma-separated presets to run")
    parser.add_argument("--json", type=Path, help="also write the figures as one flat JSON object")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one preset, print its JSON
    args = parser.parse_args()
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    sizes = {
        "tiny": (args.tiny_batch, args.tiny_steps),
        "base": (args.base_batch or (8 if cuda else 1), args.base_steps or (5 if cuda else 1)),
    }
    if args.worker:
        batch, steps = sizes[args.worker]
        print(json.dumps(run_preset(args.worker, args.device, batch, steps, args.threads, args.window_s)))
        return
    figures: dict[str, Any] = {}
    for preset in args.presets.split(","):
        batch, steps = sizes[preset]
        cmd = [sys.executable, __file__, "--worker", preset, *sys.argv[1:]]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.exit(f"{preset} failed:\n{proc.stderr[-4000:]}")
        one = json.loads(proc.stdout.strip().splitlines()[-1])
        figures.update({f"{preset}_{k}": v for k, v in one.items()})
        print(
            f"{preset}: {one['windows_per_s']:.3f} windows/s ({one['step_s']:.2f} s per step of {batch} x "
            f"{one['window_s']:g} s, {one['steps']} timed), peak RSS {one['peak_rss_mb']:.0f} MiB"
            + (f", peak GPU {one['peak_gpu_mb']:.0f} MiB" if "peak_gpu_mb" in one else "")
            + f", {one['precision']} on {one['device']} ({time.perf_counter() - t0:.0f} s in all)",
            flush=True,
        )
    print(json.dumps(figures, indent=2))
    if args.json:
        from ictal.io.atomic import write_text_atomic

        write_text_atomic(args.json, json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
