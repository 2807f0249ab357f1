"""EEG channels: the 19 canonical 10-20 electrodes, reading them from a recording's labels, and rebuilding a
missing one from the others.

- :func:`clean_label` maps a raw label (``EEG FP1-REF``, ``Fp1-LE``, ``T7``) to a canonical name;
- :func:`resolve_channels` picks, for each wanted channel, the signal that supplies it (the plainest label wins:
  exact, ``-REF`` or ``-LE`` before a 10-10 synonym or another reference, first in the file on a tie), and says
  which missing ones may be reconstructed; a bipolar-only recording is one error naming the montage;
- :func:`interpolation_weights` rebuilds missing channels by spherical-spline interpolation on the 10-20
  positions of MNE's ``standard_1020`` montage.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ictal.errors import EdfReadError

#: The model's input contract: left chain, midline, right chain.
CANONICAL_19: tuple[str, ...] = (
    "Fp1", "F3", "C3", "P3", "F7", "T3", "T5", "O1",
    "Fz", "Cz", "Pz",
    "Fp2", "F4", "C4", "P4", "F8", "T4", "T6", "O2",
)  # fmt: skip

#: 10-10 names mapped to their 10-20 equivalents.
SYNONYMS: dict[str, str] = {"T7": "T3", "T8": "T4", "P7": "T5", "P8": "T6"}

_CANON_BY_UPPER = {name.upper(): name for name in CANONICAL_19}
_REF_SUFFIX = re.compile(r"-(REF|LE|AR|AVG|A1|A2|M1|M2|CAR|AV|REF\d*)$", re.IGNORECASE)


def clean_label(label: str) -> str | None:
    """Map a raw EDF label (``'EEG FP1-REF'``, ``'T7'``, ``'Fp1-LE'``) to a canonical name, or None.

    Drops spaces and a leading ``EEG``, strips one reference suffix, matches case-insensitively and maps
    10-10 synonyms. Bipolar labels (``'FP1-F7'``) are not unipolar channels and give None.
    """
    s = label.replace(" ", "").replace("\x00", "")
    if s.upper().startswith("EEG"):
        s = s[3:]
    s = _REF_SUFFIX.sub("", s)
    if "-" in s:  # still a derivation: bipolar, not a unipolar electrode
        return None
    s = SYNONYMS.get(s.upper(), s.upper())
    return _CANON_BY_UPPER.get(s.upper())


#: 10-20 electrode positions in mm (head frame), copied from MNE's built-in ``standard_1020`` montage
#: (identical to ``colin27_1020``); kept here so reading never imports MNE. ``tests/test_edf.py`` checks
#: them against MNE.
ELECTRODE_POSITIONS_MM: dict[str, tuple[float, float, float]] = {
    "Fp1": (-29.4367, 83.9171, -6.9900), "F3": (-50.2438, 53.1112, 42.1920),
    "C3": (-65.3581, -11.6317, 64.3580), "P3": (-53.0073, -78.7878, 55.9400),
    "F7": (-70.2629, 42.4743, -11.4200), "T3": (-84.1611, -16.0187, -9.3460),
    "T5": (-72.4343, -73.4527, -2.4870), "O1": (-29.4134, -112.4490, 8.8390),
    "Fz": (0.3122, 58.5120, 66.4620), "Cz": (0.4009, -9.1670, 100.2440),
    "Pz": (0.3247, -81.1150, 82.6150), "Fp2": (29.8723, 84.8959, -7.0800),
    "F4": (51.8362, 54.3048, 40.8140), "C4": (67.1179, -10.9003, 63.5800),
    "P4": (55.6667, -78.5602, 56.5610), "F8": (73.0431, 44.4217, -12.0000),
    "T4": (85.0799, -15.0203, -9.4900), "T6": (73.0557, -73.0683, -2.5400),
    "O2": (29.8426, -112.1560, 8.8000),
}  # fmt: skip

_ELECTRODE_LIKE = re.compile(r"^[A-Z]{1,3}(\d{1,2}|Z)$")  # FP1, F7, FT9, CZ: halves of a bipolar label
_PLAIN_SUFFIXES = ("", "REF", "LE")  # TUSZ's referential suffixes: preferred over -AVG, -A1, ...
#: Fewest present channels a missing one is interpolated from.
MIN_INTERPOLATION_SOURCES = 4


def canonical_request(names: Iterable[str], *, what: str = "channels", allow_empty: bool = False) -> tuple[str, ...]:
    """Validate a list of wanted channel names; returns their canonical spellings."""
    if isinstance(names, str):
        raise TypeError(f"{what} must be a sequence of channel names, not the string {names!r}")
    result = []
    for name in names:
        canonical = clean_label(name)
        if canonical is None:
            raise ValueError(f"{what}: {name!r} is not one of the 10-20 channels {', '.join(CANONICAL_19)}")
        if canonical in result:
            raise ValueError(f"{what}: {name!r} is listed twice")
        result.append(canonical)
    if not result and not allow_empty:
        raise ValueError(f"{what} is empty")
    return tuple(result)


def resolve_channels(
    path: Path, labels: Sequence[str], wanted: tuple[str, ...], allowed: tuple[str, ...], notes: list[str]
) -> tuple[dict[str, int], list[str], list[str]]:
    """Which label supplies each wanted channel, and which wanted channels are present and which missing (to be
    reconstructed: only those in ``allowed``, from at least four present ones; otherwise EdfReadError)."""
    chosen = _select_signals(path, labels, wanted, notes)
    missing = [name for name in wanted if name not in chosen]
    not_allowed = [name for name in missing if name not in allowed]
    if not_allowed:
        found = ", ".join(name for name in wanted if name in chosen) or "none"
        raise EdfReadError(
            path,
            f"missing EEG channel(s) {', '.join(not_allowed)}; the recording cannot be used "
            f"(only {', '.join(allowed) or 'no channels'} may be reconstructed, nothing is zero-filled). "
            f"Channels found: {found}",
            "exclude this recording, or supply one that has all of " + ", ".join(wanted),
        )
    present = [name for name in wanted if name in chosen]
    if missing and len(present) < MIN_INTERPOLATION_SOURCES:
        raise EdfReadError(
            path,
            f"missing EEG channel(s) {', '.join(missing)} cannot be interpolated from only {len(present)} channel(s)",
            f"request at least {MIN_INTERPOLATION_SOURCES} channels that the recording has",
        )
    if missing:
        notes.append(
            f"reconstructed missing channel(s) {', '.join(missing)} by spherical-spline interpolation "
            f"from {len(present)} channels"
        )
    return chosen, present, missing


def _label_rank(label: str, canonical: str) -> int:
    """0 for an exact, ``-REF`` or ``-LE`` label; higher for a 10-10 synonym or another reference."""
    body = label.replace(" ", "").replace("\x00", "").upper()
    if body.startswith("EEG"):
        body = body[3:]
    base, _, suffix = body.partition("-")
    synonym = base in SYNONYMS
    return 2 * synonym + (suffix not in _PLAIN_SUFFIXES)


def _select_signals(path: Path, labels: Sequence[str], wanted: tuple[str, ...], notes: list[str]) -> dict[str, int]:
    """Map each wanted canonical channel to the index of the signal that supplies it."""
    candidates: dict[str, list[tuple[int, int]]] = {}
    for index, label in enumerate(labels):
        canonical = clean_label(label)
        if canonical in wanted:
            candidates.setdefault(canonical, []).append((_label_rank(label, canonical), index))
    chosen: dict[str, int] = {}
    for canonical, options in candidates.items():
        options.sort()
        chosen[canonical] = options[0][1]
        if len(options) > 1:
            ignored = ", ".join(repr(labels[i]) for _, i in options[1:])
            notes.append(f"{canonical}: read {labels[options[0][1]]!r}, ignored duplicate(s) {ignored}")
    if not chosen:
        bipolar = [label for label in labels if _is_bipolar(label)]
        if len(bipolar) >= 2:
            duplicates = sorted({label for label in bipolar if bipolar.count(label) > 1})
            dup_text = f", with duplicate label(s) {', '.join(duplicates)}" if duplicates else ""
            raise EdfReadError(
                path,
                f"no unipolar (referential) EEG channels: its {len(bipolar)} EEG labels are bipolar derivations "
                f"({', '.join(bipolar[:3])}, ...{dup_text}), a bipolar montage (as in CHB-MIT) that this reader "
                "cannot convert to the 19 referential channels",
                "use recordings with referential channels such as 'EEG FP1-REF' or 'Fp1'",
            )
        shown = ", ".join(repr(label) for label in labels[:12]) + (", ..." if len(labels) > 12 else "")
        raise EdfReadError(
            path,
            f"none of the 10-20 EEG channels found among its labels ({shown})",
            "check that this is a scalp EEG recording with 10-20 electrode labels",
        )
    return chosen


def _is_bipolar(label: str) -> bool:
    body = label.replace(" ", "").upper()
    if body.startswith("EEG"):
        body = body[3:]
    halves = body.split("-")
    return len(halves) == 2 and all(_ELECTRODE_LIKE.match(h) for h in halves)


@functools.lru_cache(maxsize=64)
def interpolation_weights(present: tuple[str, ...], missing: tuple[str, ...]) -> np.ndarray:
    """``(len(missing), len(present))`` spherical-spline weights: ``missing_rows = W @ present_rows``.

    Perrin et al. (1989) splines (stiffness 4, 50 Legendre terms, regularisation 1e-5, as in MNE's
    ``interpolate_bads``) on the 10-20 positions projected onto the sphere fitted to the 19 electrodes.
    Each row sums to 1, so a signal common to all channels is carried over unchanged.
    """
    unknown = [name for name in (*present, *missing) if name not in ELECTRODE_POSITIONS_MM]
    if unknown:
        raise ValueError(f"no 10-20 position for channel(s) {', '.join(unknown)}")
    if len(present) < MIN_INTERPOLATION_SOURCES:
        raise ValueError(f"interpolating {', '.join(missing)} needs at least 4 channels, got {len(present)}")
    unit_from = _unit_sphere_positions(present)
    unit_to = _unit_sphere_positions(missing)
    g_from = _spline_g(unit_from @ unit_from.T)
    g_from.flat[:: len(present) + 1] += 1e-5
    n = len(present)
    system = np.zeros((n + 1, n + 1))
    system[:n, :n] = g_from
    system[:n, n] = 1.0
    system[n, :n] = 1.0
    inverse = np.linalg.pinv(system)
    g_to = np.hstack([_spline_g(unit_to @ unit_from.T), np.ones((len(missing), 1))])
    weights = g_to @ inverse[:, :n]
    weights.setflags(write=False)
    return weights


def _unit_sphere_positions(names: tuple[str, ...]) -> np.ndarray:
    positions = np.array([ELECTRODE_POSITIONS_MM[name] for name in names])
    centred = positions - _head_centre()
    return centred / np.linalg.norm(centred, axis=1, keepdims=True)


@functools.cache
def _head_centre() -> np.ndarray:
    """Least-squares centre of the sphere through the 19 electrodes: |p|^2 = 2 p.c + (r^2 - |c|^2)."""
    points = np.array([ELECTRODE_POSITIONS_MM[name] for name in CANONICAL_19])
    design = np.hstack([2 * points, np.ones((len(points), 1))])
    solution, *_ = np.linalg.lstsq(design, (points**2).sum(axis=1), rcond=None)
    centre: np.ndarray = solution[:3]
    return centre


def _spline_g(cosines: np.ndarray, stiffness: int = 4, n_terms: int = 50) -> np.ndarray:
    """Perrin's g(cos): sum_n (2n+1) / (n^m (n+1)^m 4 pi) P_n(cos)."""
    n = np.arange(1, n_terms + 1)
    coefficients = np.concatenate([[0.0], (2 * n + 1) / ((n * (n + 1.0)) ** stiffness * 4 * np.pi)])
    return np.polynomial.legendre.legval(np.clip(cosines, -1.0, 1.0), coefficients)
