"""Hostile input: crafted CIFAR pickles never run code or allocate what they claim; torch pickle
checkpoints are refused unless trusted; per-class CIFAR10-DVS zips are read in place and hostile member
names are inert."""

from __future__ import annotations

import pickle
import shutil
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from reliability_helpers import CIFAR10_META, CLASSES, FOAM, MNIST_DVS, cli, one_error_line

from evrobust.checkpoint import load_checkpoint, load_torch_checkpoint, save_checkpoint
from evrobust.errors import UserInputError
from evrobust.pipelines.preprocess import preprocess_cifar10dvs
from evrobust.preprocess.sources import (
    load_cifar_pickle,
    read_source_bytes,
    scan_event_dir,
    zip_event_members,
)
from evrobust.preprocess.store import read_attrs
from evrobust.preprocess.store_verify import verify_store


class _Call:
    """Pickles as ``func(*args)``: the classic code-execution gadget."""

    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.func, self.args


def _gadget_pickles(marker: Path) -> dict[str, bytes]:
    import builtins
    import os
    import subprocess

    touch = f"touch {marker}"
    return {
        "os.system": pickle.dumps({b"data": _Call(os.system, touch)}, protocol=2),
        "builtins.eval": pickle.dumps(_Call(builtins.eval, f"open({str(marker)!r}, 'w')"), protocol=2),
        "builtins.exec": pickle.dumps(_Call(builtins.exec, f"open({str(marker)!r}, 'w')"), protocol=4),
        "subprocess.Popen": pickle.dumps(_Call(subprocess.Popen, ["touch", str(marker)]), protocol=2),
        "posix.system": b"cposix\nsystem\n(V" + touch.encode() + b"\ntR.",
        "getattr-chain": b"cbuiltins\ngetattr\n(cnumpy\nndarray\nV__class__\ntR.",
        "codecs-then-eval": b"c_codecs\nencode\n(Vx\nVlatin1\ntRcbuiltins\neval\n(Vprint(1)\ntR.",
        # the only allowed module, with a name outside the allow-list
        "numpy.other": b"cnumpy\nfromfile\n(V/etc/passwd\ntR.",
    }


@pytest.mark.parametrize("name", list(_gadget_pickles(Path("x"))))
def test_code_execution_gadgets_are_refused_before_running(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "data_batch_1"
    path.write_bytes(_gadget_pickles(marker)[name])
    with pytest.raises(UserInputError, match="not a readable CIFAR pickle.*not allowed"):
        load_cifar_pickle(path)
    assert not marker.exists()


def test_numpy_object_array_trick_is_refused(tmp_path: Path) -> None:
    # An object array pickles its elements as further objects; numpy's own pickle of one names the same
    # allowed globals (_reconstruct, ndarray, dtype) and then smuggles a gadget as an element.
    marker = tmp_path / "pwned"
    import os

    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = 1, _Call(os.system, f"touch {marker}")
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": arr, b"labels": [0, 1]}, protocol=2))
    with pytest.raises(UserInputError, match="not allowed"):
        load_cifar_pickle(path)
    assert not marker.exists()
    # Even a harmless object array (ints only) is refused: the dtype check fires before any element.
    path.write_bytes(pickle.dumps({b"data": np.array([1, 2], dtype=object)}, protocol=2))
    with pytest.raises(UserInputError, match="dtype object"):
        load_cifar_pickle(path)


def test_absurd_claimed_sizes_do_not_allocate(tmp_path: Path) -> None:
    path = tmp_path / "test_batch"
    cases = {
        # BINBYTES8 claiming 10^12 bytes, then EOF
        "bytes": b"\x80\x04\x8e" + struct.pack("<Q", 10**12) + b"abc",
        # numpy _reconstruct of a 10^12-element object array (would be filled with None at once)
        "reconstruct": b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        b"J\x00\x10\xa5\xd4\xe8\x00\x00\x00\x85U\x01O\x87R.",
        # the same with a plain uint8 dtype and shape (10^12,)
        "reconstruct-u8": b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        b"\x8a\x05\x00\x10\xa5\xd4\xe8\x85U\x01B\x87R.",
    }
    for name, data in cases.items():
        path.write_bytes(data)
        tracemalloc.start()
        try:
            with pytest.raises(UserInputError):
                load_cifar_pickle(path)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 50 << 20, f"{name}: peak {peak} bytes"


def test_real_cifar_meta_still_loads(real_data: Path) -> None:
    meta = load_cifar_pickle(real_data / CIFAR10_META)
    assert [n.decode() for n in meta[b"label_names"]] == list(CLASSES)


def test_real_numpy_array_pickles_still_load(tmp_path: Path) -> None:
    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    for protocol in (2, 3, 4):  # the official files are protocol 2; numpy pickles 5 via _frombuffer
        path = tmp_path / f"b{protocol}"
        path.write_bytes(pickle.dumps({b"data": data, b"labels": [3, 4]}, protocol=protocol))
        assert np.array_equal(load_cifar_pickle(path)[b"data"], data)


# ----------------------------------------------------------------------------- checkpoints
def test_torch_pickle_checkpoint_is_refused_unless_trusted(tmp_path: Path) -> None:
    state = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(2)}
    for suffix in (".pt", ".safetensors"):  # refused by content, whatever the name says
        path = tmp_path / f"model{suffix}"
        torch.save(state, path)
        with pytest.raises(UserInputError, match="torch pickle checkpoint"):
            load_checkpoint(path)
    with pytest.raises(UserInputError, match="--trust-pickle"):
        load_torch_checkpoint(tmp_path / "model.pt")
    loaded = load_torch_checkpoint(tmp_path / "model.pt", trust=True)
    assert loaded.keys() == state.keys() and all(loaded[k].equal(state[k]) for k in state)
    # trusted or not, a pickle with a code gadget stays refused by torch's weights_only unpickler
    import os

    marker = tmp_path / "pwned"
    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump({"w": _Call(os.system, f"touch {marker}")}, fh)
    with pytest.raises(UserInputError, match="cannot load torch checkpoint"):
        load_torch_checkpoint(tmp_path / "evil.pt", trust=True)
    assert not marker.exists()
    # and a trusted conversion round-trips into a safetensors checkpoint
    save_checkpoint(tmp_path / "c.safetensors", loaded, {"from": "model.pt"})
    assert load_checkpoint(tmp_path / "c.safetensors")[1] == {"from": "model.pt"}


# ----------------------------------------------------------------------------- CIFAR10-DVS zips
def _zip_raw(real_data: Path, root: Path, per_class: int, hostile: bool = False) -> Path:
    """Per-class zips (``airplane.zip`` ...) of the real DVS128 recordings, as CIFAR10-DVS is distributed."""
    blobs = [(real_data / MNIST_DVS).read_bytes(), (real_data / FOAM).read_bytes()]
    root.mkdir(parents=True)
    for c, name in enumerate(CLASSES):
        with zipfile.ZipFile(root / f"{name}.zip", "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(f"{name}/", b"")  # a directory entry
            zf.writestr("__MACOSX/._junk.aedat", b"resource fork")
            for i in range(per_class):
                member = f"{name}/cifar10_{name}_{i}.aedat"
                if hostile and i == 0:
                    member = f"../../{name}_{i}.aedat"  # zip-slip name
                if hostile and i == 1:
                    member = f"/abs/{name}_{i}.aedat"
                zf.writestr(member, blobs[(c + i) % 2])
    return root


def test_zip_members_are_listed_in_name_order_without_junk(real_data: Path, tmp_path: Path) -> None:
    raw = _zip_raw(real_data, tmp_path / "raw", 3, hostile=True)
    members = zip_event_members(raw / "bird.zip")
    assert members == sorted(["../../bird_0.aedat", "/abs/bird_1.aedat", "bird/cifar10_bird_2.aedat"])
    sources = scan_event_dir(raw, CLASSES)
    assert len(sources) == 30 and [s.label for s in sources] == [c for c in range(10) for _ in range(3)]
    real = ((real_data / MNIST_DVS).read_bytes(), (real_data / FOAM).read_bytes())
    assert read_source_bytes(raw, sources[0].path) in real


@pytest.mark.filterwarnings("ignore:Duplicate name")  # the test appends a changed member on purpose
def test_preprocess_from_zips_equals_preprocess_from_folders_and_slip_names_are_inert(
    real_data: Path, tmp_path: Path
) -> None:
    zips = _zip_raw(real_data, tmp_path / "work" / "zips", 2, hostile=True)
    folders = tmp_path / "work" / "folders"
    for name in CLASSES:  # the same bytes, unpacked by us, in the same member order
        (folders / name).mkdir(parents=True)
        with zipfile.ZipFile(zips / f"{name}.zip") as zf:
            for k, member in enumerate(zip_event_members(zips / f"{name}.zip")):
                (folders / name / f"{k:02d}.aedat").write_bytes(zf.read(member))
    before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    result = cli(["preprocess", "cifar10dvs", "--raw", str(zips), "--out", str(tmp_path / "z.zarr"),
                  "--frames", "4", "--size", "32", "--no-progress"], tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-1500:]
    after = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    created = {a.split("/")[0] for a in set(after) - set(before)}
    assert created <= {"z.zarr", "data", "logs"}, created  # nothing written where a member name points
    assert not (tmp_path.parent / "bird_0.aedat").exists() and not Path("/abs").exists()
    preprocess_cifar10dvs(folders, frames=4, size=32, out=tmp_path / "f.zarr")
    import zarr

    a = zarr.open_array(str(tmp_path / "z.zarr"), path="frames", mode="r")[:]
    b = zarr.open_array(str(tmp_path / "f.zarr"), path="frames", mode="r")[:]
    assert np.array_equal(a, b) and a.sum() > 0
    za, fa = read_attrs(tmp_path / "z.zarr"), read_attrs(tmp_path / "f.zarr")
    assert za["scale"] == fa["scale"] and za["splits"] == fa["splits"]
    assert verify_store(tmp_path / "z.zarr", raw_dir=zips) == []
    # a changed member is caught by verify through the archive
    with zipfile.ZipFile(zips / "cat.zip", "a") as zf:
        zf.writestr("/abs/cat_1.aedat", b"#!AER-DAT2.0\r\n")  # duplicate name: the later one wins
    assert any("cat.zip" in p for p in verify_store(tmp_path / "z.zarr", raw_dir=zips))


def test_zip_bomb_and_corrupt_zip_are_user_errors(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    with zipfile.ZipFile(raw / "a.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/big.aedat", b"\0" * (4 << 20))  # 4 MB of zeros -> a few KB compressed
    with pytest.raises(UserInputError, match="claims"):
        read_source_bytes(raw, "a.zip::a/big.aedat", max_bytes=1 << 20)
    with pytest.raises(UserInputError, match="no such member"):
        read_source_bytes(raw, "a.zip::a/none.aedat")
    good = (raw / "a.zip").read_bytes()
    (raw / "b.zip").write_bytes(good[: len(good) // 2])
    with pytest.raises(UserInputError, match="not a readable zip"):
        zip_event_members(raw / "b.zip")
    (raw / "c.zip").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    with pytest.raises(UserInputError):
        scan_event_dir(raw, ("c",))


def test_unreadable_member_fails_one_line_or_is_skipped(real_data: Path, tmp_path: Path) -> None:
    raw = _zip_raw(real_data, tmp_path / "raw", 2)
    with zipfile.ZipFile(raw / "dog.zip", "w") as zf:  # replace dog.zip: one good, one garbage member
        zf.writestr("dog/a.aedat", (real_data / MNIST_DVS).read_bytes())
        zf.writestr("dog/b.aedat", b"#!AER-DAT2.0\r\n" + b"\x01\x02\x03")
    args = ["preprocess", "cifar10dvs", "--raw", str(raw), "--frames", "2", "--size", "16", "--no-progress"]
    fail = cli([*args, "--out", str(tmp_path / "s.zarr")], tmp_path)
    assert fail.returncode == 2 and "dog.zip::dog/b.aedat" in one_error_line(fail.stderr)
    ok = cli([*args, "--out", str(tmp_path / "s.zarr"), "--on-error", "skip"], tmp_path)
    assert ok.returncode == 0, ok.stderr[-1000:]
    skipped = read_attrs(tmp_path / "s.zarr")["skipped"]
    assert [s["source"] for s in skipped] == ["dog.zip::dog/b.aedat"]
    shutil.rmtree(tmp_path / "s.zarr")
