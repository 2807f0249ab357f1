"""V3 model speed and memory: seconds per 60 s window, hours of EEG per second, peak memory.

Figures for the ``base`` preset (the full V3 sizes of system.md, real Mamba2 selective scan):

    fwd_b1     forward, batch 1, eval mode, no gradients
    fwd_b8     forward, batch 8
    fwdbwd_b4  forward + backward (sum of the frame logits), batch 4, train mode, with the preset's
               ``model.activation_checkpointing: false``: what keeps peak memory at most half the reference's is
               Mamba2's own recomputation (a training call above ``recompute_above_mb``, 256 MiB by default,
               keeps only its input and recomputes each block of sequences in the backward pass);
               ``--checkpointing`` turns the model-level option on as well (one more forward of every layer)
    tiny_fwdbwd_b8  the same for the ``tiny`` preset (the one the CPU demo trains), seconds per (8, 19, 15360) batch

Every configuration runs in a fresh subprocess, so its peak resident memory (``ru_maxrss``) is its own; each is
timed ``--repeats`` times after one warm-up run and the best run is reported, as wall-clock seconds and as this
process's CPU seconds (``time.process_time``: all its threads), both divided by the batch size. On a machine whose
cores are shared the wall figure includes waiting for them; the load average is printed with the figures.
OpenMP threads keep their default wait policy, as in ``ictal predict`` and ``ictal train``; on a machine whose cores
are shared, ``--omp-passive`` (``OMP_WAIT_POLICY=PASSIVE``) keeps spinning threads from making wall-clock times swing
by several times from run to run, at about 1.4x the idle machine's time for the base forward pass.

``--model KEY=VALUE`` (repeatable) measures a variant of the preset, e.g. ``--model edge.time_pool=4``: the edge
stream's Mamba on similarities averaged over 4 frames (adjacency updated at 4 Hz instead of 16 Hz), which halves
the base forward pass on CPU. The figures name the overrides; the default is the V3 design of system.md.

``--serial-blocks`` also times the three base configurations with ``ICTAL_BLOCK_WORKERS=1``: the Mamba2 layers'
blocks of sequences in the calling thread, as before :mod:`ictal.models.mamba.parallel` shared them among worker
threads; each right after ours, in its own process; ``*_vs_serial_blocks`` is its time over ours.
``--ssd-scan`` likewise times the three base configurations with ``ICTAL_CPU_SCAN=0``: the chunked SSD scan instead
of the numba-compiled recurrence (:mod:`ictal.models.mamba.cpu_scan`), forward and backward; ``*_vs_ssd_scan``.

Hours of EEG per second (``h_eeg_per_s``): 60 s / 3600 divided by the batch-8 forward seconds per window, i.e.
non-overlapping windows; ``h_eeg_per_s_stride10`` is the same for windows at the default 10 s inference stride
(six windows per minute of EEG).

The reference figures printed next to ours are constants published for the reference system's V3 measured on a
machine like this one (2 CPU threads), with its Conv1d stand-in in place of Mamba (cheaper than a real selective
scan): forward 0.61 s per window at batch 1 and 0.78 s per window at batch 4; forward + backward 3.0 s per window
at batch 4 with 6.4 GB peak memory (taken as 6.4e9 bytes). They were not measured by this script. Required of ictal
with the real Mamba at ``base`` sizes: no slower than those figures and at most half the memory; target: at least
3x faster in each; stretch: an hour of EEG in 4 s on 2 CPU cores. The batch-8 forward is compared with the batch-4
reference, the nearest published figure.

With a CUDA device (``--device auto`` finds it) the three base configurations also run on the GPU, with the
mamba_ssm kernels where installed, and report peak GPU memory (``torch.cuda.max_memory_allocated``).

    python benchmarks/model.py [--threads 2] [--repeats 2] [--device auto|cpu|cuda] [--serial-blocks]
                               [--ssd-scan]
                               [--json out.json]

JSON (one flat object): ``fwd_b1_s_per_window``, ``fwd_b8_s_per_window``, ``fwdbwd_b4_s_per_window``,
``h_eeg_per_s``, ``peak_rss_mb`` (MiB, of the forward + backward run), ``mamba_path``, their ratios to the reference
(``*_speedup`` = reference / ours, ``peak_rss_fraction`` = ours / reference), CPU seconds (``*_cpu_s_per_window``),
per-configuration peaks, ``*_machine_probe_s`` (seconds of a fixed one-thread workload before and after each
configuration's timed runs: on a shared machine a slower phase shows there, the code unchanged), the tiny figures
and, with a GPU, the same under ``gpu_``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if "--omp-passive" in sys.argv:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # read by OpenMP when torch loads

import torch  # noqa: E402

from ictal.config.env import BLOCK_WORKERS, CPU_SCAN  # noqa: E402

WINDOW_S = 60
WINDOW_SAMPLES = WINDOW_S * 256
# Published figures of the reference system's V3 (Conv1d stand-in for Mamba), 2 CPU threads.
REFERENCE_FWD_B1_S = 0.61
REFERENCE_FWD_B4_S = 0.78
REFERENCE_FWDBWD_B4_S = 3.0
REFERENCE_PEAK_MB = 6.4e9 / 2**20  # 6.4 GB in MiB
STRETCH_S_PER_HOUR = 4.0  # an hour of EEG in 4 s on 2 CPU cores
TARGET_SPEEDUP = 3.0

# name -> (preset, batch, with backward)
CONFIGS: dict[str, tuple[str, int, bool]] = {
    "fwd_b1": ("base", 1, False),
    "fwd_b8": ("base", 8, False),
    "fwdbwd_b4": ("base", 4, True),
    "tiny_fwdbwd_b8": ("tiny", 8, True),
}
GPU_CONFIGS = ("fwd_b1", "fwd_b8", "fwdbwd_b4")
# Baselines our CPU figures are compared with, each configuration right after ours in its own process (option name:
# environment, what it turns off, the configurations it changes).
BASELINES: dict[str, tuple[dict[str, str], str, tuple[str, ...]]] = {
    "serial_blocks": ({BLOCK_WORKERS.name: "1"}, "blocks in one thread, no workers", GPU_CONFIGS),
    "ssd_scan": ({CPU_SCAN.name: "0"}, "the PyTorch SSD scan, not numba's", GPU_CONFIGS),
}


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def machine_probe_s() -> float:
    """Seconds for a fixed CPU workload like the model's (matrix products and SiLU passes over a block-sized
    activation, one thread, best of 3): taken before and after each configuration's timed runs, so a reader can tell
    a slower phase of a shared machine (same code, larger probe) from a slower configuration."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    x, w = torch.randn(2880, 64, generator=gen), torch.randn(304, 64, generator=gen)
    best = float("inf")
    with torch.inference_mode():
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(30):
                torch.nn.functional.silu(torch.nn.functional.linear(x, w))
            best = min(best, time.perf_counter() - start)
    torch.set_num_threads(threads)
    return best


def model_config(preset: str, model_overrides: list[str], checkpointing: bool | None = None) -> Any:
    """The preset's model section through the config schema, with ``--model KEY=VALUE`` items (base only) on top:
    a misspelt key or a bad value is refused as in a config file (``ConfigError``, ``ValueError``)."""
    from ictal.config.schema import config_from_dict, parse_overrides, with_overrides

    items = model_overrides if preset == "base" else []
    overrides = {f"model.{k}": v for k, v in parse_overrides(items).items()}
    if checkpointing is not None:
        overrides["model.activation_checkpointing"] = checkpointing
    return with_overrides(config_from_dict({"model": {"preset": preset}}), overrides).model


def run_config(
    name: str, device: str, threads: int, repeats: int, checkpointing: bool, model_overrides: list[str]
) -> dict[str, Any]:
    """Time one configuration in this process; its figures as a dict."""
    from ictal.models.mamba.mamba2 import mamba_backend
    from ictal.models.v3 import build_v3

    preset, batch, backward = CONFIGS[name]
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_v3(model_config(preset, model_overrides, checkpointing if backward else None)).to(device)
    x = torch.randn(batch, 19, WINDOW_SAMPLES, device=device)
    model.train(backward)

    def once() -> None:
        if backward:
            model.zero_grad(set_to_none=True)
            model(x).sum().backward()
        else:
            with torch.no_grad():
                model(x)
        if device == "cuda":
            torch.cuda.synchronize()

    def timed() -> tuple[float, float]:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        once()
        return time.perf_counter() - wall0, time.process_time() - cpu0

    first_call_s = timed()[0]  # warm-up
    probe_before = machine_probe_s()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = timed()
        walls.append(wall)
        cpus.append(cpu)
    figures: dict[str, Any] = {
        "s_per_window": min(walls) / batch,
        "cpu_s_per_window": min(cpus) / batch,
        "peak_rss_mb": peak_rss_mb(),
        "mamba_path": mamba_backend(model),
        "first_call_s": first_call_s,
        "machine_probe_s": [probe_before, machine_probe_s()],
    }
    if device == "cuda":
        figures["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return figures


def run_in_subprocess(
    name: str, device: str, args: argparse.Namespace, env: dict[str, str] | None = None
) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", name, "--worker-device", device, "--threads", str(args.threads)]
    cmd += ["--repeats", str(args.repeats)] + (["--checkpointing"] if args.checkpointing else [])
    cmd += ["--omp-passive"] if args.omp_passive else []
    for item in args.model:
        cmd += ["--model", item]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        sys.exit(f"{name} on {device} failed:\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def summarise(results: dict[str, dict[str, Any]], prefix: str = "") -> dict[str, Any]:
    """The flat figures (keys of the issue, ratios, CPU seconds, per-configuration peaks) for one device."""
    fwd_b1, fwd_b8, train = results["fwd_b1"], results["fwd_b8"], results["fwdbwd_b4"]
    out: dict[str, Any] = {
        "fwd_b1_s_per_window": fwd_b1["s_per_window"],
        "fwd_b8_s_per_window": fwd_b8["s_per_window"],
        "fwdbwd_b4_s_per_window": train["s_per_window"],
        "h_eeg_per_s": (WINDOW_S / 3600) / fwd_b8["s_per_window"],
        "h_eeg_per_s_stride10": (10 / 3600) / fwd_b8["s_per_window"],
        "s_per_hour_eeg": 3600 / WINDOW_S * fwd_b8["s_per_window"],
        "peak_rss_mb": train["peak_rss_mb"],
        "mamba_path": (
            train["mamba_path"]
            if fwd_b1["mamba_path"] == train["mamba_path"]
            else f"{fwd_b1['mamba_path']} (forward), {train['mamba_path']} (forward + backward)"
        ),
        "fwd_b1_speedup": REFERENCE_FWD_B1_S / fwd_b1["s_per_window"],
        "fwd_b8_speedup": REFERENCE_FWD_B4_S / fwd_b8["s_per_window"],
        "fwdbwd_b4_speedup": REFERENCE_FWDBWD_B4_S / train["s_per_window"],
        "peak_rss_fraction": train["peak_rss_mb"] / REFERENCE_PEAK_MB,
    }
    for name, one in results.items():
        out[f"{name}_cpu_s_per_window"] = one["cpu_s_per_window"]
        out[f"{name}_machine_probe_s"] = one["machine_probe_s"]
        out[f"{name}_peak_rss_mb"] = one["peak_rss_mb"]
        if "peak_gpu_mb" in one:
            out[f"{name}_peak_gpu_mb"] = one["peak_gpu_mb"]
    if "tiny_fwdbwd_b8" in results:
        tiny = results["tiny_fwdbwd_b8"]
        out["tiny_fwdbwd_b8_s_per_batch"] = tiny["s_per_window"] * CONFIGS["tiny_fwdbwd_b8"][1]
        out["tiny_fwdbwd_b8_cpu_s_per_batch"] = tiny["cpu_s_per_window"] * CONFIGS["tiny_fwdbwd_b8"][1]
    speedups = [out["fwd_b1_speedup"], out["fwd_b8_speedup"], out["fwdbwd_b4_speedup"]]
    out["meets_required"] = min(speedups) >= 1.0 and out["peak_rss_fraction"] <= 0.5
    out["meets_target"] = min(speedups) >= TARGET_SPEEDUP and out["peak_rss_fraction"] <= 0.5
    out["meets_stretch"] = out["s_per_hour_eeg"] <= STRETCH_S_PER_HOUR
    return {prefix + k: v for k, v in out.items()}


def report(figures: dict[str, Any], prefix: str, where: str) -> None:
    f = {k.removeprefix(prefix): v for k, v in figures.items() if k.startswith(prefix)}
    print(f"\n{where}, V3 base, mamba path: {f['mamba_path']}")
    rows = [
        ("forward, batch 1", "fwd_b1", REFERENCE_FWD_B1_S, "b1"),
        ("forward, batch 8", "fwd_b8", REFERENCE_FWD_B4_S, "b4"),
        ("fwd+bwd, batch 4", "fwdbwd_b4", REFERENCE_FWDBWD_B4_S, "b4"),
    ]
    for label, name, ref, ref_batch in rows:
        wall, cpu = f[f"{name}_s_per_window"], f[f"{name}_cpu_s_per_window"]
        probe = "/".join(f"{1e3 * t:.0f}" for t in f[f"{name}_machine_probe_s"])
        print(f"  {label}: {wall:7.3f} s/window wall ({cpu:.3f} s CPU) | reference {ref:.2f} ({ref_batch}): "
              f"{ref / wall:5.2f}x faster | machine probe {probe} ms")  # fmt: skip
    peak = f["peak_rss_mb"]
    print(f"  peak memory, fwd+bwd batch 4: {peak:.0f} MiB | reference {REFERENCE_PEAK_MB:.0f} MiB (6.4 GB): "
          f"{peak / REFERENCE_PEAK_MB:.2f} of it")  # fmt: skip
    if "fwdbwd_b4_peak_gpu_mb" in f:
        print(f"  peak GPU memory, fwd+bwd batch 4: {f['fwdbwd_b4_peak_gpu_mb']:.0f} MiB")
    print(f"  hours of EEG per second (batch 8, non-overlapping 60 s windows): {f['h_eeg_per_s']:.4f} "
          f"({f['s_per_hour_eeg']:.1f} s per hour; stretch {STRETCH_S_PER_HOUR:g} s); at a 10 s stride: "
          f"{f['h_eeg_per_s_stride10']:.4f}")  # fmt: skip
    if "tiny_fwdbwd_b8_s_per_batch" in f:
        print(f"  tiny preset fwd+bwd per (8, 19, 15360) batch: {f['tiny_fwdbwd_b8_s_per_batch']:.3f} s wall "
              f"({f['tiny_fwdbwd_b8_cpu_s_per_batch']:.3f} s CPU)")  # fmt: skip
    print("  machine probe: a fixed workload (machine_probe_s) before / after each configuration's timed runs;")
    print("  larger means a slower phase of the machine, not of the code")
    print(f"  required (no slower, at most half the memory): {'met' if f['meets_required'] else 'NOT met'}; "
          f"target (3x faster in each): {'met' if f['meets_target'] else 'not met'}; "
          f"stretch: {'met' if f['meets_stretch'] else 'not met'}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="cpu only, or cpu + cuda")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per configuration (best reported)")
    parser.add_argument(
        "--checkpointing", action="store_true",
        help="forward + backward with model.activation_checkpointing: true (less memory, one more forward)",
    )  # fmt: skip
    for key, (env, what, _) in BASELINES.items():
        setting = ", ".join(f"{k}={v}" for k, v in env.items())
        parser.add_argument(
            f"--{key.replace('_', '-')}", action="store_true",
            help=f"also time the CPU configurations with {setting} ({what}), each right after ours",
        )  # fmt: skip
    parser.add_argument("--gpu-only", action="store_true", help="skip the CPU figures (with a CUDA device)")
    parser.add_argument("--omp-passive", action="store_true", help="OMP_WAIT_POLICY=PASSIVE (shared, loaded cores)")
    parser.add_argument(
        "--model", action="append", default=[], metavar="KEY=VALUE",
        help="override a key of the base preset, e.g. edge.time_pool=4 (repeatable; the default is system.md's V3)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the figures as one flat JSON object")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one configuration, print its JSON
    parser.add_argument("--worker-device", default="cpu", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        one = run_config(args.worker, args.worker_device, args.threads, args.repeats, args.checkpointing, args.model)
        print(json.dumps(one))
        return

    from ictal.errors import ConfigError

    try:  # refuse a bad --model item here, not once per worker
        model_config("base", args.model)
    except (ConfigError, ValueError) as exc:
        parser.error(f"--model: {exc}")
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if args.gpu_only and not cuda:
        sys.exit("--gpu-only needs a CUDA device")
    load_before = os.getloadavg()[0]
    names = list(CONFIGS)
    cpu: dict[str, dict[str, Any]] = {}
    baselines = [key for key in BASELINES if getattr(args, key)]
    against: dict[tuple[str, str], dict[str, Any]] = {}  # (baseline, configuration) -> figures
    for name in [] if args.gpu_only else names:
        cpu[name] = run_in_subprocess(name, "cpu", args)
        for key in baselines:  # right after ours: the two see the same machine
            if name in BASELINES[key][2]:
                against[key, name] = run_in_subprocess(name, "cpu", args, env=BASELINES[key][0])
    figures: dict[str, Any] = {
        "threads": args.threads,
        "activation_checkpointing": args.checkpointing,
        "model_overrides": args.model,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "load_avg_1min_before": load_before,
        "load_avg_1min_after": os.getloadavg()[0],
        "cpu_count": os.cpu_count(),
        **(summarise(cpu) if cpu else {}),
    }
    for (key, name), one in against.items():
        figures[f"{key}_{name}_s_per_window"] = one["s_per_window"]
        figures[f"{key}_{name}_peak_rss_mb"] = one["peak_rss_mb"]
        figures[f"{name}_vs_{key}"] = one["s_per_window"] / cpu[name]["s_per_window"]
    if cuda:
        gpu = {name: run_in_subprocess(name, "cuda", args) for name in GPU_CONFIGS}
        figures.update(summarise(gpu, prefix="gpu_"))
        figures["gpu_name"] = torch.cuda.get_device_name()
    variant = f" with {', '.join(args.model)}" if args.model else ""
    print(
        f"V3 base{variant}, 60 s windows (19 x 15360 samples), {args.threads} CPU threads, best of {args.repeats} "
        "runs after "
        f"a warm-up, each configuration in its own process; forward + backward "
        f"{'with' if args.checkpointing else 'without'} model.activation_checkpointing (Mamba2 recomputes its "
        "blocks in the backward pass above recompute_above_mb, 256 MiB). 1-minute load average "
        f"{figures['load_avg_1min_before']:.1f} before, {figures['load_avg_1min_after']:.1f} after, on "
        f"{figures['cpu_count']} cores. Reference figures: published constants of the reference system's V3 "
        "(Conv1d stand-in for Mamba) on a machine like this one, 2 threads; not measured here."
    )
    if cpu:
        report(figures, "", "CPU")
    for (key, name), one in against.items():
        env, what, _ = BASELINES[key]
        ours, theirs = cpu[name]["s_per_window"], one["s_per_window"]
        setting = ", ".join(f"{k}={v}" for k, v in env.items())
        print(f"  {name} with {setting} ({what}), run right after ours: {theirs:.3f} s/window, peak "
              f"{one['peak_rss_mb']:.0f} MiB; ours {theirs / ours:.2f}x as fast")  # fmt: skip
    if cuda:
        report(figures, "gpu_", f"GPU ({figures['gpu_name']})")
    if args.json:
        from ictal.io.atomic import write_text_atomic

        write_text_atomic(args.json, json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
