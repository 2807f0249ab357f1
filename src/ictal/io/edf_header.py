"""The fixed-size EDF/EDF+ header: parsed leniently, repaired in memory, never written back.

An EDF file is a 256-byte main header, 256 bytes per signal, then ``n_records`` data records of
little-endian int16 samples (each record holds ``samples_per_record[i]`` samples of signal ``i`` in turn).
Real files break the standard in known ways (TUSZ's known header quirks); :func:`read_edf_header`
repairs those it can, records each repair as one line in :attr:`EdfHeader.repairs`, and raises
:class:`~ictal.errors.EdfReadError` naming the file for the rest. The user's file is only ever read.

>>> header = read_edf_header("aaaaaaac_s001_t000.edf")
>>> header.n_records, header.record_duration, header.labels[:2], header.repairs
(1200, 1.0, ('EEG FP1-LE', 'EEG FP2-LE'), ())
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from ictal.errors import EdfReadError

MAIN_HEADER_BYTES = 256
SIGNAL_HEADER_BYTES = 256
SAMPLE_BYTES = 2  # EDF stores 16-bit two's-complement little-endian samples

# Per-signal fields, in file order: (name, width in bytes). The file stores each field for all signals
# together (all labels, then all transducers, ...).
_SIGNAL_FIELDS: tuple[tuple[str, int], ...] = (
    ("label", 16),
    ("transducer", 80),
    ("physical_dimension", 8),
    ("physical_min", 8),
    ("physical_max", 8),
    ("digital_min", 8),
    ("digital_max", 8),
    ("prefilter", 80),
    ("samples_per_record", 8),
    ("reserved", 32),
)
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_NON_PRINTABLE = re.compile(rb"[^\x20-\x7e]")
_EDFPLUS_STARTDATE = re.compile(r"^Startdate\s+(\d{1,2})-([A-Za-z]{3})-(\d{4})\b")


@dataclass(frozen=True)
class SignalHeader:
    """One signal's header fields. Numbers that could not be parsed are None (only fatal if used)."""

    label: str
    transducer: str
    physical_dimension: str
    physical_min: float | None
    physical_max: float | None
    digital_min: float | None
    digital_max: float | None
    prefilter: str
    samples_per_record: int


@dataclass(frozen=True)
class EdfHeader:
    """A parsed, repaired EDF header.

    ``n_records`` is the number of complete data records actually readable from the file (after repair),
    not necessarily what the header declared; ``repairs`` says what was changed and why, ``warnings``
    lists oddities that were not changed (e.g. an EDF+D file read as continuous).
    """

    path: Path
    patient: str
    recording: str
    start: datetime | None
    header_bytes: int
    n_records: int
    record_duration: float
    signals: tuple[SignalHeader, ...]
    is_edf_plus: bool
    is_discontinuous: bool
    repairs: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(s.label for s in self.signals)

    @property
    def samples_per_record(self) -> np.ndarray:
        """``(n_signals,)`` int64: samples of each signal in one data record."""
        return np.array([s.samples_per_record for s in self.signals], dtype=np.int64)

    @property
    def record_samples(self) -> int:
        """int16 samples in one data record, all signals together."""
        return int(self.samples_per_record.sum())

    @property
    def record_bytes(self) -> int:
        return self.record_samples * SAMPLE_BYTES

    @property
    def signal_offsets(self) -> np.ndarray:
        """``(n_signals,)`` int64: where each signal's samples start inside a data record (in samples)."""
        spr = self.samples_per_record
        return np.concatenate([[0], np.cumsum(spr)[:-1]]).astype(np.int64)

    @property
    def duration_s(self) -> float:
        return self.n_records * self.record_duration

    def sampling_rate(self, index: int) -> float:
        """Sampling rate of signal ``index`` in Hz."""
        return self.signals[index].samples_per_record / self.record_duration


class _FieldReader:
    """Decodes header fields and collects what had to be tolerated, for one repair line each kind."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.non_ascii: list[str] = []
        self.nul_padded: list[str] = []
        self.comma_decimal: list[str] = []

    def text(self, start: int, width: int, name: str) -> str:
        chunk = self.raw[start : start + width]
        if b"\x00" in chunk:
            self.nul_padded.append(name)
            chunk = chunk.replace(b"\x00", b" ")
        if _NON_PRINTABLE.search(chunk):
            self.non_ascii.append(name)
            try:
                decoded = chunk.decode("utf-8")
            except UnicodeDecodeError:
                decoded = chunk.decode("latin-1")
            # control characters would only confuse label matching and messages
            decoded = "".join(ch if ch.isprintable() else " " for ch in decoded)
        else:
            decoded = chunk.decode("ascii")
        return decoded.strip()

    def number(self, start: int, width: int, name: str) -> float | None:
        text = self.text(start, width, name)
        if "," in text and "." not in text:  # decimal comma from European locales
            self.comma_decimal.append(name)
            text = text.replace(",", ".")
        try:
            value = float(text)
        except ValueError:
            return None
        return value if np.isfinite(value) else None

    def integer(self, start: int, width: int, name: str) -> int | None:
        value = self.number(start, width, name)
        if value is None or value != int(value):
            return None
        return int(value)

    def repair_lines(self) -> list[str]:
        lines = []
        if self.non_ascii:
            lines.append(f"non-ASCII bytes in header field(s) {_short_list(self.non_ascii)} decoded leniently")
        if self.nul_padded:
            lines.append(f"NUL-padded header field(s) {_short_list(self.nul_padded)} read as space-padded")
        if self.comma_decimal:
            lines.append(f"decimal comma in header field(s) {_short_list(self.comma_decimal)} read as a point")
        return lines


def _short_list(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def read_edf_header(path: str | Path) -> EdfHeader:
    """Read and repair the header of the EDF file at ``path`` (reads only the header bytes).

    Raises :class:`EdfReadError` for a file that is missing, not an EDF, has a header shorter than it
    declares, holds no complete data record, or has a field that cannot be inferred.
    """
    path = Path(path)
    try:
        file_size = os.path.getsize(path)
        with open(path, "rb") as fh:
            main = fh.read(MAIN_HEADER_BYTES)
            n_signals = _parse_n_signals(path, main, file_size)
            raw = main + fh.read(n_signals * SIGNAL_HEADER_BYTES)
    except FileNotFoundError:
        raise EdfReadError(path, "file not found", "check the path") from None
    except IsADirectoryError:
        raise EdfReadError(path, "is a directory, not an EDF file", "pass the .edf file itself") from None
    except OSError as exc:
        raise EdfReadError(path, f"cannot be read: {exc.strerror or exc}", "check permissions") from None
    return parse_edf_header(path, raw, file_size)


def _parse_n_signals(path: Path, main: bytes, file_size: int) -> int:
    """The signal count from the main header, with the 'not an EDF' checks that need only 256 bytes."""
    if len(main) < MAIN_HEADER_BYTES:
        raise EdfReadError(
            path,
            f"not an EDF file: it has {file_size} bytes, less than the 256-byte EDF header",
            "check that this is the right file and that it was copied completely",
        )
    if main.startswith(b"\xffBIOSEMI"):
        raise EdfReadError(path, "is a BDF (24-bit) file, not EDF", "convert it to EDF (e.g. with MNE)")
    fields = _FieldReader(main)
    n_signals = fields.integer(252, 4, "number of signals")
    header_bytes = fields.integer(184, 8, "header bytes")
    version = fields.text(0, 8, "version")
    if n_signals is None or n_signals < 1 or (version != "0" and header_bytes is None):
        raise EdfReadError(
            path,
            f"not an EDF file: version field {version[:8]!r}, signal count field {main[252:256]!r}",
            "check that this is an EDF recording",
        )
    needed = MAIN_HEADER_BYTES + n_signals * SIGNAL_HEADER_BYTES
    if file_size < needed:
        raise EdfReadError(
            path,
            f"header shorter than declared: {n_signals} signals need a {needed}-byte header "
            f"but the file has only {file_size} bytes",
            "the file is truncated or not an EDF; re-export or re-copy it",
        )
    return n_signals


def parse_edf_header(path: str | Path, raw: bytes, file_size: int) -> EdfHeader:
    """Parse header bytes ``raw`` (main + all signal headers) of a file of ``file_size`` bytes."""
    path = Path(path)
    n_signals = _parse_n_signals(path, raw[:MAIN_HEADER_BYTES], file_size)
    fields = _FieldReader(raw)
    repairs: list[str] = []
    warnings: list[str] = []

    version = fields.text(0, 8, "version")
    if version != "0":
        repairs.append(f"version field {version!r} is not '0'; read as EDF")
    patient = fields.text(8, 80, "patient")
    recording = fields.text(88, 80, "recording")
    reserved = fields.text(192, 44, "reserved")
    is_edf_plus = reserved.startswith("EDF+")
    is_discontinuous = reserved.startswith("EDF+D")
    if is_discontinuous:
        warnings.append("EDF+D (discontinuous) file read as continuous: gaps between records are not filled")

    expected_header_bytes = MAIN_HEADER_BYTES + n_signals * SIGNAL_HEADER_BYTES
    header_bytes = fields.integer(184, 8, "header bytes")
    if header_bytes != expected_header_bytes:
        repairs.append(
            f"header-size field {raw[184:192].decode('latin-1').strip()!r} does not match {n_signals} "
            f"signals; used {expected_header_bytes}"
        )

    record_duration = fields.number(244, 8, "record duration")
    if record_duration is None or record_duration <= 0:
        raise EdfReadError(
            path,
            f"data-record duration field {raw[244:252].decode('latin-1').strip()!r} is not a positive "
            "number, so the sampling rates cannot be inferred",
            "re-export the recording with a valid EDF writer",
        )

    signals = _parse_signals(path, raw, n_signals, fields)
    start = _parse_start(fields.text(168, 8, "start date"), fields.text(176, 8, "start time"), recording, repairs)

    record_samples = sum(s.samples_per_record for s in signals)
    if record_samples == 0:
        raise EdfReadError(path, "every signal has 0 samples per data record", "the file holds no signal")
    record_bytes = record_samples * SAMPLE_BYTES
    n_records = _repair_record_count(
        path, fields.integer(236, 8, "number of records"), raw[236:244], file_size - expected_header_bytes,
        record_bytes, repairs,
    )  # fmt: skip
    repairs[:0] = fields.repair_lines()
    return EdfHeader(
        path=path,
        patient=patient,
        recording=recording,
        start=start,
        header_bytes=expected_header_bytes,
        n_records=n_records,
        record_duration=record_duration,
        signals=signals,
        is_edf_plus=is_edf_plus,
        is_discontinuous=is_discontinuous,
        repairs=tuple(repairs),
        warnings=tuple(warnings),
    )


def _parse_signals(path: Path, raw: bytes, n_signals: int, fields: _FieldReader) -> tuple[SignalHeader, ...]:
    offsets: dict[str, int] = {}
    position = MAIN_HEADER_BYTES
    for name, width in _SIGNAL_FIELDS:
        offsets[name] = position
        position += width * n_signals
    widths = dict(_SIGNAL_FIELDS)

    def at(name: str, i: int) -> int:
        return offsets[name] + i * widths[name]

    signals = []
    for i in range(n_signals):
        label = fields.text(at("label", i), 16, f"label[{i}]")
        spr = fields.integer(at("samples_per_record", i), 8, f"samples per record[{i}]")
        if spr is None or spr < 0:
            field_text = raw[at("samples_per_record", i) : at("samples_per_record", i) + 8]
            raise EdfReadError(
                path,
                f"signal {i} ({label!r}) has an unreadable samples-per-record field "
                f"{field_text.decode('latin-1').strip()!r}, so the data layout cannot be inferred",
                "re-export the recording with a valid EDF writer",
            )
        signals.append(
            SignalHeader(
                label=label,
                transducer=fields.text(at("transducer", i), 80, f"transducer[{i}]"),
                physical_dimension=fields.text(at("physical_dimension", i), 8, f"physical dimension[{i}]"),
                physical_min=fields.number(at("physical_min", i), 8, f"physical min[{i}]"),
                physical_max=fields.number(at("physical_max", i), 8, f"physical max[{i}]"),
                digital_min=fields.number(at("digital_min", i), 8, f"digital min[{i}]"),
                digital_max=fields.number(at("digital_max", i), 8, f"digital max[{i}]"),
                prefilter=fields.text(at("prefilter", i), 80, f"prefilter[{i}]"),
                samples_per_record=spr,
            )
        )
    return tuple(signals)


def _repair_record_count(
    path: Path, declared: int | None, field: bytes, data_bytes: int, record_bytes: int, repairs: list[str]
) -> int:
    """The number of complete data records to read, from the declared count and the file size."""
    complete, leftover = divmod(max(data_bytes, 0), record_bytes)
    if complete == 0:
        raise EdfReadError(
            path,
            f"no complete data record: the file holds {max(data_bytes, 0)} data bytes, one record needs {record_bytes}",
            "the file is truncated; re-copy or re-export it",
        )
    if declared is not None and 0 < declared <= complete:
        extra = data_bytes - declared * record_bytes
        if extra:
            repairs.append(f"ignored {extra} bytes after the {declared} declared data records")
        return declared
    if declared is None or declared <= 0:
        shown = field.decode("latin-1").strip()
        repairs.append(f"number-of-records field {shown!r} is not a positive count; used {complete} from the file size")
    else:
        repairs.append(
            f"header declares {declared} data records but the file holds only {complete} complete ones "
            f"(truncated); read {complete}"
        )
    if leftover:
        repairs.append(f"partial last data record dropped ({leftover} of {record_bytes} bytes)")
    return complete


def _parse_start(date: str, time: str, recording: str, repairs: list[str]) -> datetime | None:
    """Start datetime from ``dd.mm.yy`` / ``hh.mm.ss`` (EDF+ ``Startdate`` gives the 4-digit year)."""
    parts = []
    for name, text in (("date", date), ("time", time)):
        fixed = re.sub(r"[:/\-]", ".", text)
        if fixed != text:
            repairs.append(f"start {name} {text!r} uses non-standard separators; read as {fixed!r}")
        pieces = fixed.split(".")
        if len(pieces) != 3 or not all(p.strip().isdigit() for p in pieces):
            repairs.append(f"start {name} {text!r} is unreadable; start time set to unknown")
            return None
        parts.append([int(p) for p in pieces])
    (day, month, yy), (hour, minute, second) = parts
    year = 1900 + yy if yy >= 85 else 2000 + yy  # the EDF spec's clipping-date convention
    plus = _EDFPLUS_STARTDATE.match(recording)
    if plus and plus.group(2).upper() in _MONTHS:
        year = int(plus.group(3))
    try:
        return datetime(year, month, day, hour, minute, second)
    except ValueError:
        repairs.append(f"start date/time {date!r} {time!r} is not a valid date; start time set to unknown")
        return None
