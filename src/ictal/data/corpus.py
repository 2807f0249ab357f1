"""Find the recordings of a corpus, pair each EDF with its annotations, and keep the splits patient-disjoint.

Two layouts are recognised:

- **TUSZ**: ``<root>/{train,dev,eval}/<patient>/<session>_<year>/<montage>/<patient>_<session>_<token>.edf``
  (``<root>/edf/{train,dev,eval}`` is accepted too, as the corpus unpacks). Each recording belongs to the split
  of the folder it is in; ``data.split_policy: official_tusz`` uses those splits as they are and refuses to run
  when one patient appears in two of them (:class:`SplitLeakageError` lists the patients).
- **flat**: any other folder; every ``.edf`` below it (recursively) is one recording of the single split
  :data:`FLAT_SPLIT` (``"all"``). A folder named ``train``/``dev``/``eval`` itself is that split.

Annotations are the files next to the EDF with the same stem: ``<stem>.csv_bi`` and ``<stem>.csv``.

>>> corpus = discover_corpus("/data/tusz/v2.0.3/edf")
>>> corpus.layout, sorted(corpus.splits())
('tusz', ['dev', 'eval', 'train'])
>>> corpus.check_disjoint()                      # raises SplitLeakageError naming overlapping patients
>>> rec = corpus.split("train")[0]
>>> rec.bname, rec.patient, rec.labels("csv_bi")
('aaaaaaac_s001_t000', 'aaaaaaac', PosixPath('.../aaaaaaac_s001_t000.csv_bi'))
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ictal.errors import IctalError

#: The official TUSZ splits, in the order they are used.
OFFICIAL_SPLITS: tuple[str, ...] = ("train", "dev", "eval")
#: The one split of a flat folder of EDFs.
FLAT_SPLIT = "all"

#: ``aaaaaaac_s001_t000``: patient (8 lowercase letters), session, token.
_TUSZ_STEM = re.compile(r"^(?P<patient>[a-z]{8})_(?P<session>s\d{3})_(?P<token>t\d{3})$")
_MONTAGE_DIR = re.compile(r"^\d\d_tcp_")

LabelSource = Literal["csv_bi", "csv"]


class SplitLeakageError(IctalError):
    """One or more patients have recordings in two splits; results on such splits are invalid."""

    def __init__(self, root: Path, overlaps: dict[str, tuple[str, ...]]) -> None:
        self.root = root
        self.overlaps = overlaps
        shown = ", ".join(f"{p} ({'+'.join(s)})" for p, s in sorted(overlaps.items())[:50])
        more = f" and {len(overlaps) - 50} more" if len(overlaps) > 50 else ""
        super().__init__(
            f"{root}: {len(overlaps)} patient(s) appear in more than one split: {shown}{more}. "
            "data.split_policy official_tusz needs patient-disjoint train/dev/eval folders; move each patient's "
            "recordings into one split (the official TUSZ release is disjoint; a mixed copy is not)"
        )


class CorpusError(IctalError):
    """A corpus folder that cannot be used as given (missing, empty, duplicate recording names, unknown split)."""


@dataclass(frozen=True)
class RecordingFiles:
    """The files of one recording on disk and what its path says about it.

    ``rel`` is the EDF's path relative to the corpus root (POSIX separators), ``bname`` its stem
    (``aaaaaaac_s001_t000``), the key of the recording in the cache. ``patient`` comes from a TUSZ stem, else
    from the patient folder of the TUSZ layout, else it is the stem itself (a flat folder of unrelated files).
    """

    edf: Path
    rel: str
    split: str
    bname: str
    patient: str
    session: str | None
    token: str | None
    montage: str | None
    csv_bi: Path | None
    csv: Path | None

    def labels(self, source: LabelSource) -> Path | None:
        """The annotation file for ``source`` (``csv_bi`` or ``csv``), None when it is absent."""
        return self.csv_bi if source == "csv_bi" else self.csv


@dataclass(frozen=True)
class Corpus:
    """Every recording found under ``root``, sorted by (split, bname)."""

    root: Path
    layout: Literal["tusz", "flat"]
    recordings: tuple[RecordingFiles, ...]

    def splits(self) -> tuple[str, ...]:
        """The split names present, in official order (``train, dev, eval``) or ``("all",)`` for a flat folder."""
        present = {r.split for r in self.recordings}
        order = OFFICIAL_SPLITS if self.layout == "tusz" else (FLAT_SPLIT,)
        return tuple(s for s in order if s in present)

    def split(self, name: str) -> list[RecordingFiles]:
        """The recordings of split ``name``; a name the layout does not have is a :class:`CorpusError`."""
        allowed = OFFICIAL_SPLITS if self.layout == "tusz" else (FLAT_SPLIT,)
        if name not in allowed:
            raise CorpusError(
                f"{self.root}: no split {name!r} in a {self.layout} corpus; use one of {', '.join(allowed)}"
                + (" (a flat folder of EDFs is one split named 'all')" if self.layout == "flat" else "")
            )
        return [r for r in self.recordings if r.split == name]

    def patient_overlaps(self) -> dict[str, tuple[str, ...]]:
        """Patients found in more than one split -> the splits they are in (empty when disjoint)."""
        return patient_overlaps(self.recordings)

    def check_disjoint(self) -> None:
        """Raise :class:`SplitLeakageError` listing every patient found in two or more splits."""
        overlaps = self.patient_overlaps()
        if overlaps:
            raise SplitLeakageError(self.root, overlaps)


def patient_overlaps(recordings: Iterable[RecordingFiles]) -> dict[str, tuple[str, ...]]:
    """Patients whose recordings are in more than one split -> those splits (sorted in official order)."""
    splits_of: dict[str, set[str]] = defaultdict(set)
    for rec in recordings:
        splits_of[rec.patient].add(rec.split)
    rank = {s: i for i, s in enumerate(OFFICIAL_SPLITS)}
    return {
        patient: tuple(sorted(splits, key=lambda s: (rank.get(s, len(rank)), s)))
        for patient, splits in splits_of.items()
        if len(splits) > 1
    }


def parse_stem(stem: str) -> tuple[str | None, str | None, str | None]:
    """(patient, session, token) of a TUSZ stem ``aaaaaaac_s001_t000``; (None, None, None) for other names."""
    m = _TUSZ_STEM.match(stem)
    if m is None:
        return None, None, None
    return m["patient"], m["session"], m["token"]


def _tusz_root(root: Path) -> Path | None:
    """The folder holding ``train/dev/eval`` (``root`` itself or ``root/edf``), None when neither does."""
    for candidate in (root, root / "edf"):
        if any((candidate / s).is_dir() for s in OFFICIAL_SPLITS):
            return candidate
    return None


def _walk_edfs(folder: Path) -> list[Path]:
    """Every ``*.edf`` (any case) below ``folder``, sorted; hidden folders are skipped."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath) / f for f in filenames if f.lower().endswith(".edf") and not f.startswith(".")]
    return sorted(found)


def _sidecar(edf: Path, suffix: str) -> Path | None:
    path = edf.with_suffix(suffix)
    return path if path.is_file() else None


def _recording(edf: Path, root: Path, split: str, tusz: bool) -> RecordingFiles:
    rel_parts = edf.relative_to(root).parts
    patient, session, token = parse_stem(edf.stem)
    montage = next((p for p in rel_parts[:-1] if _MONTAGE_DIR.match(p)), None)
    if patient is None:
        # TUSZ layout: <split>/<patient>/...; otherwise the file stands alone as its own "patient".
        patient = rel_parts[1] if tusz and len(rel_parts) > 2 else edf.stem
    return RecordingFiles(
        edf=edf,
        rel=edf.relative_to(root).as_posix(),
        split=split,
        bname=edf.stem,
        patient=patient,
        session=session,
        token=token,
        montage=montage,
        csv_bi=_sidecar(edf, ".csv_bi"),
        csv=_sidecar(edf, ".csv"),
    )


def discover_corpus(data_dir: str | Path) -> Corpus:
    """Find every recording under ``data_dir`` (TUSZ layout or a flat folder) and pair it with its annotations.

    Raises:
        CorpusError: the folder does not exist, holds no EDF, or two EDFs share a name (their cache entries
            would collide); the message names the files.
    """
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise CorpusError(
            f"{root}: data directory not found; point --data-dir (data.data_dir) at a TUSZ root with "
            "train/ dev/ eval/ or a folder of EDF files (`ictal synth DIR` makes a synthetic one)"
        )
    tusz_root = _tusz_root(root)
    recordings: list[RecordingFiles] = []
    if tusz_root is not None:
        root = tusz_root
        for split in OFFICIAL_SPLITS:
            if (root / split).is_dir():
                recordings += [_recording(p, root, split, tusz=True) for p in _walk_edfs(root / split)]
        layout: Literal["tusz", "flat"] = "tusz"
    else:
        # A single TUSZ split folder given directly keeps its split name.
        split = root.name if root.name in OFFICIAL_SPLITS else FLAT_SPLIT
        recordings = [_recording(p, root, split, tusz=False) for p in _walk_edfs(root)]
        layout = "flat"
        if split != FLAT_SPLIT:
            layout = "tusz"
            recordings = [_with_patient_from_folder(r, root) for r in recordings]
    if not recordings:
        raise CorpusError(f"{root}: no .edf files found below it; is this the right --data-dir?")
    _check_unique_names(root, recordings)
    recordings.sort(key=lambda r: (OFFICIAL_SPLITS.index(r.split) if r.split in OFFICIAL_SPLITS else 9, r.bname))
    return Corpus(root=root, layout=layout, recordings=tuple(recordings))


def _with_patient_from_folder(rec: RecordingFiles, split_dir: Path) -> RecordingFiles:
    """In a lone ``train/`` folder the patient folder is the first one below it."""
    if parse_stem(rec.bname)[0] is not None:
        return rec
    parts = rec.edf.relative_to(split_dir).parts
    patient = parts[0] if len(parts) > 1 else rec.bname
    return dataclasses.replace(rec, patient=patient)


def _check_unique_names(root: Path, recordings: Sequence[RecordingFiles]) -> None:
    by_name: dict[str, list[str]] = defaultdict(list)
    for rec in recordings:
        by_name[rec.bname].append(rec.rel)
    dups = {name: rels for name, rels in by_name.items() if len(rels) > 1}
    if dups:
        shown = "; ".join(f"{name}: {', '.join(rels)}" for name, rels in sorted(dups.items())[:10])
        raise CorpusError(
            f"{root}: {len(dups)} recording name(s) occur more than once ({shown}); each recording is cached "
            "under its file name, so rename or remove the copies"
        )


def official_splits(data_dir: str | Path) -> dict[str, list[RecordingFiles]]:
    """``data.split_policy: official_tusz``: the train/dev/eval recordings, refused when the splits share a patient.

    Raises:
        SplitLeakageError: a patient has recordings in two splits (all such patients are listed).
        CorpusError: as :func:`discover_corpus`.
    """
    corpus = discover_corpus(data_dir)
    corpus.check_disjoint()
    return {s: corpus.split(s) for s in corpus.splits()}


def select_split(
    data_dir: str | Path, split: str, split_policy: str = "official_tusz"
) -> tuple[Corpus, list[RecordingFiles]]:
    """The corpus and the recordings of ``split`` under ``split_policy``, after the leakage check.

    The whole corpus is checked (not only ``split``): leakage is a property of the splits together.
    """
    if split_policy != "official_tusz":
        raise CorpusError(f"data.split_policy: unknown policy {split_policy!r}; the supported one is official_tusz")
    corpus = discover_corpus(data_dir)
    corpus.check_disjoint()
    return corpus, corpus.split(split)
