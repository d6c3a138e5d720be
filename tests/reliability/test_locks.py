"""Exclusive writers: a second writer of a store / run directory is refused with one line naming the
holder; a lock left by a killed holder is taken over, never stuck; the pid-record fallback (no flock)
behaves alike."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from reliability_helpers import cli, one_error_line

import evrobust.preprocess.locks as locks
from evrobust.errors import UserInputError
from evrobust.preprocess.locks import LockedError, acquire, exclusive, lock_path

HOLDER = """
import sys, time
from evrobust.preprocess.locks import acquire
lock = acquire(sys.argv[1], "test holder")
print("ready", flush=True)
time.sleep(120)
"""


def _hold(target: Path) -> subprocess.Popen[str]:
    """A separate process that takes the lock of ``target`` and sleeps (until it is killed)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(target)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_second_writer_in_this_process_is_refused_and_release_frees(tmp_path: Path) -> None:
    target = tmp_path / "store.zarr"
    with exclusive(target, "first") as lock:
        assert lock.held and lock_path(target).is_file()
        record = json.loads(lock_path(target).read_text())
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
        with pytest.raises(LockedError, match=rf"pid {os.getpid()} on host {socket.gethostname()}"):
            acquire(target, "second")
    assert not lock_path(target).exists()  # released and cleaned up
    assert not target.exists()  # locking never creates the target itself
    with exclusive(target):  # and it can be taken again
        pass


def test_cli_refuses_a_store_held_by_another_process_then_takes_over_after_kill(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = tmp_path / "digits.zarr"
    holder = _hold(store)
    try:
        result = cli(["preprocess", "digits", "--out", str(store)], tmp_path)
        assert result.returncode == 2
        line = one_error_line(result.stderr)
        assert f"pid {holder.pid} on host {socket.gethostname()}" in line and "since 20" in line
        assert not store.exists()
    finally:
        os.killpg(holder.pid, signal.SIGKILL)  # dies holding the lock: the kernel drops its flock
        holder.wait(10)
    assert lock_path(store).is_file()  # the stale lock file is still there ...
    with caplog.at_level(logging.WARNING, logger="evrobust.preprocess.locks"):
        with exclusive(store) as lock:  # ... and is taken over, naming the dead holder
            assert lock.took_over["pid"] == holder.pid
    assert "stale lock" in caplog.text and str(holder.pid) in caplog.text
    result = cli(["preprocess", "digits", "--out", str(store)], tmp_path)
    assert result.returncode == 0, result.stderr[-1000:]


def test_train_refuses_a_run_dir_held_by_another_process(tmp_path: Path) -> None:
    run = tmp_path / "run"
    holder = _hold(run)
    try:
        result = cli(
            ["train", "--data", "digits", "--model", "vgg_small", "--width", "0.25", "--T", "2",
             "--epochs", "1", "--limit-train", "64", "--limit-val", "32", "--device", "cpu",
             "--out", str(run)],
            tmp_path,
        )  # fmt: skip
        assert result.returncode == 2
        assert f"pid {holder.pid}" in one_error_line(result.stderr)
        assert not run.exists()
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(10)


def _no_flock(monkeypatch: pytest.MonkeyPatch) -> None:
    def flock(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(locks.fcntl, "flock", flock)


def test_pid_record_fallback_takes_over_dead_pids_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_flock(monkeypatch)
    target = tmp_path / "run"
    code = "import os; print(os.getpid())"
    dead = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # a pid that has exited (reuse within this test is vanishingly unlikely)
    host = socket.gethostname()
    record = {"pid": dead_pid, "host": host, "started": "2026-01-01T00:00:00+00:00", "purpose": "x"}
    lock_path(target).write_text(json.dumps(record))
    with exclusive(target) as lock:
        assert lock.took_over["pid"] == dead_pid
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock_path(target).write_text(json.dumps({**record, "pid": live.pid}))
        with pytest.raises(LockedError, match=f"pid {live.pid}"):
            acquire(target)
    finally:
        live.kill()
        live.wait()
    lock_path(target).write_text(json.dumps({**record, "host": "elsewhere.example"}))
    with pytest.raises(LockedError, match="elsewhere.example"):  # another host's pid cannot be checked
        acquire(target)


def test_garbled_lock_file_is_taken_over(tmp_path: Path) -> None:
    target = tmp_path / "s.zarr"
    lock_path(target).write_bytes(b"\x00\xff not json")
    with exclusive(target) as lock:
        assert lock.took_over == {}


def test_unwritable_lock_location_is_a_user_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserInputError, match="cannot create the lock file"):
        acquire(blocker / "sub" / "store.zarr")


def test_attack_of_a_run_is_exclusive_per_mode(tmp_path: Path) -> None:
    from evrobust.pipelines.attack.pipeline import run_attack

    run = tmp_path / "run"
    run.mkdir()
    with exclusive(run / "attack-whitebox", "other attack"):
        with pytest.raises(LockedError, match="other attack"):
            run_attack(run, attacks="clean", device="cpu")
