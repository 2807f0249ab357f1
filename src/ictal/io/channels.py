"""Channel names: the 19 canonical 10-20 electrodes and label cleaning (see tusz.md)."""

from __future__ import annotations

import re

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
