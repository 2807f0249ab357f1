"""The preprocessed cache on disk: layout, build parameters, and reading finished recordings back.

Layout (one array per recording, stored once; windows are cut when read, see :mod:`ictal.data.windows`)::

    <cache>/cache.json                      parameters the cache was built with (format version, preprocessing,
                                            label source and set, dtype, channels, window of the manifest)
    <cache>/<split>/<bname>.npy             (19, T) float32 or float16 z-units at 256 Hz, np.load(mmap_mode='r')
    <cache>/<split>/<bname>.json            seizure intervals (s), duration, source, montage, repairs, ...
    <cache>/<split>/manifest.csv            every window: seizure fraction and category (``ictal scan-cache``)
    <cache>/<split>/build_report.json       what the last build did: built / skipped / failed (name, reason)

Completion protocol: the ``.npy`` and then the ``.json`` are each written to a temporary file in the same folder
and renamed into place; the ``.json`` is renamed last and records the ``.npy``'s size in bytes, so a recording is
taken as good only when its ``.json`` exists and matches the ``.npy`` beside it. A build killed at any moment
leaves at worst a temporary file (ignored, removed by the next build) or an ``.npy`` without its ``.json``
(rebuilt by the next build).

>>> params = CacheParams.from_configs(PreprocessConfig(), DataConfig())
>>> check_cache(cache_dir, params)                  # raises CacheMismatchError saying how to rebuild
>>> good, problems = list_cached("/cache", "train")
>>> x = good[0].signal()                            # (19, T) memory-mapped, no copy
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ictal.data.config import DataConfig
from ictal.errors import IctalError
from ictal.io.annotations import SEIZURE_LABELS
from ictal.io.atomic import write_atomic
from ictal.io.channels import CANONICAL_19
from ictal.io.json_files import jsonable, write_json_atomic
from ictal.signal.preprocess import PreprocessConfig

#: Bumped whenever the on-disk layout or the meaning of a stored value changes.
FORMAT_VERSION = 1
CACHE_FILE = "cache.json"
MANIFEST_FILE = "manifest.csv"
REPORT_FILE = "build_report.json"
#: Temporary files of a process that is gone are removed after this long even from another host.
STALE_TMP_S = 6 * 3600


class CacheError(IctalError):
    """A cache folder that cannot be used as it is (missing, not a cache, unreadable)."""


class CacheMismatchError(CacheError):
    """The cache was built with other parameters than this run asks for."""

    def __init__(self, cache_dir: Path, differences: list[str]) -> None:
        self.cache_dir = cache_dir
        self.differences = differences
        super().__init__(
            f"{cache_dir} was built with other parameters than this run uses:\n  "
            + "\n  ".join(differences)
            + f"\nIt is not reused. Rebuild it: `ictal clean-cache --cache-dir {cache_dir} --yes` then "
            "`ictal build-cache ...` with the same config, or point data.cache_dir (build-cache: --cache-dir) at a "
            "new folder."
        )


@dataclass(frozen=True)
class CacheParams:
    """What a cache was built with. Everything but ``window_s``/``stride_s`` changes the stored arrays or labels.

    ``window_s``/``stride_s`` are the window of the manifest written at build time; windows are cut at read time,
    so a run with another window reuses the arrays (its manifest is re-derived), it does not need a rebuild.
    """

    format_version: int
    preprocess: dict[str, Any]
    label_source: str
    seizure_labels: tuple[str, ...]
    dtype: str
    channels: tuple[str, ...]
    window_s: float
    stride_s: float

    #: Keys that, when different, make the stored data unusable for this run.
    DATA_KEYS = ("format_version", "preprocess", "label_source", "seizure_labels", "dtype", "channels")

    @classmethod
    def from_configs(cls, preprocess: PreprocessConfig | None = None, data: DataConfig | None = None) -> CacheParams:
        pre = preprocess or PreprocessConfig()
        dat = data or DataConfig()
        return cls(
            format_version=FORMAT_VERSION,
            preprocess=jsonable(dataclasses.asdict(pre)),
            label_source=dat.label_source,
            seizure_labels=tuple(sorted(SEIZURE_LABELS)),
            dtype=dat.cache_dtype,
            channels=tuple(CANONICAL_19),
            window_s=float(dat.window_s),
            stride_s=float(dat.stride_s),
        )

    @property
    def sfreq(self) -> float:
        return float(self.preprocess["target_sfreq"])

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["seizure_labels"] = list(self.seizure_labels)
        out["channels"] = list(self.channels)
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any], source: Path) -> CacheParams:
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(names - set(raw))
        if missing:
            raise CacheError(
                f"{source}: missing key(s) {', '.join(missing)}; written by another version of ictal? "
                f"Rebuild the cache (`ictal clean-cache --cache-dir {source.parent} --yes`, then build-cache)"
            )
        return cls(
            format_version=int(raw["format_version"]),
            preprocess=dict(raw["preprocess"]),
            label_source=str(raw["label_source"]),
            seizure_labels=tuple(raw["seizure_labels"]),
            dtype=str(raw["dtype"]),
            channels=tuple(raw["channels"]),
            window_s=float(raw["window_s"]),
            stride_s=float(raw["stride_s"]),
        )

    def data_differences(self, wanted: CacheParams) -> list[str]:
        """One line per stored-data parameter where ``self`` (the cache) differs from ``wanted`` (this run)."""
        lines = []
        for key in self.DATA_KEYS:
            have, want = getattr(self, key), getattr(wanted, key)
            if key == "preprocess":
                for sub in sorted(set(have) | set(want)):
                    if have.get(sub) != want.get(sub):
                        lines.append(f"preprocess.{sub}: cache has {have.get(sub)!r}, this run wants {want.get(sub)!r}")
            elif have != want:
                name = {"dtype": "data.cache_dtype", "label_source": "data.label_source"}.get(key, key)
                lines.append(f"{name}: cache has {_short(have)}, this run wants {_short(want)}")
        return lines


def _short(value: Any) -> str:
    text = repr(list(value) if isinstance(value, tuple) else value)
    return text if len(text) < 120 else text[:117] + "..."


# --------------------------------------------------------------------------------------------- atomic files


def write_npy_atomic(path: Path, array: np.ndarray) -> int:
    """Save ``array`` as ``.npy`` atomically; returns the file size in bytes."""
    write_atomic(path, lambda fh: np.save(fh, array, allow_pickle=False), size_hint=array.nbytes)
    return path.stat().st_size


def file_sha1(path: Path) -> str:
    """SHA-1 of a (small) file's bytes: label files are hashed to notice a changed annotation."""
    return hashlib.sha1(path.read_bytes()).hexdigest()


def tmp_files(folder: Path) -> list[Path]:
    """Temporary files left in ``folder`` by writers (live or dead)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp"))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead_tmp_files(folder: Path) -> list[Path]:
    """Remove temporary files whose writer is gone: same host and pid not running, or older than STALE_TMP_S.

    A live writer's files are left alone (several shards may build into the same folder at once).
    """
    removed = []
    host = socket.gethostname()
    now = time.time()
    for tmp in tmp_files(folder):
        owner = tmp.name.rsplit(".", 3)
        dead = False
        if len(owner) == 4 and "-" in owner[1]:
            owner_host, _, pid = owner[1].rpartition("-")
            dead = owner_host == host and pid.isdigit() and not _pid_alive(int(pid))
        try:
            dead = dead or now - tmp.stat().st_mtime > STALE_TMP_S
            if dead:
                tmp.unlink()
                removed.append(tmp)
        except FileNotFoundError:
            continue
    return removed


# --------------------------------------------------------------------------------------------- cache root


def is_cache(folder: str | Path) -> bool:
    """True when ``folder`` holds a ``cache.json`` written by ``build-cache``."""
    return (Path(folder) / CACHE_FILE).is_file()


def read_cache_info(cache_dir: str | Path) -> dict[str, Any]:
    """The whole ``cache.json`` (``params``, ``data_dir``, ``created``)."""
    path = Path(cache_dir) / CACHE_FILE
    if not path.is_file():
        raise CacheError(
            f"{cache_dir}: not a cache (no {CACHE_FILE}); build one with "
            f"`ictal build-cache --data-dir DATA --cache-dir {cache_dir} --split train`"
        )
    try:
        info: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CacheError(f"{path}: unreadable ({exc}); delete the cache folder and rebuild it") from None
    if not isinstance(info, dict) or "params" not in info:
        raise CacheError(f"{path}: no 'params' section; delete the cache folder and rebuild it")
    return info


def read_cache_params(cache_dir: str | Path) -> CacheParams:
    path = Path(cache_dir) / CACHE_FILE
    return CacheParams.from_json(read_cache_info(cache_dir)["params"], path)


def check_cache(cache_dir: str | Path, wanted: CacheParams) -> CacheParams:
    """The cache's parameters, after checking that its stored data suits ``wanted``.

    Raises:
        CacheError: ``cache_dir`` is not a cache.
        CacheMismatchError: preprocessing, labels, dtype, channels or format differ (each difference listed,
            with the commands that rebuild it).
    """
    have = read_cache_params(cache_dir)
    differences = have.data_differences(wanted)
    if differences:
        raise CacheMismatchError(Path(cache_dir), differences)
    return have


def init_cache(cache_dir: Path, params: CacheParams, data_dir: Path) -> None:
    """Create ``cache.json`` for a new cache, or check an existing one against ``params``.

    ``cache.json`` holds parameters only (no timestamps), so two builds of the same corpus are byte-identical.
    """
    if is_cache(cache_dir):
        check_cache(cache_dir, params)
        return
    if cache_dir.is_dir() and any(p for p in cache_dir.iterdir() if not p.name.startswith(".")):
        raise CacheError(
            f"{cache_dir}: folder exists, is not empty and is not a cache (no {CACHE_FILE}); choose an empty or "
            "new folder for --cache-dir (data.cache_dir)"
        )
    write_json_atomic(
        cache_dir / CACHE_FILE,
        {"ictal_cache": True, "params": params.to_json(), "data_dir": str(data_dir.resolve())},
        sort_keys=True,
    )


# --------------------------------------------------------------------------------------------- recordings


@dataclass(frozen=True)
class CachedRecording:
    """One finished recording in the cache (its ``.json`` as read back).

    ``seizure_intervals`` are seconds from the start of the recording, clipped to ``[0, n_samples / sfreq]``.
    """

    bname: str
    split: str
    npy: Path
    n_samples: int
    sfreq: float
    seizure_intervals: tuple[tuple[float, float], ...]
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sfreq

    @property
    def seizure_s(self) -> float:
        return float(sum(b - a for a, b in self.seizure_intervals))

    def signal(self) -> np.ndarray:
        """The stored ``(19, n_samples)`` array, memory-mapped read-only (float32 or float16 z-units at 256 Hz)."""
        return np.load(self.npy, mmap_mode="r", allow_pickle=False)

    def seizure_bounds(self) -> np.ndarray:
        """Seizure intervals as sample indices ``(k, 2)`` int64, ``[i0, i1)``, the same rule as
        :func:`ictal.io.annotations.intervals_to_mask` (sample ``i`` at time ``i / sfreq`` is inside ``[a, b)``)."""
        if not self.seizure_intervals:
            return np.zeros((0, 2), dtype=np.int64)
        iv = np.asarray(self.seizure_intervals, dtype=np.float64)
        bounds = np.ceil(iv * self.sfreq - 1e-9).astype(np.int64)
        return np.clip(bounds, 0, self.n_samples)


def recording_json_path(cache_dir: Path, split: str, bname: str) -> Path:
    return cache_dir / split / f"{bname}.json"


def read_recording(json_path: Path) -> tuple[CachedRecording | None, str | None]:
    """The recording described by ``json_path`` when it is complete, else (None, reason it is not good)."""
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return None, f"{json_path.name}: unreadable ({exc})"
    npy = json_path.with_suffix(".npy")
    try:
        size = npy.stat().st_size
    except FileNotFoundError:
        return None, f"{npy.name}: missing (its .json exists)"
    if size != meta.get("npy_bytes"):
        return None, f"{npy.name}: {size} bytes, its .json says {meta.get('npy_bytes')}"
    rec = CachedRecording(
        bname=str(meta["bname"]),
        split=json_path.parent.name,
        npy=npy,
        n_samples=int(meta["n_samples"]),
        sfreq=float(meta["sfreq"]),
        seizure_intervals=tuple((float(a), float(b)) for a, b in meta["seizure_intervals"]),
        meta=meta,
    )
    return rec, None


def list_cached(cache_dir: str | Path, split: str) -> tuple[list[CachedRecording], list[str]]:
    """The good recordings of ``split`` (sorted by name) and one line per problem found beside them.

    Problems: a ``.json`` whose ``.npy`` is missing or has another size, an ``.npy`` without ``.json`` (a build
    stopped between the two renames), temporary files of an interrupted or running build.
    """
    folder = Path(cache_dir) / split
    good: list[CachedRecording] = []
    problems: list[str] = []
    if not folder.is_dir():
        return good, problems
    names = {p.name for p in folder.iterdir()}
    for name in sorted(names):
        if name.startswith("."):
            continue
        stem, _, ext = name.rpartition(".")
        if ext == "json" and f"{stem}.npy" in names:
            rec, problem = read_recording(folder / name)
            if rec is not None:
                good.append(rec)
            else:
                problems.append(f"{split}/{problem}")
        elif ext == "npy" and f"{stem}.json" not in names:
            problems.append(f"{split}/{name}: no {stem}.json (build interrupted before it finished); rebuilt next run")
        elif ext == "json" and stem not in ("build_report",) and not stem.startswith("build_report."):
            problems.append(f"{split}/{name}: no {stem}.npy; rebuilt next run")
    problems += [f"{split}/{p.name}: temporary file of an interrupted or running build" for p in tmp_files(folder)]
    return good, problems


def cached_splits(cache_dir: str | Path) -> list[str]:
    """Split folders present in the cache, official ones first."""
    root = Path(cache_dir)
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    order = {"train": 0, "dev": 1, "eval": 2}
    return sorted(names, key=lambda n: (order.get(n, 3), n))


# --------------------------------------------------------------------------------------------- removal


def cache_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """``(files build-cache writes, other files)`` in a split folder: the recordings' ``.npy`` and ``.json``, the
    manifest and report, and a dead writer's temporary files; anything else (or in a subfolder) is not ours."""
    ours: list[Path] = []
    other: list[Path] = []
    for p in sorted(folder.rglob("*")):
        if p.is_dir():
            continue
        mine = p.suffix in (".npy", ".json", ".csv") or (p.name.startswith(".") and p.name.endswith(".tmp"))
        (ours if mine and p.parent == folder else other).append(p)
    return ours, other


@dataclass
class CacheRemoval:
    """What removing a cache (or one split of it) deletes: each split folder with its files."""

    cache_dir: Path
    folders: list[tuple[Path, list[Path]]]
    whole_cache: bool

    @property
    def n_bytes(self) -> int:
        return sum(p.stat().st_size for _, files in self.folders for p in files)

    def carry_out(self) -> None:
        """Delete the folders; for the whole cache also its ``cache.json``, and the root when nothing is left."""
        import shutil

        for folder, _ in self.folders:
            shutil.rmtree(folder)
        if self.whole_cache:
            (self.cache_dir / CACHE_FILE).unlink()
            if not any(self.cache_dir.iterdir()):
                self.cache_dir.rmdir()


def plan_removal(cache_dir: Path, split: str | None = None) -> CacheRemoval:
    """What ``clean-cache`` would delete, checked before anything is.

    Raises:
        CacheError: ``cache_dir`` is not a cache, the split folder does not exist, or a folder holds files that
            build-cache does not write (nothing is removed then).
    """
    cache_dir = Path(cache_dir)
    if not is_cache(cache_dir):
        raise CacheError(
            f"{cache_dir}: not a cache (no {CACHE_FILE}); nothing removed. Give the --cache-dir of a cache"
        )
    splits = [split] if split else cached_splits(cache_dir)
    if split and not (cache_dir / split).is_dir():
        raise CacheError(f"{cache_dir}: no split folder {split!r}; present: {', '.join(cached_splits(cache_dir))}")
    folders: list[tuple[Path, list[Path]]] = []
    foreign: list[Path] = []
    for name in splits:
        ours, other = cache_files(cache_dir / name)
        folders.append((cache_dir / name, ours))
        foreign += other
    if foreign:
        shown = ", ".join(str(p) for p in foreign[:10])
        raise CacheError(f"{len(foreign)} file(s) that build-cache does not write ({shown}); nothing removed")
    return CacheRemoval(cache_dir, folders, whole_cache=split is None)
