"""Balanced and shuffled window samplers: proportions, per-epoch redraw, seeds, DDP shards, exact resume."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from ictal.data.config import DataConfig
from ictal.data.manifest import FULL, NONE, PARTIAL
from ictal.data.sampling import BalancedWindowSampler, SamplingError, ShuffledWindowSampler, make_sampler


def categories(partial: int, full: int, none: int, seed: int = 0) -> np.ndarray:
    cats = np.array([PARTIAL] * partial + [FULL] * full + [NONE] * none, dtype=np.int8)
    return np.random.default_rng(seed).permutation(cats)


def test_proportions_per_epoch() -> None:
    cats = categories(100, 50, 1000)
    sampler = BalancedWindowSampler(cats, seed=1)
    for epoch in range(3):
        idx = sampler.epoch_indices(epoch)
        assert len(np.unique(idx)) == idx.size == 100 + 30 + 250 == len(sampler)
        per = np.bincount(cats[idx], minlength=3)
        assert (per[PARTIAL], per[FULL], per[NONE]) == (100, 30, 250)
        assert set(np.flatnonzero(cats == PARTIAL)) <= set(idx.tolist())  # every partial window, every epoch
    assert sampler.seizure_ratio() == pytest.approx(130 / 380)
    custom = BalancedWindowSampler(cats, full_ratio=0.5, background_ratio=1.0)
    per = np.bincount(cats[custom.epoch_indices(0)], minlength=3)
    assert (per[PARTIAL], per[FULL], per[NONE]) == (100, 50, 100)


def test_background_redrawn_every_epoch_and_seeded() -> None:
    cats = categories(20, 40, 2000)
    a, b = BalancedWindowSampler(cats, seed=7), BalancedWindowSampler(cats, seed=7)
    bg = [set(a.epoch_indices(e)[cats[a.epoch_indices(e)] == NONE].tolist()) for e in range(3)]
    assert bg[0] != bg[1] and bg[1] != bg[2]
    assert len(bg[0] & bg[1]) < len(bg[0])  # mostly new windows, not a reshuffle
    np.testing.assert_array_equal(a.epoch_indices(2), b.epoch_indices(2))  # same seed, same epoch: same list
    assert not np.array_equal(a.epoch_indices(0), BalancedWindowSampler(cats, seed=8).epoch_indices(0))
    # Iterating without set_epoch moves on to the next epoch by itself.
    first, second = list(a), list(a)
    assert first == a.epoch_indices(0).tolist() and second == a.epoch_indices(1).tolist()
    a.set_epoch(0)
    assert list(a) == first


def test_small_pools_and_no_seizure() -> None:
    few_full = BalancedWindowSampler(categories(100, 5, 50))
    assert (few_full.n_full, few_full.n_background) == (5, 50)  # a pool gives all it has
    no_partial = BalancedWindowSampler(categories(0, 8, 100))
    per = np.bincount(categories(0, 8, 100)[no_partial.epoch_indices(0)], minlength=3)
    assert (per[FULL], per[NONE]) == (8, 20)  # full windows take the partial windows' place as the base count
    with pytest.raises(SamplingError, match="no seizure window"):
        BalancedWindowSampler(categories(0, 0, 100))
    with pytest.raises(SamplingError):
        ShuffledWindowSampler(np.zeros(0, dtype=np.int8))


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_share_an_epoch(world_size: int) -> None:
    cats = categories(31, 17, 400)
    ranks = [BalancedWindowSampler(cats, seed=5, rank=r, world_size=world_size) for r in range(world_size)]
    whole = ranks[0].epoch_indices(4)
    shares = [s.rank_indices(4) for s in ranks]
    assert len({len(s) for s in shares}) == 1 and len(shares[0]) == len(ranks[0])
    union = np.concatenate(shares)
    assert set(union.tolist()) == set(whole.tolist())
    assert union.size - whole.size < world_size  # only the padding repeats
    with pytest.raises(ValueError, match="rank"):
        BalancedWindowSampler(cats, rank=2, world_size=2)


@pytest.mark.parametrize("kind", ["balanced", "shuffled"])
def test_exact_resume_mid_epoch(kind: str) -> None:
    cats = categories(40, 20, 300)

    def make() -> BalancedWindowSampler | ShuffledWindowSampler:
        if kind == "balanced":
            return BalancedWindowSampler(cats, seed=11, rank=1, world_size=2)
        return ShuffledWindowSampler(cats, seed=11, rank=1, world_size=2)

    sampler = make()
    sampler.set_epoch(0)
    list(sampler)
    sampler.set_epoch(1)
    it = iter(sampler)
    consumed = [next(it) for _ in range(13)]
    state = sampler.state_dict(consumed=13)
    rest = list(it)
    assert state["epoch"] == 1 and state["consumed"] == 13
    restored = make()
    restored.load_state_dict(state)
    restored.set_epoch(1)  # a trainer calls this at the epoch start; the offset survives for the same epoch
    assert list(restored) == rest and consumed + rest == sampler.rank_indices(1).tolist()
    assert list(restored) == sampler.rank_indices(2).tolist()  # and the next epoch follows as usual
    end = sampler.state_dict(consumed=len(sampler))
    assert (end["epoch"], end["consumed"]) == (2, 0)
    other = ShuffledWindowSampler(cats) if kind == "balanced" else BalancedWindowSampler(cats)
    with pytest.raises(ValueError, match="kind"):
        other.load_state_dict(state)


def test_shuffled_sampler_and_make_sampler_logs(caplog: pytest.LogCaptureFixture) -> None:
    cats = categories(3, 2, 45)
    with caplog.at_level(logging.INFO, logger="ictal.data"):
        plain = make_sampler(cats, DataConfig(use_balanced_sampling=False, seed=2))
    assert isinstance(plain, ShuffledWindowSampler)
    assert "ShuffledWindowSampler" in caplog.text and "Seizure ratio: 10.0%" in caplog.text
    assert sorted(plain.epoch_indices(0).tolist()) == list(range(50))
    assert plain.epoch_indices(0).tolist() != plain.epoch_indices(1).tolist()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ictal.data"):
        balanced = make_sampler(cats, DataConfig(full_ratio=1.0, background_ratio=2.0))
    assert isinstance(balanced, BalancedWindowSampler)
    assert "BalancedWindowSampler" in caplog.text and "Seizure ratio: 45.5%" in caplog.text  # (3 + 2) / 11
