"""The demo: the whole chain on a generated synthetic corpus, on CPU (``make demo``).

Stages so far: generate the corpus, read and preprocess every recording into the cache (train, dev, eval),
and print a summary table. Every stage calls the same Python API as the CLI.

    python -m ictal.demo --out demo-out [--patients 10 --hours 5 --seed 0 --workers 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ictal.data.cache_build import BuildReport, build_cache, format_report
from ictal.data.config import DataConfig
from ictal.data.synthetic import CorpusSummary, generate_corpus, is_synthetic_corpus, read_corpus_summary
from ictal.signal.preprocess import PreprocessConfig

SPLITS = ("train", "dev", "eval")


@dataclass
class DemoRun:
    """Where the demo writes and what each stage took."""

    out: Path
    patients: int
    hours: float
    seed: int
    workers: int
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def corpus_dir(self) -> Path:
        return self.out / "corpus"

    @property
    def cache_dir(self) -> Path:
        return self.out / "cache"


def stage_corpus(run: DemoRun, console: Console) -> CorpusSummary:
    """Generate the synthetic corpus, or reuse one made with the same settings."""
    t0 = time.perf_counter()
    if is_synthetic_corpus(run.corpus_dir):
        old = read_corpus_summary(run.corpus_dir)
        if (old.config.patients, old.config.hours, old.config.seed) == (run.patients, run.hours, run.seed):
            console.print(f"corpus: reusing {run.corpus_dir} ({len(old.files)} recordings, seed {run.seed})")
            run.timings["corpus"] = time.perf_counter() - t0
            return old
    summary = generate_corpus(
        run.corpus_dir, patients=run.patients, hours=run.hours, seed=run.seed, workers=run.workers
    )
    run.timings["corpus"] = time.perf_counter() - t0
    console.print(
        f"corpus: {len(summary.files)} recordings, {summary.hours:.2f} h, {summary.n_seizures} seizures "
        f"in {run.timings['corpus']:.1f} s -> {run.corpus_dir}"
    )
    return summary


def stage_cache(run: DemoRun, console: Console) -> dict[str, BuildReport]:
    """Read every EDF (channel mapping, header repair, Fz/Pz reconstruction) and preprocess it into the cache."""
    t0 = time.perf_counter()
    reports = {}
    for split in SPLITS:
        report = build_cache(
            run.corpus_dir,
            run.cache_dir,
            split,
            preprocess=PreprocessConfig(),
            data=DataConfig(),
            workers=run.workers,
            progress=console.is_terminal,
        )
        for line in format_report(report):
            console.print(line, highlight=False, markup=False)
        reports[split] = report
    run.timings["cache"] = time.perf_counter() - t0
    return reports


def summary_table(run: DemoRun, reports: dict[str, BuildReport]) -> Table:
    table = Table(title=f"ictal demo: synthetic corpus read and preprocessed ({run.out})")
    for name in ("split", "recordings", "hours", "seizure h", "failed", "none", "partial", "full", "seizure ratio"):
        table.add_column(name, justify="left" if name == "split" else "right")
    for split, r in reports.items():
        c = r.window_counts
        table.add_row(
            split,
            str(r.recordings),
            f"{r.hours:.2f}",
            f"{r.seizure_hours:.3f}",
            str(len(r.failed)),
            f"{c.get('none', 0):,}",
            f"{c.get('partial', 0):,}",
            f"{c.get('full', 0):,}",
            f"{100 * r.seizure_ratio:.1f}%",
        )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ictal.demo", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo-out"))
    parser.add_argument("--patients", type=int, default=10)
    parser.add_argument("--hours", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args(argv)
    # Logs and CI are not terminals: give tables room instead of rich's 80-column default.
    console = Console() if sys.stdout.isatty() else Console(width=120)
    run = DemoRun(args.out, args.patients, args.hours, args.seed, args.workers)
    run.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    stage_corpus(run, console)
    reports = stage_cache(run, console)
    console.print(summary_table(run, reports))
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in run.timings.items())
    console.print(f"demo finished in {time.perf_counter() - started:.1f} s ({stages}); outputs in {run.out}/")
    failed = sum(len(r.failed) for r in reports.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
