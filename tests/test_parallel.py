"""Blocks of sequences on worker threads (ictal.models.mamba.parallel) and the Mamba2 layer's use of them."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator

import pytest
import torch
from torch.testing import assert_close

import ictal.models.mamba.mamba2 as mamba2_module
import ictal.models.mamba.parallel as parallel
from ictal.errors import ConfigError
from ictal.models.mamba.mamba2 import BiMamba2, Mamba2

F64 = torch.float64


@pytest.fixture
def two_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Two intra-op threads, and workers used from 2 blocks on (the default asks for many more)."""
    monkeypatch.setattr(parallel, "MIN_BLOCKS_PER_WORKER", 1)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def test_map_blocks_runs_on_single_threaded_workers_in_order(two_threads: None) -> None:
    seen: list[tuple[str, int]] = []

    def work(i: int) -> int:
        seen.append((threading.current_thread().name, torch.get_num_threads()))
        return i * i

    assert parallel.map_blocks(work, range(9), torch.device("cpu")) == [i * i for i in range(9)]
    assert {name.startswith("ictal-blocks") for name, _ in seen} == {True}
    assert {threads for _, threads in seen} == {1}
    # The caller keeps its own thread count, and so do threads started afterwards.
    assert torch.get_num_threads() == 2
    later: list[int] = []
    thread = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert later == [2]


def test_map_blocks_falls_back_to_a_serial_loop(two_threads: None, monkeypatch: pytest.MonkeyPatch) -> None:
    main = threading.current_thread().name
    names: list[str] = []

    def work(i: int) -> int:
        names.append(threading.current_thread().name)
        return i

    assert parallel.map_blocks(work, [1], torch.device("cpu")) == [1]
    assert parallel.map_blocks(work, [1, 2], torch.device("meta")) == [1, 2]
    assert names == [main] * 3
    torch.set_num_threads(1)
    assert parallel.map_blocks(work, [1, 2], torch.device("cpu")) == [1, 2]
    assert names == [main] * 5
    torch.set_num_threads(2)
    # Too few blocks for each worker to be worth it: serial.
    monkeypatch.setattr(parallel, "MIN_BLOCKS_PER_WORKER", 3)
    assert parallel.map_blocks(work, range(5), torch.device("cpu")) == list(range(5))
    assert names == [main] * 10
    assert parallel.map_blocks(work, range(6), torch.device("cpu")) == list(range(6))
    assert main not in names[10:]
    monkeypatch.setattr(parallel, "MIN_BLOCKS_PER_WORKER", 1)
    # Inside a worker a nested call runs serially on that worker.
    nested = parallel.map_blocks(
        lambda i: parallel.map_blocks(lambda j: (threading.current_thread().name, j), [i, i], torch.device("cpu")),
        [0, 1],
        torch.device("cpu"),
    )
    for pairs in nested:
        assert pairs[0][0] == pairs[1][0] != main


def test_map_blocks_carries_the_callers_modes_and_errors(two_threads: None) -> None:
    def modes(_: int) -> tuple[bool, bool, bool, torch.dtype]:
        return (
            torch.is_grad_enabled(),
            torch.is_inference_mode_enabled(),
            torch.is_autocast_enabled("cpu"),
            torch.get_autocast_dtype("cpu"),
        )

    cpu = torch.device("cpu")
    assert set(parallel.map_blocks(modes, [0, 1], cpu)) == {(True, False, False, torch.bfloat16)}
    with torch.no_grad():
        assert set(parallel.map_blocks(modes, [0, 1], cpu)) == {(False, False, False, torch.bfloat16)}
    with torch.inference_mode():
        assert set(parallel.map_blocks(modes, [0, 1], cpu)) == {(False, True, False, torch.bfloat16)}
        # Inference tensors made by the caller can be written in place by the workers.
        out = torch.zeros(4)
        parallel.map_blocks(lambda i: out[i].fill_(i), range(4), cpu)
        assert out.tolist() == [0, 1, 2, 3]
    with torch.autocast("cpu", dtype=torch.float16):
        assert set(parallel.map_blocks(modes, [0, 1], cpu)) == {(True, False, True, torch.float16)}

    def fails(i: int) -> int:
        if i == 1:
            raise ValueError("block 1 is bad")
        return i

    with pytest.raises(ValueError, match="block 1 is bad"):
        parallel.map_blocks(fails, [0, 1, 2], cpu)


def test_block_sizes_are_near_equal() -> None:
    m = Mamba2(64, d_state=16, headdim=8)
    assert m.block_sequences(960) == 3
    # The base node stream of one window: 19 sequences in 7 blocks of 2-3; of 8 windows, 152 in 51 blocks.
    assert m.block_sizes(19, 960) == [3, 3, 3, 3, 3, 2, 2]
    assert m.block_sizes(152, 960) == [3] * 50 + [2]
    assert m.block_sizes(2, 16) == [2]
    assert m.block_sizes(1, 960) == [1]
    assert m.block_sizes(0, 960) == [0]


def _layer(monkeypatch: pytest.MonkeyPatch) -> tuple[Mamba2, torch.Tensor]:
    torch.manual_seed(0)
    m = Mamba2(8, d_state=4, headdim=4, chunk_size=5, recompute_above_mb=None).to(F64)
    with torch.no_grad():
        m.conv1d.bias.normal_()
        m.norm.weight.uniform_(0.5, 1.5)
        m.D.normal_()
    # Blocks of 2 sequences, shared among the workers however small the call.
    monkeypatch.setattr(mamba2_module, "_BLOCK_ELEMENTS", 2 * 23 * m.in_proj.out_features)
    return m, torch.randn(7, 23, 8, dtype=F64)


def _outputs_and_gradients(m: Mamba2, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    x = x.clone().requires_grad_(True)
    m.zero_grad()
    out = m(x)
    (out * torch.linspace(-1, 1, out.numel(), dtype=F64).view_as(out)).sum().backward()
    assert x.grad is not None
    return (out.detach(), x.grad, *(p.grad for p in m.parameters() if p.grad is not None))


@pytest.mark.parametrize("recompute", [False, True])
def test_mamba2_blocks_on_workers_equal_one_thread(
    two_threads: None, monkeypatch: pytest.MonkeyPatch, recompute: bool
) -> None:
    m, x = _layer(monkeypatch)
    m.recompute_above_mb = 0.0 if recompute else None
    assert m.recomputes(x) == recompute
    threads: list[str] = []
    forward_block = m._forward_block

    def spy(*args: object) -> object:
        threads.append(threading.current_thread().name)
        return forward_block(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(m, "_forward_block", spy)
    parallel_results = _outputs_and_gradients(m, x)
    # 4 blocks of 2 on the workers; recomputing, again in the backward pass.
    assert len(threads) == (8 if recompute else 4) and all(name.startswith("ictal-blocks") for name in threads)
    torch.set_num_threads(1)
    serial_results = _outputs_and_gradients(m, x)
    assert len(serial_results) == len(parallel_results) == 2 + len(list(m.parameters()))
    for a, b in zip(parallel_results, serial_results, strict=True):
        assert_close(a, b, rtol=1e-12, atol=1e-12)


def spy_on(call: Callable[..., torch.Tensor], name: str, seen: list[tuple[str, str]]) -> Callable[..., torch.Tensor]:
    def spy(*args: object, **kwargs: object) -> torch.Tensor:
        seen.append((name, threading.current_thread().name))
        return call(*args, **kwargs)

    return spy


def test_bimamba_blocks_on_workers_equal_one_thread(two_threads: None, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    bi = BiMamba2(8, d_state=4, headdim=4, chunk_size=5).to(F64)
    x = torch.randn(7, 23, 8, dtype=F64)
    monkeypatch.setattr(mamba2_module, "_BLOCK_ELEMENTS", 2 * 23 * bi.mamba_forward.in_proj.out_features)
    threads: list[str] = []
    block = bi._block

    def spy(xb: torch.Tensor) -> torch.Tensor:
        threads.append(threading.current_thread().name)
        return block(xb)

    monkeypatch.setattr(bi, "_block", spy)
    # Without autograd each block's two directions are separate tasks: 4 blocks -> 8 tasks, on the workers.
    directions: list[tuple[str, str]] = []
    for name in ("mamba_forward", "mamba_reverse"):
        layer = getattr(bi, name)
        monkeypatch.setattr(layer, "forward", spy_on(layer.forward, name, directions))
    with torch.no_grad():
        on_workers = bi(x)
    with torch.inference_mode():
        on_workers_inference = bi(x)
    assert sorted(name for name, _ in directions) == ["mamba_forward"] * 8 + ["mamba_reverse"] * 8
    assert all(thread.startswith("ictal-blocks") for _, thread in directions)
    assert not threads
    for layer in (bi.mamba_forward, bi.mamba_reverse):
        monkeypatch.delattr(layer, "forward")
    # Recomputing training call: whole blocks (norm and both directions) go to the workers forward and backward.
    for layer in (bi.mamba_forward, bi.mamba_reverse):
        layer.recompute_above_mb = 0.0
    xi = x.clone().requires_grad_(True)
    bi(xi).square().sum().backward()
    assert len(threads) == 8 and all(name.startswith("ictal-blocks") for name in threads)
    grads = [p.grad.clone() for p in bi.parameters() if p.grad is not None]
    torch.set_num_threads(1)
    bi.zero_grad()
    xs = x.clone().requires_grad_(True)
    serial = bi(xs)
    serial.square().sum().backward()
    assert threads[8:] == [threading.current_thread().name] * 8
    assert_close(on_workers, serial.detach(), rtol=1e-12, atol=1e-12)
    assert_close(on_workers_inference, on_workers, rtol=0, atol=0)
    assert_close(xi.grad, xs.grad, rtol=1e-12, atol=1e-12)
    serial_grads = [p.grad for p in bi.parameters() if p.grad is not None]
    assert len(grads) == len(serial_grads) == len(list(bi.parameters()))
    for a, b in zip(grads, serial_grads, strict=True):
        assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_workers_can_be_capped_by_the_environment(two_threads: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert parallel.block_workers() == 2
    monkeypatch.setenv("ICTAL_BLOCK_WORKERS", "1")
    assert parallel.block_workers() == 1
    main = threading.current_thread().name
    assert parallel.map_blocks(lambda i: threading.current_thread().name, range(4), torch.device("cpu")) == [main] * 4
    monkeypatch.setenv("ICTAL_BLOCK_WORKERS", "8")
    assert parallel.block_workers() == 2
    for bad in ("0", "two"):
        monkeypatch.setenv("ICTAL_BLOCK_WORKERS", bad)
        with pytest.raises(ConfigError, match="ICTAL_BLOCK_WORKERS=.* is not a positive whole number .*; set it to 1"):
            parallel.block_workers()
    monkeypatch.setenv("ICTAL_BLOCK_WORKERS", "")  # empty: unset
    assert parallel.block_workers() == 2


def test_capped_workers_leave_the_callers_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    # A pool of a size no other test makes (3 workers), started by a caller with 5 intra-op threads.
    monkeypatch.setattr(parallel, "MIN_BLOCKS_PER_WORKER", 1)
    assert (os.getpid(), 3) not in parallel._pools
    threads = torch.get_num_threads()
    torch.set_num_threads(5)
    try:
        monkeypatch.setenv("ICTAL_BLOCK_WORKERS", "3")
        names = parallel.map_blocks(lambda i: threading.current_thread().name, range(6), torch.device("cpu"))
        assert all(name.startswith("ictal-blocks") for name in names) and len(set(names)) <= 3
        assert torch.get_num_threads() == 5
    finally:
        torch.set_num_threads(threads)
