"""Every window of a cached split with its seizure fraction and category, and the ``scan-cache`` check.

A window of ``L`` samples starting at sample ``s`` has seizure fraction ``(seizure samples in [s, s+L)) / L``,
counted with the sample rule of :func:`ictal.io.annotations.intervals_to_mask`, and category

- ``none`` (0): fraction 0,
- ``partial`` (1): 0 < fraction < 0.99,
- ``full`` (2): fraction >= 0.99.

The table is derived from the recordings' ``.json`` files (interval bounds and lengths; no signal is read), so
it is cheap to recompute for any window and stride. ``manifest.csv`` in each split folder is its written form,
for people and other tools; the dataset recomputes it rather than trusting a file that may be stale.

>>> table = WindowTable.from_recordings(list_cached(cache, "train")[0], window_s=60, stride_s=10)
>>> table.counts(), table.seizure_ratio()
({'none': 91234, 'partial': 2311, 'full': 1480}, 0.0399)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ictal.data.cache import (
    MANIFEST_FILE,
    CachedRecording,
    cached_splits,
    file_sha1,
    list_cached,
    read_cache_info,
    read_cache_params,
    write_atomic,
)
from ictal.frames import FRAME_RATE
from ictal.post.stitch import window_starts

NONE, PARTIAL, FULL = 0, 1, 2
CATEGORY_NAMES: tuple[str, ...] = ("none", "partial", "full")
#: A window at least this much seizure is "full".
FULL_THRESHOLD = 0.99


def training_starts(n_samples: int, window: int, stride: int) -> np.ndarray:
    """Starts of the windows that fit entirely: ``0, stride, ...`` while ``start + window <= n_samples``.

    The trailing partial window is dropped (training); a recording shorter than one window has none. ``(W,)``.
    """
    if n_samples < window:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, n_samples - window + 1, stride, dtype=np.int64)


def seizure_samples_per_window(bounds: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """Seizure samples inside each window: ``bounds`` (k, 2) ``[i0, i1)`` sample indices, ``starts`` (W,).

    Returns (W,) int64; vectorised over windows x intervals (k is small: the seizures of one recording).
    """
    if bounds.size == 0 or starts.size == 0:
        return np.zeros(starts.shape, dtype=np.int64)
    lo = np.maximum(bounds[None, :, 0], starts[:, None])
    hi = np.minimum(bounds[None, :, 1], starts[:, None] + window)
    return np.clip(hi - lo, 0, None).sum(axis=1)


def categorise(fraction: np.ndarray) -> np.ndarray:
    """Category per window (0 none, 1 partial, 2 full) from its seizure fraction, (W,) int8."""
    cat = np.where(fraction >= FULL_THRESHOLD, FULL, np.where(fraction > 0, PARTIAL, NONE))
    return cat.astype(np.int8)


@dataclass(frozen=True)
class WindowTable:
    """Every window of a list of recordings.

    Arrays of shape (N,): ``recording`` (index into ``names``/``recordings``), ``start`` (sample index at
    ``sfreq``), ``fraction`` (seizure fraction in [0, 1]), ``category`` (0/1/2). ``window``/``stride`` in samples.
    """

    recordings: tuple[CachedRecording, ...]
    recording: np.ndarray
    start: np.ndarray
    fraction: np.ndarray
    category: np.ndarray
    window: int
    stride: int
    sfreq: float

    @classmethod
    def from_recordings(
        cls,
        recordings: Sequence[CachedRecording],
        window_s: float,
        stride_s: float,
        *,
        cover_tail: bool = False,
        sfreq: float | None = None,
    ) -> WindowTable:
        """Windows of ``window_s`` every ``stride_s`` seconds over ``recordings`` (training starts, or covering
        starts with ``cover_tail``, :func:`ictal.post.stitch.window_starts`)."""
        rate = float(sfreq if sfreq is not None else (recordings[0].sfreq if recordings else 256.0))
        window, stride = round(window_s * rate), round(stride_s * rate)
        if window < 1 or stride < 1:
            raise ValueError(f"window_s={window_s}, stride_s={stride_s} give no whole sample at {rate} Hz")
        per_rec_starts, per_rec_seiz = [], []
        for rec in recordings:
            if rec.sfreq != rate:
                raise ValueError(f"{rec.npy}: stored at {rec.sfreq} Hz, the table is at {rate} Hz")
            if cover_tail:
                # The inference rule (one window ending at the end, on a whole frame), shared with stitching.
                starts = window_starts(rec.n_samples, window, stride, align=max(1, round(rate / FRAME_RATE)))
            else:
                starts = training_starts(rec.n_samples, window, stride)
            per_rec_starts.append(starts)
            per_rec_seiz.append(seizure_samples_per_window(rec.seizure_bounds(), starts, window))
        counts = np.array([s.size for s in per_rec_starts], dtype=np.int64)
        start = np.concatenate(per_rec_starts) if per_rec_starts else np.zeros(0, dtype=np.int64)
        seiz = np.concatenate(per_rec_seiz) if per_rec_seiz else np.zeros(0, dtype=np.int64)
        fraction = seiz / float(window)
        return cls(
            recordings=tuple(recordings),
            recording=np.repeat(np.arange(len(recordings), dtype=np.int32), counts),
            start=start,
            fraction=fraction,
            category=categorise(fraction),
            window=window,
            stride=stride,
            sfreq=rate,
        )

    def __len__(self) -> int:
        return int(self.start.size)

    def counts(self) -> dict[str, int]:
        """Windows per category: ``{"none": n0, "partial": n1, "full": n2}``."""
        per = np.bincount(self.category, minlength=3)
        return {name: int(per[i]) for i, name in enumerate(CATEGORY_NAMES)}

    def seizure_ratio(self) -> float:
        """Fraction of windows that hold any seizure (partial or full); 0 for an empty table."""
        return float(np.count_nonzero(self.category) / len(self)) if len(self) else 0.0

    def to_csv(self, split: str) -> str:
        """The ``manifest.csv`` text: ``#`` header lines, then ``recording,start_s,seizure_fraction,category``."""
        names = [r.bname for r in self.recordings]
        header = [
            "# ictal window manifest",
            f"# split = {split}",
            f"# window_s = {self.window / self.sfreq:g}",
            f"# stride_s = {self.stride / self.sfreq:g}",
            f"# sfreq = {self.sfreq:g}",
            f"# recordings = {len(names)}",
            f"# windows = {len(self)}",
            "recording,start_s,seizure_fraction,category",
        ]
        start_s = self.start / self.sfreq
        rows = [
            f"{names[r]},{s:.4f},{f:.4f},{CATEGORY_NAMES[c]}"
            for r, s, f, c in zip(
                self.recording.tolist(), start_s.tolist(), self.fraction.tolist(), self.category.tolist(), strict=True
            )
        ]
        return "\n".join(header + rows) + "\n"


def write_manifest(split_dir: Path, table: WindowTable) -> Path:
    """Write ``<split_dir>/manifest.csv`` atomically; returns its path."""
    path = split_dir / MANIFEST_FILE
    text = table.to_csv(split_dir.name).encode("utf-8")
    write_atomic(path, lambda fh: fh.write(text))
    return path


def read_manifest(path: Path) -> tuple[dict[str, str], list[tuple[str, float, float, str]]]:
    """``manifest.csv`` back as (header, rows of (recording, start_s, seizure_fraction, category))."""
    header: dict[str, str] = {}
    rows: list[tuple[str, float, float, str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            key, sep, value = line[1:].partition("=")
            if sep:
                header[key.strip()] = value.strip()
        elif line and not line.startswith("recording,"):
            name, start, frac, cat = line.split(",")
            rows.append((name, float(start), float(frac), cat))
    return header, rows


@dataclass
class SplitScan:
    """What ``scan-cache`` found in one split."""

    split: str
    table: WindowTable
    problems: list[str]
    missing: list[str]
    stale: list[str]
    manifest: Path

    @property
    def hours(self) -> float:
        return float(sum(r.duration_s for r in self.table.recordings) / 3600.0)

    @property
    def seizure_hours(self) -> float:
        return float(sum(r.seizure_s for r in self.table.recordings) / 3600.0)


def scan_split(
    cache_dir: str | Path,
    split: str,
    *,
    window_s: float | None = None,
    stride_s: float | None = None,
    data_dir: str | Path | None = None,
) -> SplitScan:
    """Recompute and rewrite the manifest of ``split``; list problems, and with the corpus at hand, the
    recordings that are missing from the cache or stale (EDF size or label file changed since the build).

    ``window_s``/``stride_s`` default to the cache's (``cache.json``); ``data_dir`` to the folder the cache was
    built from, when it still exists.
    """
    from ictal.data.corpus import CorpusError, discover_corpus

    root = Path(cache_dir)
    params = read_cache_params(root)
    good, problems = list_cached(root, split)
    table = WindowTable.from_recordings(
        good,
        params.window_s if window_s is None else window_s,
        params.stride_s if stride_s is None else stride_s,
        sfreq=params.sfreq,
    )
    manifest = write_manifest(root / split, table)
    missing: list[str] = []
    stale: list[str] = []
    source = Path(data_dir) if data_dir is not None else Path(read_cache_info(root).get("data_dir", ""))
    if source.is_dir():
        try:
            corpus_recs = discover_corpus(source).split(split)
        except CorpusError as exc:
            problems.append(f"corpus at {source} not usable to check for missing files: {exc}")
            corpus_recs = []
        by_name = {r.bname: r for r in good}
        for rec in corpus_recs:
            cached = by_name.get(rec.bname)
            if cached is None:
                missing.append(rec.rel)
                continue
            labels = rec.labels(params.label_source)  # type: ignore[arg-type]
            now_bytes = rec.edf.stat().st_size
            now_sha = file_sha1(labels) if labels else None
            if cached.meta.get("source_bytes") != now_bytes or cached.meta.get("labels_sha1") != now_sha:
                stale.append(f"{rec.rel}: source changed since it was cached; rerun build-cache to rebuild it")
    elif data_dir is not None:
        problems.append(f"--data-dir {data_dir} not found; missing and stale recordings not checked")
    return SplitScan(split=split, table=table, problems=problems, missing=missing, stale=stale, manifest=manifest)


def scan_cache(
    cache_dir: str | Path,
    splits: Sequence[str] | None = None,
    *,
    window_s: float | None = None,
    stride_s: float | None = None,
    data_dir: str | Path | None = None,
) -> list[SplitScan]:
    """:func:`scan_split` over ``splits`` (default: every split folder in the cache)."""
    read_cache_info(cache_dir)  # not a cache: say so before looking for split folders
    names = list(splits) if splits else cached_splits(cache_dir)
    return [scan_split(cache_dir, s, window_s=window_s, stride_s=stride_s, data_dir=data_dir) for s in names]
