"""Chunked and online preprocessing against the whole-recording chain (ictal.signal.chunked).

Measured on these inputs: resampling and filtering are bit-exact (max |diff| 0.0); the two-pass z-score gives
max |diff| <= 1e-6 z-units (0.0 here: the running statistics round to the same float32 output).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ictal.io.channels import CANONICAL_19
from ictal.io.edf import open_edf, read_edf
from ictal.io.edf_write import write_edf
from ictal.signal.chunked import (
    ArraySource,
    OnlinePreprocessor,
    PolyphaseResampler,
    RunningChannelStats,
    filtered_chunks,
    output_length,
    preprocess_chunked,
    preprocess_chunks,
    recording_stats,
)
from ictal.signal.preprocess import PreprocessConfig, apply_filters, channel_stats, normalise, preprocess, resample
from ictal.synthetic.signal import SOURCE_CHANNELS, synthesize_recording

RATES = (250.0, 256.0, 400.0, 512.0)


def _raw(rate: float, seconds: float, seed: int = 0) -> np.ndarray:
    """(19, n) µV noise with a drift, a few NaN/Inf samples and one flat channel."""
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    x = rng.standard_normal((19, n)) * 30 + 200 * np.sin(np.linspace(0, 3, n))
    x[4, 100] = np.nan
    x[7, n // 2] = np.inf
    x[11] = 5.0  # flat: std 0 -> 1, stays 0 after the z-score
    return x.astype(np.float32)


class CountingSource(ArraySource):
    """An ArraySource that records the longest read, to check the chain never asks for more than a chunk."""

    longest = 0

    def read(self, start: int, stop: int) -> np.ndarray:
        self.longest = max(self.longest, stop - start)
        return super().read(start, stop)


@pytest.mark.parametrize("rate", RATES)
def test_chunked_chain_equals_the_whole_recording(rate: float) -> None:
    x = _raw(rate, 130.0)
    whole = preprocess(x, rate)
    for chunk_s in (7.3, 60.0, 1e4):  # awkward, round, and one chunk
        chunked = preprocess_chunked(ArraySource(x, rate), PreprocessConfig(), chunk_s)
        assert chunked.shape == whole.shape and chunked.dtype == np.float32
        assert np.abs(chunked - whole).max() <= 1e-6


@pytest.mark.parametrize("rate", RATES)
def test_resampling_and_filtering_are_bit_exact(rate: float) -> None:
    x = _raw(rate, 70.0, seed=1)
    clean = np.nan_to_num(x.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    filtered_whole, _ = apply_filters(resample(clean, rate, 256.0), PreprocessConfig())
    filtered = np.concatenate(list(filtered_chunks(ArraySource(x, rate), PreprocessConfig(), chunk_s=3.1)), axis=1)
    assert np.array_equal(filtered, filtered_whole)


@pytest.mark.parametrize("rate", RATES)
def test_online_resampler_with_random_pushes_is_bit_exact(rate: float) -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, int(rate * 40)))
    resampler = PolyphaseResampler(rate, 256.0, 3)
    parts, i, held = [], 0, 0
    while i < x.shape[1]:
        n = int(rng.integers(1, 900))
        parts.append(resampler.push(x[:, i : i + n]))
        held = max(held, resampler.buffered_samples)
        i += n
    parts.append(resampler.finish())
    out = np.concatenate(parts, axis=1)
    assert out.shape[1] == output_length(x.shape[1], rate, 256.0)
    assert np.array_equal(out, resample(x, rate, 256.0))
    assert held <= 900 + 2 * resampler.pad + resampler.down  # one push plus the filter margins, never the input


def test_running_stats_equal_whole_array_stats() -> None:
    x = _raw(256.0, 50.0).astype(np.float64)
    x[2, 10:20] = np.nan  # ignored, as channel_stats ignores them
    running = RunningChannelStats(19)
    for a in range(0, x.shape[1], 1777):
        running.update(x[:, a : a + 1777])
    got, want = running.stats(), channel_stats(x)
    np.testing.assert_allclose(got.mean, want.mean, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(got.std, want.std, rtol=1e-12)
    assert got.std[11] == 1.0  # flat channel


def test_chunks_from_an_edf_equal_preprocessing_the_whole_file(tmp_path: Path) -> None:
    rec = synthesize_recording(75, 250.0, 1, np.random.default_rng(3))
    rows = [SOURCE_CHANNELS.index(c) for c in CANONICAL_19]
    path = write_edf(tmp_path / "r.edf", list(rec.data[rows]), 250.0, [f"EEG {c.upper()}-REF" for c in CANONICAL_19])
    whole = preprocess(read_edf(path).data, 250.0)
    with open_edf(path) as src:
        done: list[tuple[int, int]] = []
        chunks = list(
            preprocess_chunks(src, PreprocessConfig(), chunk_s=20.0, on_chunk=lambda d, t: done.append((d, t)))
        )
    assert np.abs(np.concatenate(chunks, axis=1) - whole).max() <= 1e-6
    assert done[-1] == (8, 8)  # 4 chunks per pass, two passes (statistics, then output)
    assert max(c.shape[1] for c in chunks) <= 20 * 256 + 256


def test_reads_are_bounded_by_the_chunk() -> None:
    x = _raw(250.0, 300.0)
    src = CountingSource(x, 250.0)
    for _ in preprocess_chunks(src, PreprocessConfig(), chunk_s=30.0):
        pass
    assert src.longest == 30 * 250


def test_given_statistics_skip_the_first_pass() -> None:
    x = _raw(256.0, 60.0)
    stats = recording_stats(ArraySource(x, 256.0), PreprocessConfig(), chunk_s=11.0)
    src = CountingSource(x, 256.0)
    out = np.concatenate(list(preprocess_chunks(src, PreprocessConfig(), 15.0, stats=stats)), axis=1)
    assert np.abs(out - preprocess(x, 256.0)).max() <= 1e-6


def test_online_preprocessor_with_statistics_equals_offline() -> None:
    rng = np.random.default_rng(4)
    x = _raw(250.0, 90.0)
    cfg = PreprocessConfig()
    stats = recording_stats(ArraySource(x, 250.0), cfg)
    online = OnlinePreprocessor(250.0, 19, cfg, stats=stats)
    parts, i = [], 0
    while i < x.shape[1]:
        n = int(rng.integers(50, 700))
        parts.append(online.push(x[:, i : i + n]))
        i += n
    parts.append(online.finish())
    assert np.abs(np.concatenate(parts, axis=1) - preprocess(x, 250.0)).max() <= 1e-6


def test_online_calibration_freezes_the_statistics_of_the_first_seconds() -> None:
    x = _raw(256.0, 100.0)
    x[:, 256 * 60 :] *= 3.0  # louder after the calibration period: the frozen statistics must not follow
    cfg = PreprocessConfig()
    online = OnlinePreprocessor(256.0, 19, cfg, calibration_s=30.0)
    sizes, parts = [], []
    for a in range(0, x.shape[1], 256):
        part = online.push(x[:, a : a + 256])
        sizes.append(part.shape[1])
        parts.append(part)
    parts.append(online.finish())
    out = np.concatenate(parts, axis=1)
    assert sum(sizes[:29]) == 0 and sizes[30] > 0  # nothing until 30 s are filtered, then everything
    filtered = np.concatenate(list(filtered_chunks(ArraySource(x, 256.0), cfg)), axis=1)
    expected = normalise(filtered, channel_stats(filtered[:, : 30 * 256]), cfg)
    assert out.shape == expected.shape
    assert np.abs(out - expected).max() <= 1e-5


def test_a_stream_shorter_than_the_calibration_uses_all_of_it() -> None:
    x = _raw(256.0, 20.0)
    online = OnlinePreprocessor(256.0, 19, PreprocessConfig(), calibration_s=300.0)
    assert online.push(x).shape[1] == 0
    out = online.finish()
    assert np.abs(out - preprocess(x, 256.0)).max() <= 1e-6


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="chunk_s"):
        list(preprocess_chunks(ArraySource(np.zeros((19, 100)), 256.0), PreprocessConfig(), chunk_s=0))
    with pytest.raises(ValueError, match="calibration_s"):
        OnlinePreprocessor(256.0, 19, PreprocessConfig(), calibration_s=0)
    with pytest.raises(ValueError, match=r"\(19, n\)"):
        PolyphaseResampler(250.0, 256.0, 19).push(np.zeros((3, 10)))
