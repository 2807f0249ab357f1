"""TUSZ annotation files: ``.csv_bi`` (term level) and ``.csv`` (per channel), read and written exactly.

Both are plain text: ``#`` header lines (``# key = value``), a column line
``channel,start_time,stop_time,label,confidence`` and one row per event, times in seconds.

>>> ann = read_annotations("aaaaaasf_s001_t000.csv_bi")
>>> ann.duration, ann.seizure_intervals()
(1289.0, [(49.0, 674.0), ...])
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ictal.errors import AnnotationError
from ictal.io.atomic import write_text_atomic

#: Seizure labels of TUSZ v2.0.3; every other label (bckg, artifacts) is not seizure.
SEIZURE_LABELS: frozenset[str] = frozenset({"seiz", "gnsz", "fnsz", "cpsz", "absz", "spsz", "tcsz", "tnsz", "mysz"})
#: Background labels of the TUH corpora: ``bckg``, ``null`` and the artifact classes of TUAR.
BACKGROUND_LABELS: frozenset[str] = frozenset({"bckg", "null", "artf", "eyem", "chew", "shiv", "musc", "elpp", "elst"})

COLUMNS = "channel,start_time,stop_time,label,confidence"


@dataclass(frozen=True)
class Event:
    """One annotated interval, in seconds from the start of the recording."""

    start: float
    stop: float
    label: str
    channel: str = "TERM"
    confidence: float = 1.0
    #: The row's line in its file (for messages); not part of the event's value.
    line: int | None = field(default=None, compare=False)

    @property
    def is_seizure(self) -> bool:
        return self.label.lower() in SEIZURE_LABELS


@dataclass
class Annotation:
    """The events of one recording and its header.

    ``header`` keeps the ``# key = value`` lines in file order (``version``, ``bname``, ``duration``, ...), so a
    file read and written back has the same header. ``duration`` is the recording length in seconds.
    """

    events: list[Event]
    duration: float
    header: list[tuple[str, str]] = field(default_factory=list)
    path: Path | None = None

    @property
    def bname(self) -> str:
        return dict(self.header).get("bname", self.path.stem if self.path else "")

    def seizure_intervals(self) -> list[tuple[float, float]]:
        """Sorted, merged (start, stop) seconds of every seizure row (the union over channels for ``.csv``)."""
        return merge_intervals((e.start, e.stop) for e in self.events if e.is_seizure)


def merge_intervals(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Union of intervals: sorted, with overlapping or touching ones merged."""
    out: list[tuple[float, float]] = []
    for start, stop in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], stop))
        else:
            out.append((start, stop))
    return out


def _parse_float(text: str, what: str, path: Path, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise AnnotationError(path, f"{what} {text!r} is not a number", line) from None
    if not math.isfinite(value):
        raise AnnotationError(path, f"{what} {text!r} is not finite", line)
    return value


def read_annotations(path: str | Path, duration: float | None = None) -> Annotation:
    """Read a TUSZ ``.csv_bi`` or ``.csv`` file.

    Args:
        path: the annotation file.
        duration: recording length in seconds, used when the file has no ``# duration`` line.

    Raises:
        AnnotationError: naming the file and line, for a non-numeric time, a stop before its start, a row with
            the wrong number of fields, a missing column line or a missing duration.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise AnnotationError(path, f"cannot be read: {exc.strerror or exc}") from None
    header: list[tuple[str, str]] = []
    events: list[Event] = []
    seen_columns = False
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            body = line[1:].strip()
            if "=" in body:
                key, value = body.split("=", 1)
                header.append((key.strip(), value.strip()))
            continue
        if not seen_columns:
            if line.replace(" ", "").lower().startswith("channel,start_time"):
                seen_columns = True
                continue
            raise AnnotationError(path, f"expected the column line {COLUMNS!r}, found {line!r}", lineno)
        parts = [p.strip() for p in line.split(",")]
        if len(parts) not in (4, 5):
            raise AnnotationError(path, f"expected 5 comma-separated fields, found {len(parts)}: {line!r}", lineno)
        start = _parse_float(parts[1], "start_time", path, lineno)
        stop = _parse_float(parts[2], "stop_time", path, lineno)
        if stop < start:
            raise AnnotationError(path, f"stop_time {stop} is before start_time {start}", lineno)
        if start < 0:
            raise AnnotationError(path, f"start_time {start} is negative", lineno)
        conf = _parse_float(parts[4], "confidence", path, lineno) if len(parts) == 5 else 1.0
        events.append(Event(start, stop, parts[3].lower(), parts[0], conf, line=lineno))
    header_map = dict(header)
    if "duration" in header_map:
        dur_text = header_map["duration"].split()[0] if header_map["duration"].split() else ""
        try:
            file_duration = float(dur_text)
        except ValueError:
            raise AnnotationError(path, f"duration {header_map['duration']!r} is not a number") from None
    elif duration is not None:
        file_duration = float(duration)
    else:
        raise AnnotationError(path, "no '# duration = N secs' header line and no duration given")
    return Annotation(events=events, duration=file_duration, header=header, path=path)


def _default_header(bname: str, duration: float) -> list[tuple[str, str]]:
    return [("version", "csv_v1.0.0"), ("bname", bname), ("duration", f"{duration:.4f} secs")]


def format_annotations(ann: Annotation) -> str:
    """The file text of ``ann`` in TUSZ format (header, ``#`` separator, column line, rows with 4 decimals)."""
    header = ann.header or _default_header(ann.bname, ann.duration)
    lines = [f"# {key} = {value}" for key, value in header]
    lines += ["#", COLUMNS]
    for ev in ann.events:
        lines.append(f"{ev.channel},{ev.start:.4f},{ev.stop:.4f},{ev.label},{ev.confidence:.4f}")
    return "\n".join(lines) + "\n"


def write_annotations(path: str | Path, ann: Annotation) -> None:
    """Write ``ann`` as a TUSZ ``.csv_bi`` / ``.csv`` file, atomically."""
    write_text_atomic(path, format_annotations(ann))


def term_annotation(
    intervals: Sequence[tuple[float, float]],
    duration: float,
    bname: str,
    confidences: Sequence[float] | None = None,
    fill_background: bool = True,
) -> Annotation:
    """A term-level (``.csv_bi``) annotation from seizure intervals, background rows filling the gaps."""
    merged = sorted(zip(intervals, confidences or [1.0] * len(intervals), strict=True))
    events: list[Event] = []
    t = 0.0
    for (start, stop), conf in merged:
        if fill_background and start > t:
            events.append(Event(t, start, "bckg"))
        events.append(Event(start, stop, "seiz", "TERM", conf))
        t = max(t, stop)
    if fill_background and t < duration:
        events.append(Event(t, duration, "bckg"))
    return Annotation(events=events, duration=duration, header=_default_header(bname, duration))


def intervals_to_mask(intervals: Iterable[tuple[float, float]], n: int, rate: float) -> np.ndarray:
    """A boolean mask of ``n`` samples at ``rate`` Hz, True where sample time ``i / rate`` lies in an interval.

    Works for sample rate (256 Hz) and frame rate (16 Hz) alike. Shape ``(n,)``.
    """
    mask = np.zeros(n, dtype=bool)
    for start, stop in intervals:
        i0 = max(0, math.ceil(start * rate - 1e-9))
        i1 = min(n, math.ceil(stop * rate - 1e-9))
        if i1 > i0:
            mask[i0:i1] = True
    return mask


def mask_to_intervals(mask: np.ndarray, rate: float) -> list[tuple[float, float]]:
    """The runs of True in a 1-D mask as (start, stop) seconds: run [i0, i1) gives (i0/rate, i1/rate)."""
    m = np.asarray(mask, dtype=bool).ravel()
    if m.size == 0:
        return []
    edges = np.flatnonzero(np.diff(np.concatenate(([False], m, [False])).astype(np.int8)))
    starts, stops = edges[0::2], edges[1::2]
    return [(float(a) / rate, float(b) / rate) for a, b in zip(starts, stops, strict=True)]
