"""``build-cache``: preprocess every recording of a split once, in parallel, resumably, reporting failures.

Each recording is read (:func:`ictal.io.edf.read_edf`), preprocessed (:func:`ictal.signal.preprocess.preprocess`),
labelled from its ``.csv_bi`` (or the union of its ``.csv`` seizure rows) and written as described in
:mod:`ictal.data.cache`. A recording whose ``.json`` is complete and whose sources are unchanged (EDF size, hash
of the label file, same relative path) is skipped, so a rerun after an interruption only does the rest. A file
that fails (unreadable EDF, bad annotation, ...) is reported with its reason and the others are built.

``shard=(i, n)`` builds files ``i, i+n, i+2n, ...`` of the split's sorted list, so ``n`` machines (a SLURM array:
``--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT`` with ``--array=0-(n-1)``) can build one cache together.

>>> report = build_cache("/data/tusz", "/cache/tusz", "train", workers=8)
>>> report.built, report.skipped, [f["file"] for f in report.failed]
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ictal.data.cache import (
    REPORT_FILE,
    CacheError,
    CacheParams,
    file_sha1,
    init_cache,
    list_cached,
    read_recording,
    recording_json_path,
    remove_dead_tmp_files,
    write_npy_atomic,
)
from ictal.data.config import DataConfig
from ictal.data.corpus import CorpusError, RecordingFiles, select_split
from ictal.data.manifest import WindowTable, write_manifest
from ictal.errors import DiskFullError, IctalError
from ictal.frames import SAMPLE_RATE
from ictal.io.edf_header import read_edf_header
from ictal.io.json_files import write_json_atomic
from ictal.signal.preprocess import PreprocessConfig

log = logging.getLogger("ictal.data")


@dataclass
class BuildReport:
    """What one ``build_cache`` run did, and the state of the split afterwards.

    ``failed`` holds ``{"file": relative EDF path, "reason": message}``; ``hours``, ``seizure_hours`` and the
    window counts cover every good recording of the split in the cache (built now or before).
    """

    split: str
    cache_dir: Path
    shard: tuple[int, int]
    total: int = 0
    built: int = 0
    skipped: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    built_hours: float = 0.0
    hours: float = 0.0
    seizure_hours: float = 0.0
    recordings: int = 0
    window_counts: dict[str, int] = field(default_factory=dict)
    seizure_ratio: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def report_path(self) -> Path:
        i, n = self.shard
        name = REPORT_FILE if n == 1 else f"build_report.shard-{i}-of-{n}.json"
        return self.cache_dir / self.split / name

    def to_json(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "shard": f"{self.shard[0]}/{self.shard[1]}",
            "files_in_run": self.total,
            "built": self.built,
            "skipped": self.skipped,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "built_hours": self.built_hours,
            "split_recordings": self.recordings,
            "split_hours": self.hours,
            "split_seizure_hours": self.seizure_hours,
            "window_counts": self.window_counts,
            "seizure_ratio": self.seizure_ratio,
            "problems": self.problems,
        }


def _source_fingerprint(rec: RecordingFiles, label_source: str) -> dict[str, Any]:
    """What must be unchanged for a cached recording to be reused: where it came from, EDF size, label hash."""
    labels = rec.labels(label_source)  # type: ignore[arg-type]
    return {
        "source": rec.rel,
        "source_bytes": rec.edf.stat().st_size,
        "labels": labels.relative_to(rec.edf.parent).as_posix() if labels else None,
        "labels_sha1": file_sha1(labels) if labels else None,
    }


def is_built(rec: RecordingFiles, out_dir: Path, params: CacheParams) -> bool:
    """True when ``rec`` is complete in ``out_dir`` and its sources have not changed since."""
    json_path = recording_json_path(out_dir.parent, out_dir.name, rec.bname)
    if not json_path.is_file():
        return False
    cached, _ = read_recording(json_path)
    if cached is None:
        return False
    try:
        now = _source_fingerprint(rec, params.label_source)
    except OSError:
        return False
    return all(cached.meta.get(k) == v for k, v in now.items())


def build_recording(rec: RecordingFiles, out_dir: Path, params: CacheParams) -> dict[str, Any]:
    """Read, preprocess, label and store one recording; returns its ``.json`` contents.

    Runs in a worker process. Raises :class:`~ictal.errors.IctalError` (or any exception) for a file that
    cannot be built; the caller reports it and goes on.
    """
    from ictal.io.annotations import read_annotations
    from ictal.io.edf import read_edf
    from ictal.signal.preprocess import preprocess

    labels = rec.labels(params.label_source)  # type: ignore[arg-type]
    if labels is None:
        raise CorpusError(
            f"{rec.edf}: no {rec.bname}.{params.label_source} beside it; add it, or set data.label_source to the "
            "annotation type the corpus has"
        )
    fingerprint = _source_fingerprint(rec, params.label_source)
    ann = read_annotations(labels)
    with warnings.catch_warnings():
        # Repairs and reconstructions are recorded in the .json; one warning per file would flood the screen.
        warnings.simplefilter("ignore")
        eeg = read_edf(rec.edf)
    pre = PreprocessConfig(**params.preprocess)
    x = preprocess(eeg.data, eeg.sfreq, pre)  # (19, T) float32 z-units at 256 Hz
    del eeg.data
    stored = x.astype(params.dtype, copy=False)
    n_samples = int(stored.shape[1])
    duration = n_samples / pre.target_sfreq
    intervals = [(max(0.0, a), min(b, duration)) for a, b in ann.seizure_intervals() if a < duration]
    intervals = [(round(a, 6), round(b, 6)) for a, b in intervals if b > a]
    json_path = recording_json_path(out_dir.parent, out_dir.name, rec.bname)
    # A rebuild (source changed) first retires the old marker: until the new .json lands, the entry is not good.
    json_path.unlink(missing_ok=True)
    npy_bytes = write_npy_atomic(out_dir / f"{rec.bname}.npy", stored)
    meta: dict[str, Any] = {
        "bname": rec.bname,
        "patient": rec.patient,
        "session": rec.session,
        "token": rec.token,
        "montage": rec.montage or eeg.meta.montage,
        **fingerprint,
        "source_sfreq": float(eeg.sfreq),
        "sfreq": float(pre.target_sfreq),
        "n_samples": n_samples,
        "duration_s": duration,
        "annotation_duration_s": float(ann.duration),
        "seizure_intervals": [list(iv) for iv in intervals],
        "seizure_s": float(sum(b - a for a, b in intervals)),
        "dtype": params.dtype,
        "shape": [int(s) for s in stored.shape],
        "channels": list(eeg.channel_names),
        "reconstructed": list(eeg.reconstructed),
        "repairs": list(eeg.meta.repairs),
        "warnings": list(eeg.meta.warnings),
        "npy_bytes": npy_bytes,
    }
    # The .json is the completion marker: renamed last, after the .npy is in place.
    write_json_atomic(json_path, meta, sort_keys=True)
    return meta


class Built(NamedTuple):
    """One file's result: hours built, or why it failed; ``disk_full`` stops the build (not a file's fault)."""

    rel: str
    hours: float
    reason: str | None
    disk_full: bool = False


def cached_bytes(recordings: Sequence[RecordingFiles], params: CacheParams) -> int:
    """What caching ``recordings`` takes on disk, from their EDF headers: 256 Hz x channels x the dtype's bytes."""
    per_second = SAMPLE_RATE * len(params.channels) * np.dtype(params.dtype).itemsize
    total = 0.0
    for rec in recordings:
        try:
            total += read_edf_header(rec.edf).duration_s * per_second
        except IctalError:
            continue  # an unreadable file will fail on its own
    return int(total)


def _build_one(rec: RecordingFiles, out_dir: Path, params: CacheParams) -> Built:
    """Worker entry: the file's :class:`Built` result."""
    try:
        meta = build_recording(rec, out_dir, params)
    except DiskFullError as exc:
        return Built(rec.rel, 0.0, str(exc), disk_full=True)
    except IctalError as exc:
        return Built(rec.rel, 0.0, str(exc))
    except MemoryError:
        return Built(rec.rel, 0.0, f"{rec.edf}: out of memory while preprocessing; build it with fewer --workers")
    except Exception as exc:  # noqa: BLE001 - any file-specific failure is reported and the build goes on
        return Built(rec.rel, 0.0, f"{rec.edf}: {type(exc).__name__}: {exc}")
    return Built(rec.rel, meta["duration_s"] / 3600.0, None)


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 <= i < n; a clear ValueError otherwise."""
    try:
        i_text, n_text = text.split("/")
        i, n = int(i_text), int(n_text)
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected i/n with whole numbers, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {text!r}: need 0 <= i < n (shards are numbered from 0, e.g. 0/4 ... 3/4)")
    return i, n


def _progress(enabled: bool) -> Any:
    from rich.progress import TextColumn

    from ictal.progress import progress_bar

    return progress_bar(TextColumn("{task.fields[rate]}"), enabled=enabled)


_POOL_DIED = (
    "{edf}: not built, a worker process died (killed, out of memory?); rerun build-cache to resume, "
    "with fewer --workers if memory is short"
)


#: How often a worker checks that the process that started it is still there (seconds).
PARENT_POLL_S = 0.5


def exit_with_parent(parent_pid: int) -> None:
    """Worker initializer: end this worker when its parent dies (``kill -9`` of build-cache leaves no orphan
    preprocessing files for nobody). A daemon thread watches the parent id, which changes when it is gone."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _iter_results(todo: list[RecordingFiles], out_dir: Path, params: CacheParams, workers: int) -> Iterator[Built]:
    """Build ``todo``, yielding each file's result as it finishes; in-process for one worker. After a full disk
    no further file is started (the ones in flight finish)."""
    if workers <= 1:
        for rec in todo:
            result = _build_one(rec, out_dir, params)
            yield result
            if result.disk_full:
                return
        return
    # Largest files first, so the pool does not finish waiting on one long recording.
    todo = sorted(todo, key=lambda r: -r.edf.stat().st_size)
    # Default start method on purpose: forcing spawn or fork breaks one platform or the other.
    pool = ProcessPoolExecutor(max_workers=workers, initializer=exit_with_parent, initargs=(os.getpid(),))
    broken = disk_full = False
    try:
        pending: dict[Future[Built], RecordingFiles] = {}
        queue = iter(todo)
        # A bounded number in flight: results come back in time for the progress bar and memory stays flat.
        for rec in queue:
            pending[pool.submit(_build_one, rec, out_dir, params)] = rec
            if len(pending) >= 2 * workers:
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                rec = pending.pop(fut)
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    broken = True
                    yield Built(rec.rel, 0.0, _POOL_DIED.format(edf=rec.edf))
                    continue
                yield result
                disk_full = disk_full or result.disk_full
                nxt = None if broken or disk_full else next(queue, None)
                if nxt is not None:
                    pending[pool.submit(_build_one, nxt, out_dir, params)] = nxt
        # A dead pool takes the files not yet started with it: report them rather than drop them. After a full
        # disk they are simply not started (the build's summary says how many are left).
        for rec in [] if disk_full else queue:
            yield Built(rec.rel, 0.0, _POOL_DIED.format(edf=rec.edf))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def build_cache(
    data_dir: str | Path,
    cache_dir: str | Path,
    split: str,
    *,
    preprocess: PreprocessConfig | None = None,
    data: DataConfig | None = None,
    workers: int = 1,
    shard: tuple[int, int] = (0, 1),
    limit_files: int | None = None,
    progress: bool = True,
) -> BuildReport:
    """Build (or resume) the cache of ``split`` of the corpus at ``data_dir`` into ``cache_dir``.

    Args:
        data_dir: TUSZ root or flat folder of EDFs (see :mod:`ictal.data.corpus`).
        cache_dir: the cache root; created when absent, checked against this run's parameters when present.
        split: ``train``/``dev``/``eval`` (``all`` for a flat folder).
        preprocess, data: the configs whose values the cache records (defaults: the reference system's).
        workers: processes building files in parallel (1: in this process).
        shard: ``(i, n)``: build only files ``i::n`` of the split's sorted list.
        limit_files: build at most this many files (after sharding); for smoke runs.
        progress: show a progress bar.

    Raises:
        SplitLeakageError: a patient is in two splits (checked over the whole corpus).
        CacheMismatchError: the cache was built with other parameters.
        CacheError, CorpusError: unusable folders (message says what to do).
    """
    data = data or DataConfig()
    params = CacheParams.from_configs(preprocess, data)
    data_root, cache_root = Path(data_dir), Path(cache_dir)
    if data_root.resolve() == cache_root.resolve() or data_root.resolve() in cache_root.resolve().parents:
        raise CacheError(f"--cache-dir {cache_root} is inside --data-dir {data_root}: keep the cache apart")
    corpus, recordings = select_split(data_root, split, data.split_policy)
    i, n = shard
    mine = recordings[i::n]
    if limit_files is not None:
        mine = mine[: max(0, limit_files)]
    init_cache(cache_root, params, corpus.root)
    out_dir = cache_root / split
    out_dir.mkdir(parents=True, exist_ok=True)
    removed = remove_dead_tmp_files(out_dir)
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted build", len(removed))

    report = BuildReport(split=split, cache_dir=cache_root, shard=shard, total=len(mine))
    t0 = time.perf_counter()
    todo = [r for r in mine if not is_built(r, out_dir, params)]
    report.skipped = len(mine) - len(todo)
    bar = _progress(progress)
    with bar:
        task = bar.add_task(f"build-cache {split}", total=len(todo), rate="")
        disk_full: Built | None = None
        for result in _iter_results(todo, out_dir, params, workers):
            if result.disk_full:
                disk_full = disk_full or result
            elif result.reason is None:
                report.built += 1
                report.built_hours += result.hours
            else:
                report.failed.append({"file": result.rel, "reason": result.reason})
                bar.console.print(f"[red]failed[/red] {result.rel}: {result.reason}", highlight=False, markup=True)
            elapsed = time.perf_counter() - t0
            bar.update(task, advance=1, rate=f"{report.built_hours / max(elapsed, 1e-9):.2f} h EEG/s")
    report.seconds = time.perf_counter() - t0
    if disk_full is not None:
        left = [r for r in todo if not is_built(r, out_dir, params)]
        raise CacheError(
            f"{out_dir}: the disk is full: {report.built} recording(s) built now, {len(left)} left to build, about "
            f"{cached_bytes(left, params) / 1e9:,.2f} GB more (the first failure: {disk_full.reason}). Free space on "
            "that device, or point --cache-dir at a larger one, then run the same command again: it resumes"
        )
    summarise_split(report, data)
    write_json_atomic(report.report_path, report.to_json(), sort_keys=True)
    return report


def summarise_split(report: BuildReport, data: DataConfig) -> None:
    """Fill ``report``'s split totals (hours, windows per category, seizure ratio) and rewrite the manifest."""
    good, problems = list_cached(report.cache_dir, report.split)
    table = WindowTable.from_recordings(good, data.window_s, data.stride_s)
    write_manifest(report.cache_dir / report.split, table)
    report.recordings = len(good)
    report.hours = float(sum(r.duration_s for r in good) / 3600.0)
    report.seizure_hours = float(sum(r.seizure_s for r in good) / 3600.0)
    report.window_counts = table.counts()
    report.seizure_ratio = table.seizure_ratio()
    report.problems = problems


def format_report(report: BuildReport) -> list[str]:
    """The on-screen summary of a build, one line each."""
    c = report.window_counts
    lines = [
        f"build-cache {report.split} (shard {report.shard[0]}/{report.shard[1]}): "
        f"{report.built} built, {report.skipped} skipped, {len(report.failed)} failed "
        f"of {report.total} file(s) in {report.seconds:.1f} s",
        f"  split now: {report.recordings} recording(s), {report.hours:.2f} h of EEG, "
        f"{report.seizure_hours:.2f} h of seizure",
        f"  windows: none {c.get('none', 0):,}, partial {c.get('partial', 0):,}, full {c.get('full', 0):,}; "
        f"Seizure ratio: {100 * report.seizure_ratio:.1f}%",
    ]
    for fail in report.failed:
        lines.append(f"  FAILED {fail['file']}: {fail['reason']}")
    if report.failed:
        lines.append(f"  failures are listed in {report.report_path}; fix or remove those files and rerun to resume")
    return lines


__all__ = [
    "BuildReport",
    "build_cache",
    "build_recording",
    "format_report",
    "is_built",
    "parse_shard",
    "summarise_split",
]
