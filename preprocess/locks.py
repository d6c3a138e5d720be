"""Exclusive-writer locks for stores and run directories (torch-free; used by preprocess and pipelines).

One writer at a time may build a store, train into a run directory or write a run's attack results. The lock
is a small file *beside* the target (``<parent>/.<name>.lock``), so that a store or run directory never holds
a foreign file (its byte-for-byte contents stay those of the data), and a directory left half-created by a
killed writer is not mistaken for "non-empty".

Mechanism: ``fcntl.flock(LOCK_EX | LOCK_NB)`` on the lock file. The kernel drops a flock when its holder dies
(SIGKILL included), so a lock left by a killed process is never stuck: the next writer takes it over and logs
the previous holder it replaced. The file records the holder (pid, host, start time) as JSON, so a refused
writer names who holds the target. Where flock is unavailable (some network file systems report ENOLCK), the
lock falls back to the recorded pid: a holder on this host whose pid is no longer alive is stale and taken
over; a holder on another host is trusted (we cannot see its processes).

Release unlinks the file while still holding the flock. A writer that opened the old file before the unlink
would then hold a lock on an orphaned inode, so after locking we check that the path still names the inode
we locked, and retry if not.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from evrobust.errors import UserInputError
from evrobust.safeio import UnsafeFileError, cap, open_lock_file, parse_json
from evrobust.safeio.schemas import validate

logger = logging.getLogger(__name__)

try:  # POSIX; on Windows the pid-file fallback is used
    import fcntl
except ImportError:  # pragma: no cover - not on the platforms evrobust supports
    fcntl = None  # type: ignore[assignment]


class LockedError(UserInputError):
    """Another live process holds the lock of the target (the message names it: pid, host, start time)."""


def real_target(target: str | os.PathLike[str]) -> Path:
    """``target`` with every symbolic link resolved (the part that exists; the rest taken as written).

    Locks are keyed by this path: ``out/run`` and a symlink ``out/runlink -> run`` are one target, so two
    writers cannot both get in through different names.
    """
    return Path(os.path.realpath(Path(target).absolute()))


def lock_path(target: str | os.PathLike[str]) -> Path:
    """The lock file of ``target``: ``<real parent>/.<real name>.lock`` (see :func:`real_target`)."""
    target = real_target(target)
    return target.parent / f".{target.name}.lock"


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists on this host (``kill(pid, 0)``; EPERM means it exists)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _read_holder(fd: int) -> dict[str, Any]:
    """The holder record in an open lock file; {} when empty or invalid (it is then overwritten)."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, cap("lock"))
        if not raw.strip():
            return {}
        holder = parse_json(raw, "lock file")
        validate(holder, "lock", "lock file")
    except (OSError, UserInputError):
        return {}
    return holder


def describe_holder(holder: dict[str, Any]) -> str:
    """``pid 123 on host h since 2026-01-01T00:00:00+00:00`` (or what of it is known)."""
    if not holder:
        return "an unknown process"
    return (
        f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} "
        f"since {holder.get('started', '?')} ({holder.get('purpose', 'writer')})"
    )


class ExclusiveLock:
    """An acquired lock; :meth:`release` (or the :func:`exclusive` context) gives it back.

    Attributes:
        path: the lock file. target: what it protects. holder: the JSON record written into it.
        took_over: the record of a previous holder that had died, if any.
    """

    def __init__(self, target: Path, path: Path, fd: int, holder: dict[str, Any], took_over: dict[str, Any]):
        self.target = target
        self.path = path
        self._fd: int | None = fd
        self.holder = holder
        self.took_over = took_over

    @property
    def held(self) -> bool:
        """Whether this object still holds the lock."""
        return self._fd is not None

    def release(self) -> None:
        """Unlink the lock file and drop the lock (idempotent)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            # Unlink while still locked: nobody can lock this inode in between (see the module docstring).
            _unlink_if_same(self.path, fd)
        finally:
            os.close(fd)

    def __del__(self) -> None:  # a forgotten lock is released when its owner is collected
        try:
            self.release()
        except Exception:  # noqa: BLE001 - never raise from a finaliser
            pass

    def __enter__(self) -> ExclusiveLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire(target: str | os.PathLike[str], purpose: str = "writer") -> ExclusiveLock:
    """Take the exclusive lock of ``target`` (a store or run directory; need not exist yet).

    Args:
        target: the path being written.
        purpose: a few words recorded in the lock file and shown to a refused writer (``"evrobust train"``).

    Raises:
        LockedError: a live process holds it (one line naming pid, host and start time, and the fix).
        UserInputError: the lock file cannot be created (e.g. the parent directory is read-only).
    """
    target = Path(target).absolute()
    real = real_target(target)
    path = lock_path(real)
    if real != target:
        logger.debug("%s resolves to %s; locking the real path", target, real)
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "purpose": purpose,
        "target": str(target),
    }
    for _ in range(50):  # retries only when a releasing holder unlinks the file under us
        try:
            if path.parent.exists() and not path.parent.is_dir():  # --out /etc/passwd/x: a file as a folder
                raise NotADirectoryError(errno.ENOTDIR, f"{path.parent} is a file, not a directory")
            path.parent.mkdir(parents=True, exist_ok=True)
            # O_NOFOLLOW: a link planted at the lock's path is refused, never has its target truncated.
            fd = open_lock_file(path)
        except UnsafeFileError:
            raise
        except OSError as exc:
            raise UserInputError(
                f"cannot create the lock file {path} ({exc.strerror or exc}); "
                "check that its directory exists and is writable"
            ) from None
        try:
            previous = _read_holder(fd)
            if not _lock_fd(fd, previous):
                raise LockedError(
                    f"{target} is being written by {describe_holder(previous)}; wait for it to finish or "
                    f"stop it (a lock of a dead process is taken over automatically; lock file {path})"
                )
            try:
                same = os.lstat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the holder released (and unlinked) between our open and our lock: retry
                os.close(fd)
                time.sleep(0.01)
                continue
            took_over = previous if previous.get("pid") not in (None, me["pid"]) else {}
            if took_over:
                logger.warning("taking over the stale lock of %s on %s", describe_holder(took_over), target)
            try:
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                record = json.dumps(me).encode()
                if os.write(fd, record) != len(record):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                os.fsync(fd)
            except OSError as exc:
                # We hold the lock: remove the (empty or partial) file we could not fill, so no 0-byte
                # lock file is left behind, then say why in one line.
                _unlink_if_same(path, fd)
                raise UserInputError(
                    f"cannot write the lock file {path} ({exc.strerror or exc}); "
                    "free some space or fix the permissions, then rerun"
                ) from None
            return ExclusiveLock(target, path, fd, me, took_over)
        except BaseException:
            try:
                os.close(fd)
            except OSError:
                pass
            raise
    raise LockedError(f"{target}: the lock file {path} keeps changing; another writer is racing this one")


def _unlink_if_same(path: Path, fd: int) -> None:
    """Unlink ``path`` if it still names the inode open as ``fd`` (ours, locked; ``lstat``: never a link)."""
    try:
        if os.lstat(path).st_ino == os.fstat(fd).st_ino:
            os.unlink(path)
    except OSError:
        pass


def _lock_fd(fd: int, previous: dict[str, Any]) -> bool:
    """Try to lock ``fd``; False when a live holder has it."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
            logger.debug("flock unsupported on %s; using the pid record", fd)
    return not _holder_alive(previous)


def _holder_alive(holder: dict[str, Any]) -> bool:
    """Pid-file fallback: a holder on this host is alive iff its pid is; one on another host is trusted."""
    if not holder or holder.get("pid") == os.getpid():
        return False
    if holder.get("host") != socket.gethostname():
        return True
    pid = holder.get("pid")
    return isinstance(pid, int) and pid_alive(pid)


@contextmanager
def exclusive(target: str | os.PathLike[str], purpose: str = "writer") -> Iterator[ExclusiveLock]:
    """Hold the lock of ``target`` for the duration of a ``with`` block (see :func:`acquire`)."""
    lock = acquire(target, purpose)
    try:
        yield lock
    finally:
        lock.release()
