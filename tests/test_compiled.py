"""Compiled CPU inference of the Mamba2 layers (``ictal.models.compiled``): equal to the eager path, used only where
it applies, and falling back to the eager path when a chunk decays too fast or compiling fails."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import ictal.models.mamba2 as mamba2_module
from ictal.config.schema import config_from_dict
from ictal.infer.predict import PredictConfig, predict_recording, resolve_threshold
from ictal.models.compiled import CompiledInference, compile_inference, compiled_runner
from ictal.models.mamba2 import BiMamba2, Mamba2
from ictal.models.v3 import build_v3


def _uncompiled() -> CompiledInference:
    """The runner with the plain function itself in place of torch.compile (same formula, no compile time)."""
    return CompiledInference(compiler=lambda fn: fn)


def _layer(d_model: int = 16, d_state: int = 8, seed: int = 0) -> Mamba2:
    torch.manual_seed(seed)
    layer = Mamba2(d_model, d_state=d_state, headdim=8, chunk_size=16).eval()
    with torch.no_grad():  # non-default D, conv bias and norm weight, so every parameter's role is checked
        layer.D.uniform_(-1.0, 1.0)
        layer.conv1d.bias.uniform_(-0.5, 0.5)
        layer.norm.weight.uniform_(0.5, 1.5)
    return layer


@pytest.mark.parametrize(("sequences", "length", "blocks"), [(7, 100, 4), (3, 17, 1), (1, 64, 1), (5, 5, 1)])
def test_plain_formula_equals_the_eager_layer_for_any_length_and_batch(
    sequences: int, length: int, blocks: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Blocks of 2 sequences of 112 steps (in_proj width 84), so a padded last block is exercised as well.
    monkeypatch.setattr(mamba2_module, "_BLOCK_ELEMENTS", 2 * 112 * 84)
    layer = _layer()
    x = torch.randn(sequences, length, 16)
    with torch.no_grad():
        eager = layer(x)
        runner = compile_inference(layer, runner=_uncompiled())
        assert runner is not None
        out = layer(x)
    torch.testing.assert_close(out, eager, rtol=1e-5, atol=2e-6)
    assert runner.blocks == blocks
    assert runner.eager_blocks == 0 and runner.disabled is None


def test_a_chunk_decaying_past_the_factorised_limit_runs_on_the_eager_path() -> None:
    layer = _layer()
    with torch.no_grad():  # dt ~ 20, A ~ -5: a decay range of ~1500 per chunk, far past the limit of 80
        layer.dt_bias.fill_(20.0)
        layer.A_log.fill_(np.log(5.0))
    x = torch.randn(3, 48, 16)
    with torch.no_grad():
        eager = layer(x)
        runner = compile_inference(layer, runner=_uncompiled())
        assert runner is not None
        out = layer(x)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, eager, rtol=0, atol=0)  # the very same eager computation
    assert runner.eager_blocks == 1 and runner.blocks == 0


def test_training_streaming_float64_and_autocast_calls_stay_eager() -> None:
    layer = _layer()
    calls: list[tuple[int, ...]] = []

    def spy(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any) -> Any:
            calls.append(tuple(args[0].shape[:2]))  # (sequences, steps)
            return fn(*args)

        return wrapped

    runner = compile_inference(layer, runner=CompiledInference(compiler=spy))
    x = torch.randn(2, 32, 16)
    layer(x).sum().backward()  # autograd on
    with torch.no_grad():
        layer(x, return_state=True)  # a stream's state is asked for
        layer(x, state=layer.init_state(2, "cpu", torch.float32))
        layer.double()(x.double())
        layer.float()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            layer(x)
    assert calls == [] and runner is not None and runner.blocks == 0
    with torch.no_grad():
        layer(x)
    assert calls == [(2, 32)]
    compile_inference(layer, enabled=False)
    assert layer.compiled_inference is None and compiled_runner(layer) is None


def test_a_failed_compile_warns_once_names_the_fix_and_the_eager_path_runs() -> None:
    layer = _layer()

    def broken_compiler(fn: Callable[..., Any]) -> Callable[..., Any]:
        def fails(*args: Any) -> Any:
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

        return fails

    runner = compile_inference(layer, runner=CompiledInference(compiler=broken_compiler))
    assert runner is not None
    x = torch.randn(2, 40, 16)
    with torch.no_grad():
        with pytest.warns(RuntimeWarning, match="C\\+\\+ compiler"):
            first = layer(x)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no second warning
            second = layer(x)
        compile_inference(layer, enabled=False)
        eager = layer(x)
    assert runner.disabled is not None and "InvalidCxxCompiler" in runner.disabled
    torch.testing.assert_close(first, eager, rtol=0, atol=0)
    torch.testing.assert_close(second, eager, rtol=0, atol=0)


def test_v3_model_and_bidirectional_block_equal_eager_with_compiled_inference() -> None:
    torch.manual_seed(1)
    model = build_v3("tiny").eval()
    x = torch.randn(2, 19, 16 * 200)
    block = BiMamba2(16, d_state=8, headdim=8)
    seq = torch.randn(3, 50, 16)
    with torch.no_grad():
        eager, eager_block = model(x), block(seq)
        runner = compile_inference(model, runner=_uncompiled())
        compile_inference(block, runner=runner)
        out, out_block = model(x), block(seq)
    assert runner is not None and runner.blocks > 0 and runner.eager_blocks == 0
    torch.testing.assert_close(out, eager, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out_block, eager_block, rtol=1e-5, atol=2e-6)


def test_predict_with_compile_keeps_the_models_runner_and_gives_the_eager_trace(tmp_path: Path) -> None:
    from ictal.data.synthetic_signal import SOURCE_CHANNELS, synthesize_recording
    from ictal.io.channels import CANONICAL_19
    from ictal.io.edf_write import write_edf

    rec = synthesize_recording(40, 256.0, 1, np.random.default_rng(3))
    rows = [SOURCE_CHANNELS.index(c) for c in CANONICAL_19]
    edf = write_edf(tmp_path / "p_s001_t000.edf", list(rec.data[rows]), 256.0, [f"EEG {c}-REF" for c in CANONICAL_19])
    cfg = config_from_dict({"data": {"window_s": 10, "stride_s": 5}, "model": {"preset": "tiny"}})
    torch.manual_seed(0)
    model = build_v3(cfg.model).eval()
    threshold = resolve_threshold(cfg.post)
    eager = predict_recording(model, edf, cfg, threshold, predict=PredictConfig(chunk_s=15))
    runner = compile_inference(model, runner=_uncompiled())
    compiled = predict_recording(model, edf, cfg, threshold, predict=PredictConfig(chunk_s=15, compile=True))
    assert compiled_runner(model) is runner and runner is not None and runner.blocks > 0
    np.testing.assert_allclose(compiled.trace, eager.trace, atol=1e-4)


_HAS_CXX = any(shutil.which(c) for c in ("g++", "c++", "clang++"))


@pytest.mark.skipif(not _HAS_CXX, reason="torch.compile's CPU backend needs a C++ compiler")
def test_torch_compile_really_runs_and_equals_eager() -> None:
    layer = _layer(seed=4)
    x = torch.randn(3, 40, 16)
    with torch.no_grad():
        eager = layer(x)
        runner = compile_inference(layer)
        assert runner is not None
        out = layer(x)
    assert runner.disabled is None, runner.disabled
    assert runner.blocks == 1 and runner.eager_blocks == 0
    torch.testing.assert_close(out, eager, rtol=1e-5, atol=2e-6)
