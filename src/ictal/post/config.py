"""Configuration of post-processing: probability trace -> seizure events (``post`` section of a config).

Every size is in seconds and converted to samples of the trace being processed (``round(seconds * rate)``),
so one config serves a 16 Hz frame trace and a 256 Hz sample trace alike. The defaults reproduce the
reference system: hysteresis 0.86 / 0.78, opening 11 frames and closing 31 frames at 16 Hz, events of 3 to
600 s, gaps under 2 s merged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Literal

import pydantic

Probability = Annotated[float, pydantic.Field(ge=0.0, le=1.0)]
Seconds = Annotated[float, pydantic.Field(ge=0.0, allow_inf_nan=False)]


@pydantic.with_config(pydantic.ConfigDict(extra="forbid"))
@dataclass
class PostConfig:
    """How a per-recording probability trace becomes seizure events (see ``ictal.post.events``).

    Attributes:
        tau_on: an event needs at least one stretch of ``p >= tau_on`` (lasting ``min_on_s``).
        tau_off: an event spans the whole surrounding stretch of ``p >= tau_off``; must be ``<= tau_on``.
        min_on_s: shortest stretch at ``p >= tau_on`` that turns an event on (0: one sample is enough).
        min_off_s: dips below ``tau_off`` shorter than this do not end an event (0: any dip ends it).
        opening_s: morphological opening: on-runs shorter than this are removed (0.6875 s = 11 frames at 16 Hz).
        closing_s: morphological closing: gaps shorter than this are filled (1.9375 s = 31 frames at 16 Hz).
        min_duration_s: events shorter than this are dropped (after merging).
        max_duration_s: events longer than this are split or dropped, per ``long_event_policy``.
        long_event_policy: ``split`` cuts a long event into the fewest equal pieces no longer than
            ``max_duration_s`` (keeps recall); ``drop`` removes it.
        merge_gap_s: events separated by a gap shorter than this become one event.
        confidence: what an event's confidence is: ``mean``, ``peak`` or ``percentile`` of p inside it.
        confidence_percentile: the percentile (0-100) used when ``confidence`` is ``percentile``.
    """

    tau_on: Probability = 0.86
    tau_off: Probability = 0.78
    min_on_s: Seconds = 0.0
    min_off_s: Seconds = 0.0
    opening_s: Seconds = 0.6875
    closing_s: Seconds = 1.9375
    min_duration_s: Seconds = 3.0
    max_duration_s: Annotated[float, pydantic.Field(gt=0.0, allow_inf_nan=False)] = 600.0
    long_event_policy: Literal["split", "drop"] = "split"
    merge_gap_s: Seconds = 2.0
    confidence: Literal["mean", "peak", "percentile"] = "mean"
    confidence_percentile: Annotated[float, pydantic.Field(ge=0.0, le=100.0)] = 90.0

    def __post_init__(self) -> None:
        # Cross-field rules; pydantic reports a ValueError raised here as a validation error of the section.
        if self.tau_off > self.tau_on:
            raise ValueError(
                f"post.tau_off ({self.tau_off}) must be <= post.tau_on ({self.tau_on}): an event turns on at "
                "tau_on and stays on down to tau_off; lower tau_off or raise tau_on"
            )
        if self.min_duration_s > self.max_duration_s:
            raise ValueError(
                f"post.min_duration_s ({self.min_duration_s}) must be <= post.max_duration_s "
                f"({self.max_duration_s}); otherwise no event can be kept"
            )


def validated_post_config(config: PostConfig | None) -> PostConfig:
    """``config`` checked against its field constraints (a plain ``PostConfig(...)`` call skips them).

    Raises:
        pydantic.ValidationError: naming the offending key and what is allowed.
    """
    if config is None:
        return PostConfig()
    return pydantic.TypeAdapter(PostConfig).validate_python(asdict(config))
