"""Scoring from NEDC-style list files: reading and pairing the lists, running the scorers, JSON and tables.

A list file has one annotation path per line; blank lines and ``#`` comments are ignored and a relative path is
resolved against the list file's folder. The two lists pair by order.

>>> report = score_lists("ref.list", "hyp.list", scorers=("ovlp", "taes", "szcore"))
>>> write_report_json("scores.json", report)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.table import Table

from ictal.io.annotations import BACKGROUND_LABELS, SEIZURE_LABELS, Annotation, read_annotations
from ictal.io.json_files import write_json_atomic
from ictal.scoring.common import LabelCounts, NedcResult, ScoringError
from ictal.scoring.nedc import NEDC_SCORERS, score_nedc
from ictal.scoring.szcore import SzcoreConfig, SzcoreCounts, SzcoreResult, score_szcore

#: Every scorer ``score_lists`` knows, in display order.
ALL_SCORERS: tuple[str, ...] = ("ovlp", "taes", "epoch", "dpalign", "szcore")
DEFAULT_SCORERS: tuple[str, ...] = ("ovlp", "taes", "epoch", "dpalign")


def read_list(path: str | Path) -> list[Path]:
    """The annotation paths of a list file, relative ones resolved against the list file's folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScoringError(f"{path}: list file cannot be read ({exc.strerror or exc})") from None
    out: list[Path] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        entry = Path(line).expanduser()
        out.append(entry if entry.is_absolute() else path.parent / entry)
    return out


@dataclass
class ScorePairs:
    """Annotation pairs read from two lists, with warnings (e.g. basenames that differ)."""

    pairs: list[tuple[Annotation, Annotation]]
    warnings: list[str] = field(default_factory=list)
    label_map: dict[str, str] = field(default_factory=dict)


def parse_label_map(items: Sequence[str]) -> dict[str, str]:
    """``["LABEL=seiz", "OTHER=bckg"]`` (``--map``) as ``{"label": "seiz", "other": "bckg"}``.

    Raises:
        ScoringError: an item that is not ``LABEL=seiz`` or ``LABEL=bckg``, naming it.
    """
    out: dict[str, str] = {}
    for item in items:
        label, sep, target = item.partition("=")
        label, target = label.strip().lower(), target.strip().lower()
        if not sep or not label or target not in ("seiz", "bckg"):
            raise ScoringError(f"--map {item!r}: give LABEL=seiz or LABEL=bckg (e.g. --map artifact=bckg)")
        out[label] = target
    return out


def known_labels(ann: Annotation, label_map: Mapping[str, str]) -> Annotation:
    """``ann`` with every label known: seizure and background labels as written, ``label_map``'s mapped.

    Raises:
        ScoringError: a label that is neither, naming the file, the line, the label and the known labels
            (the NEDC tool stops there too; ``--map`` says how to score it).
    """
    events = []
    for e in ann.events:
        if e.label in SEIZURE_LABELS or e.label in BACKGROUND_LABELS:
            events.append(e)
        elif e.label in label_map:
            events.append(replace(e, label=label_map[e.label]))
        else:
            where = f"{ann.path}:{e.line}" if e.line is not None else f"{ann.path}"
            raise ScoringError(
                f"{where}: label {e.label!r} is not a known label (seizure: {', '.join(sorted(SEIZURE_LABELS))}; "
                f"background: {', '.join(sorted(BACKGROUND_LABELS))}); give --map {e.label}=seiz or "
                f"--map {e.label}=bckg to score it"
            )
    return replace(ann, events=events)


def past_end_warnings(ann: Annotation) -> list[str]:
    """One line per event that ends past the recording's duration (scored as written, as the NEDC tool does)."""
    return [
        f"{ann.path}:{e.line}: event {e.label} {e.start:g}-{e.stop:g} s ends past the recording's {ann.duration:g} s; "
        "scored as written, as the NEDC tool does (EPOCH samples stop at the duration)"
        for e in ann.events
        if round(e.stop, 4) > round(ann.duration, 4)
    ]


def load_pairs(ref_list: str | Path, hyp_list: str | Path, label_map: Mapping[str, str] | None = None) -> ScorePairs:
    """Read both lists and every annotation; check the pairing and the labels.

    Args:
        label_map: labels outside the known ones to score as ``seiz`` or ``bckg`` (``--map``).

    Raises:
        ScoringError: the lists differ in length, a listed file is missing, a pair's durations differ
            (to 4 decimals), or a label is not known; each names the file.
        AnnotationError: a malformed annotation (naming file and line).
    """
    label_map = dict(label_map or {})
    refs, hyps = read_list(ref_list), read_list(hyp_list)
    if len(refs) != len(hyps):
        raise ScoringError(
            f"{hyp_list}: {len(hyps)} files listed but {ref_list} lists {len(refs)}; the lists pair by order"
        )
    if not refs:
        raise ScoringError(f"{ref_list}: no annotation files listed")
    warnings: list[str] = []
    pairs: list[tuple[Annotation, Annotation]] = []
    for ref_path, hyp_path in zip(refs, hyps, strict=True):
        for p, lst in ((ref_path, ref_list), (hyp_path, hyp_list)):
            if not p.is_file():
                raise ScoringError(f"{p}: file not found (listed in {lst})")
        ref = known_labels(read_annotations(ref_path), label_map)
        hyp = known_labels(read_annotations(hyp_path), label_map)
        warnings += past_end_warnings(ref) + past_end_warnings(hyp)
        if round(ref.duration, 4) != round(hyp.duration, 4):
            raise ScoringError(
                f"{hyp_path}: duration {hyp.duration:.4f} s differs from {ref.duration:.4f} s of its reference "
                f"{ref_path}; the hypothesis must cover the same recording"
            )
        if ref_path.name != hyp_path.name:
            warnings.append(f"pair {len(pairs)}: basenames differ: {ref_path.name} (ref) vs {hyp_path.name} (hyp)")
        pairs.append((ref, hyp))
    return ScorePairs(pairs, warnings, label_map)


@dataclass
class ScoreReport:
    """The results of one scoring run: NEDC results by scorer name, SzCORE results when asked."""

    ref_list: str
    hyp_list: str
    n_files: int
    nedc: dict[str, NedcResult]
    szcore: dict[str, SzcoreResult] | None = None
    warnings: list[str] = field(default_factory=list)
    #: Labels outside the known ones that ``--map`` scored as ``seiz`` or ``bckg``; said in every output.
    label_map: dict[str, str] = field(default_factory=dict)


def parse_scorers(text: str | Sequence[str]) -> tuple[str, ...]:
    """Scorer names from ``"ovlp,taes"`` (or a sequence); raises :class:`ScoringError` on an unknown name."""
    names = [s.strip().lower() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    unknown = [s for s in names if s not in ALL_SCORERS]
    if unknown or not names:
        raise ScoringError(
            f"--scorers: unknown or empty scorer list {','.join(unknown) or repr(text)}; "
            f"choose from {','.join(ALL_SCORERS)}"
        )
    return tuple(s for s in ALL_SCORERS if s in names)


def score_pairs(
    loaded: ScorePairs,
    scorers: Sequence[str] = DEFAULT_SCORERS,
    szcore_config: SzcoreConfig | None = None,
    ref_list: str = "",
    hyp_list: str = "",
) -> ScoreReport:
    """Run the named scorers on loaded pairs."""
    nedc_names = [s for s in scorers if s in NEDC_SCORERS]
    nedc = score_nedc(loaded.pairs, nedc_names) if nedc_names else {}
    szcore = score_szcore(loaded.pairs, szcore_config) if "szcore" in scorers else None
    return ScoreReport(
        ref_list, hyp_list, len(loaded.pairs), nedc, szcore, list(loaded.warnings), dict(loaded.label_map)
    )


def score_lists(
    ref_list: str | Path,
    hyp_list: str | Path,
    scorers: Sequence[str] = DEFAULT_SCORERS,
    szcore_config: SzcoreConfig | None = None,
    label_map: Mapping[str, str] | None = None,
) -> ScoreReport:
    """Read two list files and run the named scorers (``ovlp``, ``taes``, ``epoch``, ``dpalign``, ``szcore``);
    ``label_map`` scores labels outside the known ones as ``seiz`` or ``bckg`` (``--map``)."""
    loaded = load_pairs(ref_list, hyp_list, label_map)
    return score_pairs(loaded, scorers, szcore_config, str(ref_list), str(hyp_list))


# ---- JSON ----------------------------------------------------------------------------------------------------


def _num(x: float) -> float | int:
    """Whole numbers as ints (counts read as counts); NaN stays NaN, which the writer makes null."""
    return int(x) if float(x).is_integer() else float(x)


def _counts_json(c: LabelCounts) -> dict[str, Any]:
    return {
        "targets": _num(c.targets),
        "hits": _num(c.hits),
        "misses": _num(c.misses),
        "false_alarms": _num(c.false_alarms),
    }


def nedc_result_json(r: NedcResult) -> dict[str, Any]:
    """One NEDC result as a JSON object (SEIZ label; ``fa_per_24h`` in seconds per day for EPOCH)."""
    return {
        "label": "SEIZ",
        "aggregation": f"pooled over {len(r.per_file)} files",
        **_counts_json(r.seiz),
        "sensitivity": _num(r.sensitivity),
        "fa_per_24h": _num(r.fa_per_24h),
        "fa_unit": "seconds of false-alarm epochs" if r.scorer == "epoch" else "events",
        "total_duration_s": _num(r.total_duration_s),
        "bckg": _counts_json(r.bckg),
        "per_file": [
            {
                "ref": f.ref_path,
                "hyp": f.hyp_path,
                "duration_s": _num(f.duration_s),
                **_counts_json(f.seiz),
                "all_labels": _counts_json(f.all_labels),
            }
            for f in r.per_file
        ],
    }


def _szcore_counts_json(c: SzcoreCounts) -> dict[str, Any]:
    return {
        "tp": _num(c.tp),
        "fp": _num(c.fp),
        "ref_events": _num(c.ref_events),
        "duration_s": _num(c.duration_s),
        "sensitivity": _num(c.sensitivity),
        "precision": _num(c.precision),
        "f1": _num(c.f1),
        "fp_per_24h": _num(c.fp_per_24h),
    }


def szcore_result_json(r: SzcoreResult) -> dict[str, Any]:
    """One SzCORE result: pooled counts and metrics, the mean over subjects, and each subject's."""
    m = r.subject_mean
    return {
        "pooled": {"aggregation": f"pooled over {r.n_files} files", **_szcore_counts_json(r.pooled)},
        "subject_mean": {
            "aggregation": f"mean over {len(r.subjects)} subjects",
            "sensitivity": _num(m.sensitivity),
            "precision": _num(m.precision),
            "f1": _num(m.f1),
            "fp_per_24h": _num(m.fp_per_24h),
            "n_subjects": m.n_subjects,
        },
        "per_subject": {sid: _szcore_counts_json(c) for sid, c in sorted(r.subjects.items())},
    }


def report_json(report: ScoreReport) -> dict[str, Any]:
    """The whole report as a JSON-ready dict: one key per scorer run, plus the inputs."""
    out: dict[str, Any] = {"ref_list": report.ref_list, "hyp_list": report.hyp_list, "n_files": report.n_files}
    for name, result in report.nedc.items():
        out[name] = nedc_result_json(result)
    if report.szcore is not None:
        out["szcore"] = {kind: szcore_result_json(r) for kind, r in report.szcore.items()}
    if report.warnings:
        out["warnings"] = report.warnings
    if report.label_map:
        out["labels_mapped"] = report.label_map
    return out


def write_report_json(path: str | Path, report: ScoreReport) -> None:
    """Write :func:`report_json` to ``path`` atomically."""
    write_json_atomic(path, report_json(report))


# ---- tables --------------------------------------------------------------------------------------------------

_TITLES = {"ovlp": "NEDC OVLP", "taes": "NEDC TAES", "epoch": "NEDC EPOCH", "dpalign": "NEDC DPALIGN"}


def _mapped_note(label_map: Mapping[str, str] | None) -> str:
    if not label_map:
        return ""
    return " - labels mapped by --map: " + ", ".join(f"{k}={v}" for k, v in sorted(label_map.items()))


def _fmt(x: float, digits: int) -> str:
    return "n/a" if math.isnan(x) else f"{x:,.{digits}f}"


def nedc_table(r: NedcResult, label_map: Mapping[str, str] | None = None) -> Table:
    """A Rich table of one NEDC result, titled with scorer, label and aggregation (and labels mapped by --map)."""
    digits = 2 if r.scorer == "taes" else 0
    title = f"{_TITLES[r.scorer]} - SEIZ - pooled over {len(r.per_file)} files{_mapped_note(label_map)}"
    table = Table(title=title, title_justify="left", min_width=len(title))
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("targets", _fmt(r.targets, digits))
    table.add_row("hits", _fmt(r.hits, digits))
    table.add_row("misses", _fmt(r.misses, digits))
    table.add_row("false alarms" + (" (epochs)" if r.scorer == "epoch" else ""), _fmt(r.false_alarms, digits))
    table.add_row("sensitivity", _fmt(r.sensitivity * 100.0, 4) + " %")
    unit = "FA seconds / 24 h" if r.scorer == "epoch" else "FA / 24 h"
    table.add_row(unit, _fmt(r.fa_per_24h, 4))
    table.add_row("total duration", _fmt(r.total_duration_s, 4) + " s")
    return table


def szcore_table(kind: str, r: SzcoreResult, label_map: Mapping[str, str] | None = None) -> Table:
    """A Rich table of one SzCORE scoring: pooled and mean-over-subjects columns."""
    unit = "FP samples / 24 h" if kind == "sample" else "FP / 24 h"
    title = f"SzCORE {kind} - SEIZ - pooled over {r.n_files} files | mean over {len(r.subjects)} subjects"
    title += _mapped_note(label_map)
    table = Table(title=title, title_justify="left", min_width=len(title))
    table.add_column("metric")
    table.add_column(f"pooled ({r.n_files} files)", justify="right")
    table.add_column(f"subject mean ({len(r.subjects)})", justify="right")
    p, m = r.pooled, r.subject_mean
    table.add_row("sensitivity", _fmt(p.sensitivity * 100, 2) + " %", _fmt(m.sensitivity * 100, 2) + " %")
    table.add_row("precision", _fmt(p.precision * 100, 2) + " %", _fmt(m.precision * 100, 2) + " %")
    table.add_row("F1", _fmt(p.f1, 4), _fmt(m.f1, 4))
    table.add_row(unit, _fmt(p.fp_per_24h, 2), _fmt(m.fp_per_24h, 2))
    table.add_row("TP / FP / ref events", f"{p.tp:,.0f} / {p.fp:,.0f} / {p.ref_events:,.0f}", "")
    return table


def report_tables(report: ScoreReport) -> list[Table]:
    """One table per scorer run, in the order ovlp, taes, epoch, dpalign, SzCORE event, SzCORE sample."""
    tables = [nedc_table(report.nedc[name], report.label_map) for name in ALL_SCORERS if name in report.nedc]
    if report.szcore is not None:
        tables += [szcore_table(kind, r, report.label_map) for kind, r in report.szcore.items()]
    return tables
