"""Independent blocks of work on CPU worker threads, one intra-op thread each: :func:`map_blocks`.

Why: a Mamba2 layer's PyTorch path runs its sequences in small blocks that stay in the CPU caches
(:meth:`ictal.models.mamba.mamba2.Mamba2.block_sequences`), and most of a block's steps are small elementwise
kernels and matrix products that do not split well across intra-op threads. Blocks are independent, so each core
can take whole blocks instead: one worker thread per intra-op thread the caller has, each computing with one
thread. PyTorch's operators release the GIL while they compute, so the workers overlap outside their Python
steps. With too few blocks per worker it is slower, hence :data:`MIN_BLOCKS_PER_WORKER` (``benchmarks/model.py
--serial-blocks``, figures in ``benchmarks/RESULTS.md``). BiMamba2's inference path makes tasks of equal work
instead (each block's two directions) and passes ``min_blocks_per_worker=1``.

The workers run each block under the caller's grad mode, inference mode and CPU autocast state (those are
per-thread in PyTorch). Results come back in the blocks' order, and every block is computed as it would be
serially, so the result does not depend on the number of workers. Serial fallback: one intra-op thread (or
``ICTAL_BLOCK_WORKERS=1``), fewer than :data:`MIN_BLOCKS_PER_WORKER` blocks per worker, a non-CPU device, or a call
from inside a worker.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

from ictal.config.env import BLOCK_WORKERS, env_count

__all__ = ["MIN_BLOCKS_PER_WORKER", "block_workers", "map_blocks"]

T = TypeVar("T")
R = TypeVar("R")


#: Fewest blocks per worker for which map_blocks uses the workers. With fewer, the last blocks leave a core idle
#: and each block loses its intra-op threads (benchmarks/RESULTS.md: batch 1 slower on workers, batch 8 faster).
MIN_BLOCKS_PER_WORKER = 8

_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()
_in_worker = threading.local()


def block_workers() -> int:
    """How many worker threads :func:`map_blocks` uses from the calling thread: its intra-op thread count
    (``torch.get_num_threads()``), at most ``ICTAL_BLOCK_WORKERS`` when that is set (1 turns the workers off), and 1
    inside a worker.

    Raises:
        ConfigError: ``ICTAL_BLOCK_WORKERS`` is not a positive whole number.
    """
    if getattr(_in_worker, "active", False):
        return 1
    threads = torch.get_num_threads()
    cap = env_count(BLOCK_WORKERS)
    return threads if cap is None else min(threads, cap)


def _start_worker() -> None:
    # Per-thread in PyTorch's OpenMP and MKL backends: this worker computes with one thread. A thread's first
    # parallel call sets its count to the process default, so that happens first (get_num_threads) and is then
    # overridden. set_num_threads also changes the default that threads started later inherit: _pool restores it.
    torch.get_num_threads()
    torch.set_num_threads(1)
    _in_worker.active = True


def _pool(workers: int) -> ThreadPoolExecutor:
    """The pool of ``workers`` single-threaded workers for this process (a forked child makes its own: the
    parent's threads do not exist there)."""
    key = (os.getpid(), workers)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            threads = torch.get_num_threads()
            pool = ThreadPoolExecutor(workers, thread_name_prefix="ictal-blocks", initializer=_start_worker)
            # Start every worker now (each runs its initializer once), then give the caller back its thread count:
            # torch.set_num_threads(1) in a worker also lowered the default for threads started afterwards.
            barrier = threading.Barrier(workers)
            for future in [pool.submit(barrier.wait) for _ in range(workers)]:
                future.result()
            torch.set_num_threads(threads)
            _pools[key] = pool
        return pool


@contextlib.contextmanager
def _caller_modes(grad: bool, inference: bool, autocast: tuple[bool, torch.dtype]) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        if inference:
            stack.enter_context(torch.inference_mode())
        stack.enter_context(torch.set_grad_enabled(grad))
        stack.enter_context(torch.autocast("cpu", dtype=autocast[1], enabled=autocast[0]))
        yield


def map_blocks(
    fn: Callable[[T], R],
    blocks: Sequence[T],
    device: torch.device,
    min_blocks_per_worker: int | None = None,
) -> list[R]:
    """``[fn(b) for b in blocks]``, in order. On a CPU with at least ``min_blocks_per_worker`` blocks (default
    :data:`MIN_BLOCKS_PER_WORKER`) for each of :func:`block_workers` (2 or more) threads, computed on that many
    workers with one intra-op thread each; otherwise a serial loop in the calling thread (whose operators use its
    intra-op threads). Blocks of equal work, made for the workers, need fewer than the default (1: one each)."""
    workers = block_workers()
    least = MIN_BLOCKS_PER_WORKER if min_blocks_per_worker is None else min_blocks_per_worker
    if workers < 2 or device.type != "cpu" or len(blocks) < least * workers:
        return [fn(b) for b in blocks]
    modes = (
        torch.is_grad_enabled(),
        torch.is_inference_mode_enabled(),
        (torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")),
    )

    def call(block: T) -> R:
        with _caller_modes(*modes):
            return fn(block)

    pool = _pool(workers)
    futures = [pool.submit(call, block) for block in blocks]
    try:
        return [future.result() for future in futures]
    finally:  # after an error or an interrupt, blocks not yet started are dropped rather than computed
        for future in futures:
            future.cancel()
