"""`ictal preflight`: passes with figures on a good cache; fails with its reason on a cache without seizure
windows, on leaky splits (cache or corpus), on a cache built with other parameters, and on a missing device."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

from ictal.cli.main import app
from ictal.config.schema import config_from_dict
from ictal.train.preflight import cached_split_overlaps, run_preflight

MINUTE = 60 * 256  # samples


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_config(path: Path, cache: Path, run_dir: Path, **sections: Any) -> Path:
    raw: dict[str, Any] = {
        "name": "preflight-test",
        "data": {"cache_dir": str(cache), "window_s": 10, "stride_s": 5},
        "model": {"preset": "tiny"},
        "training": {"batch_size": 2, "device": "cpu", "num_threads": 1, "run_dir": str(run_dir), "epochs": 2},
    }
    for key, value in sections.items():
        raw.setdefault(key, {}).update(value)
    path.write_text(yaml.safe_dump(raw))
    return path


def preflight(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["preflight", str(config), *args])
    return result.exit_code, result.output


def test_preflight_passes_with_estimates(synthetic_cache: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "cfg.yaml", synthetic_cache, tmp_path / "run")
    code, out = preflight(config, "--steps", "1")
    assert code == 0, out
    for name in ("cache", "train windows", "dev windows", "splits", "sampler", "device", "precision", "throughput"):
        assert name in out
    assert "FAIL" not in out and "windows/s" in out and "Seizure ratio" in out
    assert not (tmp_path / "run").exists()  # preflight writes nothing
    report = run_preflight(config_from_dict(yaml.safe_load(config.read_text())), steps=1)
    assert report.ok and report.status_of("forward/backward") == "ok"
    figures = report.figures
    assert figures["windows_per_s"] > 0 and figures["epoch_s"] > 0 and figures["peak_rss_mb"] > 0
    assert figures["run_s"] == pytest.approx(2 * figures["epoch_s"]) and figures["device"] == "cpu"


def test_preflight_fails_on_cache_without_seizure_windows(fake_cache: Callable[..., None], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    fake_cache(cache, "train", [("aaaaaaaa_s001_t000", MINUTE, []), ("aaaaaaab_s001_t000", MINUTE, [])])
    fake_cache(cache, "dev", [("aaaaaaac_s001_t000", MINUTE, [(10.0, 30.0)])])
    code, out = preflight(write_config(tmp_path / "cfg.yaml", cache, tmp_path / "run"))
    assert code == 1
    assert "error: train windows: no seizure window (partial 0, full 0)" in out
    assert "ictal scan-cache" in out
    assert "error: forward/backward: skipped" in out


def test_preflight_fails_on_leaky_cache_splits(fake_cache: Callable[..., None], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    fake_cache(cache, "train", [("aaaaaaaa_s001_t000", MINUTE, [(10.0, 30.0)]), ("aaaaaaab_s001_t000", MINUTE, [])])
    fake_cache(cache, "dev", [("aaaaaaaa_s002_t000", MINUTE, [(5.0, 25.0)])])  # patient aaaaaaaa again
    assert cached_split_overlaps(cache) == {"aaaaaaaa": ("train", "dev")}
    code, out = preflight(write_config(tmp_path / "cfg.yaml", cache, tmp_path / "run"))
    assert code == 1
    assert "error: splits: 1 patient(s) have cached recordings in more than one split: aaaaaaaa (train+dev)" in out


def test_preflight_fails_on_leaky_corpus(fake_cache: Callable[..., None], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    fake_cache(cache, "train", [("aaaaaaaa_s001_t000", MINUTE, [(10.0, 30.0)])])
    fake_cache(cache, "dev", [("aaaaaaab_s001_t000", MINUTE, [(5.0, 25.0)])])
    corpus = tmp_path / "corpus"
    for rel in ("train/aaaaaaaa/s001_2020/01_tcp_ar/aaaaaaaa_s001_t000.edf",
                "dev/aaaaaaab/s001_2020/01_tcp_ar/aaaaaaab_s001_t000.edf",
                "dev/aaaaaaaa/s002_2021/01_tcp_ar/aaaaaaaa_s002_t000.edf"):  # fmt: skip
        (corpus / rel).parent.mkdir(parents=True, exist_ok=True)
        (corpus / rel).write_bytes(b"")
    config = write_config(tmp_path / "cfg.yaml", cache, tmp_path / "run", data={"data_dir": str(corpus)})
    code, out = preflight(config)
    assert code == 1
    assert "error: splits:" in out and "aaaaaaaa (train+dev)" in out


def test_preflight_fails_on_mismatched_or_missing_cache(synthetic_cache: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "cfg.yaml", synthetic_cache, tmp_path / "run", preprocess={"notch_hz": 50})
    code, out = preflight(config)
    assert code == 1 and "error: cache:" in out and "notch_hz" in out
    missing = write_config(tmp_path / "cfg2.yaml", tmp_path / "nowhere", tmp_path / "run")
    code, out = preflight(missing)
    assert code == 1 and "not a cache" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without CUDA")
def test_preflight_fails_on_missing_device(synthetic_cache: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "cfg.yaml", synthetic_cache, tmp_path / "run")
    code, out = preflight(config, "--device", "cuda")
    assert code == 1 and "error: device:" in out and "no CUDA device" in out
