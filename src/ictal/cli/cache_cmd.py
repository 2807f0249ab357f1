"""``ictal build-cache``, ``scan-cache`` and ``clean-cache``: the preprocessed cache.

Thin wrappers over :mod:`ictal.data.cache_build`, :mod:`ictal.data.manifest` and :mod:`ictal.data.cache`.
Settings come from the explicit options, then ``--config`` (its ``preprocess`` and ``data`` sections), then the
defaults. Exit codes: 0 done, 1 refused (bad folder, split leakage, parameter mismatch, aborted), 2 no seizure
window (scan-cache).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ictal.cli.common import fail, load_config_or_exit
from ictal.errors import IctalError
from ictal.io.atomic import check_writable

if TYPE_CHECKING:
    from ictal.data.config import DataConfig
    from ictal.signal.preprocess import PreprocessConfig

DATA_DIR = typer.Option(None, "--data-dir", help="TUSZ root (train/ dev/ eval/) or a folder of EDFs")
CACHE_DIR = typer.Option(None, "--cache-dir", help="cache root (data.cache_dir)")
CONFIG = typer.Option(None, "--config", help="YAML config: its preprocess and data sections are used")


def _load(config: Path | None) -> tuple[PreprocessConfig, DataConfig]:
    """(PreprocessConfig, DataConfig) from ``--config`` or the defaults."""
    from ictal.data.config import DataConfig
    from ictal.signal.preprocess import PreprocessConfig

    if config is None:
        return PreprocessConfig(), DataConfig()
    cfg = load_config_or_exit(config, check_paths=False)
    return cfg.preprocess, cfg.data


def build_cache_command(
    data_dir: Path | None = DATA_DIR,
    cache_dir: Path | None = CACHE_DIR,
    split: str = typer.Option(..., "--split", help="train, dev or eval (all for a flat folder of EDFs)"),
    workers: int = typer.Option(1, "--workers", min=1, help="files built in parallel (processes)"),
    shard: str = typer.Option("0/1", "--shard", help="i/n: build files i, i+n, ... (0 <= i < n), for job arrays"),
    limit_files: int | None = typer.Option(None, "--limit-files", min=0, help="build at most K files (smoke runs)"),
    config: Path | None = CONFIG,
    strict: bool = typer.Option(False, "--strict", help="exit 1 when any file failed"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar"),
) -> None:
    """Preprocess each recording once into a memory-mappable cache; resumable, parallel, shardable."""
    from ictal.data.cache_build import build_cache, format_report, parse_shard

    pre, data = _load(config)
    data_dir = data_dir or data.data_dir
    cache_dir = cache_dir or data.cache_dir
    if data_dir is None or cache_dir is None:
        typer.echo("error: give --data-dir and --cache-dir (or data.data_dir / data.cache_dir in --config)", err=True)
        raise typer.Exit(1)
    try:
        shard_ix = parse_shard(shard)
        check_writable(cache_dir, "--cache-dir (data.cache_dir)")
    except (ValueError, IctalError) as exc:
        raise fail(exc) from None
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        report = build_cache(
            data_dir,
            cache_dir,
            split,
            preprocess=pre,
            data=data,
            workers=workers,
            shard=shard_ix,
            limit_files=limit_files,
            progress=progress,
        )
    except IctalError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        typer.echo("interrupted: finished recordings are kept; run the same command again to resume", err=True)
        raise typer.Exit(130) from None
    for line in format_report(report):
        typer.echo(line)
    if report.problems:
        typer.echo(f"  {len(report.problems)} problem(s) in the split folder; `ictal scan-cache` lists them")
    if strict and report.failed:
        raise typer.Exit(1)


def scan_cache_command(
    cache_dir: Path | None = CACHE_DIR,
    split: list[str] | None = typer.Option(None, "--split", help="split(s) to scan; default all in the cache"),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="corpus to check for missing/stale files (default: the one the cache was built from)"
    ),
    window_s: float | None = typer.Option(None, "--window-s", help="window length (default: the cache's)"),
    stride_s: float | None = typer.Option(None, "--stride-s", help="window stride (default: the cache's)"),
    config: Path | None = CONFIG,
    show: int = typer.Option(20, "--show", help="list at most this many missing/stale/problem files per split"),
) -> None:
    """Rewrite the manifest, print windows per category and the seizure ratio; exit 2 without seizure windows."""
    from ictal.data.cache import CacheParams, check_cache
    from ictal.data.manifest import scan_cache

    pre, data = _load(config)
    cache_dir = cache_dir or data.cache_dir
    if cache_dir is None:
        raise fail("give --cache-dir (or data.cache_dir in --config)")
    if config is not None:
        window_s = window_s if window_s is not None else data.window_s
        stride_s = stride_s if stride_s is not None else data.stride_s
    try:
        if config is not None:
            check_cache(cache_dir, CacheParams.from_configs(pre, data))
        scans = scan_cache(cache_dir, split, window_s=window_s, stride_s=stride_s, data_dir=data_dir)
    except IctalError as exc:
        raise fail(exc) from None
    if not scans:
        raise fail(f"{cache_dir}: no split folders; run `ictal build-cache` first")
    empty = []
    for scan in scans:
        c = scan.table.counts()
        w, s = scan.table.window / scan.table.sfreq, scan.table.stride / scan.table.sfreq
        typer.echo(
            f"{scan.split}: {len(scan.table.recordings)} recording(s), {scan.hours:.2f} h, "
            f"{scan.seizure_hours:.2f} h seizure; {len(scan.table):,} windows of {w:g} s / {s:g} s"
        )
        typer.echo(f"  none {c['none']:,}  partial {c['partial']:,}  full {c['full']:,}")
        typer.echo(f"  Seizure ratio: {100 * scan.table.seizure_ratio():.1f}%")
        typer.echo(f"  manifest: {scan.manifest}")
        for title, items in (("missing (in the corpus, not cached)", scan.missing), ("stale", scan.stale),
                             ("problems", scan.problems)):  # fmt: skip
            if items:
                typer.echo(f"  {title}: {len(items)}")
                for item in items[:show]:
                    typer.echo(f"    {item}")
                if len(items) > show:
                    typer.echo(f"    ... and {len(items) - show} more")
        if scan.missing or scan.stale:
            typer.echo(f"  rerun `ictal build-cache --split {scan.split} ...` to build the missing and stale files")
        if c["partial"] + c["full"] == 0:
            empty.append(scan.split)
    if empty:
        typer.echo(
            f"error: no seizure window (partial and full both 0) in {', '.join(empty)}: training would see no seizure."
            " Check data.label_source and the annotation files, and that the split has seizures",
            err=True,
        )
        raise typer.Exit(2)


def clean_cache_command(
    cache_dir: Path = typer.Option(..., "--cache-dir", help="cache root to remove"),
    split: str | None = typer.Option(None, "--split", help="remove only this split's folder"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
) -> None:
    """Remove a cache (or one split of it) after showing what will go; refuses a folder that is not a cache."""
    from ictal.data.cache import CACHE_FILE, plan_removal

    try:
        plan = plan_removal(cache_dir, split)
    except IctalError as exc:
        raise fail(exc) from None
    typer.echo(f"Will remove from {cache_dir}:")
    for folder, files in plan.folders:
        typer.echo(f"  {folder.name}/: {len(files)} file(s), {sum(p.stat().st_size for p in files) / 1e9:.3f} GB")
    if plan.whole_cache:
        typer.echo(f"  {CACHE_FILE} (and the folder itself when nothing else is left)")
    typer.echo(f"  total {plan.n_bytes / 1e9:.3f} GB")
    if not yes and not typer.confirm("Remove?", default=False):
        typer.echo("aborted; nothing removed")
        raise typer.Exit(1)
    plan.carry_out()
    typer.echo("removed")


def register(app: typer.Typer) -> None:
    app.command("build-cache")(build_cache_command)
    app.command("scan-cache")(scan_cache_command)
    app.command("clean-cache")(clean_cache_command)
