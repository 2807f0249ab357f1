"""Training progress: a progress bar in a terminal, a heartbeat line in logs (batch jobs, ``nohup``, CI).

Both show the rate in windows per second (all ranks together) and the time left for the planned steps.
Only rank 0 shows anything.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class StepInfo:
    """What one training batch did. ``skipped``: None (an optimizer step was taken), ``nonfinite_loss``,
    ``nonfinite_grad`` or ``fp16_overflow`` (the loss scaler skipped it; normal now and then under fp16)."""

    epoch: int
    step: int
    epoch_step: int
    loss: float
    grad_norm: float
    lr: float
    windows: int
    skipped: str | None


log = logging.getLogger("ictal.train")


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` (``?`` when unknown)."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class ProgressReporter:
    """Reports training steps.

    Args:
        total_steps: planned steps of the whole run; ``done_steps``: already done (a resumed run).
        steps_per_epoch, epochs: for the ``epoch e/E step s/S`` display.
        windows_per_step: windows per step over all ranks (batch size x world size).
        every_s: seconds between heartbeat lines (non-interactive).
        interactive: a rich progress bar instead of heartbeat lines.
        enabled: False on ranks other than 0.
    """

    def __init__(
        self,
        *,
        total_steps: int,
        done_steps: int,
        steps_per_epoch: int,
        epochs: int,
        windows_per_step: int,
        every_s: float,
        interactive: bool,
        enabled: bool = True,
    ) -> None:
        self.total_steps = total_steps
        self.start_steps = done_steps
        self.steps_per_epoch = steps_per_epoch
        self.epochs = epochs
        self.windows_per_step = windows_per_step
        self.every_s = every_s
        self.enabled = enabled
        self._t_first: float | None = None  # after the first step: it includes one-off start-up work
        self._steps_first = done_steps
        self._last_beat = time.monotonic()
        self._bar: Any = None
        self._task: Any = None
        if enabled and interactive:
            from rich.progress import TextColumn

            from ictal.progress import progress_bar

            self._bar = progress_bar(TextColumn("{task.fields[status]}"))
            self._bar.start()
            self._task = self._bar.add_task("train", total=total_steps, completed=done_steps, status="")

    def rate(self, step: int) -> float:
        """Windows per second since the first step of this invocation (NaN before the second)."""
        if self._t_first is None or step <= self._steps_first:
            return float("nan")
        return (step - self._steps_first) * self.windows_per_step / (time.monotonic() - self._t_first)

    def seconds_left(self, step: int) -> float:
        rate = self.rate(step)
        return (self.total_steps - step) * self.windows_per_step / rate if rate > 0 else float("nan")

    def line(self, info: StepInfo, nonfinite: int) -> str:
        """The heartbeat text for ``info``."""
        rate = self.rate(info.step)
        pct = 100.0 * info.step / max(1, self.total_steps)
        loss = f"{info.loss:.4f}" if math.isfinite(info.loss) else "non-finite"
        speed = (
            f"{rate:.2f} windows/s, {format_duration(self.seconds_left(info.step))} left"
            if math.isfinite(rate)
            else "first step of this process done (rate from the next heartbeat)"
        )
        return (
            f"epoch {info.epoch + 1}/{self.epochs} step {info.epoch_step}/{self.steps_per_epoch} "
            f"({info.step}/{self.total_steps}, {pct:.0f}%): loss {loss}, lr {info.lr:.2e}, {speed}, "
            f"non-finite steps {nonfinite}"
        )

    def update(self, info: StepInfo, nonfinite: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        first = self._t_first is None
        if first:
            self._t_first, self._steps_first = now, info.step
        if self._bar is not None:
            rate = self.rate(info.step)
            status = f"loss {info.loss:.4f} {rate:.1f} win/s nf {nonfinite}" if math.isfinite(rate) else ""
            self._bar.update(self._task, completed=info.step, status=status)
        elif first or now - self._last_beat >= self.every_s or info.step == self.total_steps:
            self._last_beat = now
            log.info("%s", self.line(info, nonfinite))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
