"""A seeded synthetic corpus with TUSZ's exact layout and formats, for tests, CI and the demo.

    <out>/{train,dev,eval}/<patient>/<sNNN_YYYY>/<montage>/<patient>_<sNNN>_<tNNN>.{edf,csv,csv_bi}
    <out>/corpus.json      what was generated: seed, parameters, every file with its seizures and artifacts

Patients (8 lowercase letters, ``aaaaaaac``-like) are split about 60/20/20 into train/dev/eval, disjoint, at
least one per split from 3 patients on. ``hours`` of EEG are spread over the patients as recordings of whole
seconds (5-20 min by default), grouped into 1-3 sessions per patient; each session has one montage folder
(``01_tcp_ar``, ``02_tcp_le``, ``03_tcp_ar_a``) and one EEG rate (250/256/400/512 Hz), all of them present
when there are enough sessions. Some ``01_tcp_ar``/``03_tcp_ar_a`` files lack Fz and Pz, some have header
quirks, all have non-EEG channels (some at another rate). About half the recordings hold 1-3 seizures; every
split holds at least one. The signal is :mod:`ictal.synthetic.signal`.

Reproducible: the plan comes from ``SeedSequence(seed, spawn_key=(0,))`` and file ``i`` from
``SeedSequence(seed, spawn_key=(1, i))``, so files can be generated in any order or in parallel and the same
seed gives byte-identical files (no wall-clock time is written anywhere).

>>> summary = generate_corpus("synth", patients=10, hours=5.0, seed=0)
>>> [(s.split, s.files, round(s.hours, 2)) for s in summary.split_stats()]
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import ConfigDict, Field, model_validator, with_config

from ictal.errors import ConfigError, IctalError
from ictal.io.annotations import Annotation, Event, term_annotation, write_annotations
from ictal.io.edf_write import QUIRK_NAMES, EdfQuirks, write_edf
from ictal.io.json_files import write_json_atomic
from ictal.synthetic.signal import (
    SCALP,
    SOURCE_CHANNELS,
    ArtifactEvent,
    RecordingSignal,
    SignalConfig,
    SyntheticSeizure,
    synthesize_recording,
)

SPLITS: tuple[str, ...] = ("train", "dev", "eval")
MONTAGES: tuple[str, ...] = ("01_tcp_ar", "02_tcp_le", "03_tcp_ar_a")
#: Generator marker in ``corpus.json``: a folder holding it may be regenerated without ``overwrite``.
GENERATOR = "ictal.synthetic.corpus"
SUMMARY_NAME = "corpus.json"

_MONTAGE_WEIGHTS = (0.5, 0.3, 0.2)
_RATE_WEIGHTS = (0.45, 0.3, 0.1, 0.15)

# TUSZ channel order (left/right pairs, then ears, midline) of the 19 scalp electrodes, as (EDF name, source).
_TUSZ_ORDER: tuple[tuple[str, str], ...] = (
    ("FP1", "Fp1"), ("FP2", "Fp2"), ("F3", "F3"), ("F4", "F4"), ("C3", "C3"), ("C4", "C4"), ("P3", "P3"),
    ("P4", "P4"), ("O1", "O1"), ("O2", "O2"), ("F7", "F7"), ("F8", "F8"), ("T3", "T3"), ("T4", "T4"),
    ("T5", "T5"), ("T6", "T6"),
)  # fmt: skip
_MIDLINE: tuple[tuple[str, str], ...] = (("FZ", "Fz"), ("CZ", "Cz"), ("PZ", "Pz"))
_EARS: tuple[tuple[str, str], ...] = (("A1", "A1"), ("A2", "A2"))
#: Optional extra electrodes (EDF name, source); each is present in most files.
_EXTRA_EEG: tuple[tuple[str, str], ...] = (
    ("ROC", "ROC"), ("LOC", "LOC"), ("EKG1", "EKG"), ("26", "26"), ("T1", "T1"), ("T2", "T2"),
)  # fmt: skip
#: Channels at 1 Hz in TUSZ (``IBI`` in seconds, ``BURSTS`` per minute, ``SUPPR`` in %): zero here.
_ONE_HZ: tuple[tuple[str, str], ...] = (("IBI", "sec"), ("BURSTS", "brst/min"), ("SUPPR", "%"))

#: Bipolar TCP channels of the ``.csv`` files per montage (``03_tcp_ar_a`` has no ear electrodes).
_TCP: tuple[str, ...] = (
    "FP1-F7", "F7-T3", "T3-T5", "T5-O1", "FP2-F8", "F8-T4", "T4-T6", "T6-O2", "A1-T3", "T3-C3", "C3-CZ",
    "CZ-C4", "C4-T4", "T4-A2", "FP1-F3", "F3-C3", "C3-P3", "P3-O1", "FP2-F4", "F4-C4", "C4-P4", "P4-O2",
)  # fmt: skip
BIPOLAR_CHANNELS: dict[str, tuple[str, ...]] = {
    "01_tcp_ar": _TCP,
    "02_tcp_le": _TCP,
    "03_tcp_ar_a": tuple(c for c in _TCP if "A1" not in c and "A2" not in c),
}
_UPPER_TO_SOURCE = {name.upper(): name for name in SCALP}


@with_config(ConfigDict(extra="forbid"))
@dataclass
class SyntheticConfig:
    """Everything the synthetic corpus depends on (YAML section ``synthetic``)."""

    #: Number of patients (split about 60/20/20 into train/dev/eval, at least one per split from 3 on).
    patients: Annotated[int, Field(ge=1)] = 10
    #: Total hours of EEG in the corpus (whole seconds, exactly).
    hours: Annotated[float, Field(gt=0)] = 5.0
    #: Seed of every random choice; the same seed gives byte-identical files.
    seed: Annotated[int, Field(ge=0)] = 0
    #: Length of one recording, uniform between these minutes (the last one of a patient takes the rest).
    recording_minutes: tuple[float, float] = (5.0, 20.0)
    #: Most sessions per patient (each session: one montage folder, one sampling rate).
    max_sessions: Annotated[int, Field(ge=1)] = 3
    #: EEG sampling rates to draw sessions from (each appears once there are enough sessions).
    rates: tuple[int, ...] = (250, 256, 400, 512)
    #: Share of recordings with seizures, and the most seizures one recording holds.
    seizure_recording_fraction: Annotated[float, Field(ge=0, le=1)] = 0.5
    max_seizures_per_recording: Annotated[int, Field(ge=1)] = 3
    #: Share of 01_tcp_ar / 03_tcp_ar_a files without Fz and Pz (at least one when > 0).
    missing_fz_pz_fraction: Annotated[float, Field(ge=0, le=1)] = 0.1
    #: Share of files with one header quirk from ``header_quirks`` (each quirk at least once when > 0).
    quirk_fraction: Annotated[float, Field(ge=0, le=1)] = 0.1
    header_quirks: tuple[str, ...] = ("colon_date", "zero_date", "nonascii_patient")
    signal: SignalConfig = field(default_factory=SignalConfig)

    @model_validator(mode="after")
    def _check(self) -> SyntheticConfig:
        low, high = self.recording_minutes
        if not 1.0 <= low <= high:
            raise ValueError(f"recording_minutes: need 1 <= low <= high, got {self.recording_minutes}")
        bad = [q for q in self.header_quirks if q not in QUIRK_NAMES]
        if bad:
            raise ValueError(f"header_quirks: unknown {bad}; choose from {', '.join(QUIRK_NAMES)}")
        if not self.rates or any(r <= 0 for r in self.rates):
            raise ValueError(f"rates: need positive integer rates, got {self.rates}")
        return self


@dataclass(frozen=True)
class FilePlan:
    """What one recording will be, decided before any signal is generated."""

    index: int
    split: str
    patient: str
    session: int
    year: int
    montage: str
    token: int
    rate: int
    duration: int
    n_seizures: int
    missing_fz_pz: bool
    quirk: str | None
    start: datetime
    extras: tuple[str, ...]
    half_rate_extras: bool

    @property
    def stem(self) -> str:
        return f"{self.patient}_s{self.session:03d}_t{self.token:03d}"

    @property
    def edf_relpath(self) -> Path:
        return Path(self.split, self.patient, f"s{self.session:03d}_{self.year}", self.montage, f"{self.stem}.edf")


@dataclass(frozen=True)
class SyntheticFile:
    """One generated recording as listed in ``corpus.json``; ``edf`` is relative to the corpus root."""

    split: str
    patient: str
    montage: str
    edf: Path
    rate: int
    duration: int
    labels: tuple[str, ...]
    missing: tuple[str, ...]
    quirks: tuple[str, ...]
    seizures: tuple[SyntheticSeizure, ...]
    artifacts: tuple[ArtifactEvent, ...]

    @property
    def stem(self) -> str:
        return self.edf.stem

    def seizure_intervals(self) -> list[tuple[float, float]]:
        return [(s.start, s.stop) for s in self.seizures]


@dataclass(frozen=True)
class SplitStats:
    split: str
    patients: int
    files: int
    hours: float
    seizures: int
    seizure_hours: float


@dataclass(frozen=True)
class CorpusSummary:
    """The generated corpus: its root, the config it was made with and every file (in generation order)."""

    root: Path
    config: SyntheticConfig
    files: tuple[SyntheticFile, ...]

    @property
    def hours(self) -> float:
        return sum(f.duration for f in self.files) / 3600.0

    @property
    def n_seizures(self) -> int:
        return sum(len(f.seizures) for f in self.files)

    def split_stats(self) -> list[SplitStats]:
        """Per split: patients, files, hours of EEG, seizures and hours of seizure."""
        out = []
        for split in SPLITS:
            files = [f for f in self.files if f.split == split]
            out.append(
                SplitStats(
                    split=split,
                    patients=len({f.patient for f in files}),
                    files=len(files),
                    hours=sum(f.duration for f in files) / 3600.0,
                    seizures=sum(len(f.seizures) for f in files),
                    seizure_hours=sum(s.stop - s.start for f in files for s in f.seizures) / 3600.0,
                )
            )
        return out


# ----------------------------------------------------------------------------------------------------------
# planning


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _patient_ids(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct TUSZ-like ids: ``aaaa`` and four more lowercase letters, sorted."""
    codes = rng.choice(26**4, size=n, replace=False)
    ids = []
    for code in sorted(int(c) for c in codes):
        letters = []
        for _ in range(4):
            code, r = divmod(code, 26)
            letters.append(chr(ord("a") + r))
        ids.append("aaaa" + "".join(reversed(letters)))
    return ids


def _split_counts(n: int) -> dict[str, int]:
    if n < 3:
        return {"train": n - (n == 2), "dev": 0, "eval": int(n == 2)}
    dev = ev = max(1, round(0.2 * n))
    return {"train": n - dev - ev, "dev": dev, "eval": ev}


def _covering(rng: np.random.Generator, values: Sequence[Any], weights: Sequence[float], n: int) -> list[Any]:
    """``n`` draws from ``values`` (by ``weights``) in which every value appears once ``n >= len(values)``."""
    p = np.asarray(weights, dtype=float) / np.sum(weights)
    first = [values[int(i)] for i in rng.permutation(len(values))[:n]]
    picks = first + [values[int(i)] for i in rng.choice(len(values), size=max(0, n - len(values)), p=p)]
    order = rng.permutation(n)
    return [picks[int(i)] for i in order]


def _recording_lengths(rng: np.random.Generator, budget: int, low: int, high: int) -> list[int]:
    """Whole-second recording lengths summing to ``budget``, each in ``[low, high]`` where the budget allows."""
    lengths: list[int] = []
    rest = budget
    while rest > 0:
        upper = min(high, rest - low)
        if rest <= high or upper < low:
            lengths.append(rest)
            break
        d = int(rng.integers(low, upper + 1))
        lengths.append(d)
        rest -= d
    return lengths


def plan_corpus(config: SyntheticConfig) -> list[FilePlan]:
    """Decide every recording of the corpus (split, patient, session, montage, rate, length, seizures, quirks).

    Raises:
        ConfigError: when ``hours`` is too small for ``patients`` (under 60 s of EEG per patient).
    """
    rng = _rng(config.seed, 0)
    n = config.patients
    total_s = int(round(config.hours * 3600))
    if total_s < 60 * n:
        raise ConfigError(
            "synthetic",
            [f"hours: {config.hours} h for {n} patients is under 60 s per patient; raise hours or lower patients"],
        )
    ids = _patient_ids(rng, n)
    counts = _split_counts(n)
    perm = [ids[int(i)] for i in rng.permutation(n)]
    split_of: dict[str, str] = {}
    k = 0
    for split in SPLITS:
        for pid in perm[k : k + counts[split]]:
            split_of[pid] = split
        k += counts[split]

    # Seconds per patient: varied weights, the exact total.
    weights = rng.uniform(0.6, 1.4, n)
    budgets = np.floor(total_s * weights / weights.sum()).astype(int)
    budgets[: total_s - budgets.sum()] += 1
    if budgets.min() < 60:
        budgets = np.full(n, total_s // n)
        budgets[: total_s - budgets.sum()] += 1

    low, high = (int(round(m * 60)) for m in config.recording_minutes)
    # Sessions of each patient, in split order (train, dev, eval) then patient id.
    sessions: list[tuple[str, int, int, list[int]]] = []  # (patient, session number, year, lengths)
    ordered = [pid for split in SPLITS for pid in ids if split_of[pid] == split]
    for pid in ordered:
        lengths = _recording_lengths(rng, int(budgets[ids.index(pid)]), low, high)
        n_sessions = int(rng.integers(1, min(config.max_sessions, len(lengths)) + 1))
        cuts = sorted(int(c) for c in rng.choice(np.arange(1, len(lengths)), n_sessions - 1, replace=False))
        year = int(rng.integers(2002, 2013))
        for s, (a, b) in enumerate(zip([0, *cuts], [*cuts, len(lengths)], strict=True)):
            year += int(rng.integers(0, 2)) if s else 0
            sessions.append((pid, s + 1, year, lengths[a:b]))
    montages = _covering(rng, MONTAGES, _MONTAGE_WEIGHTS, len(sessions))
    rate_weights = _RATE_WEIGHTS if len(config.rates) == 4 else [1.0] * len(config.rates)
    rates = _covering(rng, config.rates, rate_weights, len(sessions))

    plans: list[FilePlan] = []
    for (pid, session, year, lengths), montage, rate in zip(sessions, montages, rates, strict=True):
        t = datetime(year, int(rng.integers(1, 13)), int(rng.integers(1, 29)), int(rng.integers(7, 18)),
                     int(rng.integers(0, 60)), int(rng.integers(0, 60)))  # fmt: skip
        for token, duration in enumerate(lengths):
            plans.append(
                FilePlan(
                    index=len(plans),
                    split=split_of[pid],
                    patient=pid,
                    session=session,
                    year=year,
                    montage=montage,
                    token=token,
                    rate=int(rate),
                    duration=int(duration),
                    n_seizures=0,
                    missing_fz_pz=False,
                    quirk=None,
                    start=t,
                    extras=tuple(name for name, _ in _EXTRA_EEG if rng.random() < 0.85),
                    half_rate_extras=bool(rng.random() < 0.3),
                )
            )
            t += timedelta(seconds=duration + int(rng.integers(5, 120)))

    # Seizures in the same share of recordings in every split (at least one each), 1..max per recording.
    if config.seizure_recording_fraction > 0:
        for split in SPLITS:
            members = [p.index for p in plans if p.split == split]
            if not members:
                continue
            k = max(1, round(config.seizure_recording_fraction * len(members)))
            for i in sorted(int(j) for j in rng.choice(members, size=k, replace=False)):
                count = int(rng.integers(1, config.max_seizures_per_recording + 1))
                plans[i] = replace(plans[i], n_seizures=count)

    # Fz/Pz absent in some average-reference files (never 02_tcp_le); at least one when the fraction is > 0.
    eligible = [p.index for p in plans if p.montage != "02_tcp_le"]
    missing = [i for i in eligible if rng.random() < config.missing_fz_pz_fraction]
    if config.missing_fz_pz_fraction > 0 and eligible and not missing:
        missing = [eligible[int(rng.integers(len(eligible)))]]
    for i in missing:
        plans[i] = replace(plans[i], missing_fz_pz=True)

    # Header quirks: each kind at least once (on distinct files), the rest by chance.
    kinds = list(config.header_quirks)
    if kinds and config.quirk_fraction > 0:
        forced = rng.choice(len(plans), size=min(len(kinds), len(plans)), replace=False)
        quirk: list[str | None] = [None] * len(plans)
        for kind, i in zip(kinds, forced, strict=False):
            quirk[int(i)] = kind
        for i in range(len(plans)):
            if quirk[i] is None and rng.random() < config.quirk_fraction:
                quirk[i] = kinds[int(rng.integers(len(kinds)))]
        plans = [replace(p, quirk=q) for p, q in zip(plans, quirk, strict=True)]
    return plans


# ----------------------------------------------------------------------------------------------------------
# writing one recording


def _edf_channels(rec: RecordingSignal, plan: FilePlan) -> tuple[list[str], list[np.ndarray], list[int], list[str]]:
    """Labels, signals (µV), rates and units of the EDF channels of ``plan``'s montage, in TUSZ order."""
    src = {name: rec.data[i] for i, name in enumerate(SOURCE_CHANNELS)}
    le = plan.montage == "02_tcp_le"
    suffix = "-LE" if le else "-REF"
    # Linked ears: every electrode is measured against the mean of A1 and A2.
    reference = 0.5 * (src["A1"] + src["A2"]) if le else None
    scalp = list(_TUSZ_ORDER)
    if plan.montage != "03_tcp_ar_a":
        scalp += list(_EARS)
    scalp += [m for m in _MIDLINE if not (plan.missing_fz_pz and m[1] in ("Fz", "Pz"))]
    if plan.montage != "03_tcp_ar_a":
        scalp += [e for e in _EXTRA_EEG if e[0] in plan.extras]
    else:  # the reduced montage keeps only EKG and a numbered spare
        scalp += [e for e in _EXTRA_EEG if e[0] in ("EKG1", "26")]
    labels, signals, rates, units = [], [], [], []
    half_rate = plan.half_rate_extras and plan.rate % 2 == 0  # EKG and PHOTIC at half the EEG rate
    for edf_name, source in scalp:
        x = src[source] if reference is None else src[source] - reference
        half = half_rate and source == "EKG"
        labels.append(f"EEG {edf_name}{suffix}")
        signals.append(x[::2] if half else x)
        rates.append(plan.rate // 2 if half else plan.rate)
        units.append("uV")
    if plan.montage != "03_tcp_ar_a":
        labels.append("EMG-LE" if le else "EMG-REF")
        signals.append(src["EMG"])
        rates.append(plan.rate)
        units.append("uV")
    labels.append("PHOTIC PH" if le else "PHOTIC-REF")
    signals.append(src["PHOTIC"][::2] if half_rate else src["PHOTIC"])
    rates.append(plan.rate // 2 if half_rate else plan.rate)
    units.append("uV")
    for name, unit in _ONE_HZ:
        labels.append(name)
        signals.append(np.zeros(plan.duration, dtype=np.float32))
        rates.append(1)
        units.append(unit)
    return labels, signals, rates, units


def _header_text(bname: str, duration: float) -> list[tuple[str, str]]:
    return [("version", "csv_v1.0.0"), ("bname", bname), ("duration", f"{duration:.4f} secs")]


def channel_annotation(seizures: Sequence[SyntheticSeizure], montage: str, duration: float, bname: str) -> Annotation:
    """The ``.csv`` annotation: per bipolar channel, seizure rows from the time the channel is involved (the
    earlier of its two electrodes) to the seizure's end, ``bckg`` rows in between."""
    events: list[Event] = []
    for channel in BIPOLAR_CHANNELS[montage]:
        a, b = (_UPPER_TO_SOURCE[e] for e in channel.split("-"))
        rows = []
        for sz in seizures:
            onsets = [sz.electrode_onsets[e] for e in (a, b) if e in sz.electrode_onsets]
            if onsets:
                rows.append((min(onsets), sz.stop, sz.label))
        t = 0.0
        for start, stop, label in sorted(rows):
            if start > t:
                events.append(Event(t, start, "bckg", channel))
            events.append(Event(start, stop, label, channel))
            t = stop
        if t < duration:
            events.append(Event(t, duration, "bckg", channel))
    return Annotation(events=events, duration=duration, header=_header_text(bname, duration))


def _generate_file(root: Path, plan: FilePlan, config: SyntheticConfig) -> SyntheticFile:
    """Synthesize one recording and write its ``.edf``, ``.csv_bi`` and ``.csv`` (each atomically)."""
    rng = _rng(config.seed, 1, plan.index)
    rec = synthesize_recording(plan.duration, plan.rate, plan.n_seizures, rng, config.signal)
    labels, signals, rates, units = _edf_channels(rec, plan)
    edf = root / plan.edf_relpath
    sex = "M" if plan.index % 2 else "F"
    age = 20 + (sum(map(ord, plan.patient)) % 60)
    write_edf(
        edf,
        signals,
        rates,
        labels,
        physical_dimension=units,
        patient=f"{plan.patient} {sex} 01-JAN-{plan.year - age} {plan.patient} Age:{age}",
        start=plan.start,
        prefilter="HP:0.000 Hz LP:0.0 Hz N:0.0",
        quirks=EdfQuirks.from_names([plan.quirk] if plan.quirk else []),
    )
    intervals = [(s.start, s.stop) for s in rec.seizures]
    write_annotations(edf.with_suffix(".csv_bi"), term_annotation(intervals, float(plan.duration), plan.stem))
    write_annotations(
        edf.with_suffix(".csv"), channel_annotation(rec.seizures, plan.montage, float(plan.duration), plan.stem)
    )
    return SyntheticFile(
        split=plan.split,
        patient=plan.patient,
        montage=plan.montage,
        edf=plan.edf_relpath,
        rate=plan.rate,
        duration=plan.duration,
        labels=tuple(labels),
        missing=("Fz", "Pz") if plan.missing_fz_pz else (),
        quirks=(plan.quirk,) if plan.quirk else (),
        seizures=tuple(rec.seizures),
        artifacts=tuple(rec.artifacts),
    )


# ----------------------------------------------------------------------------------------------------------
# corpus.json


def _file_to_json(f: SyntheticFile) -> dict[str, Any]:
    return {
        "edf": f.edf.as_posix(),
        "split": f.split,
        "patient": f.patient,
        "montage": f.montage,
        "rate": f.rate,
        "duration": f.duration,
        "labels": list(f.labels),
        "missing": list(f.missing),
        "quirks": list(f.quirks),
        "seizures": [asdict(s) for s in f.seizures],
        "artifacts": [[a.kind, a.start, a.stop, list(a.channels)] for a in f.artifacts],
    }


def _file_from_json(d: dict[str, Any]) -> SyntheticFile:
    return SyntheticFile(
        split=d["split"],
        patient=d["patient"],
        montage=d["montage"],
        edf=Path(d["edf"]),
        rate=int(d["rate"]),
        duration=int(d["duration"]),
        labels=tuple(d["labels"]),
        missing=tuple(d["missing"]),
        quirks=tuple(d["quirks"]),
        seizures=tuple(SyntheticSeizure(**s) for s in d["seizures"]),
        artifacts=tuple(ArtifactEvent(k, s, e, tuple(c)) for k, s, e, c in d["artifacts"]),
    )


def write_corpus_summary(summary: CorpusSummary) -> Path:
    """Write ``corpus.json`` at the corpus root (atomically); key order and floats are deterministic."""
    doc = {
        "generator": GENERATOR,
        "format": 1,
        "seed": summary.config.seed,
        "config": asdict(summary.config),
        "splits": [asdict(s) for s in summary.split_stats()],
        "files": [_file_to_json(f) for f in summary.files],
    }
    path = summary.root / SUMMARY_NAME
    write_json_atomic(path, doc)
    return path


def read_corpus_summary(root: str | Path) -> CorpusSummary:
    """Read ``<root>/corpus.json`` back into a :class:`CorpusSummary`.

    Raises:
        IctalError: when the file is missing or was not written by this generator.
    """
    root = Path(root)
    path = root / SUMMARY_NAME
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IctalError(f"{path}: cannot read a synthetic corpus summary ({exc})") from None
    if not isinstance(doc, dict) or doc.get("generator") != GENERATOR:
        raise IctalError(f"{path}: not written by {GENERATOR}")
    cfg = doc["config"]
    config = SyntheticConfig(
        **{
            **cfg,
            "recording_minutes": tuple(cfg["recording_minutes"]),
            "rates": tuple(cfg["rates"]),
            "header_quirks": tuple(cfg["header_quirks"]),
            "signal": SignalConfig(**{k: tuple(v) for k, v in cfg["signal"].items()}),
        }
    )
    return CorpusSummary(root=root, config=config, files=tuple(_file_from_json(f) for f in doc["files"]))


def is_synthetic_corpus(root: str | Path) -> bool:
    """True when ``root`` holds a ``corpus.json`` written by this generator."""
    try:
        doc = json.loads((Path(root) / SUMMARY_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("generator") == GENERATOR


def check_out_dir(out_dir: str | Path, overwrite: bool = False) -> None:
    """Raise :class:`IctalError` unless ``out_dir`` may receive a corpus: absent, empty, an earlier synthetic
    corpus, or anything when ``overwrite``. Changes nothing."""
    root = Path(out_dir)
    if root.exists() and not root.is_dir():
        raise IctalError(f"{root}: exists and is not a folder; choose another output folder")
    if root.is_dir() and any(root.iterdir()) and not (overwrite or is_synthetic_corpus(root)):
        raise IctalError(
            f"{root}: folder is not empty and holds no synthetic corpus ({SUMMARY_NAME}); "
            "choose an empty folder or pass --overwrite (which deletes its train/, dev/ and eval/)"
        )


def _prepare_out_dir(root: Path, overwrite: bool) -> None:
    """Make ``root`` ready (see :func:`check_out_dir`); remove an earlier corpus' split folders and summary so
    no stale file survives."""
    check_out_dir(root, overwrite)
    if root.is_dir():
        (root / SUMMARY_NAME).unlink(missing_ok=True)
        for split in SPLITS:
            if (root / split).is_dir():
                shutil.rmtree(root / split)
    root.mkdir(parents=True, exist_ok=True)


ProgressCallback = Callable[[SyntheticFile, int, int], None]


def generate_corpus(
    out_dir: str | Path,
    *,
    patients: int | None = None,
    hours: float | None = None,
    seed: int | None = None,
    config: SyntheticConfig | None = None,
    workers: int = 1,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> CorpusSummary:
    """Write a synthetic TUSZ-like corpus under ``out_dir`` and its ``corpus.json``.

    Args:
        out_dir: corpus root; created. A non-empty folder must be an earlier synthetic corpus (it is replaced)
            unless ``overwrite`` (its ``train/``, ``dev/``, ``eval/`` are deleted first).
        patients, hours, seed: override the same fields of ``config`` (defaults 10 patients, 5.0 h, seed 0).
        config: every other setting; :class:`SyntheticConfig` defaults when None.
        workers: processes generating files in parallel (1: in this process). The output does not depend on it.
        overwrite: allow a non-empty ``out_dir`` that is not a synthetic corpus.
        progress: called as ``progress(file, done, total)`` after each file is written.

    Returns:
        The :class:`CorpusSummary` (also written to ``<out_dir>/corpus.json``).

    Raises:
        ConfigError: for settings that cannot make a corpus (too few hours for the patients).
        IctalError: for an ``out_dir`` that may not be written.
    """
    cfg = config or SyntheticConfig()
    cfg = replace(
        cfg,
        patients=cfg.patients if patients is None else patients,
        hours=cfg.hours if hours is None else hours,
        seed=cfg.seed if seed is None else seed,
    )
    if cfg.patients < 1 or cfg.hours <= 0 or cfg.seed < 0:
        raise ConfigError(
            "synthetic",
            [f"need patients >= 1, hours > 0, seed >= 0; got {cfg.patients}, {cfg.hours}, {cfg.seed}"],
        )
    plans = plan_corpus(cfg)
    root = Path(out_dir)
    _prepare_out_dir(root, overwrite)
    results: list[SyntheticFile | None] = [None] * len(plans)
    done = 0
    if workers <= 1:
        for plan in plans:
            results[plan.index] = _generate_file(root, plan, cfg)
            done += 1
            if progress:
                progress(results[plan.index], done, len(plans))  # type: ignore[arg-type]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            # Longest first, so the pool does not end waiting on one long file.
            order = sorted(plans, key=lambda p: -p.duration * p.rate)
            futures = {pool.submit(_generate_file, root, plan, cfg): plan.index for plan in order}
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                done += 1
                if progress:
                    progress(results[futures[fut]], done, len(plans))  # type: ignore[arg-type]
    summary = CorpusSummary(root=root, config=cfg, files=tuple(r for r in results if r is not None))
    write_corpus_summary(summary)
    return summary


__all__ = [
    "BIPOLAR_CHANNELS",
    "CorpusSummary",
    "FilePlan",
    "SplitStats",
    "SyntheticConfig",
    "SyntheticFile",
    "channel_annotation",
    "check_out_dir",
    "generate_corpus",
    "is_synthetic_corpus",
    "plan_corpus",
    "read_corpus_summary",
    "write_corpus_summary",
]
