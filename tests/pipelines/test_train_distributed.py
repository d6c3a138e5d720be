"""Two-process data-parallel training (gloo on CPU) launched by the real ``torchrun``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from evrobust.checkpoint import load_checkpoint
from evrobust.datasets import resolve_data
from evrobust.pipelines.train.run_dir import read_config, read_metrics

WORKER = textwrap.dedent(
    """
    import os, sys
    from evrobust.checkpoint import save_checkpoint
    from evrobust.pipelines.train.pipeline import Trainer
    from evrobust.pipelines.train.config import TrainConfig

    data_dir, out, defense = sys.argv[1:4]
    trainer = Trainer(TrainConfig(
        data="digits", data_dir=data_dir, model="vgg_small", width=0.5, T=2, epochs=2, batch_size=64,
        limit_train=192, limit_val=64, out=out, progress=False, defense=defense, at_steps=1, lam=0.05,
        augment=True, device="cpu",
    ))
    trainer.fit()
    rank = int(os.environ["RANK"])
    state = {k: v for k, v in trainer.model.state_dict().items()}
    path = os.path.join(out, "..", f"rank{rank}.safetensors")
    save_checkpoint(path, state, {"world": trainer.ctx.world_size})
    """
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.getbasetemp() / "evrobust-data"
    resolve_data("digits", str(path))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("defense", ["sr_star", "rat"])
def test_two_gloo_ranks_end_with_identical_weights(data_dir: Path, tmp_path: Path, defense: str) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(script),
            str(data_dir),
            str(out),
            defense,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    (rank0, meta0), (rank1, meta1) = (load_checkpoint(tmp_path / f"rank{r}.safetensors") for r in (0, 1))
    assert meta0 == meta1 == {"world": 2}
    assert set(rank0) == set(rank1)
    for key in rank0:  # parameters and BatchNorm statistics
        assert torch.equal(rank0[key], rank1[key]), key
    # Rank 0 wrote the run directory; it records the world size and the per-rank batch (64 / 2).
    config = read_config(out)
    assert config["runtime"]["world_size"] == 2 and config["runtime"]["per_rank_batch"] == 32
    metrics = read_metrics(out)
    assert [m["epoch"] for m in metrics] == [1, 2] and metrics[-1]["step"] == 2 * 3  # 192 / 64 steps
    last, _ = load_checkpoint(out / "checkpoint-last.safetensors")
    for key, value in rank0.items():  # the saved checkpoint holds exactly the trained weights
        assert torch.equal(last["model." + key], value), key
