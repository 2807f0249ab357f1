"""Synthetic scalp EEG for one recording: background, artifacts and seizures, in microvolts.

The design serves one purpose: seizures a small model can learn while a line-length detector cannot find them.

- Background: 1/f^beta noise (beta 1.2-1.8, rolled off above ~45 Hz), spatially correlated between neighbouring
  electrodes (exponential kernel over scalp distance), plus a posterior alpha rhythm (8.5-11.5 Hz, waxing and
  waning), slow drift, 60 Hz line noise and EKG leaking into ear/temporal channels.
- Artifacts, large and high in line length: eye blinks (Fp1/Fp2, 100-300 µV, slow), muscle bursts (20-70 Hz,
  40-150 µV RMS over temporal or frontal groups, 0.5-5 s), chewing (1-2 Hz trains of muscle bursts on both
  temporal chains, 5-25 s) and electrode pops (one channel, 1-5 steps of 200-1000 µV with exponential decay).
- Seizures, modest in amplitude (80-150 µV peak, comparable to background) but unmistakable in rhythm: a
  spike-and-wave discharge whose phase is shared by every involved electrode, whose frequency evolves (e.g.
  7 Hz slowing to 3 Hz), whose amplitude and spikiness grow, and which either starts everywhere (generalised)
  or starts at one electrode and spreads to its neighbours over seconds (focal). Activity is present exactly on
  the samples of ``[start, stop)`` and nowhere else, so the annotations are exact.

Line length is dominated by high frequencies: a 100 µV RMS muscle burst has ~10x the line length of a 100 µV
peak 5 Hz discharge, and a pop adds twice its step per pop. The seizure's signature is spectral and spatial
(a clear, evolving 3-8 Hz peak coherent across channels), which is what a learned model can pick up.

All arrays are float32 ``(n_sources, T)`` at the recording's rate, rows in :data:`SOURCE_CHANNELS` order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import ConfigDict, model_validator, with_config
from scipy import fft as spfft
from scipy import signal as sps

from ictal.io.channels import CANONICAL_19

#: Scalp locations that carry brain signal: the 19 canonical electrodes, ear (A1/A2) and anterior temporal (T1/T2).
SCALP: tuple[str, ...] = (*CANONICAL_19, "A1", "A2", "T1", "T2")
#: Other recorded sources: eye (ROC/LOC), heart (EKG), muscle (EMG), the photic stimulator, a floating electrode.
EXTRA_SOURCES: tuple[str, ...] = ("ROC", "LOC", "EKG", "EMG", "PHOTIC", "26")
#: Row order of :attr:`RecordingSignal.data`.
SOURCE_CHANNELS: tuple[str, ...] = SCALP + EXTRA_SOURCES

# Approximate 2-D scalp positions (x to the right, y to the front; head radius ~1), for spatial correlation and
# seizure spread. Neighbouring electrodes are 0.3-0.45 apart.
_POLAR = {  # outer ring at radius 0.8, angle in degrees from the right ear, counter-clockwise
    "Fp2": 72.0, "Fp1": 108.0, "F7": 144.0, "T3": 180.0, "T5": 216.0, "O1": 252.0,
    "O2": 288.0, "T6": 324.0, "T4": 0.0, "F8": 36.0,
}  # fmt: skip
_XY = {name: (0.8 * math.cos(math.radians(a)), 0.8 * math.sin(math.radians(a))) for name, a in _POLAR.items()}
_XY.update(
    {
        "Fz": (0.0, 0.4), "Cz": (0.0, 0.0), "Pz": (0.0, -0.4),
        "F3": (-0.34, 0.43), "F4": (0.34, 0.43), "C3": (-0.4, 0.0), "C4": (0.4, 0.0),
        "P3": (-0.34, -0.43), "P4": (0.34, -0.43),
        "A1": (-1.0, -0.08), "A2": (1.0, -0.08), "T1": (-0.93, 0.3), "T2": (0.93, 0.3),
    }
)  # fmt: skip
#: ``(len(SCALP), 2)`` positions in SCALP order.
POSITIONS: np.ndarray = np.array([_XY[name] for name in SCALP], dtype=np.float64)

#: Seizure types of TUSZ v2.0.3 with the share used here (more even than TUSZ so every type appears).
SEIZURE_TYPES: dict[str, float] = {
    "gnsz": 0.30, "fnsz": 0.28, "cpsz": 0.14, "absz": 0.08, "spsz": 0.06, "tcsz": 0.06, "tnsz": 0.05, "mysz": 0.03,
}  # fmt: skip
#: Types that start everywhere at once; the others start at one electrode and spread.
GENERALISED_TYPES: frozenset[str] = frozenset({"gnsz", "absz", "tcsz", "tnsz", "mysz"})
#: Electrodes a focal seizure may start at: all on the bipolar TCP chains (so ``.csv`` rows start at onset).
FOCUS_CANDIDATES: tuple[str, ...] = (
    "Fp1", "F3", "C3", "P3", "F7", "T3", "T5", "O1", "Fp2", "F4", "C4", "P4", "F8", "T4", "T6", "O2",
)  # fmt: skip

_IDX = {name: i for i, name in enumerate(SOURCE_CHANNELS)}
_N_SCALP = len(SCALP)

# Channel groups hit by muscle artifact (temporalis and frontalis muscles).
_MUSCLE_GROUPS: tuple[tuple[str, ...], ...] = (
    ("F7", "T3", "T5", "T1", "A1", "Fp1"),
    ("F8", "T4", "T6", "T2", "A2", "Fp2"),
    ("F7", "T3", "T5", "T1", "A1", "F8", "T4", "T6", "T2", "A2"),
    ("Fp1", "Fp2", "F7", "F8", "F3", "F4", "Fz"),
)
_TEMPORAL_BOTH: tuple[str, ...] = _MUSCLE_GROUPS[2]

#: A ``(low, high)`` range to draw from uniformly.
Range = tuple[float, float]


@with_config(ConfigDict(extra="forbid"))
@dataclass
class SignalConfig:
    """Amplitudes and rates of the synthetic signal; each ``(low, high)`` pair is drawn uniformly per event
    or per recording. Amplitudes in µV, frequencies in Hz, rates per minute of recording."""

    #: RMS of the 1/f background per recording.
    background_uv: Range = (20.0, 50.0)
    #: RMS of the alpha rhythm at O1/O2 (weaker towards the front) and its frequency.
    alpha_uv: Range = (10.0, 30.0)
    alpha_hz: Range = (8.5, 11.5)
    #: Peak amplitude of a seizure discharge at its strongest electrode, and its length in seconds.
    seizure_peak_uv: Range = (80.0, 150.0)
    seizure_s: Range = (15.0, 120.0)
    #: Discharge frequency at onset and at the end (it slows between them); absence seizures stay near 3 Hz.
    seizure_start_hz: Range = (5.5, 8.0)
    seizure_end_hz: Range = (2.5, 4.0)
    #: How far a focal seizure spreads from its focus, in head radii (neighbours sit 0.3-0.45 apart; above ~1.6
    #: it generalises secondarily). From 0.8 even the smallest seizure takes its focus's neighbours (7-14 scalp
    #: electrodes): a discharge confined to 2-5 electrodes under blinks or muscle is beyond the demo's tiny model.
    focal_reach: Range = (0.8, 2.5)
    blinks_per_min: Range = (4.0, 20.0)
    blink_uv: Range = (100.0, 300.0)
    muscle_per_min: Range = (1.0, 3.0)
    muscle_uv: Range = (40.0, 150.0)
    chewing_per_min: Range = (0.03, 0.15)
    pops_per_min: Range = (0.3, 1.5)
    pop_uv: Range = (200.0, 1000.0)
    drift_uv: Range = (10.0, 60.0)
    line_noise_uv: Range = (0.5, 5.0)

    @model_validator(mode="after")
    def _check_ranges(self) -> SignalConfig:
        for name, value in vars(self).items():
            low, high = value
            if not 0 <= low <= high:
                raise ValueError(f"{name}: need 0 <= low <= high, got ({low}, {high})")
        if self.seizure_s[0] < 3:
            raise ValueError(f"seizure_s: seizures must last at least 3 s, got {self.seizure_s}")
        return self


@dataclass(frozen=True)
class SyntheticSeizure:
    """One synthetic seizure. Times in seconds from the recording start.

    ``electrode_onsets`` maps every involved electrode (SCALP names) to the time its discharge starts; the
    earliest equals ``start``. ``focus`` is None for a generalised seizure.
    """

    start: float
    stop: float
    label: str
    focus: str | None
    electrode_onsets: dict[str, float]
    peak_uv: float
    start_hz: float
    end_hz: float


@dataclass(frozen=True)
class ArtifactEvent:
    """One artifact: ``kind`` is blink, muscle, chewing or pop; ``channels`` the SOURCE_CHANNELS it touches."""

    kind: str
    start: float
    stop: float
    channels: tuple[str, ...]


@dataclass
class RecordingSignal:
    """The sources of one synthetic recording.

    ``data``: float32 ``(len(SOURCE_CHANNELS), n_samples)`` in µV at ``rate`` Hz, referenced to a distant
    (noise-free) reference; montages are derived from it.
    """

    rate: float
    data: np.ndarray
    seizures: list[SyntheticSeizure]
    artifacts: list[ArtifactEvent]

    @property
    def duration(self) -> float:
        return self.data.shape[1] / self.rate

    def channel(self, name: str) -> np.ndarray:
        """The ``(T,)`` row of source ``name``."""
        return self.data[_IDX[name]]


# ----------------------------------------------------------------------------------------------------------
# helpers


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _shaped_noise(white: np.ndarray, rate: float, gain_of_freq: np.ndarray | None = None, **kw: float) -> np.ndarray:
    """Colour white noise ``(C, T)`` by a spectral gain, returning unit-variance rows ``(C, T)`` float32.

    The FFT runs on a fast length >= T (a prime recording length would make it ~10x slower) and is cut back.
    """
    n = white.shape[-1]
    m = spfft.next_fast_len(n, real=True)
    freqs = np.fft.rfftfreq(m, 1.0 / rate)
    gain = gain_of_freq if gain_of_freq is not None else _pink_gain(freqs, **kw)
    # Variance of the coloured output for unit white input: Parseval over the one-sided spectrum.
    power = np.abs(gain) ** 2
    var = (power[0] + 2 * power[1:].sum() - (power[-1] if m % 2 == 0 else 0.0)) / m
    spec = spfft.rfft(white, n=m, axis=-1)
    spec *= (gain / math.sqrt(max(var, 1e-30))).astype(np.float32)
    return spfft.irfft(spec, n=m, axis=-1)[..., :n].astype(np.float32, copy=False)


def _pink_gain(freqs: np.ndarray, beta: float = 1.5, corner_hz: float = 45.0, floor: float = 0.003) -> np.ndarray:
    """Amplitude gain of 1/f^beta noise, flat below 1 Hz, Butterworth-like roll-off above ``corner_hz``, and a
    white amplifier floor ``floor`` times the 1 Hz level."""
    f = np.maximum(freqs, 1.0)
    gain = f ** (-beta / 2) / (1 + (freqs / corner_hz) ** 8) ** 0.5
    gain = np.sqrt(gain**2 + floor**2)
    gain[0] = 0.0
    return gain


def _smooth_noise(rng: np.random.Generator, n: int, rate: float, timescale_s: float, rows: int = 1) -> np.ndarray:
    """Slow unit-variance random curves ``(rows, n)``: Gaussian knots every ``timescale_s`` linearly joined."""
    n_knots = int(math.ceil(n / rate / timescale_s)) + 2
    knots = rng.standard_normal((rows, n_knots))
    t = np.arange(n, dtype=np.float64) / (rate * timescale_s)
    grid = np.arange(n_knots, dtype=np.float64)
    return np.stack([np.interp(t, grid, k) for k in knots]).astype(np.float32)


def _poisson_times(rng: np.random.Generator, per_min: tuple[float, float], duration: float) -> np.ndarray:
    """Sorted event times (s) of a Poisson process whose rate is drawn from ``per_min``."""
    count = int(rng.poisson(_uniform(rng, per_min) * duration / 60.0))
    return np.sort(rng.uniform(0.0, duration, count))


def _weights(names: Sequence[str], values: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.array([_IDX[n] for n in names]), np.array(values, dtype=np.float32)


def _bandpass_noise(rng: np.random.Generator, rows: int, n: int, rate: float, lo: float, hi: float) -> np.ndarray:
    """Unit-variance noise ``(rows, n)`` band-limited to ``[lo, hi]`` Hz with smooth (raised-cosine) edges."""
    m = spfft.next_fast_len(n, real=True)
    freqs = np.fft.rfftfreq(m, 1.0 / rate)
    hi = min(hi, 0.45 * rate)
    edge = 4.0
    gain = np.clip(np.minimum((freqs - lo) / edge + 0.5, (hi - freqs) / edge + 0.5), 0.0, 1.0)
    gain = np.sin(0.5 * np.pi * gain) ** 2
    return _shaped_noise(rng.standard_normal((rows, n), dtype=np.float32), rate, gain)


# ----------------------------------------------------------------------------------------------------------
# background


def _background(rng: np.random.Generator, n: int, rate: float, cfg: SignalConfig) -> np.ndarray:
    """Correlated 1/f background on SCALP plus independent noise on the extra sources, µV ``(S, n)``."""
    beta = float(rng.uniform(1.2, 1.8))
    white = rng.standard_normal((len(SOURCE_CHANNELS), n), dtype=np.float32)
    # Spatial correlation: mix independent sources by the Cholesky factor of exp(-distance / 0.45).
    dist = np.linalg.norm(POSITIONS[:, None, :] - POSITIONS[None, :, :], axis=-1)
    chol = np.linalg.cholesky(np.exp(-dist / 0.45)).astype(np.float32)
    white[:_N_SCALP] = chol @ white[:_N_SCALP]
    x = _shaped_noise(white, rate, beta=beta, corner_hz=float(rng.uniform(35.0, 60.0)))
    scale = np.ones(len(SOURCE_CHANNELS), dtype=np.float32)
    scale[:_N_SCALP] = _uniform(rng, cfg.background_uv) * rng.uniform(0.85, 1.15, _N_SCALP)
    scale[[_IDX["A1"], _IDX["A2"]]] *= 0.6  # ears: little cerebral activity
    scale[_IDX["ROC"]] = scale[_IDX["LOC"]] = 15.0
    scale[_IDX["EKG"]] = 10.0
    scale[_IDX["EMG"]] = 8.0
    scale[_IDX["PHOTIC"]] = 0.0
    scale[_IDX["26"]] = 80.0
    x *= scale[:, None]
    return x


def _add_alpha(rng: np.random.Generator, x: np.ndarray, rate: float, cfg: SignalConfig) -> None:
    """Posterior alpha: two correlated narrow-band sources (left/right), waxing and waning over seconds."""
    n = x.shape[1]
    f_alpha = _uniform(rng, cfg.alpha_hz)
    m = spfft.next_fast_len(n, real=True)
    freqs = np.fft.rfftfreq(m, 1.0 / rate)
    src = _shaped_noise(
        rng.standard_normal((2, n), dtype=np.float32), rate, np.exp(-0.5 * ((freqs - f_alpha) / 0.5) ** 2)
    )
    left, right = src[0], 0.75 * src[0] + 0.66 * src[1]
    envelope = np.exp(0.7 * _smooth_noise(rng, n, rate, 3.0)[0] - 0.25)  # waxing and waning
    amp = _uniform(rng, cfg.alpha_uv)
    posterior = {"O1": 1.0, "O2": 1.0, "T5": 0.6, "T6": 0.6, "P3": 0.65, "P4": 0.65, "Pz": 0.6}
    middle = {"C3": 0.25, "C4": 0.25, "Cz": 0.25, "T3": 0.2, "T4": 0.2, "A1": 0.1, "A2": 0.1}
    front = {"F3": 0.08, "F4": 0.08, "Fz": 0.08, "F7": 0.06, "F8": 0.06, "Fp1": 0.04, "Fp2": 0.04}
    for name, w in {**posterior, **middle, **front}.items():
        side = left if name.endswith(("1", "3", "5", "7")) else right if name[-1].isdigit() else src[0]
        x[_IDX[name]] += (amp * w) * envelope * side


def _add_drift_and_line(rng: np.random.Generator, x: np.ndarray, rate: float, cfg: SignalConfig) -> None:
    """Slow electrode drift (tens of seconds) and 60 Hz mains on every scalp channel; a noisy floating pin."""
    n = x.shape[1]
    drift = _smooth_noise(rng, n, rate, float(rng.uniform(8.0, 25.0)), rows=_N_SCALP + 1)
    amps = rng.uniform(*cfg.drift_uv, _N_SCALP + 1).astype(np.float32)
    x[:_N_SCALP] += amps[:_N_SCALP, None] * drift[:_N_SCALP]
    x[_IDX["26"]] += 4 * amps[-1] * drift[-1]
    t = np.arange(n, dtype=np.float64) / rate
    phase = 2 * np.pi * 60.0 * t
    sin, cos = np.sin(phase).astype(np.float32), np.cos(phase).astype(np.float32)
    line = rng.uniform(*cfg.line_noise_uv, _N_SCALP).astype(np.float32)
    if rng.random() < 0.2:  # one badly attached electrode picks up much more mains
        line[rng.integers(_N_SCALP)] *= 10
    theta = rng.uniform(0, 2 * np.pi, _N_SCALP).astype(np.float32)
    x[:_N_SCALP] += (line * np.cos(theta))[:, None] * sin + (line * np.sin(theta))[:, None] * cos
    x[_IDX["26"]] += 30.0 * sin


def _add_ekg(rng: np.random.Generator, x: np.ndarray, rate: float) -> None:
    """EKG (QRS + T wave at 55-95 bpm) on the EKG channel and leaking weakly into ear and temporal channels."""
    n = x.shape[1]
    duration = n / rate
    rr = 60.0 / rng.uniform(55, 95)
    beats = np.cumsum(rr * (1 + 0.03 * rng.standard_normal(int(duration / rr) + 2))) - rng.uniform(0, rr)
    beats = beats[(beats >= 0) & (beats < duration)]
    train = np.zeros(n, dtype=np.float32)
    train[(beats * rate).astype(np.int64)] = 1.0
    kt = np.arange(-int(0.1 * rate), int(0.45 * rate)) / rate

    def g(center: float, width: float) -> np.ndarray:
        return np.exp(-0.5 * ((kt - center) / width) ** 2)

    kernel = (-0.15 * g(-0.03, 0.008) + g(0.0, 0.01) - 0.25 * g(0.03, 0.01) + 0.25 * g(0.25, 0.04)).astype(np.float32)
    ekg = sps.oaconvolve(train, kernel)[int(0.1 * rate) : int(0.1 * rate) + n].astype(np.float32)
    x[_IDX["EKG"]] += float(rng.uniform(400, 1500)) * ekg
    idx, w = _weights(
        ("A1", "A2", "T3", "T4", "T5", "T6", "T1", "T2"), rng.uniform(2.0, 20.0, 8)
    )  # µV of leaked R wave
    x[idx] += w[:, None] * ekg


# ----------------------------------------------------------------------------------------------------------
# artifacts


def _add_blinks(rng: np.random.Generator, x: np.ndarray, rate: float, cfg: SignalConfig) -> list[ArtifactEvent]:
    """Eye blinks: 0.3-0.5 s positive deflections, largest at Fp1/Fp2 and the eye channels."""
    n = x.shape[1]
    times = _poisson_times(rng, cfg.blinks_per_min, n / rate)
    if times.size == 0:
        return []
    train = np.zeros(n, dtype=np.float32)
    np.add.at(train, (times * rate).astype(np.int64), rng.uniform(*cfg.blink_uv, times.size).astype(np.float32))
    tau = float(rng.uniform(0.06, 0.1))
    kt = np.arange(int(6 * tau * rate)) / rate
    kernel = ((kt / tau) * np.exp(1 - kt / tau)).astype(np.float32)  # alpha function, peak 1 at tau
    blink = sps.oaconvolve(train, kernel)[:n].astype(np.float32)
    spread = {"Fp1": 1.0, "Fp2": 1.0, "F7": 0.4, "F8": 0.4, "F3": 0.35, "F4": 0.35, "Fz": 0.35, "T1": 0.15,
              "T2": 0.15, "C3": 0.08, "C4": 0.08, "Cz": 0.08, "ROC": 1.1, "LOC": 1.1}  # fmt: skip
    idx, w = _weights(tuple(spread), tuple(spread.values()))
    x[idx] += w[:, None] * blink
    length = 6 * tau
    return [ArtifactEvent("blink", float(t), float(min(t + length, n / rate)), tuple(spread)) for t in times]


def _add_muscle(rng: np.random.Generator, x: np.ndarray, rate: float, cfg: SignalConfig) -> list[ArtifactEvent]:
    """Muscle bursts (0.5-5 s of 20-70 Hz activity on one muscle group) and chewing (1-2 Hz trains of them)."""
    n = x.shape[1]
    duration = n / rate
    events: list[ArtifactEvent] = []
    for kind, times in (
        ("muscle", _poisson_times(rng, cfg.muscle_per_min, duration)),
        ("chewing", _poisson_times(rng, cfg.chewing_per_min, duration)),
    ):
        for t0 in times:
            if kind == "muscle":
                length = float(np.exp(rng.uniform(np.log(0.5), np.log(5.0))))
                group = _MUSCLE_GROUPS[int(rng.integers(len(_MUSCLE_GROUPS)))]
            else:
                length = float(rng.uniform(5.0, 25.0))
                group = _TEMPORAL_BOTH
            i0 = int(t0 * rate)
            i1 = min(n, i0 + max(int(length * rate), 8))
            m = i1 - i0
            if m < 8:
                continue
            noise = _bandpass_noise(rng, len(group), m, rate, 20.0, 70.0)
            envelope = sps.windows.tukey(m, 0.3).astype(np.float32)
            envelope *= np.exp(0.3 * _smooth_noise(rng, m, rate, 0.3)[0])
            if kind == "chewing":  # bursts at the chewing rate, ~40 % duty cycle
                tt = np.arange(m) / rate
                gate = np.sin(2 * np.pi * rng.uniform(1.0, 2.0) * tt + rng.uniform(0, 2 * np.pi))
                envelope *= np.clip((gate - 0.3) / 0.4, 0.0, 1.0).astype(np.float32)
            weights = rng.uniform(0.5, 1.0, len(group)).astype(np.float32) * _uniform(rng, cfg.muscle_uv)
            weights[[g in ("A1", "A2") for g in group]] *= 0.3  # ear electrodes sit off the temporalis muscle
            idx = np.array([_IDX[g] for g in group])
            x[idx, i0:i1] += weights[:, None] * envelope * noise
            x[_IDX["EMG"], i0:i1] += 2 * weights.max() * envelope * noise[0]
            events.append(ArtifactEvent(kind, i0 / rate, i1 / rate, (*group, "EMG")))
    return events


def _add_pops(rng: np.random.Generator, x: np.ndarray, rate: float, cfg: SignalConfig) -> list[ArtifactEvent]:
    """Electrode pops: on one electrode, 1-5 abrupt steps of 200-1000 µV decaying over 0.05-0.3 s."""
    n = x.shape[1]
    events: list[ArtifactEvent] = []
    candidates = (*CANONICAL_19, "A1", "A2")
    for t0 in _poisson_times(rng, cfg.pops_per_min, n / rate):
        name = candidates[int(rng.integers(len(candidates)))]
        tau = float(rng.uniform(0.05, 0.3))
        k = int(rng.integers(1, 6))
        offsets = np.sort(rng.uniform(0.0, 2.5 if k > 1 else 0.0, k))
        i0 = int(t0 * rate)
        i1 = min(n, i0 + int((offsets[-1] + 6 * tau) * rate) + 1)
        train = np.zeros(i1 - i0, dtype=np.float64)
        pos = (offsets * rate).astype(np.int64)
        pos = pos[pos < train.size]
        sign = 1.0 if rng.random() < 0.5 else -1.0
        np.add.at(train, pos, sign * rng.uniform(*cfg.pop_uv, pos.size))
        # One-pole filter: each impulse becomes a step that decays with time constant tau.
        x[_IDX[name], i0:i1] += sps.lfilter([1.0], [1.0, -math.exp(-1.0 / (tau * rate))], train).astype(np.float32)
        events.append(ArtifactEvent("pop", i0 / rate, i1 / rate, (name,)))
    return events


def _add_photic(rng: np.random.Generator, x: np.ndarray, rate: float) -> None:
    """Photic stimulator channel: in some recordings, 10 s blocks of flashes at 1-20 Hz."""
    n = x.shape[1]
    if rng.random() >= 0.3 or n / rate < 60:
        return
    t0 = float(rng.uniform(0, n / rate - 50))
    t = np.arange(n) / rate
    for k, f in enumerate((1.0, 3.0, 5.0, 10.0, 15.0, 20.0)):
        a, b = t0 + 8 * k, t0 + 8 * k + 5
        if b * rate >= n:
            break
        sl = slice(int(a * rate), int(b * rate))
        x[_IDX["PHOTIC"], sl] = np.where(np.sin(2 * np.pi * f * t[sl]) > 0.9, 1000.0, 0.0)


# ----------------------------------------------------------------------------------------------------------
# seizures


def place_seizures(
    rng: np.random.Generator, duration: float, count: int, seizure_s: tuple[float, float]
) -> list[tuple[float, float]]:
    """``count`` non-overlapping (start, stop) seconds inside ``[0, duration]``, 4-decimal times.

    Lengths are log-uniform in ``seizure_s``, at least 5 s from either end and 20 s apart; when they do not fit,
    fewer and shorter seizures are placed (never below ``seizure_s[0]``, or 3 s for a very short recording).
    """
    margin, gap = 5.0, 20.0
    while count > 0:
        room = duration - 2 * margin - (count - 1) * gap
        low = min(seizure_s[0], room / count)
        if low >= 3.0:
            break
        count -= 1
    if count == 0:
        return []
    high = max(low, min(seizure_s[1], room / count))
    lengths = np.exp(rng.uniform(np.log(low), np.log(high), count))
    if lengths.sum() > room:  # shrink proportionally, keeping every one >= low
        lengths = low + (lengths - low) * (room - count * low) / max(lengths.sum() - count * low, 1e-9)
    slack = room - lengths.sum()
    cuts = np.sort(rng.uniform(0.0, slack, count))
    starts = margin + cuts + np.concatenate(([0.0], np.cumsum(lengths[:-1] + gap)))
    out = []
    for s, length in zip(starts, lengths, strict=True):
        start = round(float(s), 4)
        out.append((start, round(min(start + float(length), duration - 1.0), 4)))
    return out


def _seizure(
    rng: np.random.Generator, x: np.ndarray, rate: float, start: float, stop: float, label: str, cfg: SignalConfig
) -> SyntheticSeizure:
    """Add one rhythmic, evolving, spreading discharge on the samples of ``[start, stop)``."""
    n = x.shape[1]
    i0 = max(0, math.ceil(start * rate - 1e-9))
    i1 = min(n, math.ceil(stop * rate - 1e-9))
    length = i1 - i0
    tt = (np.arange(i0, i1, dtype=np.float64) / rate) - start  # seconds since onset
    span = stop - start
    u = tt / span

    # Frequency: starts fast, slows (absence: ~3 Hz throughout); a little wander.
    if label == "absz":
        f_start = float(rng.uniform(2.8, 3.6))
        f_end = f_start * float(rng.uniform(0.85, 1.0))
    else:
        f_start, f_end = _uniform(rng, cfg.seizure_start_hz), _uniform(rng, cfg.seizure_end_hz)
    freq = f_start + (f_end - f_start) * u ** float(rng.uniform(0.6, 1.6))
    freq *= 1 + 0.03 * _smooth_noise(rng, length, rate, 2.0)[0]
    phase = 2 * np.pi * np.cumsum(freq) / rate + rng.uniform(0, 2 * np.pi)

    # Envelope: grows from 30-50 % to full, with quick fades at the exact start and stop.
    g0, rise = float(rng.uniform(0.3, 0.5)), float(rng.uniform(0.3, 0.6))
    s = np.clip(u / rise, 0.0, 1.0)
    growth = g0 + (1 - g0) * s * s * (3 - 2 * s)
    fades = np.clip(tt / 0.3, 0.0, 1.0) * np.clip((span - tt) / 0.6, 0.0, 1.0)
    peak = _uniform(rng, cfg.seizure_peak_uv)
    envelope = peak * growth * fades * (1 + 0.15 * _smooth_noise(rng, length, rate, 1.0)[0])
    spikiness = float(rng.uniform(0.1, 0.3)) + float(rng.uniform(0.4, 0.65)) * np.clip(u / 0.6, 0.0, 1.0)

    # Space: which electrodes take part, from when, how strongly, with what small lag.
    focus: str | None
    if label in GENERALISED_TYPES:
        focus = None
        delays = rng.uniform(0.0, 0.4, _N_SCALP)
        # The earliest electrode lies on the bipolar chains, so the union of .csv rows starts at onset.
        delays = np.maximum(delays - delays[[SCALP.index(e) for e in FOCUS_CANDIDATES]].min(), 0.0)
        frontality = (POSITIONS[:, 1] + 1) / 2
        weights = np.clip(0.65 + 0.3 * frontality + 0.08 * rng.standard_normal(_N_SCALP), 0.4, 1.0)
        lags = rng.uniform(0.0, 0.02, _N_SCALP)
        involved = np.ones(_N_SCALP, dtype=bool)
    else:
        focus = FOCUS_CANDIDATES[int(rng.integers(len(FOCUS_CANDIDATES)))]
        dist = np.linalg.norm(POSITIONS - POSITIONS[SCALP.index(focus)], axis=1)
        speed = float(rng.uniform(0.06, 0.2))  # head radii per second: neighbours join after 2-7 s
        reach = _uniform(rng, cfg.focal_reach)
        delays = dist / speed
        involved = (dist <= reach) & (delays < span - 3.0)
        involved[SCALP.index(focus)] = True
        weights = np.maximum(0.35, np.exp(-0.5 * (dist / rng.uniform(0.4, 0.8)) ** 2))
        lags = dist * rng.uniform(0.02, 0.06)
    # Ear electrodes see little cerebral activity, which is what makes them a usable (linked-ears) reference.
    weights[[SCALP.index("A1"), SCALP.index("A2")]] *= 0.3
    rows = np.flatnonzero(involved)

    # Waveform per involved electrode: cosine turning into spike-and-wave as spikiness grows.
    psi = phase[None, :] - 2 * np.pi * freq[None, :] * lags[rows, None]
    psi = (psi + np.pi) % (2 * np.pi) - np.pi
    width = 2 * np.pi * freq * 0.015  # a ~15 ms (sigma) spike, in phase units
    spike = np.exp(-0.5 * (psi / width) ** 2)
    slow = np.exp(-0.5 * (((psi - 2.2 + np.pi) % (2 * np.pi) - np.pi) / 1.0) ** 2)
    cycle_mean = (width + 0.8 * 1.0) / math.sqrt(2 * math.pi)
    spike_wave = (spike + 0.8 * slow - cycle_mean) / (1.15 * (1 - cycle_mean))  # peak ~1 at 3-8 Hz
    wave = (1 - spikiness) * np.cos(psi) + spikiness * spike_wave
    join = np.clip((tt[None, :] - delays[rows, None]) / 1.5, 0.0, 1.0)  # each electrode joins over 1.5 s
    x[rows, i0:i1] -= ((weights[rows, None] * join) * (envelope * wave)).astype(np.float32)  # surface-negative

    onsets = {SCALP[r]: round(start + float(delays[r]), 4) for r in rows}
    return SyntheticSeizure(start, stop, label, focus, onsets, peak, f_start, f_end)


# ----------------------------------------------------------------------------------------------------------


def synthesize_recording(
    duration_s: int, rate: float, n_seizures: int, rng: np.random.Generator, config: SignalConfig | None = None
) -> RecordingSignal:
    """One recording of ``duration_s`` seconds at ``rate`` Hz with up to ``n_seizures`` seizures.

    Args:
        duration_s: whole seconds (EDF records are 1 s).
        rate: sampling rate in Hz (250, 256, 400, 512 ...).
        n_seizures: seizures wanted; fewer are placed when they do not fit (see :func:`place_seizures`).
        rng: the recording's own generator (same generator state -> identical output).
        config: amplitudes and rates; defaults to :class:`SignalConfig`.

    Returns:
        The sources ``(len(SOURCE_CHANNELS), duration_s * rate)`` float32 µV with their events.
    """
    cfg = config or SignalConfig()
    n = int(round(duration_s * rate))
    x = _background(rng, n, rate, cfg)
    _add_alpha(rng, x, rate, cfg)
    _add_drift_and_line(rng, x, rate, cfg)
    _add_ekg(rng, x, rate)
    artifacts = _add_blinks(rng, x, rate, cfg)
    artifacts += _add_muscle(rng, x, rate, cfg)
    artifacts += _add_pops(rng, x, rate, cfg)
    _add_photic(rng, x, rate)
    labels = list(SEIZURE_TYPES)
    probs = np.array(list(SEIZURE_TYPES.values()))
    seizures = []
    for start, stop in place_seizures(rng, n / rate, n_seizures, cfg.seizure_s):
        label = labels[int(rng.choice(len(labels), p=probs / probs.sum()))]
        seizures.append(_seizure(rng, x, rate, start, stop, label, cfg))
    artifacts.sort(key=lambda a: (a.start, a.kind))
    return RecordingSignal(rate=float(rate), data=x, seizures=seizures, artifacts=artifacts)
