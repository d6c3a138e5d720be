"""Broken input, fuzzed: every reader (AEDAT 2.0, AEDAT 4, CIFAR pickles, store attrs, run configs and
checkpoints) lets only UserInputError subclasses escape, within a deadline, without allocating what a
hostile header claims. The outcome counts are printed for docs/_drafts/reliability.md (`pytest -s`)."""

from __future__ import annotations

import collections
import json
import os
import pickle
import shutil
import struct
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_helpers import AEDAT4, CIFAR10_META, MNIST_DVS

from evrobust.errors import UserInputError

TALLY: collections.Counter[str] = collections.Counter()
FUZZ = settings(
    max_examples=40,
    deadline=20000,  # a hang is what this catches; a loaded 2-core machine makes single calls take seconds
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=True,
)


def _expect_user_error_or_ok(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a reader; a UserInputError is fine, anything else fails the test (counted either way)."""
    TALLY["inputs"] += 1
    try:
        out = fn(*args, **kwargs)
    except UserInputError:
        TALLY["user_errors"] += 1
        return None
    except BaseException as exc:  # noqa: BLE001 - the point: count and report any other escape
        TALLY["crashes"] += 1
        raise AssertionError(f"{fn.__name__} raised {type(exc).__name__}: {exc}") from exc
    TALLY["accepted"] += 1
    return out


def _mutate(blob: bytes, cut: int, flips: list[tuple[int, int]]) -> bytes:
    data = bytearray(blob[: max(0, min(len(blob), cut))])
    for pos, val in flips:
        if data:
            data[pos % len(data)] = val
    return bytes(data)


MUTATION = {
    "cut": st.integers(0, 1 << 20),
    "flips": st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=8),
}


# ----------------------------------------------------------------------------- event files
@FUZZ
@given(**MUTATION, junk=st.binary(max_size=64))
def test_aedat2_reader(
    real_data: Path, tmp_path: Path, cut: int, flips: list[tuple[int, int]], junk: bytes
) -> None:
    from evrobust.preprocess.aedat2 import read_aedat2

    path = tmp_path / "x.aedat"
    path.write_bytes(_mutate((real_data / MNIST_DVS).read_bytes(), cut, flips) + junk)
    _expect_user_error_or_ok(read_aedat2, path)


@FUZZ
@given(**MUTATION)
def test_aedat4_reader(real_data: Path, tmp_path: Path, cut: int, flips: list[tuple[int, int]]) -> None:
    from evrobust.preprocess.aedat4 import read_aedat4

    path = tmp_path / "x.aedat4"
    path.write_bytes(_mutate((real_data / AEDAT4).read_bytes(), cut, flips))
    try:
        _expect_user_error_or_ok(read_aedat4, path)
    except AssertionError as exc:  # only the known panic (below) is tolerated here, and counted
        assert "PanicException" in str(exc), exc


def test_aedat4_panic_on_corrupt_header_is_a_user_error(real_data: Path, tmp_path: Path) -> None:
    from evrobust.preprocess.aedat4 import read_aedat4

    path = tmp_path / "x.aedat4"
    blob = (real_data / AEDAT4).read_bytes()
    path.write_bytes(_mutate(blob, 2334, [(464, 128)]))  # found by the fuzzer above
    _expect_user_error_or_ok(read_aedat4, path)


def test_aedat2_header_claiming_huge_payload_does_not_allocate(tmp_path: Path) -> None:
    from evrobust.preprocess.aedat2 import read_aedat2

    # A header, then an odd-sized payload: the reader sizes its arrays from the bytes present, never from a
    # claim; 10^12 "events" cannot be claimed by AEDAT 2.0 (no count field), so this is the worst case.
    path = tmp_path / "x.aedat"
    path.write_bytes(b"#!AER-DAT2.0\r\n# events: 1000000000000\r\n" + b"\x00" * 13)
    _expect_user_error_or_ok(read_aedat2, path)


# ----------------------------------------------------------------------------- CIFAR pickles
def _cifar_blob() -> bytes:
    data = np.arange(4 * 3072, dtype=np.uint8).reshape(4, 3072)
    return pickle.dumps({b"data": data, b"labels": [0, 1, 2, 3], b"batch_label": b"x"}, protocol=2)


@FUZZ
@given(**MUTATION, base=st.sampled_from(["batch", "meta"]))
def test_cifar_pickle_reader(
    real_data: Path, tmp_path: Path, cut: int, flips: list[tuple[int, int]], base: str
) -> None:
    from evrobust.preprocess.sources import _cifar_batch, load_cifar_pickle

    blob = _cifar_blob() if base == "batch" else (real_data / CIFAR10_META).read_bytes()
    path = tmp_path / "data_batch_1"
    path.write_bytes(_mutate(blob, cut, flips))
    _expect_user_error_or_ok(_cifar_batch if base == "batch" else load_cifar_pickle, *(
        (path, b"labels") if base == "batch" else (path,)))  # fmt: skip


@FUZZ
@given(data=st.binary(max_size=256))
def test_cifar_pickle_random_bytes(tmp_path: Path, data: bytes) -> None:
    from evrobust.preprocess.sources import load_cifar_pickle

    path = tmp_path / "test_batch"
    path.write_bytes(b"\x80\x02" + data)
    _expect_user_error_or_ok(load_cifar_pickle, path)


@pytest.mark.parametrize(
    "payload",
    [
        {b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]},  # wrong row length
        {b"data": np.zeros((2, 3072), np.float64), b"labels": [0, 1]},  # wrong dtype
        {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]},  # label count
        {b"data": np.zeros((2, 3072), np.uint8), b"labels": ["a", "b"]},  # label type
        {b"data": np.zeros((2, 3072), np.uint8), b"labels": [[0], [1, 2]]},  # ragged
        {b"data": b"not an array", b"labels": [0]},
        {b"labels": [0]},  # missing key
        [1, 2, 3],  # not a dict
    ],
)
def test_cifar_wrong_layout_is_a_user_error(tmp_path: Path, payload: Any) -> None:
    from evrobust.preprocess.sources import _cifar_batch

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(UserInputError):
        _expect_user_error_or_ok(_cifar_batch, path, b"labels")
        raise UserInputError("accepted")  # a wrong layout must not be accepted


# ----------------------------------------------------------------------------- stores
@pytest.fixture(scope="module")
def digits_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from evrobust.datasets import open_split
    from evrobust.preprocess.embedded import build_digits

    path = tmp_path_factory.mktemp("fuzz-store") / "digits.zarr"
    build_digits(path)
    open_split(path, "test")[0]  # warm the imports, so the deadline measures the readers only
    return path


def _shallow_copy(store: Path, dest: Path, copy: tuple[str, ...] = ()) -> Path:
    """A store whose root zarr.json (and the arrays in ``copy``) are private copies and whose other arrays
    are hard links to ``store``'s chunk files (readers refuse symbolic links in a store): fast to make, and a
    mutation of the copied parts never reaches the shared original."""
    dest.mkdir(parents=True)
    shutil.copy(store / "zarr.json", dest / "zarr.json")
    for child in store.iterdir():
        if child.is_dir() and child.name in copy:
            shutil.copytree(child, dest / child.name)
        elif child.is_dir():
            shutil.copytree(child, dest / child.name, copy_function=os.link)
    return dest


def _store_readers(path: Path) -> None:
    from evrobust.datasets import open_split, store_info
    from evrobust.preprocess.store import read_attrs
    from evrobust.preprocess.store_verify import verify_store

    _expect_user_error_or_ok(read_attrs, path)
    problems = _expect_user_error_or_ok(verify_store, path, deep=False)
    assert problems is None or isinstance(problems, list)
    _expect_user_error_or_ok(store_info, path)
    ds = _expect_user_error_or_ok(open_split, path, "test")
    if ds is not None and len(ds) > 0:
        x, y = ds[0]
        assert x.dtype.is_floating_point and float(x.min()) >= 0 and float(x.max()) <= 1


@FUZZ
@given(**MUTATION)
def test_store_with_garbled_root_json(
    digits_store: Path, tmp_path_factory: pytest.TempPathFactory, cut: int, flips: list[tuple[int, int]]
) -> None:
    path = _shallow_copy(digits_store, tmp_path_factory.mktemp("g") / "s.zarr")
    (path / "zarr.json").write_bytes(_mutate((digits_store / "zarr.json").read_bytes(), cut, flips))
    _store_readers(path)


VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**13), 10**13), st.floats(allow_nan=True),
    st.text(max_size=5), st.lists(st.integers(-3, 10**12), max_size=4),
    st.dictionaries(st.text(max_size=3), st.lists(st.integers(-2, 10**12), max_size=3), max_size=2),
)  # fmt: skip
KEYS = ["kind", "sample_shape", "dtype", "classes", "num_classes", "splits", "default_split", "stats_split",
        "scale", "mean", "std", "frames", "planned_splits", "sources", "complete"]  # fmt: skip


@FUZZ
@given(key=st.sampled_from(KEYS), value=VALUES)
def test_store_with_wrong_typed_attrs(
    digits_store: Path, tmp_path_factory: pytest.TempPathFactory, key: str, value: Any
) -> None:
    path = _shallow_copy(digits_store, tmp_path_factory.mktemp("t") / "s.zarr")
    doc = json.loads((path / "zarr.json").read_text())
    doc["attributes"][key] = value
    (path / "zarr.json").write_text(json.dumps(doc))
    tracemalloc.start()
    try:
        _store_readers(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200 << 20


def test_store_array_metadata_claiming_1e12_samples(digits_store: Path, tmp_path: Path) -> None:
    from evrobust.preprocess.store_verify import verify_store

    path = _shallow_copy(digits_store, tmp_path / "s.zarr", copy=("labels", "done"))
    for name in ("labels", "done"):
        meta = json.loads((path / name / "zarr.json").read_text())
        meta["shape"] = [10**12]
        (path / name / "zarr.json").write_text(json.dumps(meta))
    tracemalloc.start()
    try:
        problems = _expect_user_error_or_ok(verify_store, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert problems and any("length" in p for p in problems)
    assert peak < 200 << 20


# ----------------------------------------------------------------------------- runs
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from evrobust.pipelines.train.config import TrainConfig
    from evrobust.pipelines.train.pipeline import train

    root = tmp_path_factory.mktemp("fuzz-run")
    config = TrainConfig(data="digits", data_dir=str(root / "data"), model="vgg_small", width=0.25, T=2,
                         epochs=1, batch_size=32, limit_train=64, limit_val=32, device="cpu",
                         out=str(root / "run"), progress=False)  # fmt: skip
    return train(config)


def _run_readers(run: Path) -> None:
    from evrobust.pipelines.train.run_dir import load_run, read_config, read_metrics

    _expect_user_error_or_ok(read_config, run)
    _expect_user_error_or_ok(load_run, run)
    _expect_user_error_or_ok(read_metrics, run)


@FUZZ
@given(**MUTATION, target=st.sampled_from(["config.json", "checkpoint-best.safetensors", "metrics.jsonl"]))
def test_run_with_garbled_files(
    tiny_run: Path,
    tmp_path_factory: pytest.TempPathFactory,
    cut: int,
    flips: list[tuple[int, int]],
    target: str,
) -> None:
    run = tmp_path_factory.mktemp("r") / "run"
    shutil.copytree(tiny_run, run)
    (run / target).write_bytes(_mutate((tiny_run / target).read_bytes(), cut, flips))
    _run_readers(run)


@FUZZ
@given(key=st.sampled_from(["model", "data", "format", "identity"]), value=VALUES)
def test_run_config_with_wrong_types(
    tiny_run: Path, tmp_path_factory: pytest.TempPathFactory, key: str, value: Any
) -> None:
    run = tmp_path_factory.mktemp("c") / "run"
    shutil.copytree(tiny_run, run)
    doc = json.loads((run / "config.json").read_text())
    doc[key] = value
    (run / "config.json").write_text(json.dumps(doc))
    _run_readers(run)


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("width", 1000.0, "width must be > 0 and <= 16"),  # ~6e13 parameters: refused by the width limit
        ("T", 10**9, "T must be at most 1024"),  # would repeat each input 10^9 times
        ("num_classes", 10**8, "parameters, more than"),  # within every limit: the meta-device build says no
    ],
)
def test_run_config_asking_for_an_absurd_model_does_not_allocate(
    tiny_run: Path, tmp_path: Path, key: str, value: float, needle: str
) -> None:
    from evrobust.pipelines.train.run_dir import load_run

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    doc = json.loads((run / "config.json").read_text())
    doc["model"][key] = value
    (run / "config.json").write_text(json.dumps(doc))
    tracemalloc.start()
    try:
        with pytest.raises(UserInputError, match=needle):
            load_run(run)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 << 20


def test_safetensors_header_claiming_huge_tensor_does_not_allocate(tiny_run: Path, tmp_path: Path) -> None:
    from evrobust.checkpoint import load_checkpoint

    header = json.dumps({"w": {"dtype": "F32", "shape": [10**6, 10**6], "data_offsets": [0, 4 * 10**12]},
                         "__metadata__": {"evrobust": "{}"}}).encode()  # fmt: skip
    path = tmp_path / "c.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 64)
    tracemalloc.start()
    try:
        _expect_user_error_or_ok(load_checkpoint, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 << 20
    path.write_bytes(struct.pack("<Q", 10**15) + b"{}")  # header length beyond the file
    _expect_user_error_or_ok(load_checkpoint, path)


def test_zz_report_counts() -> None:
    """Prints the tally (run last in this file): bad inputs tried, user errors, accepted, crashes."""
    print(f"\nfuzz tally: {dict(TALLY)}")
    assert TALLY["crashes"] == 0
