"""Resource faults: a full disk (real tmpfs when mountable, RLIMIT_FSIZE in a subprocess, an injected ENOSPC)
and permission errors during preprocessing and checkpointing give one clear error line, and the previous
good state stays intact (the store resumes to the same bytes; the old checkpoint still loads)."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from reliability_helpers import cli, cli_env, make_raw_dir, one_error_line, tree_digest

import evrobust.preprocess.store as store_module
from evrobust.checkpoint import load_checkpoint, save_checkpoint
from evrobust.errors import UserInputError
from evrobust.pipelines.preprocess import preprocess_cifar10dvs

SMALL = ["--frames", "4", "--size", "32", "--no-progress"]


def test_injected_enospc_mid_store_then_resume_is_byte_identical(
    real_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = make_raw_dir(real_data, tmp_path / "raw", per_class=3)
    ref = tmp_path / "ref.zarr"
    preprocess_cifar10dvs(raw, frames=4, size=32, out=ref)
    real_write = os.write
    calls = {"n": 0}

    def failing_write(fd: int, data: bytes | memoryview) -> int:
        calls["n"] += 1
        if calls["n"] > 25:  # the disk fills up after 25 chunk writes
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(store_module.os, "write", failing_write)
    out = tmp_path / "s.zarr"
    with pytest.raises(UserInputError, match="No space left on device.*rerun the same command") as info:
        preprocess_cifar10dvs(raw, frames=4, size=32, out=out)
    assert "\n" not in str(info.value)
    monkeypatch.setattr(store_module.os, "write", real_write)
    assert not list(out.rglob(".c.*.tmp")), "a failed chunk write left its temporary file"
    assert 0 < int((store_module.done_flags(out) == 1).sum()) < 30  # the good part survived
    preprocess_cifar10dvs(raw, frames=4, size=32, out=out)  # space is back: resume
    assert tree_digest(out) == tree_digest(ref)


@pytest.fixture
def small_tmpfs() -> Iterator[Path]:
    """A 300 KiB tmpfs (real ENOSPC); skipped where mounting is not allowed (non-root, no CAP_SYS_ADMIN)."""
    mount = Path(tempfile.mkdtemp(prefix="evrobust-tmpfs-"))
    try:
        cmd = ["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mount)]
        done = subprocess.run(cmd, capture_output=True)
        ok, why = done.returncode == 0, done.stderr.decode().strip()[:80]
    except OSError as exc:
        ok, why = False, str(exc)
    if not ok:
        mount.rmdir()
        pytest.skip(f"cannot mount a tmpfs here ({why}); the injected-ENOSPC test covers this")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)
        mount.rmdir()


def test_real_full_disk_during_preprocess_is_one_line_and_resumable(
    real_data: Path, tmp_path: Path, small_tmpfs: Path
) -> None:
    raw = make_raw_dir(real_data, tmp_path / "raw", per_class=12)
    out = small_tmpfs / "s.zarr"
    args = ["preprocess", "cifar10dvs", "--raw", str(raw), "--frames", "10", "--size", "48", "--no-progress"]
    full = cli([*args, "--out", str(out)], tmp_path)
    assert full.returncode == 2, full.stderr[-1500:]
    assert "No space left on device" in one_error_line(full.stderr)
    written = int((store_module.done_flags(out) == 1).sum())
    # every sample flagged done decodes (nothing half-written was flagged)
    import zarr

    frames = zarr.open_array(str(out), path="frames", mode="r")
    for i in np.flatnonzero(store_module.done_flags(out) == 1):
        frames[int(i)]
    moved = tmp_path / "s.zarr"
    shutil.copytree(out, moved, symlinks=True)  # "more space": continue the same store elsewhere
    again = cli([*args, "--out", str(moved)], tmp_path)
    assert again.returncode == 0, again.stderr[-1500:]
    ref = tmp_path / "ref.zarr"
    assert cli([*args, "--out", str(ref)], tmp_path).returncode == 0
    assert tree_digest(moved) == tree_digest(ref)
    assert written < 120


CHECKPOINT_UNDER_FSIZE = """
import resource, signal, sys, torch
from pathlib import Path
from evrobust.errors import UserInputError
from evrobust.pipelines.train.checkpoints import save_or_explain
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))
try:
    save_or_explain(Path(sys.argv[1]), {"w": torch.ones(100_000)}, {"epoch": 2})
except UserInputError as exc:
    print(exc)
    sys.exit(2)
"""


def test_checkpoint_on_a_full_disk_keeps_the_previous_one(tmp_path: Path) -> None:
    # The training pipeline's checkpoint writer under RLIMIT_FSIZE (the kernel's EFBIG, as on a full quota);
    # save_checkpoint itself raises the OSError, the pipeline words it as one line.
    path = tmp_path / "run" / "checkpoint-last.safetensors"
    save_checkpoint(path, {"w": torch.zeros(10)}, {"epoch": 1})
    before = path.read_bytes()
    result = subprocess.run([sys.executable, "-c", CHECKPOINT_UNDER_FSIZE, str(path)], capture_output=True,
                            text=True, env=cli_env(tmp_path), timeout=120)  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and "File too large" in lines[0] and "previous checkpoint is intact" in lines[0]
    assert path.read_bytes() == before
    tensors, meta = load_checkpoint(path)
    assert meta == {"epoch": 1} and tensors["w"].equal(torch.zeros(10))
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    """A world-readable scratch dir for a process that runs as user nobody (root bypasses permissions)."""
    d = Path(tempfile.mkdtemp(prefix="evrobust-perm-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _as_unprivileged(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    """Run ``evrobust ARGS`` as a user without write permission (as nobody when we are root)."""
    kw: dict[str, object] = {"user": 65534, "group": 65534} if os.geteuid() == 0 else {}
    env = cli_env(tmp)
    env["HOME"] = str(tmp)
    try:
        return subprocess.run(
            [sys.executable, "-c", "from evrobust.pipelines.cli.app import main; main()", *args],
            env=env, capture_output=True, text=True, timeout=300, **kw,  # type: ignore[arg-type]
        )  # fmt: skip
    except PermissionError as exc:
        pytest.skip(
            f"running as root and user nobody cannot run {sys.executable} ({exc.strerror}); root bypasses "
            "file permissions, so the injected-EACCES test covers this case"
        )


def test_read_only_output_dirs_are_one_line_errors(nobody_dir: Path) -> None:
    readonly = nobody_dir / "ro"
    readonly.mkdir(mode=0o555)
    readonly.chmod(0o555)
    logs = nobody_dir / "logs"
    logs.mkdir(mode=0o777)
    logs.chmod(0o777)
    result = _as_unprivileged(["preprocess", "digits", "--out", str(readonly / "d.zarr")], nobody_dir)
    assert result.returncode == 2, result.stderr[-1500:]
    assert "Permission denied" in one_error_line(result.stderr)
    assert list(readonly.iterdir()) == []


def test_read_only_store_dir_after_creation_keeps_written_samples(nobody_dir: Path) -> None:
    # The store exists (made by someone else) and its chunk folders are read-only for this user: the build
    # stops at the first chunk with one line, and nothing in the store changes.
    from evrobust.preprocess.embedded import build_digits

    out = nobody_dir / "d.zarr"
    build_digits(out)
    flag = out / "done" / "c.5"  # the store is complete: make one sample pending again
    flag.write_bytes(b"\x00")
    before = tree_digest(out)
    for sub in out.iterdir():
        if sub.is_dir():
            sub.chmod(0o555)
    nobody_dir.chmod(0o777)  # the lock file beside the store can be made
    result = _as_unprivileged(["preprocess", "digits", "--out", str(out)], nobody_dir)
    assert result.returncode == 2, result.stderr[-1500:]
    line = one_error_line(result.stderr)
    assert "Permission denied" in line and "rerun" in line
    assert tree_digest(out) == before


def test_injected_eacces_on_chunks_is_one_line_and_nothing_changes(
    real_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Runs as any user (root included): the chunk files' open() fails with EACCES as it would for a user
    # without write permission on the store's folders.
    raw = make_raw_dir(real_data, tmp_path / "raw", per_class=2)
    out = tmp_path / "s.zarr"
    preprocess_cifar10dvs(raw, frames=4, size=32, out=out)
    (out / "done" / "c.3").write_bytes(b"\x00")  # one sample pending again
    before = tree_digest(out)
    real_open = os.open

    def denied(path: str | os.PathLike[str], flags: int, mode: int = 0o777) -> int:
        if flags & os.O_WRONLY and Path(path).name.startswith(".c."):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, mode)

    monkeypatch.setattr(store_module.os, "open", denied)
    with pytest.raises(UserInputError, match="Permission denied.*fix the permissions") as info:
        preprocess_cifar10dvs(raw, frames=4, size=32, out=out)
    assert "\n" not in str(info.value)
    assert tree_digest(out) == before
