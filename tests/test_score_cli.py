"""``ictal score``: list files, tables, JSON output, and one-line errors naming the file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ictal.cli.main import app
from ictal.io.annotations import term_annotation, write_annotations
from ictal.scoring.score_lists import load_pairs, read_list, score_lists

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "nedc_v6_sample"
needs_sample = pytest.mark.skipif(
    not SAMPLE.is_dir(), reason=f"NEDC v6 sample not found at {SAMPLE} (the shared folder beside the repo)"
)
SECTIONS = {
    "dpalign": "NEDC DP ALIGNMENT SCORING SUMMARY",
    "epoch": "NEDC EPOCH SCORING SUMMARY",
    "ovlp": "NEDC OVERLAP SCORING SUMMARY",
    "taes": "NEDC TAES SCORING SUMMARY",
}
runner = CliRunner()


def expected_seiz(scorer: str) -> dict[str, str]:
    """The SEIZ figures the reference tool printed for ``scorer`` in ``results/summary.txt``."""
    text = (SAMPLE / "results" / "summary.txt").read_text()
    section = text[text.index(SECTIONS[scorer]) :]
    block = section[section.index("LABEL: SEIZ") : section.index("LABEL: BCKG")]

    def value(name: str) -> str:
        match = re.search(rf"^\s*{re.escape(name)}:\s+(-?[\d.]+)", block, re.M)
        assert match, name
        return match.group(1)

    duration = re.search(r"Total Duration:\s+([\d.]+)", section)
    assert duration
    return {
        "targets": value("Targets"),
        "hits": value("Hits"),
        "misses": value("Misses"),
        "false_alarms": value("False Alarms"),
        "sensitivity": value("Sensitivity (TPR, Recall)"),
        "fa_per_24h": value("False Alarm Rate"),
        "total_duration_s": duration.group(1),
    }


def printed_as(value: float, printed: str, scale: float = 1.0) -> bool:
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return f"{value * scale:.{decimals}f}" == printed


def check_against_summary(obj: dict, scorer: str) -> None:
    want = expected_seiz(scorer)
    for key in ("targets", "hits", "misses", "false_alarms", "fa_per_24h", "total_duration_s"):
        assert printed_as(obj[key], want[key]), (scorer, key, obj[key], want[key])
    assert printed_as(obj["sensitivity"], want["sensitivity"], 100.0), (scorer, obj["sensitivity"])


@needs_sample
def test_cli_reproduces_the_sample_summary(tmp_path: Path) -> None:
    out = tmp_path / "scores.json"
    result = runner.invoke(
        app,
        [
            "score",
            str(SAMPLE / "ref.list"),
            str(SAMPLE / "hyp.list"),
            "--json",
            str(out),
            "--scorers",
            "ovlp,taes,epoch,dpalign,szcore",
        ],
    )
    assert result.exit_code == 0, result.output
    for title in ("NEDC OVLP - SEIZ - pooled over 30 files", "NEDC TAES - SEIZ", "NEDC EPOCH", "NEDC DPALIGN"):
        assert title in result.output
    assert "SzCORE event - SEIZ - pooled over 30 files | mean over 19 subjects" in result.output
    assert "86.1626 %" in result.output and "3.8165" in result.output
    data = json.loads(out.read_text())
    for scorer in ("ovlp", "taes", "epoch", "dpalign"):
        check_against_summary(data[scorer], scorer)
        assert len(data[scorer]["per_file"]) == 30
        first = data[scorer]["per_file"][0]
        assert first["ref"].endswith("ref/aaaaaasf_s001_t000.csv_bi")
        assert first["hyp"].endswith("hyp/aaaaaasf_s001_t000.csv_bi")
        assert {"targets", "hits", "misses", "false_alarms", "duration_s"} <= set(first)
    assert sum(f["hits"] for f in data["ovlp"]["per_file"]) == data["ovlp"]["hits"]
    assert set(data["szcore"]) == {"event", "sample"}
    event = data["szcore"]["event"]
    assert event["pooled"]["aggregation"] == "pooled over 30 files"
    assert event["subject_mean"]["aggregation"] == "mean over 19 subjects"
    assert len(event["per_subject"]) == 19
    assert not list(tmp_path.glob(".*.tmp"))


@needs_sample
def test_python_api_reproduces_the_sample_summary() -> None:
    report = score_lists(SAMPLE / "ref.list", SAMPLE / "hyp.list")
    assert set(report.nedc) == {"ovlp", "taes", "epoch", "dpalign"}
    assert report.szcore is None and report.warnings == []
    for scorer, r in report.nedc.items():
        obj = {
            "targets": r.targets,
            "hits": r.hits,
            "misses": r.misses,
            "false_alarms": r.false_alarms,
            "sensitivity": r.sensitivity,
            "fa_per_24h": r.fa_per_24h,
            "total_duration_s": r.total_duration_s,
        }
        check_against_summary(obj, scorer)


# ---- hand-made lists -----------------------------------------------------------------------------------------


def write_csv_bi(path: Path, seizures: list[tuple[float, float]], duration: float) -> Path:
    write_annotations(path, term_annotation(seizures, duration, path.name.split(".")[0]))
    return path


def make_lists(tmp_path: Path, n: int = 2, hyp_duration: float = 600.0) -> tuple[Path, Path]:
    (tmp_path / "ref").mkdir(exist_ok=True)
    (tmp_path / "hyp").mkdir(exist_ok=True)
    names = [f"aaaaaaa{i}_s001_t000.csv_bi" for i in range(n)]
    for name in names:
        write_csv_bi(tmp_path / "ref" / name, [(100.0, 160.0)], 600.0)
        write_csv_bi(tmp_path / "hyp" / name, [(120.0, 130.0), (400.0, 410.0)], hyp_duration)
    ref_list = tmp_path / "ref.list"
    ref_list.write_text("# references\n\n" + "".join(f"ref/{n}\n" for n in names))
    hyp_list = tmp_path / "hyp.list"
    hyp_list.write_text("".join(f"  {tmp_path / 'hyp' / n}  \n" for n in names))
    return ref_list, hyp_list


def test_list_files_skip_comments_and_resolve_relative_paths(tmp_path: Path) -> None:
    ref_list, hyp_list = make_lists(tmp_path)
    refs = read_list(ref_list)
    assert refs == [tmp_path / "ref" / "aaaaaaa0_s001_t000.csv_bi", tmp_path / "ref" / "aaaaaaa1_s001_t000.csv_bi"]
    assert read_list(hyp_list) == [tmp_path / "hyp" / p.name for p in refs]
    report = score_lists(ref_list, hyp_list, ("ovlp", "taes"))
    ovlp = report.nedc["ovlp"]
    assert (ovlp.targets, ovlp.hits, ovlp.misses, ovlp.false_alarms) == (2, 2, 0, 2)
    assert ovlp.total_duration_s == 1200.0
    assert report.nedc["taes"].hits == pytest.approx(2 * 10 / 60)


def test_cli_json_only_holds_the_scorers_asked_for(tmp_path: Path) -> None:
    ref_list, hyp_list = make_lists(tmp_path)
    out = tmp_path / "out" / "s.json"
    result = runner.invoke(app, ["score", str(ref_list), str(hyp_list), "--scorers", "ovlp", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "NEDC OVLP - SEIZ - pooled over 2 files" in result.output
    assert "TAES" not in result.output
    data = json.loads(out.read_text())
    assert "ovlp" in data and "taes" not in data and "szcore" not in data
    assert data["ovlp"]["fa_per_24h"] == pytest.approx(2 / 1200 * 86400)


def test_cli_error_durations_differ(tmp_path: Path) -> None:
    ref_list, hyp_list = make_lists(tmp_path, hyp_duration=601.0)
    result = runner.invoke(app, ["score", str(ref_list), str(hyp_list)])
    assert result.exit_code == 1
    assert "aaaaaaa0_s001_t000.csv_bi" in result.output and "duration" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_cli_error_missing_file(tmp_path: Path) -> None:
    ref_list, hyp_list = make_lists(tmp_path)
    (tmp_path / "hyp" / "aaaaaaa1_s001_t000.csv_bi").unlink()
    result = runner.invoke(app, ["score", str(ref_list), str(hyp_list)])
    assert result.exit_code == 1
    assert "aaaaaaa1_s001_t000.csv_bi: file not found" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_cli_error_malformed_row(tmp_path: Path) -> None:
    ref_list, hyp_list = make_lists(tmp_path)
    bad = tmp_path / "ref" / "aaaaaaa1_s001_t000.csv_bi"
    bad.write_text(bad.read_text().replace("100.0000,160.0000", "100.0000,abc"))
    result = runner.invoke(app, ["score", str(ref_list), str(hyp_list)])
    assert result.exit_code == 1
    assert re.search(r"aaaaaaa1_s001_t000\.csv_bi:\d+: stop_time 'abc' is not a number", result.output)


def test_cli_error_list_lengths_differ(tmp_path: Path) -> None:
    ref_list, hyp_list = make_lists(tmp_path)
    hyp_list.write_text(hyp_list.read_text().splitlines()[0] + "\n")
    result = runner.invoke(app, ["score", str(ref_list), str(hyp_list)])
    assert result.exit_code == 1
    assert str(hyp_list) in result.output and "1 files listed" in result.output and "lists 2" in result.output


def test_cli_error_unknown_scorer_and_missing_list(tmp_path: Path) -> None:
    ref_list, hyp_list = make_lists(tmp_path)
    result = runner.invoke(app, ["score", str(ref_list), str(hyp_list), "--scorers", "ovlp,bogus"])
    assert result.exit_code == 1 and "bogus" in result.output
    result = runner.invoke(app, ["score", str(tmp_path / "none.list"), str(hyp_list)])
    assert result.exit_code == 1 and "none.list" in result.output


def test_basename_mismatch_warns_but_scores(tmp_path: Path) -> None:
    ref_list, hyp_list = make_lists(tmp_path)
    other = tmp_path / "hyp" / "bbbbbbbb_s001_t000.csv_bi"
    (tmp_path / "hyp" / "aaaaaaa1_s001_t000.csv_bi").rename(other)
    hyp_list.write_text(hyp_list.read_text().replace("aaaaaaa1_s001_t000.csv_bi", other.name))
    assert len(load_pairs(ref_list, hyp_list).warnings) == 1
    result = runner.invoke(app, ["score", str(ref_list), str(hyp_list), "--scorers", "ovlp"])
    assert result.exit_code == 0, result.output
    assert "warning: pair 1: basenames differ" in result.output


def test_cli_error_stop_before_start(tmp_path: Path) -> None:
    ref_list, hyp_list = make_lists(tmp_path)
    bad = tmp_path / "hyp" / "aaaaaaa0_s001_t000.csv_bi"
    bad.write_text(bad.read_text().replace("400.0000,410.0000", "410.0000,400.0000"))
    result = runner.invoke(app, ["score", str(ref_list), str(hyp_list)])
    assert result.exit_code == 1
    assert re.search(r"aaaaaaa0_s001_t000\.csv_bi:\d+: stop_time 400\.0 is before start_time 410\.0", result.output)
    assert len(result.output.strip().splitlines()) == 1


def test_cli_scores_overlapping_hypothesis_rows_as_the_nedc_tool(tmp_path: Path) -> None:
    # Two overlapping false detections (400, 410) and (405, 420) beside a hit: the tool counts two false alarms.
    ref_list, hyp_list = make_lists(tmp_path, n=1)
    hyp = tmp_path / "hyp" / "aaaaaaa0_s001_t000.csv_bi"
    hyp.write_text(hyp.read_text() + "TERM,405.0000,420.0000,seiz,1.0000\n")
    out = tmp_path / "scores.json"
    result = runner.invoke(app, ["score", str(ref_list), str(hyp_list), "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert (data["ovlp"]["hits"], data["ovlp"]["false_alarms"]) == (1, 2)
    assert data["taes"]["false_alarms"] == 2  # each unused hypothesis row is a whole false alarm


def test_cli_error_taes_on_a_zero_length_reference_names_the_file(tmp_path: Path) -> None:
    ref_list, hyp_list = make_lists(tmp_path, n=1)
    ref = tmp_path / "ref" / "aaaaaaa0_s001_t000.csv_bi"
    ref.write_text(ref.read_text().replace("100.0000,160.0000", "125.0000,125.0000"))
    result = runner.invoke(app, ["score", str(ref_list), str(hyp_list)])
    assert result.exit_code == 1
    assert "aaaaaaa0_s001_t000.csv_bi: a zero-length reference event at 125.0 s" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = runner.invoke(app, ["score", str(ref_list), str(hyp_list), "--scorers", "ovlp,epoch"])
    assert result.exit_code == 0, result.output
