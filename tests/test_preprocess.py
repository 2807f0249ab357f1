"""The preprocessing chain: rates, filters, z-score, clipping, chunked filtering, config checks."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from ictal.signal.preprocess import (
    PreprocessConfig,
    apply_filters,
    channel_stats,
    preprocess,
    resample,
    resample_ratio,
)

ADAPTER = TypeAdapter(PreprocessConfig)


def _amplitude_at(x: np.ndarray, fs: float, freq: float) -> float:
    """Amplitude of the ``freq`` component of a 1-D signal (single-bin DFT)."""
    t = np.arange(x.size) / fs
    return float(2 * np.abs(np.mean(x * np.exp(-2j * np.pi * freq * t))))


@pytest.mark.parametrize(
    ("fs", "ratio"), [(250, (128, 125)), (256, (1, 1)), (400, (16, 25)), (512, (1, 2)), (1000, (32, 125))]
)
def test_resample_ratio(fs: float, ratio: tuple[int, int]) -> None:
    assert resample_ratio(fs, 256) == ratio


@pytest.mark.parametrize("fs", [250, 400, 512])
def test_resample_length_and_tone(fs: int) -> None:
    n = fs * 13 + 7  # awkward length
    t = np.arange(n) / fs
    x = np.sin(2 * np.pi * 10 * t)[None, :]
    y = resample(x, fs, 256)
    assert y.shape == (1, int(np.ceil(n * 256 / fs)))
    # a 10 Hz tone keeps its amplitude away from the edges
    core = y[0, 256:-256]
    assert _amplitude_at(core, 256, 10) == pytest.approx(1.0, abs=0.02)


def test_chain_output_contract() -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((19, 250 * 30)) * 40).astype(np.float32)
    y = preprocess(x, 250)
    assert y.dtype == np.float32
    assert y.shape == (19, 256 * 30)
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y.mean(axis=1), 0, atol=1e-3)
    np.testing.assert_allclose(y.std(axis=1), 1, atol=0.02)


def test_filters_keep_band_remove_mains_and_drift() -> None:
    fs = 256
    t = np.arange(fs * 60) / fs
    x = np.sin(2 * np.pi * 10 * t) + np.sin(2 * np.pi * 60 * t) + 5 * np.sin(2 * np.pi * 0.05 * t)
    cfg = PreprocessConfig(zscore=False, clip_sigma=None)
    y = preprocess(x[None], fs, cfg)[0, fs * 20 :]  # skip the causal filters' settling
    assert _amplitude_at(y, fs, 10) == pytest.approx(1.0, abs=0.05)
    assert _amplitude_at(y, fs, 60) < 0.02
    assert _amplitude_at(y, fs, 0.05) < 0.1


def test_notch_50_is_used() -> None:
    fs = 256
    t = np.arange(fs * 40) / fs
    x = (np.sin(2 * np.pi * 50 * t) + np.sin(2 * np.pi * 60 * t))[None]
    y = preprocess(x, fs, PreprocessConfig(notch_hz=50, zscore=False, clip_sigma=None))[0, fs * 10 :]
    assert _amplitude_at(y, fs, 50) < 0.02
    assert _amplitude_at(y, fs, 60) > 0.5


def test_chunked_filtering_equals_whole() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((19, 256 * 20))
    cfg = PreprocessConfig()
    whole, _ = apply_filters(x, cfg)
    parts, zi = [], None
    for a, b in [(0, 1000), (1000, 1001), (1001, 3333), (3333, x.shape[1])]:
        y, zi = apply_filters(x[:, a:b], cfg, zi)
        parts.append(y)
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, rtol=0, atol=1e-12)


def test_clip_and_non_finite_input() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((19, 256 * 20))
    x[3, 1000] = 1e7  # a raw outlier of far more than 100 sigma
    x[5, 2000:2100] = np.nan
    x[6, 50] = np.inf
    y = preprocess(x, 256)
    assert np.isfinite(y).all()
    assert np.abs(y).max() <= 10.0
    assert np.abs(y[3]).max() == pytest.approx(10.0)


def test_flat_channel_stays_zero() -> None:
    x = np.zeros((2, 256 * 5))
    x[1] = np.random.default_rng(3).standard_normal(256 * 5)
    stats = channel_stats(x)
    assert stats.std[0] == 1.0
    y = preprocess(x, 256)
    assert np.all(y[0] == 0)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"lowpass_hz": 130}, "lowpass_hz"),
        ({"highpass_hz": 50, "lowpass_hz": 40}, "highpass_hz"),
        ({"notch_hz": 55}, "notch_hz"),
        ({"clip_sigmaa": 3}, "clip_sigmaa"),
    ],
)
def test_config_rejects_bad_values(raw: dict, key: str) -> None:
    with pytest.raises(ValidationError) as info:
        ADAPTER.validate_python(raw)
    assert key in str(info.value)
