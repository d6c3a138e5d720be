"""The exclusive-writer lock is keyed by the real path (a symlink is the same target), nothing is deleted
through a symlink, and no empty lock file is left behind when the lock cannot be written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from reliability_helpers import run_bounded

from evrobust.errors import UserInputError
from evrobust.preprocess.locks import LockedError, acquire, exclusive, lock_path


def test_a_symlink_to_a_locked_target_is_the_same_target(tmp_path: Path) -> None:
    real = tmp_path / "out" / "cc5"
    real.mkdir(parents=True)
    link = tmp_path / "out" / "cc5link"
    link.symlink_to(real)
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "via").symlink_to(tmp_path / "out")  # a symlinked parent reaches the same run too
    assert lock_path(link) == lock_path(real) == lock_path(other / "via" / "cc5")
    with exclusive(real, "first"):
        for alias in (link, other / "via" / "cc5", other / "via" / "cc5link"):
            with pytest.raises(LockedError, match="is being written by pid"):
                acquire(alias, "second")
    with exclusive(link, "first"):  # and the other way round
        with pytest.raises(LockedError):
            acquire(real, "second")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cc5", "cc5link"]  # no lock file left


def test_a_not_yet_existing_target_under_a_symlinked_parent(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    with exclusive(tmp_path / "alias" / "new.zarr"):
        assert (tmp_path / "real" / ".new.zarr.lock").is_file()
        with pytest.raises(LockedError):
            acquire(tmp_path / "real" / "new.zarr")


def test_train_through_a_symlinked_out_is_refused_while_the_real_one_is_written(tmp_path: Path) -> None:
    from evrobust.pipelines.train.config import TrainConfig
    from evrobust.pipelines.train.pipeline import Trainer

    real = tmp_path / "runs" / "cc5"
    real.mkdir(parents=True)
    (tmp_path / "runs" / "cc5link").symlink_to(real)
    config = TrainConfig(
        data="digits", data_dir=str(tmp_path / "data"), model="vgg_small", width=0.25, T=1, epochs=1,
        limit_train=32, limit_val=32, out=str(tmp_path / "runs" / "cc5link"), progress=False,
    )  # fmt: skip
    with exclusive(real, "evrobust train"):
        with pytest.raises(LockedError, match="cc5link is being written"):
            Trainer(config)
    assert list(real.iterdir()) == []  # the refused writer wrote nothing


def test_a_new_store_behind_a_symlink_is_created_in_the_real_directory(tmp_path: Path) -> None:
    from evrobust.preprocess.store import create_store, read_attrs

    real = tmp_path / "real.zarr"
    real.mkdir()
    link = tmp_path / "link.zarr"
    link.symlink_to(real)
    create_store(
        link, dataset="x", kind="images", sample_shape=(1, 2, 2), labels=np.zeros(2, np.int64),
        classes=["a"], splits={"s": {"train": [0], "test": [1]}}, default_split="s", split_rule="r",
        sources=["a"],
    )  # fmt: skip
    assert link.is_symlink() and os.readlink(link) == str(real)  # the link itself was not replaced
    assert read_attrs(real)["dataset"] == "x" and (real / "frames").is_dir()


_FULL_LOCK = """
import json, resource, signal
from evrobust.errors import UserInputError
from evrobust.preprocess.locks import acquire
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # writes past the limit fail with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # nothing may be written: the lock record cannot be
try:
    acquire({target!r}, "test")
    print(json.dumps({{"ok": True}}))
except UserInputError as exc:
    print(json.dumps({{"error": str(exc)}}))
"""


def test_a_lock_that_cannot_be_written_is_one_line_and_leaves_no_empty_file(tmp_path: Path) -> None:
    target = tmp_path / "store.zarr"
    proc = run_bounded(_FULL_LOCK.format(target=str(target)), tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "cannot write the lock file" in result["error"] and "File too large" in result["error"], result
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no .store.zarr.lock


def test_a_file_where_a_directory_is_expected(tmp_path: Path) -> None:
    (tmp_path / "passwd").write_text("root:x:0:0\n")
    with pytest.raises(UserInputError, match=r"cannot create the lock file .*is a file, not a directory"):
        acquire(tmp_path / "passwd" / "x")
    assert (tmp_path / "passwd").read_text() == "root:x:0:0\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_parent_is_one_line(tmp_path: Path) -> None:  # pragma: no cover - root in CI
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(UserInputError, match="Permission denied"):
            acquire(ro / "store.zarr")
    finally:
        ro.chmod(0o755)
