"""Read + preprocess throughput, in hours of EEG per CPU-second, against the reference system's chain.

Baseline (what the reference system did): MNE read, ``scipy.signal.resample`` (FFT) to 256 Hz, causal ``lfilter``
band-pass and notch, z-score. Ours: ``ictal.io.edf.read_edf`` + ``ictal.signal.preprocess.preprocess``
(polyphase resampling, one SOS cascade, in-place z-score and clip).

Both run on the same 1 h, 250 Hz, 23-channel EDFs in one process: a round length (3,600 s) and an awkward one
(3,593 s, where FFT resampling is slow). CPU time is process time (all threads), best of ``--repeats``.

    python benchmarks/preprocess.py [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import signal as sps

from ictal.io.channels import CANONICAL_19
from ictal.io.edf import read_edf
from ictal.signal.preprocess import preprocess

FS = 250
EXTRA = ("EKG1", "EMG", "PHOTIC", "IBI")  # 19 EEG + 4 others = 23 channels


def write_test_edf(path: Path, seconds: int, seed: int = 0) -> None:
    """A 250 Hz, 23-channel EDF of ``seconds`` length with TUSZ-style labels (µV noise plus a 10 Hz rhythm)."""
    import edfio

    rng = np.random.default_rng(seed)
    t = np.arange(seconds * FS) / FS
    signals = []
    for name in CANONICAL_19 + EXTRA:
        x = rng.standard_normal(t.size) * 20 + 15 * np.sin(2 * np.pi * 10 * t)
        label = f"EEG {name.upper()}-REF"
        signals.append(
            edfio.EdfSignal(x, sampling_frequency=FS, label=label, physical_dimension="uV", physical_range=(-1e3, 1e3))
        )
    edfio.Edf(signals).write(path)


def baseline(path: Path) -> np.ndarray:
    """The reference system's chain: MNE read, FFT resample, causal lfilter band-pass + notch, z-score."""
    import mne

    raw = mne.io.read_raw_edf(path, preload=True, verbose="error")
    picks = [f"EEG {c.upper()}-REF" for c in CANONICAL_19]
    data = raw.get_data(picks=picks) * 1e6
    n_out = int(round(data.shape[1] * 256 / raw.info["sfreq"]))
    data = sps.resample(data, n_out, axis=1)
    b, a = sps.butter(3, [0.5, 120], btype="bandpass", fs=256)
    data = sps.lfilter(b, a, data, axis=1)
    b, a = sps.iirnotch(60, 30, fs=256)
    data = sps.lfilter(b, a, data, axis=1)
    data = (data - data.mean(axis=1, keepdims=True)) / (data.std(axis=1, keepdims=True) + 1e-8)
    return data.astype(np.float32)


def ours(path: Path) -> np.ndarray:
    rec = read_edf(path)
    return preprocess(rec.data, rec.sfreq)


def best_cpu_seconds(fn: Callable[[Path], np.ndarray], path: Path, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        fn(path)
        best = min(best, time.process_time() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="write the figures as a flat JSON object")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, seconds in (("round", 3600), ("awkward", 3593)):
            path = Path(tmp) / f"{name}.edf"
            write_test_edf(path, seconds)
            hours = seconds / 3600
            ref_s = best_cpu_seconds(baseline, path, args.repeats)
            our_s = best_cpu_seconds(ours, path, args.repeats)
            figures[f"{name}_h_per_s"] = round(hours / our_s, 3)
            figures[f"{name}_baseline_h_per_s"] = round(hours / ref_s, 3)
            figures[f"{name}_ratio"] = round(ref_s / our_s, 2)
            print(
                f"{name:8s} {seconds} s: ours {hours / our_s:6.2f} h/CPU-s ({our_s:.3f} s)   "
                f"baseline {hours / ref_s:6.2f} h/CPU-s ({ref_s:.3f} s)   ratio {ref_s / our_s:5.1f}x"
            )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
