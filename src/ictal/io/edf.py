"""Read an EDF recording as the 19 canonical EEG channels in microvolts (stage 1 of ``system.md``).

One call gives a documented object back::

    >>> from ictal.io.edf import read_edf
    >>> rec = read_edf("train/aaaaaaac/s001_2002/02_tcp_le/aaaaaaac_s001_t000.edf")
    >>> rec.data.shape, rec.data.dtype, rec.sfreq          # (19, n_samples) float32 in µV
    ((19, 300000), dtype('float32'), 250.0)
    >>> rec.channel_names[:3], rec.source_labels[:3]
    (('Fp1', 'F3', 'C3'), ('EEG FP1-LE', 'EEG F3-LE', 'EEG C3-LE'))
    >>> rec.meta.patient, rec.meta.session, rec.meta.montage, rec.meta.repairs
    ('aaaaaaac', 's001', '02_tcp_le', [])
    >>> raw = rec.to_mne()                                 # an mne.io.RawArray, in volts

For recordings too long to hold in memory, read bounded chunks from disk (same mapping, units and
Fz/Pz reconstruction; ``read_edf`` is exactly ``open_edf(...).read(0, n_samples)``)::

    >>> with open_edf(path) as src:
    ...     first_minute = src.read(0, int(60 * src.sfreq))   # (19, 15000) float32 µV

What the reader does, in order:

- parses and repairs the fixed-size header in memory (:mod:`ictal.io.edf_header`; the file is never
  modified), then reads only the data records a request needs, straight from disk with numpy (one path
  for whole and chunked reads and for repaired headers, which edfio rejects; the tests check the values
  against edfio's);
- maps raw labels (``EEG FP1-REF``, ``EEG FP1-LE``, ``Fp1``, ``T7``) to canonical names with
  :func:`ictal.io.channels.clean_label`, ignoring non-EEG signals; when two labels give the same channel
  the plainest one (exact, ``-REF`` or ``-LE``, not a 10-10 synonym) wins, first in the file on a tie;
- converts to µV from the physical dimension (``uV``, ``mV``, ``V``, ``nV``; unknown: assumed µV);
- resamples EEG channels stored at a lower rate than the others to the highest EEG rate (polyphase);
- reconstructs a missing Fz and/or Pz from the other channels by spherical-spline interpolation on the
  10-20 positions of MNE's ``standard_1020`` montage; any other missing channel is an error.

Every repair is kept in ``meta.repairs`` and warned once (:class:`EdfRepairWarning`, naming the file);
a file that cannot be used raises :class:`~ictal.errors.EdfReadError` naming the file, the problem
and the fix. :func:`read_many` reads a batch, collecting per-file errors while the rest go on.
"""

from __future__ import annotations

import functools
import math
import re
import threading
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np
from scipy.signal import resample_poly

from ictal.errors import EdfReadError
from ictal.io.channels import CANONICAL_19, SYNONYMS, clean_label
from ictal.io.edf_header import EdfHeader, read_edf_header

if TYPE_CHECKING:
    import mne

__all__ = [
    "EdfRepairWarning",
    "EdfSource",
    "EegRecording",
    "RecordingMeta",
    "interpolation_weights",
    "open_edf",
    "read_edf",
    "read_many",
    "recording_from_mne",
]


class EdfRepairWarning(UserWarning):
    """A file was read after an in-memory repair, a channel reconstruction or another adjustment."""


#: µV per unit of each accepted physical dimension (compared case-insensitively, ``µ``/``μ``/``u`` alike).
UNIT_TO_MICROVOLT: dict[str, float] = {"uv": 1.0, "mv": 1e3, "v": 1e6, "nv": 1e-3}

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

_TUSZ_STEM = re.compile(r"^(?P<patient>[a-z]{8})_(?P<session>s\d{3})_(?P<token>t\d{3})")
_TUSZ_MONTAGE = re.compile(r"^\d{2}_tcp_[a-z_]+$")
_ELECTRODE_LIKE = re.compile(r"^[A-Z]{1,3}(\d{1,2}|Z)$")  # FP1, F7, FT9, CZ: halves of a bipolar label
_PLAIN_SUFFIXES = ("", "REF", "LE")  # TUSZ's referential suffixes: preferred over -AVG, -A1, ...
#: Stored int16 samples (all signals) read per block by :meth:`EdfSource.read`: ~0.5 MB keeps temporaries
#: cache-friendly and memory bounded however long the requested range is.
READ_BLOCK_SAMPLES = 1 << 18
_RESAMPLE_HALF_TAPS = 10
_MIN_INTERPOLATION_SOURCES = 4  # scipy.signal.resample_poly's default filter half-length, per max(up, down)


@dataclass
class RecordingMeta:
    """Where a recording came from and what was done to read it.

    ``patient``/``session``/``token`` are parsed from TUSZ-style stems (``aaaaaaac_s001_t000``) and
    ``montage`` from a TUSZ montage folder (``01_tcp_ar``); each is None when absent. ``start`` is the
    recording start from the header (None when the header date is unusable). ``duration_s`` and
    ``n_samples`` describe the data as returned (after any resampling). ``repairs`` lists every in-memory
    header repair and data adjustment (resampling, assumed units); ``warnings`` lists other notes
    (reconstructed channels, duplicate labels, EDF+D).
    """

    path: Path
    patient: str | None
    session: str | None
    token: str | None
    montage: str | None
    start: datetime | None
    duration_s: float
    n_samples: int
    repairs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class EegRecording:
    """A recording as the model's input contract: ``data`` is ``(C, n_samples)`` float32 in µV.

    ``C = len(channel_names)`` (19 by default, rows in the requested channel order); ``sfreq`` in Hz;
    ``source_labels[i]`` is the raw EDF label read for row ``i`` (None for a reconstructed row);
    ``reconstructed`` names the rows interpolated from neighbours.
    """

    data: np.ndarray
    sfreq: float
    channel_names: tuple[str, ...]
    source_labels: tuple[str | None, ...]
    reconstructed: tuple[str, ...]
    meta: RecordingMeta

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sfreq

    def to_mne(self) -> mne.io.RawArray:
        """The recording as an MNE ``RawArray`` (EEG channels, volts, ``meas_date`` when known)."""
        import mne

        info = mne.create_info(list(self.channel_names), self.sfreq, ch_types="eeg")
        raw = mne.io.RawArray(self.data.astype(np.float64) * 1e-6, info, verbose="error")
        if self.meta.start is not None:
            raw.set_meas_date(self.meta.start.replace(tzinfo=UTC))
        if self.reconstructed:
            raw.info["description"] = "interpolated: " + ", ".join(self.reconstructed)
        return raw


@dataclass(frozen=True)
class _SignalGroup:
    """EEG channels stored at the same rate: read together, scaled, resampled by ``up/down``."""

    rows: np.ndarray  # (k,) rows of the present-channel block
    offsets: np.ndarray  # (k,) sample offset of each signal inside a data record
    samples_per_record: int
    scale: np.ndarray  # (k,) float32 µV per digital unit
    shift: np.ndarray  # (k, 1) float32 µV at digital 0
    up: int
    down: int


class EdfSource:
    """An open EDF recording that reads bounded chunks of the canonical channels from disk.

    Create with :func:`open_edf`; use as a context manager (or call :meth:`close`). ``read`` is safe to
    call from several threads. Attributes mirror :class:`EegRecording`: ``sfreq``, ``n_samples``,
    ``duration_s``, ``channel_names``, ``source_labels``, ``reconstructed``, ``meta``, plus the parsed
    ``header``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        channels: Sequence[str] = CANONICAL_19,
        reconstruct_missing: Iterable[str] = ("Fz", "Pz"),
    ) -> None:
        self.path = Path(path)
        self.channel_names = _canonical_request(channels)
        allowed = _canonical_request(reconstruct_missing, what="reconstruct_missing", allow_empty=True)
        self.header: EdfHeader = read_edf_header(self.path)
        header = self.header
        repairs = list(header.repairs)
        notes = list(header.warnings)

        chosen, present, missing = _resolve_channels(self.path, header.labels, self.channel_names, allowed, notes)
        self.reconstructed: tuple[str, ...] = tuple(missing)
        self.source_labels: tuple[str | None, ...] = tuple(
            header.labels[chosen[name]] if name in chosen else None for name in self.channel_names
        )
        self._present_rows = np.array([self.channel_names.index(n) for n in present], dtype=np.int64)
        self._missing_rows = np.array([self.channel_names.index(n) for n in missing], dtype=np.int64)
        self._weights = (
            interpolation_weights(tuple(present), self.reconstructed).astype(np.float32) if missing else None
        )

        indices = [chosen[name] for name in present]
        self._spr_max = max(header.signals[i].samples_per_record for i in indices)
        self.sfreq = self._spr_max / header.record_duration
        self._groups = self._plan_groups(indices, repairs)
        self.n_samples = header.n_records * self._spr_max
        self.duration_s = header.duration_s

        stem_match = _TUSZ_STEM.match(self.path.stem)
        montage = self.path.parent.name if _TUSZ_MONTAGE.match(self.path.parent.name) else None
        self.meta = RecordingMeta(
            path=self.path,
            patient=stem_match["patient"] if stem_match else None,
            session=stem_match["session"] if stem_match else None,
            token=stem_match["token"] if stem_match else None,
            montage=montage,
            start=header.start,
            duration_s=self.duration_s,
            n_samples=self.n_samples,
            repairs=repairs,
            warnings=notes,
        )
        for line in [*repairs, *notes]:
            warnings.warn(f"{self.path}: {line}", EdfRepairWarning, stacklevel=2)

        self._lock = threading.Lock()
        try:
            self._file = open(self.path, "rb")  # noqa: SIM115  (closed by close()/__exit__)
        except OSError as exc:
            raise EdfReadError(self.path, f"cannot be opened: {exc.strerror or exc}", "check permissions") from None

    def _plan_groups(self, indices: list[int], repairs: list[str]) -> tuple[_SignalGroup, ...]:
        """Group the present channels by stored rate, with scaling to µV and the resampling ratio."""
        header = self.header
        offsets = header.signal_offsets
        scale = np.empty(len(indices), dtype=np.float64)
        shift = np.empty(len(indices), dtype=np.float64)
        assumed_units: dict[str, list[str]] = {}
        for row, index in enumerate(indices):
            signal = header.signals[index]
            pmin, pmax, dmin, dmax = signal.physical_min, signal.physical_max, signal.digital_min, signal.digital_max
            if None in (pmin, pmax, dmin, dmax) or pmin == pmax or dmin == dmax:
                raise EdfReadError(
                    self.path,
                    f"signal {signal.label!r} has an unusable physical/digital range "
                    f"({pmin}, {pmax}) / ({dmin}, {dmax}), so its scale to µV cannot be inferred",
                    "re-export the recording with a valid EDF writer",
                )
            assert pmin is not None and pmax is not None and dmin is not None and dmax is not None
            if signal.samples_per_record == 0:
                raise EdfReadError(
                    self.path,
                    f"signal {signal.label!r} has 0 samples per data record",
                    "re-export the recording with a valid EDF writer",
                )
            unit = _unit_factor(signal.physical_dimension)
            if unit is None:
                assumed_units.setdefault(signal.physical_dimension, []).append(self.channel_names[row])
                unit = 1.0
            gain = (pmax - pmin) / (dmax - dmin)
            scale[row] = gain * unit
            shift[row] = (pmin - dmin * gain) * unit
        for dimension, names in assumed_units.items():
            repairs.append(f"physical dimension {dimension!r} of {', '.join(names)} is not a voltage unit; assumed µV")

        groups = []
        stored_rates = [header.signals[i].samples_per_record for i in indices]
        for spr in sorted(set(stored_rates), reverse=True):
            rows = np.array([r for r, s in enumerate(stored_rates) if s == spr], dtype=np.int64)
            ratio = math.gcd(self._spr_max, spr)
            if spr != self._spr_max:
                slower = ", ".join(self.channel_names[self._present_rows[r]] for r in rows)
                repairs.append(
                    f"{slower} stored at {spr / header.record_duration:g} Hz resampled to "
                    f"{self.sfreq:g} Hz (polyphase) to match the other EEG channels"
                )
            groups.append(
                _SignalGroup(
                    rows=rows,
                    offsets=offsets[[indices[r] for r in rows]],
                    samples_per_record=spr,
                    scale=scale[rows].astype(np.float32),
                    shift=shift[rows, None].astype(np.float32),
                    up=self._spr_max // ratio,
                    down=spr // ratio,
                )
            )
        return tuple(groups)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` of every channel: ``(C, stop - start)`` float32 µV at ``sfreq``.

        Reads only the data records that cover the range (plus a few for a resampled channel's filter),
        in blocks of about :data:`READ_BLOCK_SAMPLES` stored samples so the temporaries stay small;
        the result equals the same slice of the whole recording.
        """
        start, stop = int(start), int(stop)
        if not 0 <= start <= stop <= self.n_samples:
            raise ValueError(f"{self.path}: sample range [{start}, {stop}) is outside [0, {self.n_samples}]")
        out = np.empty((len(self.channel_names), stop - start), dtype=np.float32)
        block = max(1, READ_BLOCK_SAMPLES // self.header.record_samples) * self._spr_max
        for begin in range(start, stop, block):
            end = min(begin + block, stop)
            self._fill(out[:, begin - start : end - start], begin, end)
        return out

    def _fill(self, out: np.ndarray, start: int, stop: int) -> None:
        """Write output samples ``[start, stop)`` into ``out`` ``(C, stop - start)`` float32 µV."""
        spans = [self._input_span(group, start, stop) for group in self._groups]
        first = min(lo // g.samples_per_record for g, (lo, _) in zip(self._groups, spans, strict=True))
        last = max(-(-hi // g.samples_per_record) for g, (_, hi) in zip(self._groups, spans, strict=True))
        records = self._read_records(first, last)  # (n_records, record_samples) int16

        no_missing = len(self._missing_rows) == 0
        present = out if no_missing else np.empty((len(self._present_rows), stop - start), np.float32)
        for group, (lo, hi) in zip(self._groups, spans, strict=True):
            spr = group.samples_per_record
            r_lo, r_hi = lo // spr - first, -(-hi // spr) - first
            values = np.empty((len(group.rows), (r_hi - r_lo) * spr), dtype=np.float32)
            for i, offset in enumerate(group.offsets):
                # one channel's (records, spr) block, cast and scaled in one pass, lands in time order
                source = records[r_lo:r_hi, offset : offset + spr]
                np.multiply(source, group.scale[i], out=values[i].reshape(-1, spr), casting="unsafe")
            values += group.shift
            values = values[:, lo - (first + r_lo) * spr : hi - (first + r_lo) * spr]
            if group.up != group.down:
                resampled = resample_poly(values.astype(np.float64), group.up, group.down, axis=1)
                skip = start - lo * group.up // group.down
                values = resampled[:, skip : skip + stop - start]
            present[group.rows] = values
        if not no_missing:
            out[self._present_rows] = present
            assert self._weights is not None
            out[self._missing_rows] = self._weights @ present

    def _input_span(self, group: _SignalGroup, start: int, stop: int) -> tuple[int, int]:
        """Stored samples ``[lo, hi)`` of ``group`` needed for output samples ``[start, stop)``.

        For a resampled group the span starts on a multiple of ``down`` (so its polyphase output lines up
        with the whole-recording output) and is padded by the filter half-length on both sides, so a chunk
        equals the matching slice of a full read.
        """
        if group.up == group.down:
            return start, stop
        n_stored = self.header.n_records * group.samples_per_record
        half = _RESAMPLE_HALF_TAPS * max(group.up, group.down) // group.up + 2
        pad = -(-half // group.down) * group.down
        lo = max((start // group.up) * group.down - pad, 0)
        hi = min(-(-stop // group.up) * group.down + pad, n_stored)
        return lo, hi

    def _read_records(self, first: int, last: int) -> np.ndarray:
        """Data records ``[first, last)`` as ``(last - first, record_samples)`` int16, read from disk."""
        header = self.header
        n = last - first
        buffer = np.empty(n * header.record_samples, dtype="<i2")
        with self._lock:
            if self._file.closed:
                raise ValueError(f"{self.path}: read from a closed EdfSource")
            self._file.seek(header.header_bytes + first * header.record_bytes)
            got = self._file.readinto(buffer.view(np.uint8).data)
        if got != buffer.nbytes:
            raise EdfReadError(
                self.path, "the file became shorter while it was being read", "do not modify it while reading"
            )
        return buffer.reshape(n, header.record_samples)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> EdfSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"EdfSource({str(self.path)!r}, {len(self.channel_names)} channels, {self.sfreq:g} Hz, "
            f"{self.duration_s:g} s)"
        )


def open_edf(
    path: str | Path, *, channels: Sequence[str] = CANONICAL_19, reconstruct_missing: Iterable[str] = ("Fz", "Pz")
) -> EdfSource:
    """Open ``path`` for chunked reading of ``channels`` (canonical names, in the order wanted).

    Parses and repairs the header and resolves the channels now (raising :class:`EdfReadError` for an
    unusable file); samples are read by :meth:`EdfSource.read`. Use as a context manager.
    """
    return EdfSource(path, channels=channels, reconstruct_missing=reconstruct_missing)


def read_edf(
    path: str | Path, *, channels: Sequence[str] = CANONICAL_19, reconstruct_missing: Iterable[str] = ("Fz", "Pz")
) -> EegRecording:
    """Read a whole EDF file: ``channels`` (default the canonical 19) as ``(C, n_samples)`` float32 µV.

    Missing channels named in ``reconstruct_missing`` are interpolated (with a warning); any other missing
    channel, a bipolar-only montage or an unrepairable header raise :class:`EdfReadError` naming the file.
    """
    with open_edf(path, channels=channels, reconstruct_missing=reconstruct_missing) as source:
        data = source.read(0, source.n_samples)
        return EegRecording(
            data=data,
            sfreq=source.sfreq,
            channel_names=source.channel_names,
            source_labels=source.source_labels,
            reconstructed=source.reconstructed,
            meta=source.meta,
        )


def read_many(
    paths: Iterable[str | Path],
    *,
    channels: Sequence[str] = CANONICAL_19,
    reconstruct_missing: Iterable[str] = ("Fz", "Pz"),
) -> tuple[list[EegRecording], list[EdfReadError]]:
    """Read every file in ``paths``; a file that cannot be used is reported, the others are still read.

    Returns ``(recordings, errors)``, each in input order; options as for :func:`read_edf`.
    """
    recordings: list[EegRecording] = []
    errors: list[EdfReadError] = []
    for path in paths:
        try:
            recordings.append(read_edf(path, channels=channels, reconstruct_missing=tuple(reconstruct_missing)))
        except EdfReadError as exc:
            errors.append(exc)
    return recordings, errors


def _canonical_request(names: Iterable[str], *, what: str = "channels", allow_empty: bool = False) -> tuple[str, ...]:
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


def _resolve_channels(
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
    if missing and len(present) < _MIN_INTERPOLATION_SOURCES:
        raise EdfReadError(
            path,
            f"missing EEG channel(s) {', '.join(missing)} cannot be interpolated from only {len(present)} channel(s)",
            f"request at least {_MIN_INTERPOLATION_SOURCES} channels that the recording has",
        )
    if missing:
        notes.append(
            f"reconstructed missing channel(s) {', '.join(missing)} by spherical-spline interpolation "
            f"from {len(present)} channels"
        )
    return chosen, present, missing


def recording_from_mne(
    raw: mne.io.BaseRaw, *, channels: Sequence[str] = CANONICAL_19, reconstruct_missing: Iterable[str] = ("Fz", "Pz")
) -> EegRecording:
    """An MNE ``Raw`` (any format MNE reads: EDF, BrainVision, FIF, ...) as the model's input contract, the inverse
    of :meth:`EegRecording.to_mne`: ``channels`` as ``(C, n_samples)`` float32 µV at the Raw's rate.

    Channel names are matched as in EDF files (``EEG FP1-REF``, ``Fp1``, ``T7``); channels in ``raw.info["bads"]``
    count as absent. Missing channels named in ``reconstruct_missing`` are interpolated (with a warning); any other
    missing one raises :class:`EdfReadError` naming the Raw's file (or ``<mne Raw>``). The data is loaded into memory
    (for recordings longer than memory allows, give the EDF file to ``ictal predict``, which reads it in chunks).
    """
    wanted = _canonical_request(channels)
    allowed = _canonical_request(reconstruct_missing, what="reconstruct_missing", allow_empty=True)
    filenames = [f for f in getattr(raw, "filenames", ()) if f]
    source = Path(filenames[0]) if filenames else Path("<mne Raw>")
    bads = set(raw.info["bads"])
    notes = [f"channel(s) marked bad, not used: {', '.join(sorted(bads))}"] if bads else []
    labels = ["" if name in bads else name for name in raw.ch_names]
    chosen, present, missing = _resolve_channels(source, labels, wanted, allowed, notes)
    data = np.empty((len(wanted), raw.n_times), dtype=np.float32)
    rows = [wanted.index(name) for name in present]
    # MNE keeps EEG in volts whatever the file stored.
    data[rows] = raw.get_data(picks=[chosen[name] for name in present]) * 1e6
    if missing:
        weights = interpolation_weights(tuple(present), tuple(missing)).astype(np.float32)
        data[[wanted.index(name) for name in missing]] = weights @ data[rows]
    meas_date = raw.info["meas_date"]
    start = meas_date.astimezone(UTC).replace(tzinfo=None) if meas_date is not None else None
    stem = _TUSZ_STEM.match(source.stem)
    meta = RecordingMeta(
        path=source,
        patient=stem["patient"] if stem else None,
        session=stem["session"] if stem else None,
        token=stem["token"] if stem else None,
        montage=None,
        start=start,
        duration_s=raw.n_times / raw.info["sfreq"],
        n_samples=raw.n_times,
        warnings=notes,
    )
    for line in notes:
        warnings.warn(f"{source}: {line}", EdfRepairWarning, stacklevel=2)
    return EegRecording(
        data=data,
        sfreq=float(raw.info["sfreq"]),
        channel_names=wanted,
        source_labels=tuple(raw.ch_names[chosen[name]] if name in chosen else None for name in wanted),
        reconstructed=tuple(missing),
        meta=meta,
    )


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


def _unit_factor(dimension: str) -> float | None:
    """µV per unit of an EDF physical dimension, or None when it is not a voltage unit."""
    key = dimension.replace(" ", "").replace("µ", "u").replace("μ", "u").replace("Â", "").lower()
    return UNIT_TO_MICROVOLT.get(key)


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
    if len(present) < _MIN_INTERPOLATION_SOURCES:
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
