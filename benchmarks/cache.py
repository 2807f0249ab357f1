"""Cache size, build throughput and random window reads, against the reference system's window cache.

Baseline (what the reference system did): one compressed ``.npz`` per recording holding every 60 s window at a
10 s stride, float32 (``np.savez_compressed``, with per-window labels); reading a window loads its file's array.
Ours: ``ictal.data.cache_build.build_cache`` (one ``(19, T)`` array per recording, stored once, memory-mapped)
and ``ictal.data.windows.WindowDataset`` (windows cut at read time). Both start from the same EDFs and the same
preprocessing (``read_edf`` + ``preprocess``), so the difference is storage and reading alone.

Corpus: a synthetic TUSZ-like corpus of ``--hours`` hours in 5-20 min recordings (TUSZ's mean is 12 min),
generated into a temp folder. Figures: bytes on disk per hour of EEG (target: ours at most 1/5 of the baseline),
build throughput in hours of EEG per second with 1 and 2 workers (best of ``--repeats``), and random window reads
per second from a warm page cache (target: at least 100x the baseline).

    python benchmarks/cache.py [--hours 2.0] [--reads 2000] [--repeats 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from ictal.data.cache import list_cached
from ictal.data.cache_build import build_cache
from ictal.data.config import DataConfig
from ictal.data.corpus import discover_corpus
from ictal.data.windows import WindowDataset
from ictal.io.annotations import intervals_to_mask, read_annotations
from ictal.io.edf import read_edf
from ictal.signal.preprocess import PreprocessConfig, preprocess
from ictal.synthetic.corpus import SyntheticConfig, generate_corpus

WINDOW, STRIDE, FS = 15360, 2560, 256


def folder_bytes(root: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in root.rglob(pattern) if p.is_file())


def flat_corpus(tmp: Path, hours: float, seed: int) -> Path:
    """A synthetic corpus of ``hours`` in 5-20 min recordings, linked into one flat folder (one split, ``all``),
    so each build is one run over every file (as on a real split of thousands)."""
    tusz = tmp / "tusz"
    # The generator's default lengths (5-20 min) match TUSZ's mean recording length (1,476 h / 7,364 files = 12 min).
    generate_corpus(tusz, patients=4, hours=hours, seed=seed, config=SyntheticConfig())
    flat = tmp / "flat"
    flat.mkdir()
    for rec in discover_corpus(tusz).recordings:
        for src in (rec.edf, rec.csv_bi):
            (flat / src.name).symlink_to(src)  # type: ignore[union-attr]
    return flat


def baseline_build(corpus: Path, out: Path) -> tuple[list[Path], float, float]:
    """The reference cache: per recording, every 60 s / 10 s window (float32) and its labels in one ``.npz``.

    Returns (files, hours of EEG, seconds).
    """
    out.mkdir(parents=True)
    files, hours = [], 0.0
    t0 = time.perf_counter()
    for rec in discover_corpus(corpus).recordings:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            eeg = read_edf(rec.edf)
        x = preprocess(eeg.data, eeg.sfreq, PreprocessConfig())  # (19, T) float32
        hours += x.shape[1] / FS / 3600
        if x.shape[1] < WINDOW:
            continue
        mask = intervals_to_mask(read_annotations(rec.csv_bi).seizure_intervals(), x.shape[1], FS)  # type: ignore[arg-type]
        windows = np.lib.stride_tricks.sliding_window_view(x, WINDOW, axis=1)[:, ::STRIDE]  # (19, W, L) view
        windows = np.ascontiguousarray(windows.transpose(1, 0, 2))  # (W, 19, L): every sample stored ~6 times
        labels = np.lib.stride_tricks.sliding_window_view(mask, WINDOW)[::STRIDE].astype(np.float32)
        path = out / f"{rec.bname}.npz"
        np.savez_compressed(path, windows=windows, labels=labels)
        files.append(path)
    return files, hours, time.perf_counter() - t0


def baseline_reads(files: list[Path], n_reads: int, min_seconds: float, seed: int) -> float:
    """Random windows per second, each read by loading its file's array (what the reference loader did)."""
    rng = np.random.default_rng(seed)
    counts = {}
    for f in files:
        with np.load(f) as z:
            counts[f] = int(z["labels"].shape[0])
    t0 = time.perf_counter()
    done = 0
    while done < n_reads or time.perf_counter() - t0 < min_seconds:
        f = files[int(rng.integers(len(files)))]
        k = int(rng.integers(counts[f]))
        with np.load(f) as z:
            x, y = z["windows"][k], z["labels"][k]
        assert x.shape == (19, WINDOW) and y.shape == (WINDOW,)
        done += 1
    return done / (time.perf_counter() - t0)


def our_reads(cache: Path, split_names: list[str], n_reads: int, seed: int) -> float:
    """Random windows per second through WindowDataset.read_window (memory map, slice, labels)."""
    datasets = [WindowDataset(cache, s) for s in split_names]
    rng = np.random.default_rng(seed)
    picks = [(int(d), int(rng.integers(len(datasets[d])))) for d in rng.integers(len(datasets), size=n_reads)]
    for d, i in picks[:50]:  # open the maps once, as a running loader has
        datasets[d].read_window(i)
    t0 = time.perf_counter()
    for d, i in picks:
        x, y, _ = datasets[d].read_window(i)
    assert x.shape == (19, WINDOW) and y.shape == (WINDOW,)
    return n_reads / (time.perf_counter() - t0)


def float16_bytes(cache: Path, split_names: list[str]) -> int:
    """What the same cache takes with ``data.cache_dtype: float16`` (arrays re-saved; sidecars as they are)."""
    total = 0
    for split in split_names:
        for rec in list_cached(cache, split)[0]:
            buf = io.BytesIO()
            np.save(buf, np.asarray(rec.signal()).astype(np.float16))
            total += buf.getbuffer().nbytes + rec.npy.with_suffix(".json").stat().st_size
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=2.0, help="hours of synthetic EEG")
    parser.add_argument("--reads", type=int, default=2000, help="random window reads for ours")
    parser.add_argument("--baseline-reads", type=int, default=8, help="random window reads for the baseline")
    parser.add_argument("--repeats", type=int, default=2, help="builds per worker count; the fastest counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ictal-bench-cache-") as tmp_name:
        tmp = Path(tmp_name)
        corpus = flat_corpus(tmp, args.hours, args.seed)
        splits = list(discover_corpus(corpus).splits())
        data = DataConfig()  # float32, 60 s / 10 s: the defaults

        timings: dict[int, float] = {}
        for repeat in range(args.repeats):
            for workers in (1, 2):
                cache = tmp / f"ours-{workers}-{repeat}"
                t0 = time.perf_counter()
                reports = [build_cache(corpus, cache, s, data=data, workers=workers, progress=False) for s in splits]
                timings[workers] = min(timings.get(workers, np.inf), time.perf_counter() - t0)
                assert all(not r.failed for r in reports), [r.failed for r in reports]
        hours = sum(r.hours for r in reports)
        cache = tmp / "ours-1-0"
        ours_bytes = folder_bytes(cache)
        f16_bytes = float16_bytes(cache, splits)
        base_files, base_hours, base_seconds = baseline_build(corpus, tmp / "baseline")
        assert abs(base_hours - hours) < 1e-6, (base_hours, hours)
        base_bytes = sum(f.stat().st_size for f in base_files)
        reads = our_reads(cache, splits, args.reads, args.seed)
        base_reads = baseline_reads(base_files, args.baseline_reads, 5.0, args.seed)

    result = {
        "hours": round(hours, 4),
        "recordings": sum(r.recordings for r in reports),
        "bytes_per_hour": ours_bytes / hours,
        "baseline_bytes_per_hour": base_bytes / hours,
        "size_ratio": base_bytes / ours_bytes,
        "bytes_per_hour_float16": f16_bytes / hours,
        "size_ratio_float16": base_bytes / f16_bytes,
        "build_h_per_s_1_worker": hours / timings[1],
        "build_h_per_s_2_workers": hours / timings[2],
        "baseline_build_h_per_s": hours / base_seconds,
        "reads_per_s": reads,
        "baseline_reads_per_s": base_reads,
        "read_ratio": reads / base_reads,
    }
    print(f"{hours:.2f} h of synthetic EEG in {result['recordings']} recordings (60 s windows, 10 s stride)")
    print(
        f"bytes per hour: ours {result['bytes_per_hour'] / 1e6:.1f} MB (float16: "
        f"{result['bytes_per_hour_float16'] / 1e6:.1f} MB), baseline {result['baseline_bytes_per_hour'] / 1e6:.1f} MB"
        f" -> {result['size_ratio']:.2f}x smaller (float16: {result['size_ratio_float16']:.2f}x; target >= 5x)"
    )
    print(
        f"build: {result['build_h_per_s_1_worker']:.3f} h/s with 1 worker, {result['build_h_per_s_2_workers']:.3f} "
        f"h/s with 2 (baseline {result['baseline_build_h_per_s']:.3f} h/s, 1 process)"
    )
    print(
        f"random window reads: ours {reads:,.0f}/s, baseline {base_reads:.2f}/s -> {result['read_ratio']:,.0f}x "
        "(target >= 100x)"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
