"""Bad inputs, as a list a reviewer can read: the input, the one line it must give, and what must not be written.

Each case builds its input in a fresh folder, runs one ``ictal`` command, and checks: the exit code; a line
of the output matching the expected message (naming the file or key and what to do); no traceback; and no
output file left behind where the command failed. Cases that succeed with a warning check the warning's line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ictal.cli.main import app


def csv_bi(path: Path, rows: list[tuple[float, float, str]], duration: float = 600.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(f"TERM,{a:.4f},{b:.4f},{label},1.0000\n" for a, b, label in rows)
    path.write_text(
        f"# version = csv_v1.0.0\n# bname = {path.stem}\n# duration = {duration:.4f} secs\n#\n"
        f"channel,start_time,stop_time,label,confidence\n{body}"
    )
    return path


def score_lists(tmp: Path, hyp_rows: list[tuple[float, float, str]], ref_rows: list | None = None) -> list[str]:
    """A one-pair ref/hyp list setup; returns the ``score`` arguments."""
    ref = csv_bi(tmp / "ref" / "a_s001_t000.csv_bi", ref_rows or [(100.0, 160.0, "seiz")])
    hyp = csv_bi(tmp / "hyp" / "a_s001_t000.csv_bi", hyp_rows)
    (tmp / "ref.list").write_text(f"{ref}\n")
    (tmp / "hyp.list").write_text(f"{hyp}\n")
    return ["score", str(tmp / "ref.list"), str(tmp / "hyp.list"), "--json", str(tmp / "out.json")]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def checkpoint_of_another_model(path: Path) -> Path:
    """A checkpoint whose config says tiny but whose weights are those of a tiny model with wider node features."""
    from ictal.config.schema import config_from_dict
    from ictal.models.checkpoint import CHECKPOINT_FORMAT, save_checkpoint
    from ictal.models.v3 import build_v3

    cfg = config_from_dict({"model": {"preset": "tiny"}})
    other = config_from_dict({"model": {"preset": "tiny", "node": {"d_model": 32}}})
    state = {"format": CHECKPOINT_FORMAT, "kind": "best", "config": cfg.model_dump(mode="json"),
             "model": build_v3(other.model).state_dict(), "epoch": 1, "step": 1}  # fmt: skip
    return save_checkpoint(path, state)


def predict_with(checkpoint: Callable[[Path], Path]) -> Callable[[Path], list[str]]:
    return lambda t: ["predict", str(checkpoint(t / "ck.pt")), str(t), "--out", str(t / "out")]


@dataclass
class Case:
    name: str
    setup: Callable[[Path], list[str]]  # writes the input, returns the command's arguments
    exit_code: int
    message: str  # a regex one output line must match
    not_written: list[str] = field(default_factory=list)  # paths (relative to the case folder) that must not exist


CASES = [
    Case(
        "score: a hypothesis label outside the known ones",
        lambda t: score_lists(t, [(120.0, 130.0, "seiz"), (300.0, 310.0, "banana")]),
        1,
        r"hyp/a_s001_t000\.csv_bi:7: label 'banana' is not a known label \(seizure: .*; background: .*\); "
        r"give --map banana=seiz or --map banana=bckg",
        ["out.json"],
    ),
    Case(
        "score: a misspelt reference label (a seizure would turn into a false alarm)",
        lambda t: score_lists(t, [(120.0, 130.0, "seiz")], ref_rows=[(100.0, 160.0, "sezi")]),
        1,
        r"ref/a_s001_t000\.csv_bi:6: label 'sezi' is not a known label",
        ["out.json"],
    ),
    Case(
        "score: --map that is not LABEL=seiz|bckg",
        lambda t: [*score_lists(t, [(120.0, 130.0, "banana")]), "--map", "banana=maybe"],
        1,
        r"--map 'banana=maybe': give LABEL=seiz or LABEL=bckg",
        ["out.json"],
    ),
    Case(
        "score: an event past the end of the recording (warned, scored as the NEDC tool scores it)",
        lambda t: score_lists(t, [(312.0, 900.0, "seiz")], ref_rows=[(100.0, 160.0, "seiz")]),
        0,
        r"warning: .*hyp/a_s001_t000\.csv_bi:6: event seiz 312-900 s ends past the recording's 600 s; "
        r"scored as written",
    ),
    Case(
        "validate: a section given twice (YAML would keep the second silently)",
        lambda t: [
            "validate",
            str(
                _write(
                    t / "c.yaml", "training:\n  learning_rate: 0.001\nmodel:\n  preset: tiny\ntraining:\n  epochs: 3\n"
                )
            ),
        ],
        1,
        r"key 'training' is given twice \(line 1 and line 5\); YAML would keep the second and silently drop the first",
    ),
    Case(
        "model-info: a key given twice inside a section",
        lambda t: ["model-info", str(_write(t / "c.yaml", "model:\n  preset: tiny\n  preset: base\n"))],
        1,
        r"key 'preset' is given twice \(line 2 and line 3\)",
    ),
    Case(
        "predict: a checkpoint of random bytes (never advise unsafe loading)",
        predict_with(lambda p: (p.write_bytes(bytes(range(256)) * 40), p)[1]),
        1,
        r"ck\.pt: not a readable ictal checkpoint \(torch\.load failed with \w+: truncated, corrupt or not a "
        r"checkpoint written by ictal\); use another best\.pt/last\.pt$",
        ["out"],
    ),
    Case(
        "predict: an empty checkpoint file",
        predict_with(lambda p: (p.write_bytes(b""), p)[1]),
        1,
        r"ck\.pt: the file is empty \(0 bytes\), not a checkpoint",
        ["out"],
    ),
    Case(
        "predict: weights of another architecture than the stored config (one line, not 100 mismatches)",
        predict_with(checkpoint_of_another_model),
        1,
        r"ck\.pt: its weights do not fit the model its config describes \(\d+ of another shape, e\.g\. ",
        ["out"],
    ),
    Case(
        "validate: an empty config is valid (all defaults), and says what it lacks",
        lambda t: ["validate", str(_write(t / "c.yaml", ""))],
        0,
        r"note: data\.data_dir, data\.cache_dir not set: build-cache, train and evaluate need them",
    ),
    Case(
        "train: an empty config names a key that exists (train has no --cache-dir)",
        lambda t: ["train", str(_write(t / "c.yaml", "")), "--device", "cpu"],
        1,
        r"error: data\.cache_dir is not set; set it in the config to the folder `ictal build-cache --cache-dir` wrote",
    ),
    Case(
        "score: --json where a parent is a file (checked before scoring)",
        lambda t: [*score_lists(t, [(120.0, 130.0, "seiz")])[:3], "--json", str(_write(t / "f", "") / "out.json")],
        1,
        r"out\.json: .*/f is a file, not a folder; give another --json",
    ),
    Case(
        "predict: --out where a parent is a file (checked before the model runs)",
        lambda t: ["predict", str(_write(t / "ck.pt", "")), str(t), "--out", str(_write(t / "f", "") / "out")],
        1,
        r"out: .*/f is a file, not a folder; give another --out",
    ),
    Case(
        "train: --run-dir where a parent is a file (checked before training)",
        lambda t: ["train", str(_write(t / "c.yaml", "")), "--run-dir", str(_write(t / "f", "") / "run")],
        1,
        r"run: .*/f is a file, not a folder; give another --run-dir \(training\.run_dir\)",
    ),
    Case(
        "build-cache: --cache-dir where a parent is a file (checked before reading the corpus)",
        lambda t: [
            "build-cache",
            "--data-dir",
            str(t),
            "--cache-dir",
            str(_write(t / "f", "") / "cache"),
            "--split",
            "dev",
        ],
        1,
        r"cache: .*/f is a file, not a folder; give another --cache-dir \(data\.cache_dir\)",
    ),
    Case(
        "validate: a config that is a list, not sections",
        lambda t: ["validate", str(_write(t / "c.yaml", "- data\n- model\n"))],
        1,
        r"the file holds a list, not a mapping of sections",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, tmp_path: Path) -> None:
    args = case.setup(tmp_path)
    result = CliRunner().invoke(app, args)
    output = result.output
    assert result.exit_code == case.exit_code, output
    assert "Traceback" not in output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert any(re.search(case.message, line) for line in output.splitlines()), output
    assert "weights_only=False" not in output and "file an issue" not in output.lower()
    for rel in case.not_written:
        assert not (tmp_path / rel).exists(), f"{rel} was written"


def test_mapped_labels_are_said_in_every_output(tmp_path: Path) -> None:
    args = score_lists(tmp_path, [(120.0, 130.0, "seiz"), (300.0, 310.0, "banana")])
    result = CliRunner().invoke(app, [*args, "--map", "banana=bckg"])
    assert result.exit_code == 0, result.output
    assert "labels mapped by --map: banana=bckg" in result.output
    import json

    data = json.loads((tmp_path / "out.json").read_text())
    assert data["labels_mapped"] == {"banana": "bckg"}
    assert data["ovlp"]["false_alarms"] == 0  # banana is background: no false alarm
    result = CliRunner().invoke(app, [*args, "--map", "banana=seiz"])
    assert json.loads((tmp_path / "out.json").read_text())["ovlp"]["false_alarms"] == 1


def test_warnings_print_as_one_line_naming_the_file(tmp_path: Path) -> None:
    # A recording read after an in-memory repair: the warning is one line naming the file, not Python's
    # "edf.py:412: EdfRepairWarning:" with a line of ictal's source under it.
    import warnings

    from ictal.io.edf import EdfRepairWarning

    CliRunner().invoke(app, ["validate", "--help"])  # any command installs the command line's format
    text = warnings.formatwarning(f"{tmp_path}/rec.edf: reconstructed Fz", EdfRepairWarning, "edf.py", 412)
    assert text == f"warning: {tmp_path}/rec.edf: reconstructed Fz\n"


def test_evaluate_refuses_a_cache_built_with_other_preprocessing(fake_cache, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A checkpoint trained at notch 50 Hz, a cache built at 60 Hz: refused with the rebuild command, nothing
    written (it used to score the split and exit 0)."""
    from ictal.config.schema import config_from_dict
    from ictal.models.checkpoint import CHECKPOINT_FORMAT, save_checkpoint
    from ictal.models.v3 import build_v3

    cache = tmp_path / "cache"
    fake_cache(cache, "dev", [("pdev_s001_t000", 256 * 40, [(10.0, 20.0)])])
    cfg = config_from_dict({"data": {"cache_dir": str(cache), "window_s": 10, "stride_s": 5},
                            "preprocess": {"notch_hz": 50}, "model": {"preset": "tiny"}})  # fmt: skip
    state = {"format": CHECKPOINT_FORMAT, "kind": "best", "config": cfg.model_dump(mode="json"),
             "model": build_v3(cfg.model).state_dict(), "epoch": 1, "step": 1}  # fmt: skip
    checkpoint = save_checkpoint(tmp_path / "best.pt", state)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["evaluate", str(checkpoint), "--split", "dev", "--out", str(out), "--device", "cpu"]
    )
    assert result.exit_code == 1, result.output
    assert "was built with other parameters than this run uses" in result.output and "notch_hz" in result.output
    assert "ictal clean-cache --cache-dir" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_a_read_only_output_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Root writes through permission bits, so a read-only file system is injected at the write check.
    import errno
    import tempfile

    from ictal.errors import OutputError
    from ictal.io.atomic import check_writable

    def read_only(*_args: object, **_kwargs: object) -> tuple[int, str]:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(OutputError, match=r"out: cannot write in .* \(Read-only file system\); give a writable --out"):
        check_writable(tmp_path / "out", "--out")
    assert not (tmp_path / "out").exists()


def _tiny_checkpoint(path: Path) -> Path:
    from ictal.config.schema import config_from_dict
    from ictal.models.checkpoint import CHECKPOINT_FORMAT, save_checkpoint
    from ictal.models.v3 import build_v3

    cfg = config_from_dict({"data": {"window_s": 10, "stride_s": 5}, "model": {"preset": "tiny"}})
    state = {"format": CHECKPOINT_FORMAT, "kind": "best", "config": cfg.model_dump(mode="json"),
             "model": build_v3(cfg.model).state_dict(), "epoch": 1, "step": 1}  # fmt: skip
    return save_checkpoint(path, state)


@pytest.mark.parametrize(
    ("make", "status"),
    [
        ("flat", r"no EEG: every channel is flat; the trace and events mean nothing"),
        ("railing", r"1 of 19 channels carry no usable EEG \(C3 railing\); events there are unreliable"),
    ],
)
def test_predict_says_when_channels_carry_no_eeg(tmp_path: Path, make: str, status: str) -> None:
    """A flat recording used to be scored "ok" (max probability 0.43); now the table, the JSON's notes and
    channel_problems, and the .csv_bi's header say so."""
    import json

    import numpy as np

    from ictal.io.channels import CANONICAL_19
    from ictal.io.edf_write import write_edf

    n = 256 * 30
    rng = np.random.default_rng(0)
    signals = [np.zeros(n) if make == "flat" else 30.0 * rng.standard_normal(n) for _ in CANONICAL_19]
    if make == "railing":
        signals[CANONICAL_19.index("C3")] = np.clip(300.0 * rng.standard_normal(n), -200.0, 200.0)
    edf = write_edf(tmp_path / "rec.edf", signals, 256.0, [f"EEG {c.upper()}-REF" for c in CANONICAL_19])
    out = tmp_path / "out"
    args = ["predict", str(_tiny_checkpoint(tmp_path / "best.pt")), str(edf), "--out", str(out), "--device", "cpu"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "400"})  # the table's status cell on one line
    assert result.exit_code == 0, result.output
    assert re.search(status, result.output), result.output
    data = json.loads((out / "rec.json").read_text())
    assert any(re.search(status, note) for note in data["notes"]), data["notes"]
    problems = data["channel_problems"]
    assert (len(problems), problems[0]["problem"]) == ((19, "flat") if make == "flat" else (1, "railing"))
    assert re.search(r"# note = " + status, (out / "rec.csv_bi").read_text())


# ---- a full disk, injected at the write (ENOSPC from fsync, where every atomic write ends) ----------------------


@pytest.fixture
def disk_fills_after(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """``disk_fills_after(n, matching="")``: the first ``n`` atomic writes (of files whose temporary name contains
    ``matching``) succeed, every later one fails with ENOSPC."""
    import errno
    import os

    import ictal.io.atomic as atomic

    real_fsync = os.fsync

    def arm(n: int, matching: str = "") -> None:
        calls = {"n": 0}

        def fsync(fd: int) -> None:
            if matching in os.readlink(f"/proc/self/fd/{fd}"):
                calls["n"] += 1
                if calls["n"] > n:
                    raise OSError(errno.ENOSPC, "No space left on device")
            real_fsync(fd)

        monkeypatch.setattr(atomic.os, "fsync", fsync)

    return arm


def test_disk_full_in_build_cache_stops_with_what_is_needed_and_resumes(
    synthetic_corpus: Path, tmp_path: Path, disk_fills_after: Callable[..., None]
) -> None:
    cache = tmp_path / "cache"
    args = ["build-cache", "--data-dir", str(synthetic_corpus), "--cache-dir", str(cache), "--split", "train"]
    disk_fills_after(3)  # cache.json, then one recording's .npy and .json
    result = CliRunner().invoke(app, [*args, "--workers", "1"])
    assert result.exit_code == 1, result.output
    assert re.search(r"train: the disk is full: 1 recording\(s\) built now, \d+ left to build, about [\d.]+ GB more",
                     result.output), result.output  # fmt: skip
    assert "no space left on the device holding" in result.output and "run the same command again" in result.output
    assert "fix or remove those files" not in result.output
    assert not list((cache / "train").glob(".*.tmp")) and len(list((cache / "train").glob("*.npy"))) == 1
    disk_fills_after(10_000)
    result = CliRunner().invoke(app, [*args, "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "1 skipped" in result.output and "0 failed" in result.output


def test_disk_full_in_predict_leaves_no_partial_outputs(tmp_path: Path, disk_fills_after: Callable[..., None]) -> None:
    import numpy as np

    from ictal.io.channels import CANONICAL_19
    from ictal.io.edf_write import write_edf

    rng = np.random.default_rng(0)
    signals = [30.0 * rng.standard_normal(256 * 30) for _ in CANONICAL_19]
    edf = write_edf(tmp_path / "rec.edf", signals, 256.0, [f"EEG {c.upper()}-REF" for c in CANONICAL_19])
    checkpoint = _tiny_checkpoint(tmp_path / "best.pt")
    out = tmp_path / "out"
    disk_fills_after(2)  # the .csv_bi and the .tsv are written, the .json is not
    result = CliRunner().invoke(app, ["predict", str(checkpoint), str(edf), "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 1, result.output
    assert "rec.json: no space left on the device holding" in " ".join(result.output.split())
    assert not [p for p in out.rglob("*") if p.is_file()], list(out.rglob("*"))  # all or none


def test_disk_full_while_training_keeps_the_last_checkpoint(
    synthetic_cache: Path, tmp_path: Path, disk_fills_after: Callable[..., None]
) -> None:
    import yaml

    from ictal.config.schema import config_from_dict

    run = tmp_path / "run"
    cfg = config_from_dict({
        "data": {"cache_dir": str(synthetic_cache), "window_s": 10, "stride_s": 5}, "model": {"preset": "tiny"},
        "training": {"batch_size": 4, "epochs": 1, "device": "cpu", "mixed_precision": "no", "num_threads": 1,
                     "max_steps_per_epoch": 2, "tensorboard": False, "run_dir": str(run), "validation": "frames"},
    })  # fmt: skip
    config = _write(tmp_path / "c.yaml", yaml.safe_dump(cfg.model_dump(mode="json")))
    assert CliRunner().invoke(app, ["train", str(config)]).exit_code == 0
    before = (run / "last.pt").read_bytes()
    disk_fills_after(0, matching=".pt.")  # the checkpoint writes fail
    result = CliRunner().invoke(app, ["train", str(config), "--resume", "--epochs", "2"])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "no space left on the device holding" in text and "continue with --resume" in text, result.output
    assert "last.pt: no space left" in text or "best.pt: no space left" in text, text
    assert (run / "last.pt").read_bytes() == before and not list(run.glob(".*.tmp"))


def test_build_cache_workers_exit_when_their_parent_is_killed(tmp_path: Path) -> None:
    """kill -9 of build-cache's main process used to leave its worker processes running."""
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import os, signal, time\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from ictal.data.cache_build import exit_with_parent\n"
        "if __name__ == '__main__':\n"
        "    pool = ProcessPoolExecutor(2, initializer=exit_with_parent, initargs=(os.getpid(),))\n"
        "    futures = [pool.submit(time.sleep, 120) for _ in range(2)]\n"
        "    time.sleep(2)\n"
        "    print(' '.join(str(p) for p in pool._processes), flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    pids = [int(p) for p in proc.stdout.split()]
    assert len(pids) == 2

    def alive(pid: int) -> bool:
        try:
            state = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return False
        return "State:\tZ" not in state

    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(p) for p in pids), "workers outlived their parent"


def test_a_silent_loader_is_one_line_saying_what_to_try() -> None:
    """PyTorch's DataLoader raises a bare RuntimeError after its timeout; train used to show it as a traceback."""
    from ictal.train.trainer import LoaderError, next_batch

    def silent() -> Iterator[dict]:
        raise RuntimeError("DataLoader timed out after 600 seconds")
        yield {}

    with pytest.raises(LoaderError, match=r"worker\(s\) delivered no batch for 600 s .*data\.num_workers: 0"):
        next_batch(silent(), 4)
    assert next_batch(iter([]), 0) is None
