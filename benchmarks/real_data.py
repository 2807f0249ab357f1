"""Patient-wise cross-validation on real EEG: does a config beat line length on patients it has never seen?

On a TUSZ-layout corpus (``../shared/data/siena_real`` by default: 10 patients), each fold holds some patients out as
**test** patients (never trained on, never used to choose the checkpoint), others as **dev** patients (they choose
the checkpoint), and trains on the rest, for a fixed budget, with the config given. It prints the test frame AUROC
(per 16 Hz frame, pooled over the test recordings) of the model and of line length on the same frames, per fold and
seed, then the mean and spread over all runs. Frame AUROC is the figure on such data: seizure-dense recordings make
event figures saturate (see the corpus' README).

Folds: the patients, sorted, are cut into ``--folds`` groups; fold ``k`` tests group ``k`` and chooses the
checkpoint on group ``k + 1``. ``--quick`` runs the first fold with one seed, for iterating; the figure that counts
is the full run (every fold, two seeds or more).

    python benchmarks/real_data.py [--corpus DIR] [--config configs/X.yaml] [--folds 5] [--seeds 0 1]
                                   [--minutes 3] [--quick] [--json out.json]

The config's ``model``, ``training``, ``preprocess`` and ``post`` sections are used (defaults: the ``tiny`` preset
and the demo's training settings, notch 50 Hz for Siena's Italian mains); its data paths are replaced per fold.
Each fold's corpus is made of symbolic links to the corpus' files, and its cache is built afresh (small corpora).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ictal.config.schema import IctalConfig, config_from_dict, load_config, with_overrides
from ictal.data.cache import CacheParams
from ictal.data.cache_build import build_cache
from ictal.data.corpus import discover_corpus
from ictal.infer.evaluate import evaluate_split, split_traces
from ictal.train.trainer import Trainer

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "siena_real"
DEFAULT_CONFIG: dict[str, Any] = {
    "preprocess": {"notch_hz": 50},
    "model": {"preset": "tiny"},
    "training": {"batch_size": 8, "learning_rate": 1e-3, "mixed_precision": "no", "epochs": 20, "device": "cpu",
                 "tensorboard": False},
}  # fmt: skip


def patients_of(corpus: Path) -> dict[str, list[Path]]:
    """Every patient's files (EDF and annotations), by patient id, from all the corpus' splits."""
    found: dict[str, list[Path]] = {}
    for rec in discover_corpus(corpus).recordings:
        files = [rec.edf, *(p for p in (rec.csv_bi, rec.csv) if p is not None)]
        found.setdefault(str(rec.patient), []).extend(files)
    return dict(sorted(found.items()))


def fold_corpus(root: Path, corpus: Path, groups: dict[str, list[str]], files: dict[str, list[Path]]) -> Path:
    """A TUSZ-layout corpus under ``root`` whose splits hold the given patients (links to the original files)."""
    for split, patients in groups.items():
        for patient in patients:
            for source in files[patient]:
                relative = source.relative_to(corpus)
                target = root / split / Path(*relative.parts[1:])  # the split folder replaced
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(source.resolve())
    return root


def folds(patients: list[str], n_folds: int) -> list[dict[str, list[str]]]:
    """``{"train", "dev", "eval"}`` patient groups of each fold: eval = group k, dev = group k + 1."""
    groups = [patients[i::n_folds] for i in range(n_folds)]
    out = []
    for k in range(n_folds):
        test, dev = groups[k], groups[(k + 1) % n_folds]
        out.append({"train": [p for p in patients if p not in test and p not in dev], "dev": dev, "eval": test})
    return out


def run_fold(base: IctalConfig, corpus: Path, fold: dict[str, list[str]], files: dict[str, list[Path]],
             seed: int, minutes: float, work: Path) -> dict[str, Any]:  # fmt: skip
    """Train on the fold's train patients, choose the checkpoint on its dev patients, score its test patients."""
    data_dir = fold_corpus(work / "corpus", corpus, fold, files)
    cache = work / "cache"
    cfg = with_overrides(base, {"data.data_dir": str(data_dir), "data.cache_dir": str(cache), "training.seed": seed,
                                "training.run_dir": str(work / "run"), "training.max_minutes": minutes})  # fmt: skip
    for split in fold:
        build_cache(data_dir, cache, split, preprocess=cfg.preprocess, data=cfg.data, progress=False)
    t0 = time.perf_counter()
    result = Trainer(cfg).fit()
    train_s = time.perf_counter() - t0
    from ictal.models.checkpoint import load_model

    model, ck_cfg, _ = load_model(result.best_checkpoint or result.last_checkpoint)
    expect = CacheParams.from_configs(ck_cfg.preprocess, ck_cfg.data)
    kw = {"window_s": ck_cfg.data.window_s, "stride_s": ck_cfg.data.stride_s, "expect": expect}
    test = evaluate_split(split_traces(cache, "eval", model=model, **kw), ck_cfg.post, allow_choose_on_this_split=True)
    ll = evaluate_split(split_traces(cache, "eval", detector="line_length", **kw), ck_cfg.post,
                        allow_choose_on_this_split=True)  # fmt: skip
    return {
        "test_patients": fold["eval"],
        "dev_patients": fold["dev"],
        "seed": seed,
        "model_auroc": test.metrics["auroc"],
        "line_length_auroc": ll.metrics["auroc"],
        "steps": result.steps,
        "train_seconds": round(train_s, 1),
    }


def summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    model = [r["model_auroc"] for r in runs]
    line = [r["line_length_auroc"] for r in runs]
    diffs = [m - lv for m, lv in zip(model, line, strict=True)]

    def spread(xs: list[float]) -> float:
        return statistics.stdev(xs) if len(xs) > 1 else math.nan

    return {
        "model_auroc_mean": statistics.fmean(model),
        "model_auroc_sd": spread(model),
        "line_length_auroc_mean": statistics.fmean(line),
        "margin_mean": statistics.fmean(diffs),
        "margin_sd": spread(diffs),
        "runs": len(runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--config", type=Path, default=None, help="YAML config (model, training, preprocess, post)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--minutes", type=float, default=3.0, help="training budget per run (wall clock)")
    parser.add_argument("--quick", action="store_true", help="the first fold, the first seed")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not args.corpus.is_dir():
        sys.exit(f"{args.corpus}: no corpus there (the shared folder beside the repository, or give --corpus)")
    base = load_config(args.config, check_paths=False) if args.config else config_from_dict(DEFAULT_CONFIG)
    files = patients_of(args.corpus)
    all_folds = folds(list(files), args.folds)
    chosen, seeds = (all_folds[:1], args.seeds[:1]) if args.quick else (all_folds, args.seeds)
    print(f"{args.corpus}: {len(files)} patients, {len(chosen)} fold(s) x {len(seeds)} seed(s), "
          f"{args.minutes:g} min of training each; config {args.config or 'default (tiny)'}")  # fmt: skip
    runs = []
    for k, fold in enumerate(chosen):
        for seed in seeds:
            with tempfile.TemporaryDirectory(prefix="ictal-real-") as tmp:
                run = run_fold(base, args.corpus, fold, files, seed, args.minutes, Path(tmp))
            run["fold"] = k
            runs.append(run)
            print(f"fold {k} seed {seed}: test {','.join(run['test_patients'])}: model frame AUROC "
                  f"{run['model_auroc']:.3f}, line length {run['line_length_auroc']:.3f} "
                  f"(margin {run['model_auroc'] - run['line_length_auroc']:+.3f}); {run['steps']} steps in "
                  f"{run['train_seconds']:.0f} s", flush=True)  # fmt: skip
    s = summary(runs)
    print(
        f"test frame AUROC over {s['runs']} run(s): model {s['model_auroc_mean']:.3f} "
        f"(sd {s['model_auroc_sd']:.3f}), line length {s['line_length_auroc_mean']:.3f}; "
        f"margin {s['margin_mean']:+.3f} (sd {s['margin_sd']:.3f})"
    )
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "summary": s, "quick": args.quick}, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
