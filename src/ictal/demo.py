"""The demo: the whole chain on a generated synthetic corpus, on CPU (``make demo``).

Stages: generate the corpus; read and preprocess every recording into the cache (train, dev, eval); train the
``tiny`` V3 preset for a fixed number of steps (a wall-clock budget stops a slow machine early), keeping the
checkpoint best on dev events; evaluate on dev (thresholds chosen there)
and on eval with the dev thresholds; the same for the line-length baseline; print the headline numbers. Every
stage calls the same Python API as the CLI.

    ictal demo --out demo-out [--patients 24 --hours 12 --seed 0 --workers 2 --train-steps 400
                              --train-minutes 8 --set training.loss=bce ...]
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ictal.config.schema import IctalConfig, config_from_dict
from ictal.data.cache_build import BuildReport, build_cache, format_report
from ictal.data.config import DataConfig
from ictal.infer.evaluate import (
    EvaluationResult,
    evaluate_split,
    headline,
    split_traces,
    write_evaluation,
    write_plots,
)
from ictal.signal.preprocess import PreprocessConfig
from ictal.synthetic.corpus import CorpusSummary, generate_corpus, is_synthetic_corpus, read_corpus_summary

SPLITS = ("train", "dev", "eval")


@dataclass
class DemoRun:
    """Where the demo writes and what each stage took."""

    out: Path
    patients: int
    hours: float
    seed: int
    workers: int
    train_minutes: float = 8.0
    train_steps: int = 400
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def corpus_dir(self) -> Path:
        return self.out / "corpus"

    @property
    def cache_dir(self) -> Path:
        return self.out / "cache"

    @property
    def run_dir(self) -> Path:
        return self.out / "run"

    def config(self) -> IctalConfig:
        """The run's config: the smoke preset's choices, pointed at this demo's folders."""
        return config_from_dict(
            {
                "name": "demo",
                "data": {"data_dir": str(self.corpus_dir), "cache_dir": str(self.cache_dir), "num_workers": 0},
                "model": {"preset": "tiny"},
                "training": {
                    "batch_size": 8,
                    "learning_rate": 3e-3,
                    "epochs": 100,
                    # The schedule spans max_steps (warm-up, then a cosine to 0), which fit in the time budget on
                    # 2 cores; the budget stops a slower machine's run early instead.
                    "max_steps": self.train_steps,
                    "max_minutes": self.train_minutes,
                    "early_stopping_patience": 100,
                    "mixed_precision": "no",
                    "device": "cpu",
                    "run_dir": str(self.run_dir),
                },
            },
            "demo",
        )


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


def stage_train(run: DemoRun, cfg: IctalConfig, console: Console) -> Path:
    """Train ``tiny`` within the time budget, validating on dev events; returns the best checkpoint."""
    from ictal.train.event_validation import EventValidator
    from ictal.train.trainer import train

    t0 = time.perf_counter()
    if run.run_dir.exists():  # the demo's own folder: every demo trains afresh, within the same budget
        shutil.rmtree(run.run_dir)
    result = train(cfg, run_dir=run.run_dir, validator=EventValidator(cfg))
    run.timings["train"] = time.perf_counter() - t0
    best = result.best_checkpoint or result.last_checkpoint
    console.print(
        f"train: {result.steps} steps, stopped by {result.stopped}; best {result.monitor_name} "
        f"{result.best_monitor:.3f} -> {best}"
    )
    return best


def stage_evaluate(run: DemoRun, cfg: IctalConfig, checkpoint: Path, console: Console) -> dict[str, EvaluationResult]:
    """Model and line-length baseline: thresholds chosen on dev, applied unchanged to eval."""
    from ictal.models.checkpoint import load_model

    t0 = time.perf_counter()
    model, checkpoint_cfg, meta = load_model(checkpoint, "cpu")
    results: dict[str, EvaluationResult] = {}
    for detector in ("model", "line_length"):
        thresholds = None
        for split in ("dev", "eval"):
            traces = split_traces(
                run.cache_dir, split, model=model if detector == "model" else None, detector=detector,
                window_s=cfg.data.window_s, stride_s=cfg.data.stride_s,
            )  # fmt: skip
            result = evaluate_split(traces, cfg.post, cfg.szcore, thresholds=thresholds, thresholds_chosen_on="dev")
            thresholds = result.thresholds
            results[f"{detector}/{split}"] = result
    for split in ("dev", "eval"):
        model_result, ll = results[f"model/{split}"], results[f"line_length/{split}"]
        extra = {f"line_length_{k}": v for k, v in ll.metrics.items() if "_at_" in k or k in ("auroc", "ece")}
        write_evaluation(model_result, run.out / split, cfg=checkpoint_cfg, checkpoint_meta=meta, extra=extra)
        write_plots(model_result, run.out / split)
        write_evaluation(ll, run.out / "line_length" / split)
    run.timings["evaluate"] = time.perf_counter() - t0
    return results


def stage_predict(run: DemoRun, cfg: IctalConfig, checkpoint: Path, console: Console) -> Path:
    """``predict`` on one eval recording (the EDF as a user would have it), at the dev 10 FA/24h threshold."""
    from ictal.infer.predict import find_recordings, predict_files, resolve_threshold
    from ictal.models.checkpoint import load_model

    t0 = time.perf_counter()
    model, _cfg, meta = load_model(checkpoint, "cpu")
    edfs, _bad = find_recordings([run.corpus_dir / "eval"])
    # A recording with seizures and a clean header: the corpus' deliberate header quirks would make the demo's one
    # prediction open with a repair warning, which reads as a fault (the reader's handling of them is tested).
    files = read_corpus_summary(run.corpus_dir).files
    ranked = [{f.stem for f in files if f.seizures and not f.quirks}, {f.stem for f in files if f.seizures}]
    edf = next((p for names in ranked for p in edfs if p.stem in names), edfs[0])
    threshold = resolve_threshold(cfg.post, run.out / "dev" / "results.json", 10.0)
    out = run.out / "predict"
    result = predict_files(model, cfg, [edf], out, threshold, checkpoint_meta=meta)
    if result.failed:
        raise RuntimeError(f"predict failed on {edf}: {result.failed[0]}")
    done = result.done[0]
    run.timings["predict"] = time.perf_counter() - t0
    console.print(
        f"predict: {edf.name}: {done.n_events} event(s) -> {', '.join(str(p) for p in done.outputs.values())}"
    )
    return out


def stage_report(run: DemoRun, console: Console) -> Path:
    """The self-contained HTML report of the eval results."""
    from ictal.report.html import write_report

    t0 = time.perf_counter()
    path = write_report(run.out / "eval", run.out / "report.html")
    run.timings["report"] = time.perf_counter() - t0
    console.print(f"report: {path}")
    return path


def headline_table(results: dict[str, EvaluationResult]) -> Table:
    """Synthetic eval: each scorer at 10 FA/24h, model against line length, thresholds from dev."""
    table = Table(title="Synthetic eval at 10 FA/24h (thresholds chosen on dev, applied unchanged)")
    for col in ("scorer / label SEIZ / aggregation", "V3 tiny sens %", "FA/24h", "line length sens %", "FA/24h "):
        table.add_column(col, justify="left" if col.startswith("scorer") else "right")
    model_rows = [r for r in headline(results["model/eval"].metrics) if r[1] == "10"]
    ll_rows = [r for r in headline(results["line_length/eval"].metrics) if r[1] == "10"]
    for m, ll in zip(model_rows, ll_rows, strict=True):
        table.add_row(m[0], m[2], m[3], ll[2], ll[3])
    return table


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


#: The demo's corpus: 24 patients / 12 h give dev and eval ~2.4 h and ~10 seizures each, so 10 FA/24h allows one
#: false alarm and 90 % sensitivity does not hinge on one seizure.
DEFAULT_PATIENTS = 24
DEFAULT_HOURS = 12.0


def run_demo(
    out: Path = Path("demo-out"),
    *,
    patients: int = DEFAULT_PATIENTS,
    hours: float = DEFAULT_HOURS,
    seed: int = 0,
    workers: int | None = None,
    train_minutes: float = 8.0,
    train_steps: int = 400,
    overrides: dict[str, object] | None = None,
    console: Console | None = None,
) -> int:
    """The whole chain on a synthetic corpus in ``out``; returns 0, or 1 when a recording failed to cache.

    Args:
        overrides: config keys of the run (``{"training.loss": "bce"}``), as ``--set`` gives them.
    """
    # Training logs its start-up (sampler, Seizure ratio), heartbeats and validations through logging.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    # Logs and CI are not terminals: give tables room instead of rich's 80-column default.
    console = console or (Console() if sys.stdout.isatty() else Console(width=120))
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    run = DemoRun(Path(out), patients, hours, seed, workers, train_minutes, train_steps)
    run.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    stage_corpus(run, console)
    reports = stage_cache(run, console)
    console.print(summary_table(run, reports))
    failed = sum(len(r.failed) for r in reports.values())
    from ictal.config.schema import with_overrides

    cfg = with_overrides(run.config(), overrides) if overrides else run.config()
    checkpoint = stage_train(run, cfg, console)
    results = stage_evaluate(run, cfg, checkpoint, console)
    stage_predict(run, cfg, checkpoint, console)
    report = stage_report(run, console)
    console.print(headline_table(results))
    m, ll = results["model/eval"].metrics, results["line_length/eval"].metrics
    console.print(
        f"headline (synthetic eval, thresholds from dev): NEDC OVLP sensitivity at 10 FA/24h "
        f"{100 * m['ovlp_sensitivity_at_10fa']:.1f}% (line length {100 * ll['ovlp_sensitivity_at_10fa']:.1f}%), "
        f"SzCORE event sensitivity {100 * m['szcore_sensitivity_at_10fa']:.1f}%; "
        f"results in {run.out / 'eval' / 'results.json'}; report {report}"
    )
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in run.timings.items())
    console.print(f"demo finished in {time.perf_counter() - started:.1f} s ({stages}); outputs in {run.out}/")
    return 1 if failed else 0


if __name__ == "__main__":  # ``python -m ictal.demo ...`` is ``ictal demo ...``
    from ictal.cli.main import app

    app(["demo", *sys.argv[1:]], prog_name="ictal")
