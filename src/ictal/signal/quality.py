"""Channels that carry no EEG: flat, disconnected or railing, found per channel while a recording is read.

A model scores whatever it is given: an all-zero recording still gets a trace (an untrained-looking 0.4 or
so) and a table line that says "ok". These checks run on the raw microvolts as they are read, in bounded
memory, so ``predict`` can say in its table, its JSON and its events file which channels (or the whole
recording) could not be scored as EEG.

- **flat**: the channel is constant (standard deviation below :data:`FLAT_UV`), e.g. all zeros;
- **disconnected**: nearly constant (below :data:`DISCONNECTED_UV`, far under any scalp EEG's tens of µV);
- **railing**: at least :data:`RAILING_FRACTION` of its samples sit at its own minimum or maximum, as when the
  amplifier's range clips the signal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ictal.signal.chunked import SampleSource

__all__ = ["ChannelProblem", "QualityTap", "recording_note"]

#: Below this standard deviation (µV) a channel is flat.
FLAT_UV = 0.01
#: Below this standard deviation (µV) a channel is disconnected (scalp EEG varies by tens of µV).
DISCONNECTED_UV = 0.5
#: At least this fraction of samples at the channel's extremes: railing.
RAILING_FRACTION = 0.1


@dataclass(frozen=True)
class ChannelProblem:
    """One channel that carries no usable EEG: ``problem`` is ``flat``, ``disconnected`` or ``railing``."""

    channel: str
    problem: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"channel": self.channel, "problem": self.problem, "detail": self.detail}


class QualityTap:
    """A :class:`~ictal.signal.chunked.SampleSource` that passes reads through and keeps per-channel statistics
    of the first pass over the recording (chunks read in order from sample 0): float64 sums, extremes and how
    many samples sit at them. Memory: a few numbers per channel."""

    def __init__(self, source: SampleSource, channel_names: tuple[str, ...]) -> None:
        self.source = source
        self.channel_names = channel_names
        n = len(channel_names)
        self._next = 0
        self._count = 0
        self._sum = np.zeros(n)
        self._sumsq = np.zeros(n)
        self._min = np.full(n, np.inf)
        self._max = np.full(n, -np.inf)
        self._at_min = np.zeros(n, dtype=np.int64)
        self._at_max = np.zeros(n, dtype=np.int64)

    @property
    def sfreq(self) -> float:
        return self.source.sfreq

    @property
    def n_samples(self) -> int:
        return self.source.n_samples

    def read(self, start: int, stop: int) -> np.ndarray:
        data = self.source.read(start, stop)
        if start == self._next and data.shape[1]:
            self._observe(data)
            self._next = stop
        return data

    def _observe(self, data: np.ndarray) -> None:
        x = np.nan_to_num(data.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        self._count += x.shape[1]
        self._sum += x.sum(axis=1)
        self._sumsq += np.square(x).sum(axis=1)
        lo, hi = x.min(axis=1), x.max(axis=1)
        # A new extreme restarts its count; an equal one adds to it.
        self._at_min = np.where(lo < self._min, 0, self._at_min) + (x == np.minimum(lo, self._min)[:, None]).sum(1)
        self._at_max = np.where(hi > self._max, 0, self._at_max) + (x == np.maximum(hi, self._max)[:, None]).sum(1)
        self._min, self._max = np.minimum(self._min, lo), np.maximum(self._max, hi)

    def problems(self) -> list[ChannelProblem]:
        """The channels that carry no usable EEG, in channel order (empty when all look like EEG)."""
        if self._count == 0:
            return []
        mean = self._sum / self._count
        std = np.sqrt(np.maximum(self._sumsq / self._count - mean**2, 0.0))
        out = []
        for i, name in enumerate(self.channel_names):
            if std[i] < FLAT_UV:
                out.append(ChannelProblem(name, "flat", f"constant at {mean[i]:.3g} µV"))
            elif std[i] < DISCONNECTED_UV:
                out.append(ChannelProblem(name, "disconnected", f"standard deviation {std[i]:.3g} µV"))
            else:
                at_rails = (self._at_min[i] + self._at_max[i]) / self._count
                if at_rails >= RAILING_FRACTION:
                    out.append(
                        ChannelProblem(
                            name,
                            "railing",
                            f"{100 * at_rails:.0f} % of samples at {self._min[i]:.4g} or {self._max[i]:.4g} µV",
                        )
                    )
        return out


def recording_note(problems: list[ChannelProblem], n_channels: int) -> str | None:
    """One line for a recording's table row and notes: None when every channel looks like EEG."""
    if not problems:
        return None
    if len(problems) == n_channels and {p.problem for p in problems} <= {"flat", "disconnected"}:
        kind = "flat" if all(p.problem == "flat" for p in problems) else "flat or disconnected"
        return f"no EEG: every channel is {kind}; the trace and events mean nothing"
    listed = ", ".join(f"{p.channel} {p.problem}" for p in problems)
    return f"{len(problems)} of {n_channels} channels carry no usable EEG ({listed}); events there are unreliable"
