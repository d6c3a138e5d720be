"""The three small schema'd documents, fuzzed through their real readers: a lock's holder record
(``locks._read_holder``), the raw folder's verified cache (``download._read_cache``) and a NIR graph's
metadata (``read_nir``). Random JSON values, mutations of a valid document, deep nesting, huge numbers and
strings, truncation and invalid UTF-8: every outcome is a valid document or a refusal, never another
exception."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evrobust.errors import UserInputError
from evrobust.preprocess import locks
from evrobust.preprocess.download import VERIFIED_FILE, _read_cache

FUZZ = settings(
    max_examples=60,
    deadline=20000,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30), st.floats(),
    st.text(max_size=50), st.just("x" * 100_000),
)  # fmt: skip
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)

HOLDER = {
    "pid": 12,
    "host": "h",
    "started": "2026-12-07T00:00:00+00:00",
    "purpose": "evrobust train",
    "target": "/r",
}
CACHE = {"a.tar.gz": {"size": 10, "mtime_ns": 123, "md5": "0" * 32}}


def _parsed(data: bytes) -> Any:
    """What ``data`` holds as plain JSON, or None when it is not JSON at all."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


def _encodings(document: Any) -> list[bytes]:
    text = json.dumps(document, allow_nan=True).encode()
    return [text, text[: len(text) // 2], text + b"\xff", b"[" * 5000 + b"]" * 5000]


@FUZZ
@given(key=st.sampled_from(sorted(HOLDER)), value=VALUES, whole=VALUES)
def test_a_lock_holder_record_is_valid_or_ignored(tmp_path: Path, key: str, value: Any, whole: Any) -> None:
    """A damaged record never stops a writer: it reads as {} (an unknown holder) and is overwritten."""
    for document in ({**HOLDER, key: value}, whole):
        for data in _encodings(document):
            fd = os.open(tmp_path / "lock", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, data)
                holder = locks._read_holder(fd)
            finally:
                os.close(fd)
            assert isinstance(holder, dict)
            assert holder == {} or holder == _parsed(data), holder
            locks.describe_holder(holder)  # the refusal message can always be written


@FUZZ
@given(key=st.sampled_from(["size", "mtime_ns", "md5"]), value=VALUES, whole=VALUES)
def test_a_verified_cache_is_valid_or_ignored(tmp_path: Path, key: str, value: Any, whole: Any) -> None:
    """An invalid cache only costs the MD5s being recomputed; a valid one keeps its exact entries."""
    for document in ({"a.tar.gz": {**CACHE["a.tar.gz"], key: value}}, whole):
        for data in _encodings(document):
            (tmp_path / VERIFIED_FILE).write_bytes(data)
            cache = _read_cache(tmp_path)
            assert cache == {} or cache == _parsed(data)
            for entry in cache.values():
                assert isinstance(entry["size"], int) and len(entry["md5"]) == 32


def test_a_verified_cache_that_is_a_fifo_is_ignored_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / VERIFIED_FILE)
    assert _read_cache(tmp_path) == {}


@pytest.fixture(scope="module")
def nir_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import nir

    from evrobust.export import write_nir

    nodes = {
        "input": nir.Input(input_type=np.array([2])),
        "fc": nir.Linear(weight=np.eye(2, dtype=np.float32)),
        "output": nir.Output(output_type=np.array([2])),
    }
    graph = nir.NIRGraph(nodes=nodes, edges=[("input", "fc"), ("fc", "output")], metadata={"model": "{}"})
    return write_nir(graph, tmp_path_factory.mktemp("nir") / "g.nir")


@FUZZ
@given(value=st.one_of(SCALARS, st.text(alphabet='{}[]":,0123456789', max_size=300)))
def test_nir_metadata_is_valid_or_one_line(nir_file: Path, tmp_path: Path, value: Any) -> None:
    """Whatever a graph's metadata holds, reading it is a graph or a UserInputError; the source model's config
    (a JSON string) goes through the bounded loader."""
    import h5py

    from evrobust.export import load_nir, read_nir

    path = tmp_path / "g.nir"
    path.write_bytes(nir_file.read_bytes())
    try:
        with h5py.File(path, "r+") as fh:
            group = fh["node"]["metadata"]
            del group["model"]
            group["model"] = value if value is not None else "null"
    except (TypeError, ValueError, KeyError):
        return  # HDF5 cannot store this value at all: nothing to read back
    try:
        read_nir(path)
        load_nir(path, T=2)
    except UserInputError:
        pass
