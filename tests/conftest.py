"""Shared fixtures: a tiny synthetic TUSZ-layout corpus, generated once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

#: The tiny corpus: 4 patients (train 2, dev 1, eval 1), 0.3 h in 1-3 min recordings (9 files, all three
#: montages, several rates, seizures in every split). Generating it takes a few seconds.
SYNTHETIC_PATIENTS = 4
SYNTHETIC_HOURS = 0.3
SYNTHETIC_SEED = 0
SYNTHETIC_MINUTES = (1.0, 3.0)


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of a tiny synthetic corpus (``train/ dev/ eval/`` below it). Read-only: copy it before changing it."""
    from ictal.synthetic.corpus import SyntheticConfig, generate_corpus

    root = tmp_path_factory.mktemp("synthetic") / "corpus"
    generate_corpus(
        root,
        patients=SYNTHETIC_PATIENTS,
        hours=SYNTHETIC_HOURS,
        seed=SYNTHETIC_SEED,
        config=SyntheticConfig(recording_minutes=SYNTHETIC_MINUTES),
    )
    return root


@pytest.fixture(scope="session")
def synthetic_cache(synthetic_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache of the tiny corpus' train and dev splits (default preprocessing, float32, manifest for 10 s
    windows at a 5 s stride). Read-only."""
    from ictal.data.cache_build import build_cache
    from ictal.data.config import DataConfig

    root = tmp_path_factory.mktemp("cache") / "cache"
    for split in ("train", "dev"):
        build_cache(synthetic_corpus, root, split, data=DataConfig(window_s=10, stride_s=5), progress=False)
    return root


def write_fake_cache(
    root: Path,
    split: str,
    recordings: list[tuple[str, int, list[tuple[float, float]]]],
    *,
    dtype: str = "float32",
    window_s: float = 10.0,
    stride_s: float = 5.0,
    seed: int = 0,
) -> None:
    """A cache written directly (no EDF): ``(bname, n_samples at 256 Hz, seizure intervals in s)`` per recording,
    noise as signal. For hand-made label patterns."""
    import numpy as np

    from ictal.data.cache import CacheParams, init_cache, write_npy_atomic
    from ictal.data.config import DataConfig
    from ictal.io.json_files import write_json_atomic
    from ictal.signal.preprocess import PreprocessConfig

    params = CacheParams.from_configs(
        PreprocessConfig(), DataConfig(window_s=window_s, stride_s=stride_s, cache_dtype=dtype)
    )
    init_cache(root, params, root / "no-corpus")
    rng = np.random.default_rng(seed)
    for bname, n_samples, intervals in recordings:
        signal = rng.standard_normal((19, n_samples)).astype(dtype)
        npy_bytes = write_npy_atomic(root / split / f"{bname}.npy", signal)
        meta = {
            "bname": bname,
            "n_samples": n_samples,
            "sfreq": 256.0,
            "seizure_intervals": [list(iv) for iv in intervals],
            "npy_bytes": npy_bytes,
        }
        write_json_atomic(root / split / f"{bname}.json", meta)


@pytest.fixture
def fake_cache():  # type: ignore[no-untyped-def]
    """:func:`write_fake_cache`, for tests that make their own label patterns."""
    return write_fake_cache
