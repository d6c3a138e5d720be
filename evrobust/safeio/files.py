"""Opening files safely: regular files only, never through a link, never past a size cap.

Every file evrobust reads or writes is opened here (a lint test, ``tests/packaging/test_safeio_lint.py``,
fails on an ``open`` anywhere else). The rules:

* **Reads** refuse anything that is not a regular file before reading a byte: ``lstat`` the path (a symbolic
  link, FIFO, socket, device or directory is refused by name), open it with ``O_NOFOLLOW | O_NONBLOCK`` (a
  FIFO swapped in after the ``lstat`` cannot block the open), then ``fstat`` the open descriptor (what was
  opened is what is read). A file larger than its kind's cap (:mod:`evrobust.safeio.caps`) is refused, and a
  read never returns more than the cap even if the file grows meanwhile.
* **Creations** (locks, temporary files, downloads, extracted members) use ``O_CREAT | O_EXCL | O_NOFOLLOW``:
  a link planted where a new file will be created makes the creation fail instead of truncating the link's
  target.
* **Writes, appends and removals** refuse a path that is a link or not a regular file: evrobust never writes
  through, truncates, replaces or deletes a link.

Each refusal is an :class:`UnsafeFileError`, a :class:`~evrobust.errors.UserInputError` whose one line names
the path and what stands there. This module imports only the standard library (``evrobust.preprocess`` must
stay torch-free and fast to start).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from evrobust.errors import UserInputError
from evrobust.safeio.caps import cap

__all__ = [
    "UnsafeFileError",
    "check_regular",
    "check_write_target",
    "describe_mode",
    "open_append",
    "open_lock_file",
    "open_new",
    "open_read",
    "read_bytes",
    "read_text",
    "remove_file",
    "removing_on_error",
    "sha256_file",
]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class UnsafeFileError(UserInputError):
    """A path that evrobust refuses to read or write (a link, a FIFO, a directory, an oversized file)."""


def describe_mode(mode: int) -> str:
    """``"a symbolic link"``, ``"a FIFO"``, ... for a non-regular ``st_mode``; ``"a regular file"`` else."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a regular file"


def _not_regular(path: Path, mode: int, purpose: str) -> UnsafeFileError:
    return UnsafeFileError(
        f"{path} is {describe_mode(mode)}, not a regular file; evrobust {purpose} regular files only "
        "(never through a link): remove it or give another path"
    )


def _too_large(path: Path, size: int, kind: str) -> UnsafeFileError:
    return UnsafeFileError(
        f"{path} is {size:,} bytes, over the {cap(kind):,}-byte cap of a {kind.replace('_', ' ')} file; "
        "it is not a file evrobust wrote (see docs/reliability.md, size caps)"
    )


def _os_error(path: Path, exc: OSError, verb: str) -> UserInputError:
    if exc.errno == errno.ELOOP:
        return UnsafeFileError(
            f"{path} is a symbolic link; evrobust {verb}s regular files only (never through a link): "
            "remove it or give another path"
        )
    return UserInputError(f"cannot {verb} {path} ({exc.strerror or exc})")


def check_regular(
    path: str | os.PathLike[str], kind: str, *, missing_ok: bool = False
) -> os.stat_result | None:
    """``lstat`` ``path`` and refuse anything but a regular file within ``kind``'s cap.

    Returns:
        The stat result, or None when the path does not exist and ``missing_ok``.

    Raises:
        UnsafeFileError: a link, FIFO, directory, socket or device stands there, or the file is over the cap.
        UserInputError: it does not exist (unless ``missing_ok``) or cannot be stat'ed.
    """
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if missing_ok:
            return None
        raise UserInputError(f"{path} does not exist") from None
    except OSError as exc:
        raise _os_error(path, exc, "read") from None
    if not stat.S_ISREG(st.st_mode):
        raise _not_regular(path, st.st_mode, "reads")
    if st.st_size > cap(kind):
        raise _too_large(path, st.st_size, kind)
    return st


def open_read(path: str | os.PathLike[str], kind: str) -> BinaryIO:
    """Open a regular file of ``kind`` for reading in binary mode (the caller closes it).

    ``lstat``, then ``open(O_RDONLY | O_NOFOLLOW | O_NONBLOCK)``, then ``fstat`` of the descriptor: a FIFO or
    link swapped in between is refused, never blocked on or followed. ``O_NONBLOCK`` is cleared once the
    descriptor is known to be a regular file.

    Raises:
        UnsafeFileError / UserInputError: as :func:`check_regular`, or the open fails.
    """
    path = Path(path)
    check_regular(path, kind)
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC)
    except OSError as exc:
        raise _os_error(path, exc, "read") from None
    return os.fdopen(_checked_descriptor(fd, path, kind, "reads"), "rb")


def _checked_descriptor(fd: int, path: Path, kind: str | None, purpose: str) -> int:
    """``fstat`` the just-opened ``fd``: a regular file (within ``kind``'s cap) or it is closed and refused.

    What was opened is what is read or written, whatever stood at the path when it was ``lstat``-ed. The
    descriptor was opened with ``O_NONBLOCK`` (so a FIFO could not block the open); that is cleared here.
    """
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(path, st.st_mode, purpose)
        if kind is not None and st.st_size > cap(kind):
            raise _too_large(path, st.st_size, kind)
        if _NONBLOCK:
            os.set_blocking(fd, True)
        return fd
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: str | os.PathLike[str], kind: str) -> bytes:
    """The whole content of a regular file of ``kind``, never more than its cap (see :func:`open_read`)."""
    path = Path(path)
    limit = cap(kind)
    with open_read(path, kind) as fh:
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise _os_error(path, exc, "read") from None
    if len(data) > limit:  # it grew after the fstat
        raise _too_large(path, len(data), kind)
    return data


def read_text(path: str | os.PathLike[str], kind: str) -> str:
    """:func:`read_bytes` decoded as strict UTF-8 (invalid UTF-8 is one line naming the byte offset)."""
    data = read_bytes(path, kind)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserInputError(f"{path} is not UTF-8 text (invalid byte at offset {exc.start})") from None


def check_write_target(path: str | os.PathLike[str]) -> None:
    """Refuse to write ``path`` when something other than a regular file (or nothing) stands there.

    Raises:
        UnsafeFileError: a link (even one to a regular file), FIFO, directory, socket or device.
    """
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _os_error(path, exc, "write") from None
    if not stat.S_ISREG(st.st_mode):
        raise _not_regular(path, st.st_mode, "writes")


def open_new(path: str | os.PathLike[str], mode: int = 0o644) -> BinaryIO:
    """Create ``path`` (which must not exist) for writing: ``O_CREAT | O_EXCL | O_NOFOLLOW``.

    Raises:
        UnsafeFileError: a link stands at ``path`` (it is never followed).
        FileExistsError: a file stands there (the caller decides: a leftover temporary file, a race).
        OSError: any other failure to create it (ENOSPC, EACCES), unchanged for the caller.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, mode)
    except FileExistsError:
        if os.path.islink(path):
            raise _not_regular(path, stat.S_IFLNK, "writes") from None
        raise
    return os.fdopen(fd, "wb")


def open_append(path: str | os.PathLike[str], kind: str) -> BinaryIO:
    """Open a regular file for appending (created if missing), never through a link or into a FIFO.

    Raises:
        UnsafeFileError: a link, FIFO or directory stands there, or the file is already over ``kind``'s cap.
        UserInputError: it cannot be opened (permissions, a missing directory).
    """
    path = Path(path)
    check_write_target(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _NONBLOCK | _CLOEXEC, 0o644)
    except OSError as exc:
        raise _os_error(path, exc, "write") from None
    return os.fdopen(_checked_descriptor(fd, path, kind, "writes"), "ab")


def open_lock_file(path: str | os.PathLike[str]) -> int:
    """Open (creating if needed) a lock file read-write and return its descriptor.

    ``O_NOFOLLOW | O_NONBLOCK`` and an ``fstat``: a link planted at the lock's path is refused instead of
    having its target truncated, and a FIFO never blocks.

    Raises:
        UnsafeFileError: a link, FIFO or directory stands at ``path``.
        OSError: the file cannot be created (a read-only directory): the lock module says so in one line.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _NONBLOCK | _CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _os_error(path, exc, "write") from None
        if exc.errno in (errno.EISDIR, errno.ENXIO):  # a directory; a FIFO without a reader
            raise _not_regular(path, os.lstat(path).st_mode, "writes") from None
        raise
    return _checked_descriptor(fd, path, None, "writes")


def remove_file(path: str | os.PathLike[str]) -> bool:
    """Delete the regular file ``path``; False when nothing was there.

    Raises:
        UnsafeFileError: a link or anything but a regular file stands there (evrobust never deletes a link).
    """
    path = Path(path)
    check_write_target(path)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise _os_error(path, exc, "remove") from None
    return True


@contextlib.contextmanager
def removing_on_error(path: str | os.PathLike[str]) -> Iterator[None]:
    """Remove the regular file ``path`` if the block raises (a half-written output is never left behind)."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError, UserInputError):
            remove_file(path)
        raise


def sha256_file(path: str | os.PathLike[str], kind: str) -> str:
    """Hex sha256 of a regular file of ``kind``, streamed in 1 MiB blocks (see :func:`open_read`)."""
    import hashlib

    digest = hashlib.sha256()
    with open_read(path, kind) as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
