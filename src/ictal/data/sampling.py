"""Which windows an epoch trains on: balanced sampling (the reference system's ratios), seeded, shardable, resumable.

:class:`BalancedWindowSampler` (``data.use_balanced_sampling: true``, the default) takes, every epoch,

- every ``partial`` window (``P`` of them),
- ``full_ratio`` x P ``full`` windows (0.3 by default), drawn anew each epoch,
- ``background_ratio`` x P ``none`` windows (2.5 by default), drawn anew each epoch,

shuffled together. When a split has no partial window, the full windows take their place as the base count
(all of them, and ``background_ratio`` x as many background windows). A split with no seizure window at all is
refused: every batch would be background (a failure of the reference system). A pool smaller than its share
gives all it has. :class:`ShuffledWindowSampler` (``use_balanced_sampling: false``) shuffles every window.

Both draw epoch ``e`` from ``numpy.random.default_rng([seed, e])``, so an epoch is the same on every DDP rank
and after a restart. With ``world_size`` ranks, the epoch's list is padded (repeating its head) to a multiple of
``world_size`` and rank ``r`` takes items ``r, r + world_size, ...``. ``set_epoch(e)`` chooses the epoch (an
iteration without it moves on to the next epoch by itself, so background is redrawn either way);
``state_dict(consumed=k)`` / ``load_state_dict`` restart an epoch after its first ``k`` items on this rank.

>>> sampler = make_sampler(dataset.categories, cfg.data)    # logs the sampler and "Seizure ratio: 34.2%"
>>> loader = make_loader(dataset, cfg.data, batch_size=8, sampler=sampler)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ictal.data.config import DataConfig
from ictal.data.manifest import FULL, NONE, PARTIAL
from ictal.errors import IctalError

log = logging.getLogger("ictal.data")

#: A worker that returns no batch for this long is treated as hung: the loader raises instead of waiting forever.
LOADER_TIMEOUT_S = 600.0


class SamplingError(IctalError):
    """The windows cannot make a useful epoch (no seizure window, empty split)."""


class EpochSampler(Sampler[int]):
    """Seeded per-epoch index lists, sharded over ranks, resumable mid-epoch. Subclasses define
    :meth:`epoch_indices` (the global list of an epoch, identical on every rank)."""

    kind = "EpochSampler"

    def __init__(self, n_windows: int, *, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank={rank}, world_size={world_size}: need 0 <= rank < world_size")
        self.n_windows = int(n_windows)
        self.seed = int(seed)
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0  # the epoch the next iteration yields
        self._iter_epoch: int | None = None  # the epoch being yielded, when an iteration has started
        self._skip = 0  # items of the next iteration already consumed before a restart

    def epoch_indices(self, epoch: int) -> np.ndarray:
        raise NotImplementedError

    def _rng(self, epoch: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch])

    def epoch_size(self) -> int:
        """Items per epoch over all ranks, before padding."""
        raise NotImplementedError

    def rank_indices(self, epoch: int) -> np.ndarray:
        """This rank's share of epoch ``epoch``: (len(self),) int64."""
        idx = self.epoch_indices(epoch)
        per_rank = -(-idx.size // self.world_size)
        pad = per_rank * self.world_size - idx.size
        if pad:
            idx = np.concatenate([idx, np.resize(idx, pad)])
        return idx[self.rank :: self.world_size]

    def __len__(self) -> int:
        return -(-self.epoch_size() // self.world_size)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch the next iteration yields (call it at every epoch start, as with DistributedSampler)."""
        if epoch != self.epoch:
            self._skip = 0  # a restored offset belongs to the restored epoch only
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        epoch, skip = self.epoch, self._skip
        self._iter_epoch, self._skip = epoch, 0
        self.epoch = epoch + 1  # without set_epoch, the next pass is a new epoch: background is redrawn
        yield from self.rank_indices(epoch)[skip:].tolist()

    def state_dict(self, consumed: int = 0) -> dict[str, Any]:
        """Where to restart: the epoch in progress and the ``consumed`` items of it this rank has trained on.

        Pass ``consumed`` = batches done x batch size (per rank): the loader's prefetching runs ahead of training.
        """
        epoch = self._iter_epoch if self._iter_epoch is not None else self.epoch
        if consumed >= len(self):
            epoch, consumed = epoch + 1, 0
        return {
            "kind": self.kind,
            "epoch": int(epoch),
            "consumed": int(consumed),
            "seed": self.seed,
            "n_windows": self.n_windows,
            "world_size": self.world_size,
            "rank": self.rank,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``: the next iteration yields epoch ``state["epoch"]`` minus its consumed head."""
        for key, mine in (("kind", self.kind), ("n_windows", self.n_windows), ("world_size", self.world_size)):
            if state.get(key) != mine:
                raise ValueError(
                    f"sampler state has {key}={state.get(key)!r}, this sampler {mine!r}: the checkpoint was made on "
                    "another dataset, sampler or number of ranks; exact resume needs the same ones"
                )
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
        self._iter_epoch = None
        self._skip = int(state["consumed"])

    def seizure_ratio(self) -> float:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class BalancedWindowSampler(EpochSampler):
    """Every partial window, ``full_ratio`` x as many full and ``background_ratio`` x as many background windows
    per epoch, full and background redrawn every epoch (see the module docstring).

    Args:
        categories: (N,) window categories (0 none, 1 partial, 2 full), e.g. ``WindowDataset.categories``.
        full_ratio, background_ratio: shares relative to the number of partial windows.
        seed, rank, world_size: see :class:`EpochSampler`.
    """

    kind = "BalancedWindowSampler"

    def __init__(
        self,
        categories: np.ndarray,
        *,
        full_ratio: float = 0.3,
        background_ratio: float = 2.5,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        cats = np.asarray(categories)
        super().__init__(cats.size, seed=seed, rank=rank, world_size=world_size)
        if full_ratio < 0 or background_ratio < 0:
            raise ValueError(f"full_ratio={full_ratio}, background_ratio={background_ratio}: must be >= 0")
        self.partial = np.flatnonzero(cats == PARTIAL)
        self.full = np.flatnonzero(cats == FULL)
        self.background = np.flatnonzero(cats == NONE)
        if self.partial.size == 0 and self.full.size == 0:
            raise SamplingError(
                f"no seizure window among {cats.size:,} windows: every batch would be background. Check the labels "
                "(`ictal scan-cache --cache-dir CACHE`), data.label_source, and that the split has seizures"
            )
        self.full_ratio, self.background_ratio = float(full_ratio), float(background_ratio)
        base = self.partial.size if self.partial.size else self.full.size
        self.n_full = min(self.full.size, round(full_ratio * base)) if self.partial.size else self.full.size
        self.n_background = min(self.background.size, round(background_ratio * base))

    def epoch_size(self) -> int:
        return int(self.partial.size + self.n_full + self.n_background)

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """The whole epoch's window indices (all ranks), shuffled: (epoch_size(),) int64."""
        rng = self._rng(epoch)
        full = rng.choice(self.full, self.n_full, replace=False) if self.n_full else self.full[:0]
        background = (
            rng.choice(self.background, self.n_background, replace=False) if self.n_background else self.background[:0]
        )
        idx = np.concatenate([self.partial, full, background]).astype(np.int64)
        return rng.permutation(idx)

    def seizure_ratio(self) -> float:
        return (self.partial.size + self.n_full) / max(1, self.epoch_size())

    def describe(self) -> str:
        return (
            f"sampler: BalancedWindowSampler (data.use_balanced_sampling): {self.partial.size:,} partial + "
            f"{self.n_full:,} full (of {self.full.size:,}) + {self.n_background:,} background (of "
            f"{self.background.size:,}) windows per epoch, full and background redrawn every epoch, seed {self.seed}"
            + (f", rank {self.rank}/{self.world_size}" if self.world_size > 1 else "")
            + f"; Seizure ratio: {100 * self.seizure_ratio():.1f}%"
        )


class ShuffledWindowSampler(EpochSampler):
    """Every window once per epoch in a seeded random order (``data.use_balanced_sampling: false``)."""

    kind = "ShuffledWindowSampler"

    def __init__(self, categories: np.ndarray, *, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        cats = np.asarray(categories)
        super().__init__(cats.size, seed=seed, rank=rank, world_size=world_size)
        if cats.size == 0:
            raise SamplingError("no windows to sample: the split's recordings are all shorter than one window")
        self._seizure = float(np.count_nonzero(cats != NONE) / cats.size)

    def epoch_size(self) -> int:
        return self.n_windows

    def epoch_indices(self, epoch: int) -> np.ndarray:
        return self._rng(epoch).permutation(self.n_windows).astype(np.int64)

    def seizure_ratio(self) -> float:
        return self._seizure

    def describe(self) -> str:
        return (
            f"sampler: ShuffledWindowSampler (data.use_balanced_sampling: false): all {self.n_windows:,} windows "
            f"shuffled every epoch, seed {self.seed}"
            + (f", rank {self.rank}/{self.world_size}" if self.world_size > 1 else "")
            + f"; Seizure ratio: {100 * self.seizure_ratio():.1f}%"
        )


def make_sampler(
    categories: np.ndarray, data: DataConfig | None = None, *, rank: int = 0, world_size: int = 1
) -> EpochSampler:
    """The training sampler ``data`` asks for, logged at start-up with its seizure ratio."""
    data = data or DataConfig()
    sampler: EpochSampler
    if data.use_balanced_sampling:
        sampler = BalancedWindowSampler(
            categories,
            full_ratio=data.full_ratio,
            background_ratio=data.background_ratio,
            seed=data.seed,
            rank=rank,
            world_size=world_size,
        )
    else:
        sampler = ShuffledWindowSampler(categories, seed=data.seed, rank=rank, world_size=world_size)
    log.info(sampler.describe())
    return sampler


def _limit_worker_threads(_worker_id: int) -> None:
    # Each loader worker only slices and copies arrays: one thread each keeps N workers from oversubscribing cores.
    torch.set_num_threads(1)


def make_loader(
    dataset: Dataset[Any],
    data: DataConfig | None = None,
    *,
    batch_size: int,
    sampler: Sampler[int] | None = None,
    shuffle: bool = False,
    drop_last: bool = False,
    pin_memory: bool = False,
) -> DataLoader[Any]:
    """A DataLoader over ``dataset`` with ``data.num_workers`` workers.

    Workers use the platform's default start method (nothing is forced), are kept between epochs, run one
    thread each, and a worker silent for :data:`LOADER_TIMEOUT_S` raises instead of hanging. With
    ``sampler`` the order is the sampler's (training); without, sequential unless ``shuffle``.
    """
    data = data or DataConfig()
    workers = data.num_workers
    extra: dict[str, Any] = {}
    if workers > 0:
        extra = {
            "persistent_workers": True,
            "timeout": LOADER_TIMEOUT_S,
            "worker_init_fn": _limit_worker_threads,
            "prefetch_factor": 2,
        }
    generator = torch.Generator().manual_seed(data.seed) if shuffle and sampler is None else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=shuffle if sampler is None else False,
        num_workers=workers,
        drop_last=drop_last,
        pin_memory=pin_memory,
        generator=generator,
        **extra,
    )
