"""WindowDataset: windows cut from the memory-mapped cache, labels at 256 Hz and 16 Hz, loaders with workers."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from ictal.config.schema import config_from_dict
from ictal.data.cache import CacheError, CacheMismatchError, CacheParams
from ictal.data.config import DataConfig
from ictal.data.manifest import FULL, PARTIAL
from ictal.data.sampling import make_loader, make_sampler
from ictal.data.windows import WindowDataset
from ictal.io.annotations import intervals_to_mask
from ictal.signal.preprocess import PreprocessConfig


def test_items_match_the_cache_and_the_label_masks(synthetic_cache: Path) -> None:
    ds = WindowDataset(synthetic_cache, "train", window_s=10, stride_s=5)
    assert len(ds) == len(ds.table) > 0
    rng = np.random.default_rng(0)
    picks = set(rng.choice(len(ds), 20, replace=False).tolist())
    picks |= set(np.flatnonzero(ds.categories == PARTIAL)[:3].tolist()) | set(np.flatnonzero(ds.categories == FULL)[:2])
    for i in sorted(picks):
        item = ds[i]
        rec = ds.recordings[item["recording"]]
        s = item["start"]
        assert item["x"].shape == (19, 2560) and item["x"].dtype == torch.float32
        assert item["y"].shape == (2560,) and item["y_frames"].shape == (160,) and item["n_valid"] == 2560
        full = np.load(rec.npy)
        np.testing.assert_array_equal(item["x"].numpy(), full[:, s : s + 2560])
        mask = intervals_to_mask(rec.seizure_intervals, rec.n_samples, 256.0)
        np.testing.assert_array_equal(item["y"].numpy(), mask[s : s + 2560])
        frames = intervals_to_mask(rec.seizure_intervals, rec.n_samples // 16, 16.0)
        np.testing.assert_array_equal(item["y_frames"].numpy(), frames[s // 16 : s // 16 + 160])
        assert float(item["y"].mean()) == pytest.approx(ds.table.fraction[i])
    assert ds[-1]["index"] == len(ds) - 1
    with pytest.raises(IndexError):
        ds[len(ds)]
    # Defaults are 60 s / 10 s windows: 15,360 samples, 960 frames; recordings shorter than 60 s give none.
    ds60 = WindowDataset(synthetic_cache, "train")
    assert ds60.window == 15360 and ds60[0]["y_frames"].shape == (960,)
    expected = sum(max(0, (r.n_samples - 15360) // 2560 + 1) for r in ds60.recordings)
    assert len(ds60) == expected


def test_cover_tail_pads_and_covers_every_sample(tmp_path: Path, fake_cache: Callable[..., None]) -> None:
    fake_cache(tmp_path, "eval", [("long", 23 * 256 + 5, [(20.0, 23.0)]), ("short", 4 * 256, [(1.0, 2.0)])])
    ds = WindowDataset(tmp_path, "eval", window_s=10, stride_s=5, cover_tail=True)
    by_rec: dict[str, list[dict]] = {}
    for i in range(len(ds)):
        item = ds[i]
        by_rec.setdefault(ds.recordings[item["recording"]].bname, []).append(item)
    long, short = by_rec["long"], by_rec["short"]
    n_long = 23 * 256 + 5
    assert [it["start"] for it in long] == [0, 1280, 2560, 3344]  # last start: ceil((n - 2560) / 16) * 16
    covered = np.zeros(n_long, bool)
    for it in long:
        covered[it["start"] : it["start"] + it["n_valid"]] = True
    assert covered.all()
    assert long[-1]["n_valid"] == n_long - 3344 < 2560
    assert (long[-1]["x"][:, long[-1]["n_valid"] :] == 0).all() and long[-1]["y"][-1] == 0
    assert len(short) == 1 and short[0]["n_valid"] == 1024 and short[0]["x"].shape == (19, 2560)
    assert (short[0]["x"][:, 1024:] == 0).all() and short[0]["y"][256:512].sum() == 256
    # Without cover_tail, the short recording has no window and the tail is dropped.
    train_like = WindowDataset(tmp_path, "eval", window_s=10, stride_s=5)
    assert train_like.table.start.tolist() == [0, 1280, 2560]


def test_float16_cache_reads_as_float32(tmp_path: Path, fake_cache: Callable[..., None]) -> None:
    fake_cache(tmp_path, "train", [("a", 20 * 256, [(3.0, 8.0)])], dtype="float16")
    ds = WindowDataset(tmp_path, "train", window_s=10, stride_s=5)
    stored = np.load(tmp_path / "train" / "a.npy")
    assert stored.dtype == np.float16 and ds[1]["x"].dtype == torch.float32
    np.testing.assert_array_equal(ds[1]["x"].numpy(), stored[:, 1280:3840].astype(np.float32))


def test_refusals(synthetic_cache: Path, tmp_path: Path) -> None:
    with pytest.raises(CacheMismatchError, match="notch_hz"):
        WindowDataset(synthetic_cache, "train", expect=CacheParams.from_configs(PreprocessConfig(notch_hz=50)))
    with pytest.raises(CacheError, match="no cached recordings"):
        WindowDataset(synthetic_cache, "eval")
    with pytest.raises(CacheError, match="not a cache"):
        WindowDataset(tmp_path, "train")
    with pytest.raises(ValueError, match="frames"):
        WindowDataset(synthetic_cache, "train", window_s=10.01, stride_s=5)
    cfg = config_from_dict({"data": {"cache_dir": str(synthetic_cache), "window_s": 10, "stride_s": 5}})
    ds = WindowDataset.from_config(cfg, "dev")
    assert ds.window == 2560 and "Seizure ratio:" in ds.describe()
    cfg16 = config_from_dict({"data": {"cache_dir": str(synthetic_cache), "cache_dtype": "float16"}})
    with pytest.raises(CacheMismatchError, match="cache_dtype"):
        WindowDataset.from_config(cfg16, "dev")


def test_dataset_pickles_small_after_reading(synthetic_cache: Path) -> None:
    ds = WindowDataset(synthetic_cache, "train", window_s=10, stride_s=5)
    for i in range(0, len(ds), 7):
        ds[i]
    assert len(ds._open) > 0
    blob = pickle.dumps(ds)
    assert len(blob) < 200_000  # no signal travels to workers
    clone = pickle.loads(blob)
    assert torch.equal(clone[3]["x"], ds[3]["x"])


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_with_balanced_sampler(synthetic_cache: Path, workers: int, caplog: pytest.LogCaptureFixture) -> None:
    ds = WindowDataset(synthetic_cache, "train", window_s=10, stride_s=5)
    data = DataConfig(window_s=10, stride_s=5, num_workers=workers, seed=3)
    with caplog.at_level(logging.INFO, logger="ictal.data"):
        sampler = make_sampler(ds.categories, data)
    assert "BalancedWindowSampler" in caplog.text and "Seizure ratio:" in caplog.text
    loader = make_loader(ds, data, batch_size=4, sampler=sampler)
    if workers:
        assert loader.multiprocessing_context is None  # the platform default: nothing forced
        assert loader.timeout > 0 and loader.persistent_workers
    sampler.set_epoch(0)
    expected = sampler.rank_indices(0).tolist()
    got: list[int] = []
    for batch in loader:
        assert batch["x"].shape[1:] == (19, 2560) and batch["y_frames"].shape[1] == 160
        got += batch["index"].tolist()
        i = int(batch["index"][0])
        assert torch.equal(batch["x"][0], ds[i]["x"])
    assert got == expected
    # A second epoch (persistent workers) redraws the background.
    sampler.set_epoch(1)
    second = [i for batch in loader for i in batch["index"].tolist()]
    assert len(second) == len(got) and second != got
