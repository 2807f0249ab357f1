"""JSON outputs: one rule for turning results into strict JSON, and one atomic writer.

Every JSON file ictal writes (cache metadata and manifests, run and history files, evaluation results,
predictions, score reports) goes through :func:`write_json_atomic`: 2-space indentation, a trailing newline,
written to a temporary file and renamed. Values pass through :func:`jsonable` first, so NaN and infinities
become ``null`` (JSON has no NaN; ``null`` reads as "undefined", e.g. a sensitivity without seizures), numpy
scalars and arrays become numbers and lists, paths strings and tuples lists: a value read back compares equal
to what was written.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from ictal.io.atomic import write_text_atomic

__all__ = ["json_text", "jsonable", "write_json_atomic"]


def jsonable(value: Any) -> Any:
    """``value`` with every part JSON can hold as itself: NaN/Inf -> None, numpy -> Python, Path -> str,
    tuple -> list, mapping keys -> str."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, PurePath):
        return str(value)
    return value


def json_text(obj: Any, *, sort_keys: bool = False) -> str:
    """The file text of ``obj``: strict JSON (see :func:`jsonable`), 2-space indent, trailing newline."""
    return json.dumps(jsonable(obj), indent=2, sort_keys=sort_keys, allow_nan=False) + "\n"


def write_json_atomic(path: str | Path, obj: Any, *, sort_keys: bool = False) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically; ``sort_keys`` for files compared byte for byte."""
    return write_text_atomic(path, json_text(obj, sort_keys=sort_keys))
