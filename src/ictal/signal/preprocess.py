"""The preprocessing chain shared by training, evaluation and inference (the reference system's defaults).

    raw (C, T_in) µV at sfreq  ->  resample to 256 Hz (polyphase)  ->  band-pass 0.5-120 Hz (Butterworth, order 3)
    ->  notch 60 Hz (Q 30)  ->  per-channel z-score  ->  clip to +-10 sigma  ->  NaN/Inf to 0  ->  float32 (C, T)

Every step is a field of :class:`PreprocessConfig`. Filters are causal second-order sections (``sosfilt``): one
cascade for band-pass and notch, so the same chain can run chunk by chunk carrying its filter state and give the
same numbers as the whole recording (the streaming issue relies on this). Resampling is polyphase
(``resample_poly``): FFT resampling of an awkward length is much slower (``benchmarks/preprocess.py``).

>>> x256 = preprocess(rec.data, rec.sfreq, PreprocessConfig())   # (19, T) z-units at 256 Hz
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy import signal as sps

from ictal.frames import SAMPLE_RATE
from ictal.signal.config import PreprocessConfig


def resample_ratio(sfreq: float, target: float) -> tuple[int, int]:
    """(up, down) for ``resample_poly``: 250 -> 256 Hz is (128, 125), 512 -> 256 is (1, 2)."""
    frac = Fraction(target).limit_denominator(1000) / Fraction(sfreq).limit_denominator(1000)
    return frac.numerator, frac.denominator


def resample(data: np.ndarray, sfreq: float, target: float = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling along the last axis. ``data`` (C, T) at ``sfreq`` -> (C, ceil(T * target / sfreq))."""
    up, down = resample_ratio(sfreq, target)
    if up == down:
        return data
    return sps.resample_poly(data, up, down, axis=-1)


@lru_cache(maxsize=32)
def filter_sos(cfg_key: tuple[float, float, float | None, int, int | None, float]) -> np.ndarray:
    """One SOS cascade (band-pass, then notch) for the given (fs, hp, lp, order, notch, q); cached."""
    fs, hp, lp, order, notch, q = cfg_key
    sections = []
    if hp > 0 and lp is not None:
        sections.append(sps.butter(order, [hp, lp], btype="bandpass", fs=fs, output="sos"))
    elif hp > 0:
        sections.append(sps.butter(order, hp, btype="highpass", fs=fs, output="sos"))
    elif lp is not None:
        sections.append(sps.butter(order, lp, btype="lowpass", fs=fs, output="sos"))
    if notch is not None:
        b, a = sps.iirnotch(notch, q, fs=fs)
        sections.append(sps.tf2sos(b, a))
    if not sections:
        return np.zeros((0, 6))
    return np.concatenate(sections, axis=0)


def _sos_for(cfg: PreprocessConfig) -> np.ndarray:
    return filter_sos((cfg.target_sfreq, cfg.highpass_hz, cfg.lowpass_hz, cfg.filter_order, cfg.notch_hz, cfg.notch_q))


def apply_filters(
    data: np.ndarray, cfg: PreprocessConfig, zi: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Causal band-pass + notch of ``data`` (C, T) at ``cfg.target_sfreq``; returns (filtered, final state).

    ``zi`` is the state returned by the previous chunk (shape (n_sections, C, 2)); None starts from rest.
    Filtering chunk by chunk with the carried state equals filtering the concatenation.
    """
    sos = _sos_for(cfg)
    if sos.shape[0] == 0:
        return data, zi
    if zi is None:
        zi = np.zeros((sos.shape[0], data.shape[0], 2), dtype=np.float64)
    out, zf = sps.sosfilt(sos, data, axis=-1, zi=zi)
    return out, zf


@dataclass
class ChannelStats:
    """Per-channel mean and standard deviation used by the z-score, shape (C,) each."""

    mean: np.ndarray
    std: np.ndarray


def channel_stats(data: np.ndarray) -> ChannelStats:
    """Mean and std per channel of ``data`` (C, T), ignoring NaN/Inf; a flat channel gets std 1 (stays 0)."""
    finite = np.isfinite(data)
    if finite.all():
        mean = data.mean(axis=1)
        std = data.std(axis=1)
    else:
        clean = np.where(finite, data, np.nan)
        mean = np.nan_to_num(np.nanmean(clean, axis=1))
        std = np.nan_to_num(np.nanstd(clean, axis=1))
    std = np.where(std > 1e-12, std, 1.0)
    return ChannelStats(mean=mean, std=std)


def normalise(data: np.ndarray, stats: ChannelStats | None, cfg: PreprocessConfig) -> np.ndarray:
    """Z-score with ``stats`` (if ``cfg.zscore``), clip to +-clip_sigma, NaN/Inf to 0; returns float32 (C, T).

    Written into one float32 buffer in place: the float64 temporaries of a naive ``(x - m) / s`` cost more
    than the filters on an hour of EEG.
    """
    out = np.empty(data.shape, dtype=np.float32)
    if cfg.zscore and stats is not None:
        np.subtract(data, stats.mean[:, None], out=out, casting="unsafe")
        out *= (1.0 / stats.std).astype(np.float32)[:, None]
    else:
        out[...] = data
    if not np.isfinite(out).all():
        np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    if cfg.clip_sigma is not None:
        np.clip(out, -cfg.clip_sigma, cfg.clip_sigma, out=out)
    return out


def preprocess(data: np.ndarray, sfreq: float, cfg: PreprocessConfig | None = None) -> np.ndarray:
    """Run the whole chain on one recording.

    Args:
        data: (C, T_in) EEG in microvolts at ``sfreq`` (usually the 19 canonical channels).
        sfreq: input sampling rate in Hz.
        cfg: the chain's parameters; defaults are the reference system's.

    Returns:
        (C, T) float32 at ``cfg.target_sfreq`` (256 Hz), in z-units when ``cfg.zscore``, finite everywhere.
    """
    cfg = cfg or PreprocessConfig()
    x = np.asarray(data, dtype=np.float64)
    # NaN/Inf would spread through the IIR filters; zero them first, the z-score ignores nothing else.
    if not np.isfinite(x).all():
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    x = resample(x, sfreq, cfg.target_sfreq)
    x, _ = apply_filters(x, cfg)
    stats = channel_stats(x) if cfg.zscore else None
    return normalise(x, stats, cfg)
