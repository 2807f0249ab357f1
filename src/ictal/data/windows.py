"""Windows cut at read time from the cache's memory-mapped recordings, with labels at 256 Hz and 16 Hz.

Item ``i`` of a :class:`WindowDataset` is a dict of

- ``x``: ``(19, L)`` float32 z-units at 256 Hz (``L`` = 15,360 for 60 s), zero-padded past the recording's end
  (only with ``cover_tail``),
- ``y``: ``(L,)`` float32 sample labels, 1 where the sample's time lies in a seizure interval
  (:func:`ictal.io.annotations.intervals_to_mask`'s rule),
- ``y_frames``: ``(L / 16,)`` float32 frame labels at 16 Hz, the label of each frame's first sample (the same
  rule applied at 16 Hz, since window starts are whole frames),
- ``index`` (window number), ``recording`` (index into ``dataset.recordings``), ``start`` (sample) and
  ``n_valid`` (samples inside the recording; ``L`` except for a padded tail window).

Only the window's samples are read (memory map); the dataset holds no signal and pickles small, so it works the
same with ``num_workers`` 0 or more and with any multiprocessing start method.

>>> ds = WindowDataset("/cache", "train", window_s=60, stride_s=10)
>>> item = ds[0]; item["x"].shape, item["y_frames"].shape
(torch.Size([19, 15360]), torch.Size([960]))
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ictal.data.cache import CachedRecording, CacheError, CacheParams, check_cache, list_cached, read_cache_params
from ictal.data.manifest import CATEGORY_NAMES, WindowTable
from ictal.frames import FRAME_RATE

if TYPE_CHECKING:
    from ictal.config.schema import IctalConfig

log = logging.getLogger("ictal.data")

#: Recordings kept memory-mapped at once per process: each map holds a file descriptor.
MAX_OPEN_RECORDINGS = 64


def window_labels(bounds: np.ndarray, start: int, window: int) -> np.ndarray:
    """Sample labels ``(window,)`` float32 of the window at ``start`` from seizure ``bounds`` (k, 2) ``[i0, i1)``."""
    y = np.zeros(window, dtype=np.float32)
    if bounds.size:
        lo = np.clip(bounds[:, 0] - start, 0, window)
        hi = np.clip(bounds[:, 1] - start, 0, window)
        for a, b in zip(lo.tolist(), hi.tolist(), strict=True):  # one slice per seizure, a handful per recording
            y[a:b] = 1.0
    return y


class WindowDataset(Dataset[dict[str, Any]]):
    """The windows of one cached split (see the module docstring for an item's contents).

    Args:
        cache_dir: cache root (built by ``ictal build-cache``).
        split: split folder (``train``, ``dev``, ``eval``, ``all``).
        window_s, stride_s: window length and stride in seconds (whole 16 Hz frames).
        expect: parameters this run needs; a cache built with others is refused (:class:`CacheMismatchError`).
        cover_tail: windows covering every sample (evaluation, inference): the last window of a recording ends at
            its end (or, for a recording shorter than a window, starts at 0 and is zero-padded). Without it the
            trailing partial window is dropped (training).
        recordings: restrict to these recording names (``bname``); None for all.
    """

    def __init__(
        self,
        cache_dir: str | Path,
        split: str,
        *,
        window_s: float = 60.0,
        stride_s: float = 10.0,
        expect: CacheParams | None = None,
        cover_tail: bool = False,
        recordings: Sequence[str] | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.split = split
        self.params = check_cache(self.cache_dir, expect) if expect is not None else read_cache_params(self.cache_dir)
        good, problems = list_cached(self.cache_dir, split)
        if problems:
            log.warning(
                "%s/%s: %d problem(s) beside the good recordings (first: %s); run `ictal build-cache` to finish "
                "the split or `ictal scan-cache --cache-dir %s` for the list",
                self.cache_dir, split, len(problems), problems[0], self.cache_dir,
            )  # fmt: skip
        if recordings is not None:
            wanted = set(recordings)
            good = [r for r in good if r.bname in wanted]
            absent = sorted(wanted - {r.bname for r in good})
            if absent:
                raise CacheError(f"{self.cache_dir}/{split}: not in the cache: {', '.join(absent[:10])}")
        if not good:
            raise CacheError(
                f"{self.cache_dir}/{split}: no cached recordings; build them with "
                f"`ictal build-cache --data-dir DATA --cache-dir {self.cache_dir} --split {split}`"
            )
        sfreq = self.params.sfreq
        hop = sfreq / FRAME_RATE
        if hop != int(hop):
            raise CacheError(
                f"{self.cache_dir}: sampling rate {sfreq} Hz is not a whole number of {FRAME_RATE:g} Hz frames"
            )
        self.frame_hop = int(hop)
        self.cover_tail = cover_tail
        self.table = WindowTable.from_recordings(good, window_s, stride_s, cover_tail=cover_tail, sfreq=sfreq)
        if self.table.window % self.frame_hop or self.table.stride % self.frame_hop:
            raise ValueError(
                f"window_s={window_s}, stride_s={stride_s}: need whole {FRAME_RATE:g} Hz frames (multiples of 1/16 s)"
            )
        self._bounds = [r.seizure_bounds() for r in good]
        self._open: OrderedDict[int, np.ndarray] = OrderedDict()

    @classmethod
    def from_config(
        cls, cfg: IctalConfig, split: str, *, cache_dir: str | Path | None = None, cover_tail: bool = False
    ) -> WindowDataset:
        """The split's windows with ``cfg.data``'s window and stride, refusing a cache built with other
        preprocessing, labels or dtype than ``cfg`` asks for."""
        root = cache_dir if cache_dir is not None else cfg.data.cache_dir
        if root is None:
            raise CacheError(
                "data.cache_dir is not set; set it in the config to the folder `ictal build-cache --cache-dir` wrote"
            )
        return cls(
            root,
            split,
            window_s=cfg.data.window_s,
            stride_s=cfg.data.stride_s,
            expect=CacheParams.from_configs(cfg.preprocess, cfg.data),
            cover_tail=cover_tail,
        )

    # ----------------------------------------------------------------------------------------------- access

    @property
    def recordings(self) -> tuple[CachedRecording, ...]:
        return self.table.recordings

    @property
    def categories(self) -> np.ndarray:
        """(N,) int8: 0 none, 1 partial, 2 full (the sampler's input)."""
        return self.table.category

    @property
    def window(self) -> int:
        return self.table.window

    def __len__(self) -> int:
        return len(self.table)

    def _signal(self, rec_index: int) -> np.ndarray:
        arr = self._open.get(rec_index)
        if arr is None:
            arr = self.table.recordings[rec_index].signal()
            self._open[rec_index] = arr
            if len(self._open) > MAX_OPEN_RECORDINGS:
                self._open.popitem(last=False)  # the map (and its file descriptor) closes when dropped
        else:
            self._open.move_to_end(rec_index)
        return arr

    def read_window(self, index: int) -> tuple[np.ndarray, np.ndarray, int]:
        """``(x (19, L) float32, y (L,) float32, n_valid)`` of window ``index`` as numpy arrays."""
        r = int(self.table.recording[index])
        start = int(self.table.start[index])
        window = self.table.window
        signal = self._signal(r)
        seg = signal[:, start : start + window]
        n_valid = int(seg.shape[1])
        if n_valid == window:
            x = np.asarray(seg, dtype=np.float32).copy() if seg.dtype == np.float32 else seg.astype(np.float32)
        else:
            x = np.zeros((signal.shape[0], window), dtype=np.float32)
            x[:, :n_valid] = seg
        return x, window_labels(self._bounds[r], start, window), n_valid

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"window {index} out of range for {len(self)} windows")
        index = int(index) % len(self)
        x, y, n_valid = self.read_window(index)
        return {
            "x": torch.from_numpy(x),
            "y": torch.from_numpy(y),
            "y_frames": torch.from_numpy(np.ascontiguousarray(y[:: self.frame_hop])),
            "index": index,
            "recording": int(self.table.recording[index]),
            "start": int(self.table.start[index]),
            "n_valid": n_valid,
        }

    def __getstate__(self) -> dict[str, Any]:
        # Memory maps are per process: a worker opens its own (pickling one would copy the whole recording).
        state = self.__dict__.copy()
        state["_open"] = OrderedDict()
        return state

    # ----------------------------------------------------------------------------------------------- summary

    def describe(self) -> str:
        """One line: split, recordings, hours, windows per category and the seizure ratio."""
        counts = self.table.counts()
        hours = sum(r.duration_s for r in self.recordings) / 3600.0
        per = ", ".join(f"{name} {counts[name]:,}" for name in CATEGORY_NAMES)
        return (
            f"{self.split}: {len(self.recordings)} recording(s), {hours:.2f} h, {len(self):,} windows of "
            f"{self.table.window / self.table.sfreq:g} s / {self.table.stride / self.table.sfreq:g} s ({per}); "
            f"Seizure ratio: {100 * self.table.seizure_ratio():.1f}%"
        )
