"""Write EDF (16-bit) files: per-channel sampling rates, per-channel physical range, optional header quirks.

An EDF file is a 256-byte main header, 256 bytes per signal, then ``n_records`` data records; each record holds
``rate_i * record_duration`` little-endian int16 samples of signal ``i`` in turn. Each channel's physical range is
taken from its data (rounded outwards to fit the 8-character field) and mapped onto the full digital range
-32768..32767, so the quantisation step is ``(max - min) / 65535``.

``quirks`` writes, on purpose, header defects seen in real TUSZ files, so readers
can be tested on them: a start date with ``:`` separators, the date ``00.00.00``, a non-ASCII NUL-padded patient
field, a record count of ``-1``, a file cut in the middle of its last record.

>>> write_edf("x.edf", [eeg_uv, ibi], [256, 1], ["EEG FP1-REF", "IBI"], physical_dimension=["uV", "sec"])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from ictal.io.atomic import write_atomic

DIGITAL_MIN = -32768
DIGITAL_MAX = 32767

#: Names accepted by :meth:`EdfQuirks.from_names` (and the synthetic corpus' ``header_quirks``).
QUIRK_NAMES: tuple[str, ...] = ("colon_date", "zero_date", "nonascii_patient", "unknown_record_count", "truncated")


@dataclass(frozen=True)
class EdfQuirks:
    """Header defects to write on purpose (all off: a standard-conforming EDF).

    Attributes:
        colon_date: start date written ``dd:mm:yy`` instead of ``dd.mm.yy`` (e.g. ``01:01:11``).
        zero_date: start date written ``00.00.00`` (not a date).
        nonascii_patient: patient field with a Latin-1 byte (``0xE9``) and NUL padding instead of spaces.
        unknown_record_count: number of data records written as ``-1``.
        truncated: the file ends in the middle of its last data record (the header still counts it).
    """

    colon_date: bool = False
    zero_date: bool = False
    nonascii_patient: bool = False
    unknown_record_count: bool = False
    truncated: bool = False

    @classmethod
    def from_names(cls, names: Sequence[str]) -> EdfQuirks:
        """Quirks from their names (``QUIRK_NAMES``); an unknown name is a ``ValueError`` listing the valid ones."""
        unknown = sorted(set(names) - set(QUIRK_NAMES))
        if unknown:
            raise ValueError(f"unknown EDF quirk(s) {unknown}; valid names: {', '.join(QUIRK_NAMES)}")
        return cls(**{name: True for name in names})

    @property
    def names(self) -> tuple[str, ...]:
        """The names of the quirks switched on, in ``QUIRK_NAMES`` order."""
        return tuple(name for name in QUIRK_NAMES if getattr(self, name))

    def __post_init__(self) -> None:
        if self.colon_date and self.zero_date:
            raise ValueError("EdfQuirks: colon_date and zero_date both rewrite the start date; choose one")


NO_QUIRKS = EdfQuirks()

# Locale-independent month names for the EDF+ ``Startdate`` (``strftime('%b')`` depends on the locale).
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def format_edf_number(value: float, *, rounding: str = "nearest") -> str:
    """``value`` in at most 8 characters with as many decimals as fit.

    Args:
        value: the number.
        rounding: ``"down"`` (never above ``value``, for a physical minimum), ``"up"`` (never below, for a
            maximum) or ``"nearest"``.

    Raises:
        ValueError: when ``|value|`` needs more than 8 characters even without decimals.
    """
    if not math.isfinite(value):
        raise ValueError(f"cannot write {value} in an EDF header field")
    if value == int(value) and len(str(int(value))) <= 8:
        return str(int(value))
    for decimals in range(7, -1, -1):
        scale = 10.0**decimals
        if rounding == "down":
            r = math.floor(value * scale) / scale
        elif rounding == "up":
            r = math.ceil(value * scale) / scale
        else:
            r = round(value, decimals)
        text = f"{r:.{decimals}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        if text == "-0":
            text = "0"
        if len(text) <= 8:
            return text
    raise ValueError(f"{value} does not fit the 8 characters of an EDF header field")


def _field(text: str, width: int, what: str, path: Path) -> bytes:
    """``text`` as ASCII, space-padded to ``width`` bytes; a longer or non-ASCII text is a ``ValueError``."""
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"{path}: {what} {text!r} is not ASCII; EDF header fields are ASCII") from None
    if len(raw) > width:
        raise ValueError(f"{path}: {what} {text!r} is longer than its {width}-character EDF field; shorten it")
    return raw.ljust(width, b" ")


def _per_channel(value: str | Sequence[str], n: int, what: str) -> list[str]:
    if isinstance(value, str):
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise ValueError(f"{what}: got {len(values)} values for {n} channels; give one per channel or one string")
    return values


def _physical_range(x: np.ndarray) -> tuple[str, str]:
    """The physical min/max fields for samples ``x``: the data's range rounded outwards to fit 8 characters."""
    lo = float(np.min(x)) if x.size else 0.0
    hi = float(np.max(x)) if x.size else 0.0
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("contains NaN or Inf; EDF stores finite 16-bit samples only")
    if hi - lo < 1e-6 * max(1.0, abs(lo), abs(hi)):  # a flat channel still needs min < max
        lo, hi = lo - 1.0, hi + 1.0
    return format_edf_number(lo, rounding="down"), format_edf_number(hi, rounding="up")


def _to_digital(x: np.ndarray, pmin: float, pmax: float) -> np.ndarray:
    """Physical samples ``x`` (any float dtype) to int16 over the full digital range, rounded, clipped."""
    gain = (pmax - pmin) / (DIGITAL_MAX - DIGITAL_MIN)
    d = np.rint((np.asarray(x, dtype=np.float64) - pmin) / gain + DIGITAL_MIN)
    np.clip(d, DIGITAL_MIN, DIGITAL_MAX, out=d)
    return d.astype("<i2")


def _start_fields(start: datetime, quirks: EdfQuirks) -> tuple[str, str]:
    if quirks.zero_date:
        date = "00.00.00"
    else:
        date = start.strftime("%d.%m.%y")
        if quirks.colon_date:
            date = date.replace(".", ":")
    return date, start.strftime("%H.%M.%S")


def _patient_field(patient: str, quirks: EdfQuirks, path: Path) -> bytes:
    if not quirks.nonascii_patient:
        return _field(patient, 80, "patient", path)
    # A Latin-1 name and NUL padding, as some exporters write: not ASCII, not space-padded.
    raw = (patient.rstrip() + " Jos\xe9").encode("latin-1")[:80]
    return raw.ljust(80, b"\x00")


def write_edf(
    path: str | Path,
    signals: Sequence[np.ndarray],
    sfreqs: float | Sequence[float],
    labels: Sequence[str],
    *,
    physical_dimension: str | Sequence[str] = "uV",
    patient: str = "X X X X",
    recording: str | None = None,
    start: datetime = datetime(2000, 1, 1),
    record_duration: float = 1.0,
    transducer: str | Sequence[str] = "",
    prefilter: str | Sequence[str] = "",
    quirks: EdfQuirks = NO_QUIRKS,
) -> Path:
    """Write a 16-bit EDF file atomically (temporary file in the same folder, then a rename).

    Args:
        path: the ``.edf`` file to write; its folder is created.
        signals: one 1-D array per channel in physical units (µV for EEG), channel ``i`` sampled at
            ``sfreqs[i]`` Hz; every channel covers the same whole number of records, i.e. has
            ``n_records * sfreqs[i] * record_duration`` samples. A 2-D array ``(C, T)`` works as C channels.
        sfreqs: sampling rate of each channel in Hz, or one rate for all.
        labels: channel labels (ASCII, at most 16 characters), e.g. ``"EEG FP1-REF"``.
        physical_dimension: unit of each channel, or one for all (at most 8 characters).
        patient: the 80-character local patient identification.
        recording: the 80-character local recording identification; by default the EDF+ form
            ``Startdate DD-MMM-YYYY X X X`` from ``start`` (so EDF+ readers find the same date).
        start: start date and time of the recording (written ``dd.mm.yy`` / ``hh.mm.ss``).
        record_duration: seconds per data record; ``rate * record_duration`` must be a whole number.
        transducer: transducer type of each channel, or one for all.
        prefilter: prefiltering text of each channel, or one for all.
        quirks: header defects to write on purpose (see :class:`EdfQuirks`); none by default.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: naming the file and the channel, for mismatched lengths, a rate that gives a fractional
            number of samples per record, NaN/Inf samples or a field that does not fit.
    """
    path = Path(path)
    arrays = [np.asarray(s) for s in signals]
    n_ch = len(arrays)
    if n_ch == 0:
        raise ValueError(f"{path}: no signals to write")
    if len(labels) != n_ch:
        raise ValueError(f"{path}: {len(labels)} labels for {n_ch} signals; give one label per signal")
    rates = [float(sfreqs)] * n_ch if isinstance(sfreqs, int | float) else [float(r) for r in sfreqs]
    if len(rates) != n_ch:
        raise ValueError(f"{path}: {len(rates)} sampling rates for {n_ch} signals; give one per signal")
    if not record_duration > 0:
        raise ValueError(f"{path}: record_duration must be positive, got {record_duration}")
    dims = _per_channel(physical_dimension, n_ch, f"{path}: physical_dimension")
    transducers = _per_channel(transducer, n_ch, f"{path}: transducer")
    prefilters = _per_channel(prefilter, n_ch, f"{path}: prefilter")

    samples_per_record: list[int] = []
    n_records: int | None = None
    for label, x, rate in zip(labels, arrays, rates, strict=True):
        if x.ndim != 1:
            raise ValueError(f"{path}: channel {label!r} has shape {x.shape}; each signal must be 1-D")
        spr_exact = rate * record_duration
        spr = round(spr_exact)
        if spr < 1 or abs(spr - spr_exact) > 1e-9 * max(1.0, spr_exact):
            raise ValueError(
                f"{path}: channel {label!r} at {rate} Hz gives {spr_exact} samples per {record_duration} s record; "
                "choose a record_duration that makes it a whole number"
            )
        if x.size % spr:
            raise ValueError(
                f"{path}: channel {label!r} has {x.size} samples, not a whole number of {spr}-sample records; "
                "trim or pad it to a multiple of rate * record_duration"
            )
        if n_records is None:
            n_records = x.size // spr
        elif x.size // spr != n_records:
            raise ValueError(
                f"{path}: channel {label!r} covers {x.size // spr} records but {labels[0]!r} covers {n_records}; "
                "all channels must cover the same duration"
            )
        samples_per_record.append(spr)
    assert n_records is not None

    digital: list[np.ndarray] = []
    pmins: list[str] = []
    pmaxs: list[str] = []
    for label, x, spr in zip(labels, arrays, samples_per_record, strict=True):
        try:
            pmin, pmax = _physical_range(x)
        except ValueError as exc:
            raise ValueError(f"{path}: channel {label!r} {exc}") from None
        pmins.append(pmin)
        pmaxs.append(pmax)
        digital.append(_to_digital(x, float(pmin), float(pmax)).reshape(n_records, spr))
    # One (n_records, sum(spr)) block: row r is data record r, channels side by side, as EDF lays them out.
    data = np.concatenate(digital, axis=1) if n_records else np.zeros((0, sum(samples_per_record)), "<i2")
    payload = data.tobytes()
    if quirks.truncated and n_records:
        record_bytes = 2 * sum(samples_per_record)
        kept = (record_bytes // 4) * 2 or 1  # about half of the last record, on a sample boundary when possible
        payload = payload[: len(payload) - record_bytes + kept]

    if recording is None:
        recording = f"Startdate {start.day:02d}-{_MONTHS[start.month - 1]}-{start.year:04d} X X X"
    date, time = _start_fields(start, quirks)
    header = b"".join(
        [
            _field("0", 8, "version", path),
            _patient_field(patient, quirks, path),
            _field(recording, 80, "recording", path),
            _field(date, 8, "start date", path),
            _field(time, 8, "start time", path),
            _field(str(256 * (n_ch + 1)), 8, "header bytes", path),
            _field("", 44, "reserved", path),
            _field("-1" if quirks.unknown_record_count else str(n_records), 8, "number of records", path),
            _field(format_edf_number(record_duration), 8, "record duration", path),
            _field(str(n_ch), 4, "number of signals", path),
            *(_field(v, 16, "label", path) for v in labels),
            *(_field(v, 80, "transducer", path) for v in transducers),
            *(_field(v, 8, "physical dimension", path) for v in dims),
            *(_field(v, 8, "physical minimum", path) for v in pmins),
            *(_field(v, 8, "physical maximum", path) for v in pmaxs),
            *(_field(str(DIGITAL_MIN), 8, "digital minimum", path) for _ in range(n_ch)),
            *(_field(str(DIGITAL_MAX), 8, "digital maximum", path) for _ in range(n_ch)),
            *(_field(v, 80, "prefilter", path) for v in prefilters),
            *(_field(str(v), 8, "samples per record", path) for v in samples_per_record),
            *(_field("", 32, "signal reserved", path) for _ in range(n_ch)),
        ]
    )
    assert len(header) == 256 * (n_ch + 1)

    return write_atomic(path, lambda fh: (fh.write(header), fh.write(payload)))
