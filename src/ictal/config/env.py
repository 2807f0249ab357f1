"""Environment switches: every variable ictal reads, in one table, with one grammar each.

Flags take ``1/true/yes/on`` or ``0/false/no/off`` (any case); counts take a positive whole number. A value
outside that is a :class:`~ictal.errors.ConfigError` naming the variable and what it accepts, never a silent
default. The reference system's names are accepted as aliases of ours, since its users will type them; when
both are set, ours wins.

====================================  ===================================  ==========================================
variable (alias)                      kind                                 what it does
====================================  ===================================  ==========================================
``ICTAL_NAN_DEBUG`` (BGB_NAN_DEBUG)   flag, over ``model.debug_nan``       name the first module with a NaN/Inf output
``ICTAL_SANITIZE_GRADS``              flag, over ``training.               NaN/Inf gradients zeroed before clipping
(BGB_SANITIZE_GRADS)                  sanitize_grads``
``ICTAL_FORCE_REFERENCE_SCAN``        flag, default off                    Mamba2 runs its PyTorch SSD reference scan
(SEIZURE_MAMBA_FORCE_FALLBACK)                                             on every device (no CUDA kernels, no numba)
``ICTAL_CPU_SCAN``                    flag, default on                     0: the SSD scan instead of numba's on a CPU
``ICTAL_BLOCK_WORKERS``               count, default: the thread count     Mamba2 block worker threads (1: none)
``BGB_EDGE_CLAMP``                    (reference system only)              edges are bounded by construction here;
                                                                           said in one line when it is set
====================================  ===================================  ==========================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ictal.errors import ConfigError

__all__ = [
    "BLOCK_WORKERS",
    "CPU_SCAN",
    "FORCE_REFERENCE_SCAN",
    "NAN_DEBUG",
    "SANITIZE_GRADS",
    "SWITCHES",
    "EnvSwitch",
    "env_count",
    "env_flag",
    "note_reference_only_switches",
]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True)
class EnvSwitch:
    """One environment variable: its name, the reference system's names for it, and what it does."""

    name: str
    aliases: tuple[str, ...] = ()
    help: str = ""

    def raw(self) -> tuple[str, str] | None:
        """``(variable, value)`` of the first of ``name`` and its aliases that is set and not empty."""
        for var in (self.name, *self.aliases):
            value = os.environ.get(var, "").strip()
            if value:
                return var, value
        return None


NAN_DEBUG = EnvSwitch("ICTAL_NAN_DEBUG", ("BGB_NAN_DEBUG",), "name the first module whose output is not finite")
SANITIZE_GRADS = EnvSwitch("ICTAL_SANITIZE_GRADS", ("BGB_SANITIZE_GRADS",), "zero NaN/Inf gradients before clipping")
FORCE_REFERENCE_SCAN = EnvSwitch(
    "ICTAL_FORCE_REFERENCE_SCAN",
    ("SEIZURE_MAMBA_FORCE_FALLBACK",),
    "Mamba2 runs its PyTorch SSD reference scan on every device",
)
CPU_SCAN = EnvSwitch("ICTAL_CPU_SCAN", (), "0: the PyTorch SSD scan instead of numba's compiled scan on a CPU")
BLOCK_WORKERS = EnvSwitch("ICTAL_BLOCK_WORKERS", (), "Mamba2 block worker threads per process (1: none)")
#: Every switch, for documentation and checks.
SWITCHES: tuple[EnvSwitch, ...] = (NAN_DEBUG, SANITIZE_GRADS, FORCE_REFERENCE_SCAN, CPU_SCAN, BLOCK_WORKERS)
#: The reference system's switches that have no meaning here, with the line that says why.
REFERENCE_ONLY: dict[str, str] = {
    "BGB_EDGE_CLAMP": "BGB_EDGE_CLAMP is set but has no effect in ictal: edge weights are bounded by construction "
    "(a sigmoid of the learned similarity), so there is nothing to clamp",
}


def env_flag(switch: EnvSwitch, default: bool) -> bool:
    """The flag's value, ``default`` when neither it nor an alias is set.

    Raises:
        ConfigError: a value that is not one of 1/true/yes/on or 0/false/no/off, naming the variable.
    """
    found = switch.raw()
    if found is None:
        return default
    var, value = found
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ConfigError(
        f"environment variable {var}",
        [f"{var}={value!r} must be 1/true/yes/on or 0/false/no/off ({switch.help}), or unset"],
    )


def env_count(switch: EnvSwitch) -> int | None:
    """The switch's positive whole number, None when unset.

    Raises:
        ConfigError: a value that is not a positive whole number, naming the variable.
    """
    found = switch.raw()
    if found is None:
        return None
    var, value = found
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise ConfigError(
            f"environment variable {var}",
            [f"{var}={value!r} is not a positive whole number ({switch.help}); set it to 1 or more, or unset it"],
        )
    return count


def note_reference_only_switches() -> list[str]:
    """One line for each of the reference system's switches that is set but means nothing here (the CLI prints
    them before every command)."""
    return [line for var, line in REFERENCE_ONLY.items() if os.environ.get(var, "").strip()]
