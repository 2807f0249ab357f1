"""Training section of the config (used by ``ictal train`` / ``ictal preflight``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, with_config


@with_config(ConfigDict(extra="forbid"))
@dataclass
class TrainingConfig:
    """YAML section ``training``."""

    #: Windows per optimizer step on each rank (the global batch is ``batch_size x world_size``).
    batch_size: Annotated[int, Field(ge=1)] = 8
    #: Peak learning rate, reached after the warm-up.
    learning_rate: Annotated[float, Field(gt=0, lt=1)] = 3e-4
    #: AdamW decoupled weight decay; never applied to norms, biases and the SSM's A_log, D, dt_bias.
    weight_decay: Annotated[float, Field(ge=0)] = 0.05
    epochs: Annotated[int, Field(ge=1)] = 10
    #: Share of all planned steps spent warming the learning rate up linearly; a cosine decay to 0 follows.
    warmup_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.05
    #: Clip the global gradient norm to this value (null: no clipping, the norm is still logged).
    grad_clip: Annotated[float | None, Field(gt=0)] = 1.0
    #: ``auto``: bf16 where supported, else fp16 with loss scaling on CUDA, else full precision.
    mixed_precision: Literal["auto", "bf16", "fp16", "no"] = "auto"
    loss: Literal["focal", "bce"] = "focal"
    focal_alpha: Annotated[float, Field(ge=0, le=1)] = 0.5
    focal_gamma: Annotated[float, Field(ge=0)] = 2.0
    #: Consecutive non-finite losses (each skipped) before the run stops with a diagnosis.
    max_nonfinite_steps: Annotated[int, Field(ge=1)] = 20
    #: Replace NaN/Inf gradient entries by 0 before clipping (``ICTAL_SANITIZE_GRADS=1``/``0`` overrides).
    sanitize_grads: bool = False
    #: Validation rounds without improvement of the monitored dev metric before training stops.
    early_stopping_patience: Annotated[int, Field(ge=1)] = 5
    #: Smallest rise of the monitored metric that counts as an improvement.
    early_stopping_min_delta: Annotated[float, Field(ge=0)] = 0.0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: Seeds the model's initialisation, dropout and everything else random in the run (the sampler has
    #: ``data.seed``).
    seed: int = 0
    #: Folder for checkpoints, TensorBoard logs and the run's config (default ``runs/<name>``).
    run_dir: Path | None = None
    #: Cap on optimizer steps per epoch (null: the sampler's whole epoch). For smoke runs and quick tests.
    max_steps_per_epoch: Annotated[int | None, Field(ge=1)] = None
    #: Cap on the run's optimizer steps in all (null: ``epochs`` x steps per epoch). The learning-rate schedule
    #: (warm-up, cosine) spans the smaller of the two, so a short run still decays its rate to 0; reaching the cap
    #: validates, writes the checkpoints and stops (``stopped: max_steps``).
    max_steps: Annotated[int | None, Field(ge=1)] = None
    #: Wall-clock budget of one ``train`` invocation in minutes (null: none). When it runs out, the run
    #: validates, writes its checkpoints and stops; ``--resume`` continues it.
    max_minutes: Annotated[float | None, Field(gt=0)] = None
    #: Validate on dev every this many epochs (and always after the last one).
    val_every: Annotated[int, Field(ge=1)] = 1
    #: What validation measures: ``events`` scores dev as ``ictal evaluate`` does (stitched traces, post-processing,
    #: NEDC OVLP sensitivity at 10 FA/24h, the reference system's early-stopping metric); ``frames`` is frame-level loss
    #: and AUROC (cheaper; also used when the dev labels hold no seizure).
    validation: Literal["events", "frames"] = "events"
    #: Write ``last.pt`` every this many steps within an epoch as well (0: at epoch ends only).
    checkpoint_every: Annotated[int, Field(ge=0)] = 0
    #: Keep ``epoch_NNN.pt`` every this many epochs (0: none; ``best.pt`` and ``last.pt`` are always written).
    save_every_epochs: Annotated[int, Field(ge=0)] = 0
    #: Deterministic algorithms (and ``CUBLAS_WORKSPACE_CONFIG`` on CUDA): a resumed run ends bit-identical to
    #: an uninterrupted one on CPU. Slower on GPU.
    deterministic: bool = False
    #: Intra-op CPU threads per process (null: PyTorch's default).
    num_threads: Annotated[int | None, Field(ge=1)] = None
    #: Seconds between heartbeat lines in non-interactive runs (an interactive terminal gets a progress bar).
    log_every_s: Annotated[float, Field(gt=0)] = 60.0
    #: Write TensorBoard event files under ``run_dir/tensorboard``.
    tensorboard: bool = True
