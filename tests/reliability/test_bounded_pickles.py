"""Tiny hostile CIFAR pickles, written opcode by opcode, must fail as one UserInputError in bounded memory.

Each memory case runs in a subprocess under ``RLIMIT_AS`` (1 GiB) and a timeout, and also reports its peak
resident memory, so a regression fails here instead of exhausting the machine.
"""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from reliability_helpers import run_bounded

from evrobust.errors import UserInputError
from evrobust.preprocess.cifar_pickle import CIFAR10_BATCH_ROWS, PickleLimits, load_cifar_pickle
from evrobust.preprocess.sources import _cifar_batch

PROTO2 = b"\x80\x02"


def _key(name: str) -> bytes:
    """SHORT_BINSTRING: a Python 2 ``str``, which ``encoding="bytes"`` turns into ``bytes``."""
    return b"U" + bytes([len(name)]) + name.encode()


def _text(value: str) -> bytes:
    raw = value.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw  # BINUNICODE


def nested_shared_list(depth: int, fan: int, key: str) -> bytes:
    """``{key: L, other: [...]}`` where ``L`` is a list nested ``depth`` deep, each level holding its child
    ``fan`` times by memo reference: ``fan**depth`` leaves in a few hundred bytes."""
    out = PROTO2 + b"K\x07q\x00"  # the leaf 7, memo 0
    for k in range(depth):
        out += b"(" + (b"h" + bytes([k])) * fan + b"lq" + bytes([k + 1])  # [m_k] * fan -> memo k+1
    out += b"0"  # pop the last level; it stays in the memo
    other = "labels" if key == "data" else "data"
    return out + b"}(" + _key(key) + b"h" + bytes([depth]) + _key(other) + b"]u."


def strided_ndarray(rows: int, cols: int, dtype: str) -> bytes:
    """``numpy.ndarray((rows, cols), dtype, b"x", 0, (0, 0))``: a direct call with zero strides."""
    shape = b"J" + struct.pack("<i", rows) + b"J" + struct.pack("<i", cols) + b"\x86"
    dt = b"cnumpy\ndtype\n(" + _text(dtype) + b"tR"
    return b"cnumpy\nndarray\n(" + shape + dt + b"U\x01xK\x00K\x00K\x00\x86tR"


def zero_stride_batch() -> bytes:
    return (
        PROTO2
        + b"}("
        + _key("data")
        + strided_ndarray(100_000, 3072, "u1")
        + _key("labels")
        + b"cnumpy\nndarray\n(J\xa0\x86\x01\x00\x85cnumpy\ndtype\n("
        + _text("i8")
        + b"tRU\x01xK\x00K\x00\x85tR"
        + b"u."
    )


def repeated_encode(copies: int, size: int) -> bytes:
    """A list of ``copies`` results of ``_codecs.encode(<one memoised text of size chars>, "latin1")``."""
    head = PROTO2 + b"c_codecs\nencode\nq\x01" + _text("a" * size) + b"q\x02" + _text("latin1") + b"q\x03"
    return head + b"(" + b"h\x01h\x02h\x03\x86R" * copies + b"l."


def huge_memo_index(index: int) -> bytes:
    """``None`` stored under memo index ``index`` (LONG_BINPUT): the C unpickler grows an array to it."""
    return PROTO2 + b"Nr" + struct.pack("<I", index) + b"."


def repeated_reconstruct(copies: int, elements: int) -> bytes:
    """A list of ``copies`` empty uint8 arrays of ``elements`` each from numpy's ``_reconstruct``."""
    head = (
        PROTO2
        + b"cnumpy.core.multiarray\n_reconstruct\nq\x01cnumpy\nndarray\nq\x02J"
        + struct.pack("<i", elements)
        + b"\x85q\x03cnumpy\ndtype\n("
        + _text("u1")
        + b"tRq\x04"
    )
    return head + b"(" + b"h\x01h\x02h\x03h\x04\x87R" * copies + b"l."


_CHILD = """
import json, resource, sys
from pathlib import Path
from evrobust.errors import UserInputError
from evrobust.preprocess.sources import {func}
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    {func}({args})
    out = {{"ok": True}}
except UserInputError as exc:
    out = {{"error": str(exc)}}
out["peak_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
print(json.dumps(out))
"""


def _bounded(tmp: Path, func: str, args: str) -> dict[str, object]:
    proc = run_bounded(_CHILD.format(func=func, args=args), tmp, address_space=1 << 30, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "Traceback" not in proc.stderr
    return result


def _cifar10_dir(root: Path, batch: bytes) -> Path:
    root.mkdir()
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"c%d" % i for i in range(10)]}, 2))
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (root / name).write_bytes(batch)
    return root


@pytest.mark.parametrize(
    ("depth", "fan", "needle"),
    [(40, 2, "nested deeper than 8"), (6, 16, "more than 44096 objects")],  # 2^40 and 16^6 leaves
)
@pytest.mark.parametrize("key", ["data", "labels"])
def test_nested_shared_list_fails_in_bounded_memory(
    tmp_path: Path, key: str, depth: int, fan: int, needle: str
) -> None:
    blob = nested_shared_list(depth, fan, key)
    assert len(blob) < 450  # the 423-byte batch
    raw = _cifar10_dir(tmp_path / "cifar-10-batches-py", blob)
    result = _bounded(tmp_path, "read_cifar10", repr(str(raw)))
    assert needle in result["error"], result
    assert result["peak_mb"] < 100, result


def test_zero_stride_ndarray_call_is_refused(tmp_path: Path) -> None:
    blob = zero_stride_batch()
    assert len(blob) < 200
    raw = _cifar10_dir(tmp_path / "cifar-10-batches-py", blob)
    result = _bounded(tmp_path, "read_cifar10", repr(str(raw)))
    assert "numpy.ndarray(...) called directly" in result["error"], result
    assert result["peak_mb"] < 100, result


def test_c_unpickler_memo_growth_is_avoided(tmp_path: Path) -> None:
    # 12 bytes; the C unpickler would allocate and zero a 256 MiB memo array for index 2**24.
    path = tmp_path / "test_batch"
    path.write_bytes(huge_memo_index(1 << 24))
    result = _bounded(tmp_path, "load_cifar_pickle", repr(str(path)))
    assert "holds a NoneType" in result["error"], result
    assert result["peak_mb"] < 100, result


def test_repeated_calls_on_one_memoised_argument_are_budgeted(tmp_path: Path) -> None:
    path = tmp_path / "test_batch"
    path.write_bytes(repeated_encode(2000, 1 << 20))  # ~1 MiB file asking for 2 GiB of copies
    result = _bounded(tmp_path, "_cifar_batch", f"Path({str(path)!r}), b'labels'")
    assert "_codecs.encode makes more bytes" in result["error"], result
    assert result["peak_mb"] < 200, result
    path.write_bytes(repeated_reconstruct(100, 30_000_000))  # 3 GB of empty arrays from 300 bytes
    result = _bounded(tmp_path, "_cifar_batch", f"Path({str(path)!r}), b'labels'")
    assert "numpy _reconstruct makes more bytes" in result["error"], result


def test_encode_only_to_latin1(tmp_path: Path) -> None:
    path = tmp_path / "test_batch"
    path.write_bytes(PROTO2 + b"c_codecs\nencode\n(" + _text("abc") + _text("base64") + b"tR.")
    with pytest.raises(UserInputError, match="latin-1 bytes"):
        load_cifar_pickle(path)


def test_depth_limit_without_shared_references(tmp_path: Path) -> None:
    path = tmp_path / "batches.meta"
    path.write_bytes(PROTO2 + b"]" * 9 + b"a" * 8 + b".")  # [[[[...]]]] nine deep, 9 items
    with pytest.raises(UserInputError, match="nested deeper than 8"):
        load_cifar_pickle(path, PickleLimits.for_rows(0))
    path.write_bytes(PROTO2 + b"]" * 8 + b"a" * 7 + b".")  # eight deep: accepted by the walk
    with pytest.raises(UserInputError, match="holds a list"):
        load_cifar_pickle(path, PickleLimits.for_rows(0))


def test_input_size_is_checked_against_the_layout(tmp_path: Path) -> None:
    limits = PickleLimits.for_rows(0)  # a meta file: class names only
    path = tmp_path / "batches.meta"
    with path.open("wb") as fh:  # sparse: no disk used
        fh.truncate(limits.max_file_bytes + 1)
    with pytest.raises(UserInputError, match=f"more than the {limits.max_file_bytes}"):
        load_cifar_pickle(path, limits)


def test_official_batch_size_loads_and_one_more_row_is_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (CIFAR10_BATCH_ROWS, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, CIFAR10_BATCH_ROWS)]
    names = [b"img_%05d.png" % i for i in range(CIFAR10_BATCH_ROWS)]
    path = tmp_path / "data_batch_1"
    for protocol in (2, 4):  # Python 2's official files are protocol 2; a Python 3 re-pickle may be 4
        batch = {b"batch_label": b"batch 1 of 5", b"labels": labels, b"data": data, b"filenames": names}
        path.write_bytes(pickle.dumps(batch, protocol=protocol))
        x, y = _cifar_batch(path, b"labels")
        assert x.shape == (CIFAR10_BATCH_ROWS, 3, 32, 32) and np.array_equal(x.reshape(-1, 3072), data)
        assert y.tolist() == labels
    extra = np.concatenate([data, data[:1]])
    path.write_bytes(pickle.dumps({b"labels": labels + [0], b"data": extra}, protocol=2))
    with pytest.raises(UserInputError, match="N <= 10000"):
        _cifar_batch(path, b"labels")


def test_labels_must_be_plain_integers(tmp_path: Path) -> None:
    path = tmp_path / "data_batch_1"
    for labels in ([True, False], [1.0, 2.0], [b"a", b"b"]):
        path.write_bytes(pickle.dumps({b"labels": labels, b"data": np.zeros((2, 3072), np.uint8)}, 2))
        with pytest.raises(UserInputError, match="other than integers"):
            _cifar_batch(path, b"labels")
    path.write_bytes(pickle.dumps({b"labels": [1, 2], b"data": [[0] * 3072] * 2}, 2))  # a list, not an array
    with pytest.raises(UserInputError, match="data is a list"):
        _cifar_batch(path, b"labels")
