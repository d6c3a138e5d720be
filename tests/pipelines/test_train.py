"""Training pipeline end to end on the embedded digits: learning, run directory, resume, guards, load_run."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest
import torch

from evrobust.checkpoint import load_checkpoint
from evrobust.datasets import load_split, resolve_data
from evrobust.defenses import DefenseObjective
from evrobust.errors import UserInputError
from evrobust.pipelines.train.config import TrainConfig
from evrobust.pipelines.train.pipeline import NonFiniteLossError, train
from evrobust.pipelines.train.run_dir import load_run, read_config, read_metrics

EPOCH_KEYS = {
    "epoch",
    "step",
    "lr",
    "loss",
    "ce",
    "reg",
    "train_acc",
    "val_acc",
    "best_val_acc",
    "seconds",
    "val_grad_l1",
    "val_grad_l2",
    "val_grad_zero_frac",
}


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide data directory holding the embedded digits store (built once, on first use)."""
    path = tmp_path_factory.getbasetemp() / "evrobust-data"
    resolve_data("digits", str(path))
    return path


def small(data_dir: Path, out: Path, **kwargs) -> TrainConfig:
    """A seconds-long configuration: vgg_small at half width, T=2, 256 training samples."""
    base = dict(
        data="digits",
        data_dir=str(data_dir),
        model="vgg_small",
        width=0.5,
        T=2,
        epochs=2,
        batch_size=64,
        limit_train=256,
        limit_val=64,
        out=str(out),
        progress=False,
    )
    base.update(kwargs)
    return TrainConfig(**base)


@pytest.mark.slow
def test_vgg_small_learns_digits_and_best_checkpoint_reproduces_val_accuracy(
    data_dir: Path, tmp_path: Path
) -> None:
    config = TrainConfig(
        data="digits",
        data_dir=str(data_dir),
        model="vgg_small",
        T=4,
        epochs=6,
        out=str(tmp_path / "run"),
        progress=False,
    )
    run_dir = train(config)
    metrics = read_metrics(run_dir)
    assert [m["epoch"] for m in metrics] == list(range(1, 7))
    assert all(EPOCH_KEYS <= set(m) for m in metrics)
    best = max(m["val_acc"] for m in metrics)
    assert best >= 90.0, metrics
    assert metrics[0]["lr"] == pytest.approx(0.1) and metrics[-1]["lr"] < metrics[0]["lr"]  # cosine decay
    # The best checkpoint, rebuilt from config.json alone, scores exactly the logged best accuracy.
    model, cfg = load_run(run_dir, "best")
    assert not model.training and cfg["data"]["dataset"] == "digits"
    x, y = load_split(cfg["data"]["store"], "val")
    with torch.no_grad():
        acc = 100.0 * int((model(x).argmax(1) == y).sum()) / y.numel()
    assert acc == pytest.approx(best, abs=1e-9)
    _, meta = load_checkpoint(run_dir / "checkpoint-best.safetensors")
    assert meta["best_val_acc"] == best and meta["epoch"] == meta["best_epoch"]


def _state(run_dir: Path) -> dict[str, torch.Tensor]:
    tensors, _ = load_checkpoint(run_dir / "checkpoint-last.safetensors")
    return {k: v for k, v in tensors.items() if not k.startswith("rng.")}


@pytest.mark.parametrize("defense", ["rat", "sr_star"])
def test_interrupted_and_resumed_run_is_bit_identical(data_dir: Path, tmp_path: Path, defense: str) -> None:
    # Augmentation, PGD noise and (RAT) row sampling all draw random numbers: their states must resume too.
    common = dict(defense=defense, augment=True, at_steps=2, lam=0.05)
    straight = train(small(data_dir, tmp_path / "straight", **common))
    interrupted = train(small(data_dir, tmp_path / "split", stop_after=1, **common))
    assert len(read_metrics(interrupted)) == 1
    resumed = train(small(data_dir, tmp_path / "split", resume=True, **common))
    a, b = _state(straight), _state(resumed)
    assert set(a) == set(b) and any(k.startswith("optimizer.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    strip = [{k: v for k, v in m.items() if k != "seconds"} for m in read_metrics(straight)]
    assert strip == [{k: v for k, v in m.items() if k != "seconds"} for m in read_metrics(resumed)]


def test_run_directory_contents(data_dir: Path, tmp_path: Path) -> None:
    run_dir = train(small(data_dir, tmp_path / "run", defense="sr", epochs=1))
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoint-best.safetensors",
        "checkpoint-last.safetensors",
        "config.json",
        "metrics.jsonl",
    ]
    cfg = read_config(run_dir)
    assert cfg["train"]["lam"] == 0.002  # the default for data outside the paper's table
    assert cfg["train"]["weight_decay"] == 5e-4 and cfg["train"]["augment"] is False
    assert cfg["defense"]["name"] == "sr" and cfg["defense"]["penalty"] == "l2sq"
    assert cfg["model"]["in_channels"] == 1 and cfg["model"]["input_size"] == 8
    assert Path(cfg["data"]["store"]).is_dir() and cfg["data"]["name"] == "digits"
    assert cfg["versions"]["torch"] == importlib.metadata.version("torch")
    assert "git_commit" in cfg
    (metrics,) = read_metrics(run_dir)
    assert metrics["reg"] > 0 and metrics["val_grad_l1"] > 0 and metrics["val_grad_l2"] > 0
    _, meta = load_checkpoint(run_dir / "checkpoint-last.safetensors")
    assert meta["epoch"] == 1 and meta["optimizer"]["param_groups"][0]["momentum"] == 0.9


def _snapshot(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir())}


def test_existing_run_dir_with_another_config_is_refused_untouched(data_dir: Path, tmp_path: Path) -> None:
    run_dir = train(small(data_dir, tmp_path / "run", epochs=1))
    before = _snapshot(run_dir)
    with pytest.raises(UserInputError, match=r"different configuration \(train.lr: 0.1 -> 0.05\)"):
        train(small(data_dir, run_dir, epochs=1, lr=0.05))
    with pytest.raises(UserInputError, match="different configuration"):
        train(small(data_dir, run_dir, epochs=1, lr=0.05, resume=True))
    with pytest.raises(UserInputError, match="pass --resume"):
        train(small(data_dir, run_dir, epochs=1))
    assert _snapshot(run_dir) == before
    # Resuming a finished run trains nothing and rewrites no checkpoint.
    train(small(data_dir, run_dir, epochs=1, resume=True))
    after = _snapshot(run_dir)
    assert {k: v for k, v in after.items() if k != "config.json"} == {
        k: v for k, v in before.items() if k != "config.json"
    }


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = train(small(data_dir, tmp_path / "run", stop_after=1))
    good = (run_dir / "checkpoint-last.safetensors").read_bytes()
    original = DefenseObjective.forward

    def poisoned(self: DefenseObjective, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        out = original(self, x, y)  # (a NaN *input* would not do: an IF neuron never fires on NaN)
        return {**out, "loss": out["loss"] * float("nan")}

    monkeypatch.setattr(DefenseObjective, "forward", poisoned)
    with pytest.raises(
        NonFiniteLossError, match=r"became nan at epoch 2 step 1.*checkpoint-last.*\(epoch 1\)"
    ):
        train(small(data_dir, run_dir, resume=True))
    assert (run_dir / "checkpoint-last.safetensors").read_bytes() == good
    assert len(read_metrics(run_dir)) == 1


def test_event_frames_take_T_from_the_store(data_dir: Path, tmp_path: Path) -> None:
    resolve_data("digits-dvs", str(data_dir))
    run_dir = train(small(data_dir, tmp_path / "run", data="digits-dvs", T=None, epochs=1, limit_train=64))
    cfg = read_config(run_dir)
    assert cfg["model"]["T"] == 4 and cfg["model"]["in_channels"] == 2 and cfg["data"]["kind"] == "frames"
    model, _ = load_run(run_dir, "last")
    assert model(torch.rand(3, 4, 2, 20, 20)).shape == (3, 10)
    with pytest.raises(UserInputError, match="--T 8 does not match the store's 4 event frames"):
        train(small(data_dir, tmp_path / "bad", data="digits-dvs", T=8))
    with pytest.raises(UserInputError, match="in_channels=3 but the data has 2"):
        train(small(data_dir, tmp_path / "bad", data="digits-dvs", T=None, model_options={"in_channels": 3}))
    assert not (tmp_path / "bad").exists()


def test_load_run_errors(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="not a run directory"):
        load_run(tmp_path)
    run_dir = train(small(data_dir, tmp_path / "run", epochs=1))
    with pytest.raises(UserInputError, match="best, last"):
        load_run(run_dir, "first")
    (run_dir / "checkpoint-best.safetensors").unlink()
    with pytest.raises(UserInputError, match="no checkpoint-best"):
        load_run(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["format"] == "evrobust-run"
