"""Checkpoints: exact round trips, atomic replacement, no pickle, nested training state."""

from __future__ import annotations

import os
import pickle
import random

import numpy as np
import pytest
import torch
from safetensors import safe_open
from torch import nn

from evrobust.checkpoint import flatten_state, load_checkpoint, save_checkpoint, unflatten_state
from evrobust.errors import UserInputError


def test_round_trip_of_dtypes_and_metadata(tmp_path) -> None:
    tensors = {
        "f32": torch.randn(3, 4),
        "bf16": torch.randn(5).to(torch.bfloat16),
        "i64": torch.arange(6).reshape(2, 3),
        "u8": torch.tensor([0, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False]),
        "scalar": torch.tensor(3.5),
        "strided": torch.arange(12.0).reshape(3, 4).t(),  # non-contiguous view
    }
    meta = {"epoch": 3, "lr": 0.1 / 3, "nested": {"a": [1, 2.5, None, "x"]}, "inf": float("inf")}
    path = save_checkpoint(tmp_path / "ck.safetensors", tensors, meta)
    loaded, loaded_meta = load_checkpoint(path)
    assert loaded_meta == meta
    assert set(loaded) == set(tensors)
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor), name
    # A plain safetensors reader sees the same file: the format is the standard one.
    with safe_open(str(path), framework="pt") as fh:
        assert set(fh.keys()) == set(tensors)
        assert "evrobust" in fh.metadata()


def test_tied_weights_are_saved(tmp_path) -> None:
    weight = torch.randn(4, 4)
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "t.safetensors", {"a": weight, "b": weight}, {}))
    assert torch.equal(loaded["a"], weight) and torch.equal(loaded["b"], weight)


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch) -> None:
    path = tmp_path / "ck.safetensors"
    save_checkpoint(path, {"w": torch.zeros(2)}, {"version": "old"})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"w": torch.ones(2)}, {"version": "new"})
    monkeypatch.undo()
    tensors, meta = load_checkpoint(path)
    assert meta == {"version": "old"} and torch.equal(tensors["w"], torch.zeros(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.safetensors"]


def test_pickle_files_are_refused_without_unpickling(tmp_path) -> None:
    class Bomb:
        def __reduce__(self):
            return (os.mkdir, (str(tmp_path / "pwned"),))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps({"w": Bomb()}))
    with pytest.raises(UserInputError, match="cannot read checkpoint"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_missing_and_foreign_files(tmp_path) -> None:
    with pytest.raises(UserInputError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(UserInputError, match="not written by evrobust"):
        load_checkpoint(tmp_path / "foreign.safetensors")


def test_optimizer_and_scheduler_state_resume_exactly(tmp_path) -> None:
    def make() -> tuple[nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        torch.manual_seed(0)
        model = nn.Linear(3, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        return model, opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=7)

    def step(model, opt, sched, i: int) -> None:
        x = torch.linspace(-1, 1, 12).reshape(4, 3) * (i + 1)
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
        sched.step()

    model, opt, sched = make()
    for i in range(3):
        step(model, opt, sched, i)
    t_opt, tree_opt = flatten_state(opt.state_dict(), "optimizer")
    t_sched, tree_sched = flatten_state(sched.state_dict(), "scheduler")
    tensors = {**{f"model.{k}": v for k, v in model.state_dict().items()}, **t_opt, **t_sched}
    save_checkpoint(tmp_path / "ck.safetensors", tensors, {"optimizer": tree_opt, "scheduler": tree_sched})
    for i in range(3, 6):
        step(model, opt, sched, i)

    loaded, meta = load_checkpoint(tmp_path / "ck.safetensors")
    model2, opt2, sched2 = make()
    model2.load_state_dict({k[6:]: v for k, v in loaded.items() if k.startswith("model.")})
    opt2.load_state_dict(unflatten_state(meta["optimizer"], loaded))
    sched2.load_state_dict(unflatten_state(meta["scheduler"], loaded))
    for i in range(3, 6):
        step(model2, opt2, sched2, i)
    for p, q in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(p, q)  # bit-identical continuation
    assert sched.get_last_lr() == sched2.get_last_lr()


def test_rng_states_round_trip(tmp_path) -> None:
    random.seed(1)
    rng = np.random.default_rng(2)
    torch.manual_seed(3)
    state = {
        "python": random.getstate(),
        "numpy": rng.bit_generator.state,  # 128-bit integers: JSON keeps them exact
        "mt": np.random.MT19937(4).state,  # holds a uint32 array
        "torch": torch.get_rng_state(),
        "int_keys": {0: "a", 5: (1, 2)},
        "dunder": {"__tensor__": "not a marker"},
    }
    tensors, tree = flatten_state(state, "rng")
    save_checkpoint(tmp_path / "r.safetensors", tensors, {"rng": tree})
    expected = (random.random(), rng.random(), torch.rand(1))
    loaded, meta = load_checkpoint(tmp_path / "r.safetensors")
    restored = unflatten_state(meta["rng"], loaded)
    assert restored["int_keys"] == {0: "a", 5: (1, 2)}
    assert restored["dunder"] == {"__tensor__": "not a marker"}
    mt = np.random.MT19937()
    mt.state = restored["mt"]
    assert np.array_equal(mt.state["state"]["key"], np.random.MT19937(4).state["state"]["key"])
    random.setstate(restored["python"])
    rng.bit_generator.state = restored["numpy"]
    torch.set_rng_state(restored["torch"])
    assert (random.random(), rng.random()) == expected[:2] and torch.equal(torch.rand(1), expected[2])


def test_unsupported_objects_are_rejected() -> None:
    with pytest.raises(TypeError, match="cannot store"):
        flatten_state({"device": torch.device("cpu")}, "x")
