"""Data section of the config: where the corpus and cache live, labels, windows and sampling."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator, with_config


@with_config(ConfigDict(extra="forbid"))
@dataclass
class DataConfig:
    """YAML section ``data``. Key names keep the meaning they had in the reference system's notes."""

    #: TUSZ root (``train/ dev/ eval/`` below it) or a flat folder of EDFs.
    data_dir: Path | None = None
    #: Where ``build-cache`` writes one preprocessed array per recording (never inside ``data_dir``).
    cache_dir: Path | None = None
    #: ``official_tusz``: train/dev/eval folders, refused when a patient is in two splits.
    split_policy: Literal["official_tusz"] = "official_tusz"
    #: Labels from ``.csv_bi`` (term level, the scoring ground truth) or the union of ``.csv`` seizure rows.
    label_source: Literal["csv_bi", "csv"] = "csv_bi"
    #: Window length and stride in seconds (60 s = 15,360 samples at 256 Hz).
    window_s: Annotated[float, Field(gt=0)] = 60.0
    stride_s: Annotated[float, Field(gt=0)] = 10.0
    #: Balanced sampling: every partial window, ``full_ratio`` x as many full and ``background_ratio`` x as
    #: many background windows, background redrawn every epoch.
    use_balanced_sampling: bool = True
    full_ratio: Annotated[float, Field(ge=0)] = 0.3
    background_ratio: Annotated[float, Field(ge=0)] = 2.5
    num_workers: Annotated[int, Field(ge=0)] = 0
    #: Stored sample type of the cache: float16 halves its size (z-units clipped to +-10 keep ~3 significant
    #: digits); windows are always returned as float32.
    cache_dtype: Literal["float32", "float16"] = "float32"
    #: Seed of the window sampler (background redrawn every epoch from (seed, epoch)).
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if self.stride_s > self.window_s:
            raise ValueError(
                f"stride_s={self.stride_s} is longer than window_s={self.window_s}: windows would skip data"
            )
        for key in ("window_s", "stride_s"):
            frames = getattr(self, key) * 16
            if abs(frames - round(frames)) > 1e-9:
                raise ValueError(
                    f"{key}={getattr(self, key)} is not a whole number of 16 Hz frames (a multiple of 1/16 s); "
                    "labels and model outputs are per frame"
                )
        if self.data_dir is not None and self.cache_dir is not None:
            d, c = Path(self.data_dir).resolve(), Path(self.cache_dir).resolve()
            if c == d or d in c.parents:
                raise ValueError(f"cache_dir {self.cache_dir} is inside data_dir {self.data_dir}: keep the cache apart")
        return self
