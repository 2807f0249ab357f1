"""Two-process DDP training on CPU (gloo), started by torchrun as a user would: identical weights on both ranks,
disjoint shards of each epoch, a NaN on one rank skipped by both, only rank 0 writing the run folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

WORKER = textwrap.dedent(
    """
    import json, logging, sys
    import torch
    from ictal.config.schema import config_from_dict
    from ictal.train.trainer import TrainCallback, Trainer

    cache, run_dir, out = sys.argv[1:4]
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    class Record(TrainCallback):
        def __init__(self):
            self.windows = []

        def on_batch_start(self, trainer, batch):
            self.windows.append(batch["index"].tolist())
            if trainer.dist.rank == 1 and trainer.step == 1:  # a NaN on rank 1 only, at the second step
                batch["x"][0, 0, 0] = float("nan")

    cfg = config_from_dict({
        "name": "ddp-test",
        "data": {"cache_dir": cache, "window_s": 10, "stride_s": 5},
        "model": {"preset": "tiny"},
        "training": {"batch_size": 2, "epochs": 1, "learning_rate": 3e-3, "device": "cpu", "mixed_precision": "no",
                     "num_threads": 1, "max_steps_per_epoch": 3, "tensorboard": False, "run_dir": run_dir,
                     "validation": "frames"},  # frame validation is the one sharded over ranks
    })
    record = Record()
    trainer = Trainer(cfg, callbacks=[record])
    result = trainer.fit()
    rank = trainer.dist.rank
    torch.save(trainer.model.state_dict(), f"{out}/weights{rank}.pt")
    with open(f"{out}/rank{rank}.json", "w") as fh:
        json.dump({"windows": record.windows, "world_size": result.world_size, "steps": result.steps,
                   "nonfinite": result.nonfinite_steps, "epoch_windows": trainer.sampler.epoch_indices(0).tolist(),
                   "history": result.history}, fh)
    """
)


@pytest.mark.slow
def test_two_process_gloo_training_keeps_ranks_identical(synthetic_cache: Path, tmp_path: Path) -> None:
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    out = tmp_path / "out"
    out.mkdir()
    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(worker)]
    proc = subprocess.run(
        [*cmd, str(synthetic_cache), str(run_dir), str(out)], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    weights = [torch.load(out / f"weights{r}.pt", weights_only=True) for r in (0, 1)]
    assert all(r["world_size"] == 2 and r["steps"] == 3 for r in ranks)
    # The NaN on rank 1 made both ranks skip that step (they must agree, or DDP would hang or drift).
    assert [r["nonfinite"] for r in ranks] == [1, 1]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert all(torch.isfinite(v).all() for v in weights[0].values())
    # Each rank trained on its own shard: rank r took items r, r + 2, ... of the shared epoch order.
    epoch = ranks[0]["epoch_windows"]
    assert epoch == ranks[1]["epoch_windows"]
    for r, rank in enumerate(ranks):
        seen = [w for batch in rank["windows"] for w in batch]
        assert seen == epoch[r::2][: len(seen)]
    assert not set(ranks[0]["windows"][0]) & set(ranks[1]["windows"][0])
    # Validation was sharded and summed: both ranks report the whole dev split.
    assert ranks[0]["history"][-1]["dev_frames"] == ranks[1]["history"][-1]["dev_frames"] > 0
    # Only rank 0 wrote the run folder, and its checkpoint holds both ranks' RNG states.
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "best.pt",
        "config.yaml",
        "history.json",
        "last.pt",
        "run.json",
    ]
    last = torch.load(run_dir / "last.pt", weights_only=True)
    assert len(last["rng"]) == 2 and last["world_size"] == 2
    assert all(torch.equal(last["model"][k], weights[0][k]) for k in weights[0])
    assert json.loads((run_dir / "run.json").read_text())["backend"] == "gloo"
    logs = proc.stderr + proc.stdout
    assert "DDP: weights identical on all 2 ranks" in logs and "device: cpu x 2 process(es) (gloo)" in logs
    assert "non-finite loss on another rank, step skipped" in logs
