"""Read an EDF recording as the 19 canonical EEG channels in microvolts.

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
from ictal.io.channels import CANONICAL_19, canonical_request, interpolation_weights, resolve_channels
from ictal.io.edf_header import EdfHeader, read_edf_header

if TYPE_CHECKING:
    import mne

__all__ = [
    "EdfRepairWarning",
    "EdfSource",
    "EegRecording",
    "RecordingMeta",
    "open_edf",
    "read_edf",
    "read_many",
    "recording_from_mne",
]


class EdfRepairWarning(UserWarning):
    """A file was read after an in-memory repair, a channel reconstruction or another adjustment."""


#: µV per unit of each accepted physical dimension (compared case-insensitively, ``µ``/``μ``/``u`` alike).
UNIT_TO_MICROVOLT: dict[str, float] = {"uv": 1.0, "mv": 1e3, "v": 1e6, "nv": 1e-3}

_TUSZ_STEM = re.compile(r"^(?P<patient>[a-z]{8})_(?P<session>s\d{3})_(?P<token>t\d{3})")
_TUSZ_MONTAGE = re.compile(r"^\d{2}_tcp_[a-z_]+$")
#: Stored int16 samples (all signals) read per block by :meth:`EdfSource.read`: ~0.5 MB keeps temporaries
#: cache-friendly and memory bounded however long the requested range is.
READ_BLOCK_SAMPLES = 1 << 18
_RESAMPLE_HALF_TAPS = 10


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
        self.channel_names = canonical_request(channels)
        allowed = canonical_request(reconstruct_missing, what="reconstruct_missing", allow_empty=True)
        self.header: EdfHeader = read_edf_header(self.path)
        header = self.header
        repairs = list(header.repairs)
        notes = list(header.warnings)

        chosen, present, missing = resolve_channels(self.path, header.labels, self.channel_names, allowed, notes)
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
    wanted = canonical_request(channels)
    allowed = canonical_request(reconstruct_missing, what="reconstruct_missing", allow_empty=True)
    filenames = [f for f in getattr(raw, "filenames", ()) if f]
    source = Path(filenames[0]) if filenames else Path("<mne Raw>")
    bads = set(raw.info["bads"])
    notes = [f"channel(s) marked bad, not used: {', '.join(sorted(bads))}"] if bads else []
    labels = ["" if name in bads else name for name in raw.ch_names]
    chosen, present, missing = resolve_channels(source, labels, wanted, allowed, notes)
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


def _unit_factor(dimension: str) -> float | None:
    """µV per unit of an EDF physical dimension, or None when it is not a voltage unit."""
    key = dimension.replace(" ", "").replace("µ", "u").replace("μ", "u").replace("Â", "").lower()
    return UNIT_TO_MICROVOLT.get(key)
