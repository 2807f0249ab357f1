"""The ``preprocess:`` config section, without scipy: the config schema (and so the CLI's start-up) imports this
module only; the chain itself is :mod:`ictal.signal.preprocess`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator, with_config

from ictal.frames import SAMPLE_RATE


@with_config(ConfigDict(extra="forbid"))
@dataclass
class PreprocessConfig:
    """Preprocessing parameters (YAML section ``preprocess``)."""

    #: Output sampling rate in Hz; the model's 16 Hz frames assume 256.
    target_sfreq: Annotated[float, Field(gt=0)] = SAMPLE_RATE
    #: Band-pass edges in Hz; ``highpass_hz`` 0 or ``lowpass_hz`` null disables that edge.
    highpass_hz: Annotated[float, Field(ge=0)] = 0.5
    lowpass_hz: Annotated[float | None, Field(gt=0)] = 120.0
    filter_order: Annotated[int, Field(ge=1, le=8)] = 3
    #: Mains notch frequency: 60 (Americas, TUSZ), 50 (Europe), or null for none.
    notch_hz: Literal[50, 60] | None = 60
    notch_q: Annotated[float, Field(gt=0)] = 30.0
    #: Per-channel z-score over the recording (mean 0, std 1 per channel).
    zscore: bool = True
    #: Clip z-scored values to +-clip_sigma (raw outliers of >100 sigma caused NaNs in the reference system).
    clip_sigma: Annotated[float | None, Field(gt=0)] = 10.0

    @model_validator(mode="after")
    def _check_band(self) -> PreprocessConfig:
        nyquist = self.target_sfreq / 2
        if self.lowpass_hz is not None and self.lowpass_hz >= nyquist:
            raise ValueError(
                f"lowpass_hz={self.lowpass_hz} must be below the Nyquist frequency of target_sfreq ({nyquist} Hz)"
            )
        if self.lowpass_hz is not None and self.highpass_hz >= self.lowpass_hz:
            raise ValueError(f"highpass_hz={self.highpass_hz} must be below lowpass_hz={self.lowpass_hz}")
        if self.notch_hz is not None and self.notch_hz >= nyquist:
            raise ValueError(f"notch_hz={self.notch_hz} must be below Nyquist ({nyquist} Hz)")
        return self
