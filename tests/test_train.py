"""Training: losses, AdamW groups, schedule, the loop on the synthetic cache (learning, exact resume, non-finite
steps skipped/diagnosed, gradient sanitising, bf16 on CPU, time budget, early stopping through a custom
validator), checkpoints and load_model, and `ictal train` honouring --device."""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from ictal.cli.main import app
from ictal.config.env import SANITIZE_GRADS
from ictal.config.schema import IctalConfig, config_from_dict, with_overrides
from ictal.data.windows import WindowDataset
from ictal.models.mamba.mamba2 import mamba_backend
from ictal.models.v3 import build_v3
from ictal.train.checkpoint import CheckpointError, load_checkpoint, load_model
from ictal.train.config import TrainingConfig
from ictal.train.losses import bce_loss, focal_loss, make_loss
from ictal.train.optim import WarmupCosineSchedule, make_optimizer, parameter_groups
from ictal.train.precision import PrecisionError, resolve_precision
from ictal.train.trainer import (
    StepInfo,
    TrainCallback,
    Trainer,
    TrainingDivergedError,
    sanitize_grads_enabled,
)
from ictal.train.validation import EarlyStopping, ValidationContext, Validator


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # The machine is shared: one intra-op thread, restored afterwards for the other test modules.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_cfg(cache: Path, run_dir: Path, **training: Any) -> IctalConfig:
    """Tiny model, 10 s windows at a 5 s stride on the session's synthetic cache, CPU, fp32, 1 thread."""
    t: dict[str, Any] = {
        "batch_size": 4,
        "epochs": 1,
        "learning_rate": 3e-3,
        "device": "cpu",
        "mixed_precision": "no",
        "num_threads": 1,
        "max_steps_per_epoch": 2,
        "tensorboard": False,
        "run_dir": str(run_dir),
        "log_every_s": 3600,
        "validation": "frames",  # cheap frame metrics; event validation is tested on its own below
    }
    t.update(training)
    return config_from_dict(
        {
            "name": "test-train",
            "data": {"cache_dir": str(cache), "window_s": 10, "stride_s": 5},
            "model": {"preset": "tiny"},
            "training": t,
        }
    )


def weights_equal(a: nn.Module | dict[str, torch.Tensor], b: nn.Module | dict[str, torch.Tensor]) -> bool:
    sa = a.state_dict() if isinstance(a, nn.Module) else a
    sb = b.state_dict() if isinstance(b, nn.Module) else b
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ------------------------------------------------------------------------------------------------ pieces


def test_focal_loss_against_hand_values() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.0, 3.0]])
    labels = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    p = torch.sigmoid(logits)
    p_t = torch.where(labels > 0, p, 1 - p)  # probability given to the true class
    expected = (0.5 * (1 - p_t) ** 2 * -torch.log(p_t)).mean()  # alpha_t = 0.5 for both classes
    assert focal_loss(logits, labels, alpha=0.5, gamma=2.0).item() == pytest.approx(expected.item(), rel=1e-6)
    # gamma 0, alpha 0.5: half the BCE; alpha weighs positives vs negatives.
    assert focal_loss(logits, labels, gamma=0.0).item() == pytest.approx(0.5 * bce_loss(logits, labels).item())
    pos_heavy = focal_loss(logits, labels, alpha=0.9, gamma=0.0)
    neg_heavy = focal_loss(logits, labels, alpha=0.1, gamma=0.0)
    assert pos_heavy.item() != pytest.approx(neg_heavy.item())
    # A mask counts only the masked-in frames; bf16 logits are computed in float32.
    mask = torch.tensor([[True, True, False, False]])
    assert bce_loss(logits, labels, mask).item() == pytest.approx(bce_loss(logits[:, :2], labels[:, :2]).item())
    assert focal_loss(logits.bfloat16(), labels).dtype == torch.float32
    assert make_loss(TrainingConfig(loss="bce")) is bce_loss
    assert make_loss(TrainingConfig(focal_gamma=0.0))(logits, labels, None).item() == pytest.approx(
        0.5 * bce_loss(logits, labels).item()
    )


def test_parameter_groups_spare_norms_biases_and_ssm_parameters() -> None:
    model = build_v3("tiny")
    decay, no_decay = parameter_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    names = set(decay["names"]) | set(no_decay["names"])
    assert names == {n for n, _ in model.named_parameters()}
    assert not set(decay["names"]) & set(no_decay["names"])
    for name in no_decay["names"]:
        assert name.rsplit(".", 1)[-1] in {"bias", "A_log", "D", "dt_bias", "weight"}
    ssm = [n for n in names if n.rsplit(".", 1)[-1] in {"A_log", "D", "dt_bias"}]
    assert ssm and set(ssm) <= set(no_decay["names"])
    assert all(n in no_decay["names"] for n in names if n.endswith(".bias"))
    norms = {f"{m}.weight" for m, mod in model.named_modules() if "Norm" in type(mod).__name__ and m}
    assert norms and {n for n in norms if n in names} <= set(no_decay["names"])
    assert "tcn.layers.0.conv.weight" in decay["names"] and "head.out.weight" in decay["names"]
    opt = make_optimizer(model, TrainingConfig(weight_decay=0.1))
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]


def test_warmup_cosine_schedule() -> None:
    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = WarmupCosineSchedule(opt, warmup_steps=4, total_steps=20)
    lrs = []
    for _ in range(20):
        lrs.append(sched.get_last_lr()[0])
        sched.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[4] == pytest.approx(1.0) and lrs[-1] < 0.05
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:], strict=False))  # cosine decays monotonically
    again = WarmupCosineSchedule(
        torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=1.0), warmup_steps=4, total_steps=20
    )
    state = {"step_count": 7}
    again.load_state_dict(state)
    assert again.get_last_lr()[0] == pytest.approx(lrs[7])
    cfg_sched = WarmupCosineSchedule.from_config(opt, TrainingConfig(warmup_fraction=0.1), 50)
    assert (cfg_sched.warmup_steps, cfg_sched.total_steps) == (5, 50)


def test_precision_resolution_on_cpu() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu).name == "fp32"
    assert resolve_precision("no", cpu).name == "fp32"
    bf16 = resolve_precision("bf16", cpu)
    assert bf16.name == "bf16" and bf16.make_scaler() is None
    with bf16.autocast():
        assert nn.Linear(4, 4)(torch.randn(2, 4)).dtype == torch.bfloat16
    with pytest.raises(PrecisionError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", cpu)


def test_sanitize_switch_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SANITIZE_GRADS.name, raising=False)
    assert sanitize_grads_enabled(False) is False and sanitize_grads_enabled(True) is True
    monkeypatch.setenv(SANITIZE_GRADS.name, "1")
    assert sanitize_grads_enabled(False) is True
    monkeypatch.setenv(SANITIZE_GRADS.name, "0")
    assert sanitize_grads_enabled(True) is False


def test_early_stopping_state() -> None:
    stop = EarlyStopping(patience=2, min_delta=0.01)
    assert stop.update(0.5, 0) and not stop.update(0.505, 1) and not stop.should_stop
    assert not stop.update(float("nan"), 2) and stop.should_stop
    again = EarlyStopping(patience=2)
    again.load_state_dict(stop.state_dict())
    assert (again.best, again.best_epoch, again.should_stop) == (0.5, 0, True)


# ------------------------------------------------------------------------------------------------ the loop


class KillAt(TrainCallback):
    """Raises after step ``step`` (a crash mid-epoch, after the checkpoint due at that step, if any)."""

    class Killed(Exception):
        pass

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer: Trainer, info: StepInfo) -> None:
        if info.step == self.step:
            raise KillAt.Killed


def fixed_batch_loss(model: nn.Module, cache: Path) -> float:
    """Mean focal loss of the model (eval mode) on the first 24 train windows with seizure."""
    ds = WindowDataset(cache, "train", window_s=10, stride_s=5)
    idx = [i for i in range(len(ds)) if ds.categories[i] > 0][:12] + [
        i for i in range(len(ds)) if ds.categories[i] == 0
    ][:12]
    x = torch.stack([ds[i]["x"] for i in idx])
    y = torch.stack([ds[i]["y_frames"] for i in idx])
    model.eval()
    with torch.no_grad():
        return float(focal_loss(model(x), y))


def test_loss_decreases_on_synthetic_set(synthetic_cache: Path, tmp_path: Path) -> None:
    cfg = make_cfg(synthetic_cache, tmp_path / "run", epochs=3, max_steps_per_epoch=5, batch_size=4, tensorboard=True)
    trainer = Trainer(cfg)
    torch.manual_seed(cfg.training.seed)
    before = fixed_batch_loss(build_v3(cfg.model), synthetic_cache)  # the same initial weights as the trainer's
    result = trainer.fit()
    after = fixed_batch_loss(trainer.model, synthetic_cache)
    assert result.stopped == "completed" and result.steps == 15 and result.epochs_completed == 3
    assert after < 0.8 * before, (before, after)
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert all(math.isfinite(row["dev_loss"]) and 0 <= row["dev_auroc"] <= 1 for row in result.history)
    run = tmp_path / "run"
    assert {"config.yaml", "run.json", "history.json", "last.pt", "best.pt"} <= {p.name for p in run.iterdir()}
    assert list((run / "tensorboard").iterdir())
    assert json.loads((run / "history.json").read_text())[-1]["step"] == 15
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_resume_after_kill_mid_epoch_is_exact(synthetic_cache: Path, tmp_path: Path) -> None:
    common = {"batch_size": 2, "epochs": 2, "max_steps_per_epoch": 4, "checkpoint_every": 2, "deterministic": True}
    straight = Trainer(make_cfg(synthetic_cache, tmp_path / "a", **common))
    straight.fit()
    crashed = Trainer(make_cfg(synthetic_cache, tmp_path / "b", **common), callbacks=[KillAt(7)])
    with pytest.raises(KillAt.Killed):
        crashed.fit()  # killed in epoch 2 at step 7; last.pt is from step 6
    state = load_checkpoint(tmp_path / "b" / "last.pt")
    assert (state["epoch"], state["step"], state["epoch_step"], state["samples_in_epoch"]) == (1, 6, 2, 4)
    assert state["sampler"]["epoch"] == 1 and state["sampler"]["consumed"] == 4
    assert {"optimizer", "schedule", "early_stopping", "rng", "counters"} <= set(state)
    assert not weights_equal(crashed.model, straight.model)
    resumed = Trainer(make_cfg(synthetic_cache, tmp_path / "b", **common), resume=True)
    result = resumed.fit()
    assert result.steps == 8 and result.epochs_completed == 2
    assert weights_equal(resumed.model, straight.model)  # bit-identical
    assert resumed.optimizer.state_dict()["state"][0]["step"] == straight.optimizer.state_dict()["state"][0]["step"]
    assert [r["monitor"] for r in resumed.history] == [r["monitor"] for r in straight.history]
    # The interrupted epoch's loss averages all its batches, those before the kill included (it used to average
    # only those after the resume).
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in straight.history]
    assert json.loads((tmp_path / "b" / "run.json").read_text())["resumed_from_step"] == 6


def test_resume_needs_last_checkpoint_and_a_new_run_refuses_to_overwrite(synthetic_cache: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no last.pt"):
        Trainer(make_cfg(synthetic_cache, tmp_path / "empty"), resume=True).fit()
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"a week of training")
    with pytest.raises(CheckpointError, match="already holds last.pt from an earlier run; continue it with --resume"):
        Trainer(make_cfg(synthetic_cache, run)).fit()
    assert (run / "last.pt").read_bytes() == b"a week of training"


class PoisonBatch(TrainCallback):
    """Puts a NaN into the input of the batches at ``steps`` (0-based) and records the weights around them."""

    def __init__(self, steps: set[int] | None) -> None:
        self.steps = steps
        self.before: dict[str, torch.Tensor] = {}
        self.unchanged: list[bool] = []

    def on_batch_start(self, trainer: Trainer, batch: dict[str, Any]) -> None:
        if self.steps is None or trainer.step in self.steps:
            batch["x"][0, 3, 100] = float("nan")
            self.before = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    def on_step_end(self, trainer: Trainer, info: StepInfo) -> None:
        if info.skipped:
            self.unchanged.append(weights_equal(self.before, trainer.model.state_dict()))


def test_nan_batch_is_skipped_and_counted(
    synthetic_cache: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    poison = PoisonBatch({1})
    cfg = make_cfg(synthetic_cache, tmp_path / "run", max_steps_per_epoch=3)
    with caplog.at_level(logging.WARNING, logger="ictal.train"):
        trainer = Trainer(cfg, callbacks=[poison])
        result = trainer.fit()
    assert result.nonfinite_steps == 1 and result.steps == 3 and result.stopped == "completed"
    assert poison.unchanged == [True]  # no optimizer step on the NaN batch
    assert trainer.counters.nonfinite_consecutive == 0  # reset by the good step after it
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert "non-finite loss, step skipped (1 in a row" in caplog.text
    assert load_checkpoint(tmp_path / "run" / "last.pt")["counters"]["nonfinite_total"] == 1


def test_nan_inputs_in_a_row_stop_with_diagnosis(synthetic_cache: Path, tmp_path: Path) -> None:
    cfg = make_cfg(synthetic_cache, tmp_path / "run", max_steps_per_epoch=5, max_nonfinite_steps=2)
    with pytest.raises(TrainingDivergedError, match=r"2 non-finite steps in a row.*input windows are not finite") as e:
        Trainer(cfg, callbacks=[PoisonBatch(None)]).fit()
    assert e.value.module == "(input)"
    assert "ictal scan-cache" in str(e.value) and "learning_rate" in str(e.value)


class PoisonWeight(TrainCallback):
    """Sets one weight of the first TCN convolution to NaN: its output is the first non-finite one."""

    def on_batch_start(self, trainer: Trainer, batch: dict[str, Any]) -> None:
        conv = trainer.model.get_submodule("tcn.layers.0.conv")
        assert isinstance(conv, nn.Conv1d)
        with torch.no_grad():
            conv.weight[0, 0, 0] = float("nan")


def test_diagnosis_names_first_nonfinite_module(synthetic_cache: Path, tmp_path: Path) -> None:
    cfg = make_cfg(synthetic_cache, tmp_path / "run", max_steps_per_epoch=5, max_nonfinite_steps=2)
    with pytest.raises(TrainingDivergedError, match="first non-finite module 'tcn.layers.0.conv'") as e:
        Trainer(cfg, callbacks=[PoisonWeight()]).fit()
    assert e.value.module == "tcn.layers.0.conv"


class NanGradient(TrainCallback):
    """Makes the gradient of the head's output weight NaN at every backward pass."""

    def __init__(self) -> None:
        self.hooked = False

    def on_batch_start(self, trainer: Trainer, batch: dict[str, Any]) -> None:
        if not self.hooked:
            trainer.model.head.out.weight.register_hook(lambda g: torch.full_like(g, float("nan")))
            self.hooked = True


def test_nan_gradients_skipped_or_sanitised(
    synthetic_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SANITIZE_GRADS.name, raising=False)
    plain = Trainer(make_cfg(synthetic_cache, tmp_path / "a", max_nonfinite_steps=5), callbacks=[NanGradient()])
    assert plain.fit().nonfinite_steps == 2  # both steps skipped: gradient not finite
    assert "gradient of head.out.weight" in plain._nonfinite_where
    monkeypatch.setenv(SANITIZE_GRADS.name, "1")  # the environment switches sanitising on over the config
    cleaned = Trainer(make_cfg(synthetic_cache, tmp_path / "b"), callbacks=[NanGradient()])
    result = cleaned.fit()
    assert result.nonfinite_steps == 0 and all(torch.isfinite(p).all() for p in cleaned.model.parameters())
    assert cleaned.counters.sanitized_steps == 2 and result.history[-1]["sanitized_steps"] == 2
    assert not weights_equal(cleaned.model, build_v3(cleaned.cfg.model))


def test_bf16_autocast_on_cpu(synthetic_cache: Path, tmp_path: Path) -> None:
    dtypes: list[torch.dtype] = []

    class Watch(TrainCallback):
        def on_batch_start(self, trainer: Trainer, batch: dict[str, Any]) -> None:
            if not dtypes:
                trainer.model.head.fuse.register_forward_hook(lambda m, a, out: dtypes.append(out.dtype))

    trainer = Trainer(make_cfg(synthetic_cache, tmp_path / "run", mixed_precision="bf16"), callbacks=[Watch()])
    result = trainer.fit()
    assert result.precision == "bf16" and result.nonfinite_steps == 0
    assert dtypes and dtypes[0] == torch.bfloat16  # the forward pass ran under bf16 autocast
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # weights stay float32
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert (info["precision"], info["precision_requested"]) == ("bf16", "bf16")
    assert math.isfinite(result.history[-1]["dev_loss"])


def test_time_budget_stops_then_resume_finishes(synthetic_cache: Path, tmp_path: Path) -> None:
    cfg = make_cfg(synthetic_cache, tmp_path / "run", epochs=2, max_minutes=1e-4)
    first = Trainer(cfg).fit()
    assert first.stopped == "time_budget" and first.steps == 1
    assert first.history[-1]["epoch_complete"] is False and first.best_checkpoint is not None
    second = Trainer(with_overrides(cfg, {"training.max_minutes": 60}), resume=True).fit()
    assert second.stopped == "completed" and second.steps == 4 and second.epochs_completed == 2


def test_max_steps_caps_the_run_and_its_schedule(synthetic_cache: Path, tmp_path: Path) -> None:
    cfg = make_cfg(synthetic_cache, tmp_path / "run", epochs=3, max_steps=3, warmup_fraction=0.0)
    trainer = Trainer(cfg)
    result = trainer.fit()
    # 3 epochs of 2 steps planned; the cap ends the run mid-epoch 2, validated, and the cosine reached 0 there.
    assert result.stopped == "max_steps" and result.steps == 3
    assert trainer.schedule.total_steps == 3 and trainer.schedule.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)
    assert result.history[-1]["epoch_complete"] is False and result.best_checkpoint is not None
    again = Trainer(cfg, resume=True).fit()  # nothing left to do
    assert again.stopped == "max_steps" and again.steps == 3


class ScriptedValidator:
    """A plug-in validator (the hook the stitched scoring uses): returns scripted monitor values."""

    monitor_name = "dev_sens_at_10fa"

    def __init__(self, values: list[float]) -> None:
        self.values = values
        self.contexts: list[ValidationContext] = []

    def __call__(self, model: nn.Module, ctx: ValidationContext) -> dict[str, float]:
        assert not model.training
        self.contexts.append(ctx)
        value = self.values[len(self.contexts) - 1]
        return {"dev_sens_at_10fa": value, "monitor": value}


def test_custom_validator_drives_early_stopping_and_best(synthetic_cache: Path, tmp_path: Path) -> None:
    validator = ScriptedValidator([0.2, 0.5, 0.4, 0.3, 0.9])
    assert isinstance(validator, Validator)
    cfg = make_cfg(
        synthetic_cache,
        tmp_path / "run",
        epochs=5,
        max_steps_per_epoch=1,
        early_stopping_patience=2,
        save_every_epochs=2,
    )
    result = Trainer(cfg, validator=validator).fit()
    assert result.stopped == "early_stopping" and result.epochs_completed == 4  # 0.5 at epoch 2, then 2 worse
    assert result.best_monitor == 0.5 and result.monitor_name == "dev_sens_at_10fa"
    assert [c.epoch for c in validator.contexts] == [0, 1, 2, 3]
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["epoch"] == 2 and best["metrics"]["dev_sens_at_10fa"] == 0.5 and best["kind"] == "best"
    assert sorted(p.name for p in (tmp_path / "run").glob("epoch_*.pt")) == ["epoch_002.pt", "epoch_004.pt"]


# ------------------------------------------------------------------------------------------------ checkpoints


def test_load_model_gives_the_trained_detector(synthetic_cache: Path, tmp_path: Path) -> None:
    trainer = Trainer(make_cfg(synthetic_cache, tmp_path / "run", max_steps_per_epoch=1))
    trainer.fit()
    model, cfg, meta = load_model(tmp_path / "run" / "last.pt")
    assert not model.training and next(model.parameters()).device.type == "cpu"
    assert weights_equal(model, trainer.model)
    assert cfg == trainer.cfg and cfg.training.run_dir == tmp_path / "run"
    assert meta["kind"] == "last" and meta["step"] == 1 and meta["mamba_backend"] == mamba_backend(trainer.model)
    assert {"metrics", "ictal_version", "precision", "path"} <= set(meta) and "optimizer" not in meta
    x = torch.randn(2, 19, 2560)
    trainer.model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), trainer.model(x))


def test_bad_checkpoint_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable ictal checkpoint"):
        load_model(tmp_path / "junk.pt")
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="missing"):
        load_model(tmp_path / "other.pt")


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_device_option_reaches_the_run(synthetic_cache: Path, tmp_path: Path) -> None:
    cfg = make_cfg(synthetic_cache, tmp_path / "unused", device="cuda", max_steps_per_epoch=1)
    config = tmp_path / "cfg.yaml"
    raw = cfg.model_dump(mode="json")
    import yaml

    config.write_text(yaml.safe_dump(raw))
    run = tmp_path / "cli-run"
    runner = CliRunner()
    result = runner.invoke(app, ["train", str(config), "--device", "cpu", "--run-dir", str(run), "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "run.json").read_text())["device"] == "cpu"
    stored = load_checkpoint(run / "last.pt")["config"]["training"]
    assert (stored["device"], stored["run_dir"], stored["epochs"]) == ("cpu", str(run), 1)
    assert not (tmp_path / "unused").exists()
    if not torch.cuda.is_available():  # without the option, the config's cuda is used, and refused here
        refused = runner.invoke(app, ["train", str(config), "--run-dir", str(tmp_path / "r2")])
        assert refused.exit_code == 1 and "no CUDA device" in refused.output
    bad = runner.invoke(app, ["train", str(config), "--device", "tpu"])
    assert bad.exit_code == 1 and "training.device: got 'tpu'" in bad.output
    shutil.rmtree(run)


@pytest.mark.slow
def test_sigkilled_cli_run_resumes_to_the_same_weights(synthetic_cache: Path, tmp_path: Path) -> None:
    """`ictal train` killed with SIGKILL mid-run (possibly mid-write), then `--resume`: same weights as straight."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import yaml

    common = {"batch_size": 2, "epochs": 2, "max_steps_per_epoch": 8, "checkpoint_every": 1, "deterministic": True}
    straight = Trainer(make_cfg(synthetic_cache, tmp_path / "a", **common))
    straight.fit()
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(make_cfg(synthetic_cache, tmp_path / "b", **common).model_dump(mode="json")))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    last = tmp_path / "b" / "last.pt"
    deadline = time.monotonic() + 240
    with (tmp_path / "stderr.txt").open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ictal", "train", str(config), "--no-progress"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            while time.monotonic() < deadline and proc.poll() is None:
                if last.is_file() and load_checkpoint(last)["step"] >= 2:
                    proc.send_signal(signal.SIGKILL)
                    break
                time.sleep(0.05)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    log = (tmp_path / "stderr.txt").read_text()[-3000:]
    assert proc.returncode == -signal.SIGKILL, f"the run ended ({proc.returncode}) before it could be killed:\n{log}"
    killed_at = load_checkpoint(last)["step"]
    assert 2 <= killed_at < 16, log
    resumed = Trainer(make_cfg(synthetic_cache, tmp_path / "b", **common), resume=True)
    assert resumed.fit().steps == 16
    assert weights_equal(resumed.model, straight.model), f"killed at step {killed_at}"


def test_default_validation_is_by_events(synthetic_cache: Path, tmp_path: Path) -> None:
    """``training.validation: events`` (the default) validates like ``ictal evaluate`` and monitors OVLP."""
    cfg = make_cfg(synthetic_cache, tmp_path / "run", validation="events")
    result = Trainer(cfg).fit()
    row = result.history[-1]
    assert result.monitor_name == "dev_ovlp_sens_at_10fa"
    assert 0 <= row["dev_ovlp_sens_at_10fa"] <= 1 and "dev_threshold_at_10fa" in row
