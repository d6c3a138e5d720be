"""Content checks of the I/O layer: every array of a store verified, a store's content identity, non-finite
weights refused on load (checkpoints and NIR graphs)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from evrobust.errors import UserInputError


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (embedded digits) image store, built once; tests damage copies of it."""
    from evrobust.datasets import resolve_data

    return resolve_data("digits", tmp_path_factory.mktemp("digits"))


def _copy(store: Path, tmp_path: Path) -> Path:
    dest = tmp_path / store.name
    shutil.copytree(store, dest)
    return dest


def test_a_deleted_labels_chunk_is_found_by_verify_and_refused_by_the_readers(
    store: Path, tmp_path: Path
) -> None:
    """Before the fix zarr read every label as 0: verify passed, training reported 100 % accuracy."""
    from evrobust.datasets import open_split
    from evrobust.preprocess.store_verify import verify_store

    damaged = _copy(store, tmp_path)
    assert verify_store(damaged) == []
    (damaged / "labels" / "c" / "0").unlink()
    assert verify_store(damaged) == ["the labels chunk file (labels/c.0) is missing; rebuild the store"]
    for in_memory in (True, False):
        with pytest.raises(UserInputError, match="damaged .the labels chunk file is missing"):
            open_split(damaged, "test", in_memory=in_memory)


def test_a_deleted_done_flag_chunk_of_a_complete_store_is_found(store: Path, tmp_path: Path) -> None:
    from evrobust.preprocess.store_verify import verify_store

    damaged = _copy(store, tmp_path)
    (damaged / "done" / "c.7").unlink()
    problems = verify_store(damaged)
    assert "1 done flag chunk files are missing (first index 7); rebuild the store" in problems


def test_a_single_class_store_writes_its_all_zero_labels_chunk(tmp_path: Path) -> None:
    """zarr skips a chunk equal to the fill value; the labels chunk is written anyway, so absent = damage."""
    from evrobust.preprocess import store as store_module

    out = tmp_path / "one.zarr"
    store_module.create_store(
        out, dataset="x", kind="images", sample_shape=(1, 2, 2), labels=np.zeros(3, dtype=np.int64),
        classes=["a"], splits={"s": {"train": [0, 1], "val": [], "test": [2]}}, default_split="s",
        split_rule="", sources=["batch"],
    )  # fmt: skip
    assert (out / "labels" / "c" / "0").is_file()


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_a_link_or_fifo_inside_a_store_is_refused_before_zarr_opens_it(
    store: Path, tmp_path: Path, kind: str
) -> None:
    import os

    from evrobust.datasets import open_split
    from evrobust.preprocess.store_verify import verify_store

    damaged = _copy(store, tmp_path)
    chunk = damaged / "frames" / "c.3.0.0.0"
    chunk.unlink()
    if kind == "symlink":
        chunk.symlink_to(store / "frames" / "c.3.0.0.0")
    else:
        os.mkfifo(chunk)
    what = "a symbolic link" if kind == "symlink" else "a FIFO .named pipe."
    (problem,) = verify_store(damaged)
    tail = "; a store holds regular files only: rebuild it"
    assert re.fullmatch(f".*c.3.0.0.0 is {what} inside the store .*{tail}", problem)
    with pytest.raises(UserInputError, match=f"c.3.0.0.0 is {what} inside the store"):
        open_split(damaged, "train", in_memory=False)


def test_store_digest_is_the_content(store: Path, tmp_path: Path) -> None:
    from evrobust.preprocess.store_verify import store_digest

    copy = _copy(store, tmp_path)
    assert store_digest(copy) == store_digest(store)  # where it lies does not matter, only what it holds
    chunk = copy / "frames" / "c.0.0.0.0"
    data = bytearray(chunk.read_bytes())
    data[-1] ^= 1
    chunk.write_bytes(bytes(data))
    assert store_digest(copy) != store_digest(store)
    (copy / "frames" / ".c.0.0.0.0.123.456.tmp").write_bytes(b"a killed writer's leftover")
    chunk.write_bytes(bytes(data))
    assert store_digest(copy) == store_digest(copy)


# ----------------------------------------------------------------------------------- non-finite weights
def test_a_checkpoint_with_nan_weights_is_refused_on_load(tmp_path: Path) -> None:
    from evrobust.checkpoint import load_checkpoint, save_checkpoint

    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"w": torch.tensor([1.0, float("nan"), float("inf")]), "n": torch.tensor([3])}, {})
    with pytest.raises(UserInputError, match=r"holds 2 non-finite values \(NaN or infinity\) in 'w'"):
        load_checkpoint(path)
    save_checkpoint(path, {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor([3])}, {})
    tensors, _ = load_checkpoint(path)
    assert torch.equal(tensors["w"], torch.tensor([1.0, 2.0]))


def test_a_symlinked_checkpoint_is_refused(tmp_path: Path) -> None:
    from evrobust.checkpoint import load_checkpoint, save_checkpoint

    real = save_checkpoint(tmp_path / "real.safetensors", {"w": torch.ones(2)}, {})
    link = tmp_path / "checkpoint-best.safetensors"
    link.symlink_to(real)
    with pytest.raises(UserInputError, match="is a symbolic link, not a regular file"):
        load_checkpoint(link)


def test_a_nir_graph_with_nan_weights_is_refused_on_load(tmp_path: Path) -> None:
    import nir

    from evrobust.export import read_nir, write_nir

    def graph(weight: np.ndarray) -> nir.NIRGraph:
        nodes = {
            "input": nir.Input(input_type=np.array([2])),
            "fc": nir.Linear(weight=weight),
            "output": nir.Output(output_type=np.array([2])),
        }
        return nir.NIRGraph(nodes=nodes, edges=[("input", "fc"), ("fc", "output")], metadata={"k": 1})

    good = write_nir(graph(np.eye(2, dtype=np.float32)), tmp_path / "good.nir")
    assert set(read_nir(good).nodes) == {"input", "fc", "output"}
    bad = write_nir(graph(np.array([[1.0, np.nan], [0.0, 1.0]], dtype=np.float32)), tmp_path / "bad.nir")
    with pytest.raises(UserInputError, match=r"node 'fc' holds non-finite values \(NaN or .* in 'weight'"):
        read_nir(bad)
