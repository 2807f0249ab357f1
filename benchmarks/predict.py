"""``predict`` throughput (hours of EEG per second) and peak memory on a long synthetic recording, tiny and base.

A synthetic EDF of ``--hours`` (24 by default) is written to a temporary folder: ``--source-minutes`` of synthetic
EEG with seizures (250 Hz, the 19 channels with TUSZ labels, so resampling to 256 Hz is exercised) repeated to the
length, the EDF data records copied behind a header that states the full length. Each preset then runs in its own
process (so its peak RSS is its own) through the real API: :func:`ictal.infer.predict.predict_recording` (two
chunked passes over the file, 60 s windows every 10 s, stitching, events) and
:func:`~ictal.infer.predict.write_prediction` (``.csv_bi``, ``.tsv``, ``.json``, ``.png``). Weights are random
(speed and memory do not depend on them). Throughput = hours of EEG / wall-clock seconds of those two calls; peak
RSS is the whole process' (Python, torch and the model included).

For scale: holding every 60 s window of a 24 h recording at a 10 s stride, as the reference system did, takes
8,640 x 19 x 15,360 float32 = 10.1 GB; here memory is one chunk (``--chunk-s``) plus one window and one batch.

On a 2-core CPU ``base`` scores a 60 s window in about a second, so 24 h (8,640 windows) takes two to three hours:
give ``--base-hours`` (e.g. 1) to run base on a shorter recording while tiny runs the full ``--hours``, or
``--max-minutes M`` to stop each preset after M minutes and report the part of the 24 h file it reached (marked
partial: the rate over the hours scored so far, the first pass over the whole file included, and the peak RSS
so far). Throughput and memory do not depend on the length: memory is bounded by the chunk, the point of the
design, checked by ``tests/test_chunked_preprocess.py`` / ``tests/test_stream.py`` and by tiny's 24 h figure here.

    python benchmarks/predict.py [--hours 24] [--base-hours 1] [--max-minutes M] [--presets tiny base]
                                 [--chunk-s 300] [--json out.json]

JSON keys: ``base_h_eeg_per_s``, ``base_peak_rss_mb``, ``tiny_h_eeg_per_s``, ``tiny_peak_rss_mb``, ``hours`` (and
``base_hours`` when base ran on a shorter recording, ``<preset>_partial_hours`` for a run stopped by
``--max-minutes``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SFREQ = 250.0
HEADER_RECORDS_FIELD = slice(236, 244)  # "number of data records", 8 ASCII characters


def write_long_edf(path: Path, hours: float, source_minutes: float, seed: int = 0) -> Path:
    """An EDF of ``hours`` (whole seconds) made of ``source_minutes`` of synthetic EEG repeated; returns the path.

    Only the short block is ever in memory: its data records are appended to the file as many times as needed.
    """
    from ictal.io.channels import CANONICAL_19
    from ictal.io.edf_write import write_edf
    from ictal.synthetic.signal import SOURCE_CHANNELS, synthesize_recording

    block_s = max(60, int(round(source_minutes * 60)))
    rec = synthesize_recording(block_s, SFREQ, 2, np.random.default_rng(seed))
    rows = [SOURCE_CHANNELS.index(c) for c in CANONICAL_19]
    block = path.with_name("block.edf")
    write_edf(block, list(rec.data[rows]), SFREQ, [f"EEG {c.upper()}-REF" for c in CANONICAL_19])
    raw = block.read_bytes()
    header_bytes = int(raw[184:192].decode("ascii"))
    header, data = bytearray(raw[:header_bytes]), raw[header_bytes:]
    record_bytes = len(data) // block_s
    n_records = max(1, int(round(hours * 3600)))
    header[HEADER_RECORDS_FIELD] = f"{n_records:<8d}".encode("ascii")
    with path.open("wb") as fh:
        fh.write(header)
        left = n_records
        while left:
            take = min(left, block_s)
            fh.write(data[: take * record_bytes])
            left -= take
    block.unlink()
    return path


class _TimeUp(Exception):
    """Raised from the chunk callback when the preset's ``--max-minutes`` are spent."""


def run_worker(
    preset: str,
    edf: Path,
    out: Path,
    chunk_s: float,
    batch_size: int | None,
    max_minutes: float | None = None,
) -> dict[str, Any]:
    """One preset in this process: predict the recording and write its outputs; timing and peak RSS.

    With ``max_minutes`` the run stops at the first chunk boundary after that long and reports the part done:
    the hours of EEG the scoring pass had reached (the first pass, the z-score statistics over the whole file, is
    in the time too) and the peak RSS so far, marked ``partial``; no outputs are written then."""
    import torch

    from ictal.config.schema import config_from_dict
    from ictal.infer.predict import PredictConfig, predict_recording, resolve_threshold, write_prediction
    from ictal.models.v3 import build_v3

    cfg = config_from_dict({"model": {"preset": preset}})
    torch.manual_seed(0)
    model = build_v3(cfg.model).eval()
    threshold = resolve_threshold(cfg.post)
    predict_cfg = PredictConfig(chunk_s=chunk_s, batch_size=batch_size)
    progress = {"done": 0, "total": 0}
    start = time.perf_counter()

    def on_chunk(done: int, total: int) -> None:
        progress.update(done=done, total=total)
        if max_minutes is not None and time.perf_counter() - start > 60 * max_minutes:
            raise _TimeUp

    figures: dict[str, Any] = {"threads": torch.get_num_threads(), "partial": False}
    try:
        pred = predict_recording(model, edf, cfg, threshold, predict=predict_cfg, device="cpu", on_chunk=on_chunk)
        write_prediction(pred, out, cfg, plot_events=2)
        figures.update(hours=pred.duration_s / 3600.0, n_events=len(pred.events))
    except _TimeUp:
        # Chunks are counted over both passes (statistics, then scoring), the same number in each.
        scored = max(0, progress["done"] - progress["total"] // 2)
        figures.update(hours=scored * chunk_s / 3600.0, n_events=None, partial=True)
    figures["seconds"] = time.perf_counter() - start
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=24.0, help="length of the synthetic recording")
    parser.add_argument(
        "--base-hours", type=float, default=None,
        help="a shorter recording for base only (default: --hours); its memory and rate do not depend on the length",
    )  # fmt: skip
    parser.add_argument("--presets", nargs="+", default=["tiny", "base"], choices=["tiny", "base"])
    parser.add_argument("--source-minutes", type=float, default=10.0, help="synthetic EEG repeated to the length")
    parser.add_argument("--chunk-s", type=float, default=300.0, help="predict's chunk (seconds of EEG per step)")
    parser.add_argument("--batch-size", type=int, default=None, help="windows per forward pass (default: predict's, 8)")
    parser.add_argument(
        "--max-minutes", type=float, default=None,
        help="stop each preset after this long and report the part done (marked partial in the output and JSON)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one preset, print its JSON
    parser.add_argument("--edf", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        figures = run_worker(args.worker, args.edf, args.out, args.chunk_s, args.batch_size, args.max_minutes)
        print(json.dumps(figures))
        return

    results: dict[str, Any] = {"hours": args.hours}
    hours_of = {p: args.hours for p in args.presets}
    if args.base_hours is not None and "base" in hours_of:
        hours_of["base"] = results["base_hours"] = args.base_hours
    with tempfile.TemporaryDirectory(prefix="ictal-predict-bench-") as tmp:
        edfs: dict[float, Path] = {}
        for hours in sorted(set(hours_of.values()), reverse=True):
            edf = write_long_edf(Path(tmp) / f"long{len(edfs)}_s001_t000.edf", hours, args.source_minutes)
            print(f"wrote {hours:g} h synthetic EDF ({edf.stat().st_size / 1e9:.2f} GB) to {edf}", flush=True)
            edfs[hours] = edf
        for preset in args.presets:
            edf = edfs[hours_of[preset]]
            cmd = [sys.executable, __file__, "--worker", preset, "--edf", str(edf), "--out", str(Path(tmp) / preset),
                   "--chunk-s", str(args.chunk_s)]  # fmt: skip
            if args.batch_size is not None:
                cmd += ["--batch-size", str(args.batch_size)]
            if args.max_minutes is not None:
                cmd += ["--max-minutes", str(args.max_minutes)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                sys.exit(f"{preset} failed:\n{proc.stderr[-3000:]}")
            got = json.loads(proc.stdout.strip().splitlines()[-1])
            rate = got["hours"] / got["seconds"]
            results[f"{preset}_h_eeg_per_s"] = rate
            results[f"{preset}_peak_rss_mb"] = got["peak_rss_mb"]
            if got["partial"]:
                results[f"{preset}_partial_hours"] = got["hours"]
            done = (
                f"stopped after --max-minutes at {got['hours']:.2f} of {hours_of[preset]:g} h (partial; no outputs)"
                if got["partial"]
                else f"{got['n_events']} events"
            )
            print(
                f"{preset}: {got['hours']:.2f} h of EEG in {got['seconds']:.1f} s = {rate:.4f} h EEG/s "
                f"({3600 * rate:.0f}x real time; 24 h would take {24 / rate / 60:.1f} min), peak RSS "
                f"{got['peak_rss_mb']:.0f} MB, {done}, {got['threads']} threads",
                flush=True,
            )
    windows_24h = (24 * 3600 - 60) // 10 + 1
    print(
        f"holding all {windows_24h} windows of 24 h (reference approach): {windows_24h * 19 * 15360 * 4 / 1e9:.1f} GB"
    )
    print(json.dumps(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
