"""Atomic file writes shared by every writer in evrobust (torch-free, so ``evrobust.preprocess`` may use it).

The target must be a regular file or absent: a link, FIFO or directory standing there is refused
(:func:`evrobust.safeio.files.check_write_target`), and the temporary file is created with ``O_EXCL |
O_NOFOLLOW``.

A write goes to a temporary file in the target's directory, is flushed and fsynced, then renamed over the
target with :func:`os.replace`, and the directory is fsynced so the rename itself survives a crash. A killed
process or a full disk therefore leaves either the old file or the new one, never a torn one, and the
temporary file is removed on any failure.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from evrobust.safeio.files import check_write_target, open_new

__all__ = ["fsync_directory", "write_bytes_atomic", "write_text_atomic"]


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Persist a rename in ``directory`` (POSIX); silently skipped where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path.

    The file gets the usual permissions (0o666 minus the umask), unlike :func:`tempfile.mkstemp`'s 0o600.
    An :class:`OSError` (ENOSPC, EFBIG, EACCES, ...) propagates unchanged after the temporary file is removed;
    the previous version of ``path`` is intact. Callers that face users turn it into one line. A link or
    anything but a regular file at ``path`` is an :class:`~evrobust.safeio.files.UnsafeFileError`.
    """
    path = Path(path)
    check_write_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fh = open_new(tmp, 0o666)
    try:
        with fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Also on KeyboardInterrupt: never leave a half-written temporary file behind.
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    return path


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, for writers that face users.

    An OSError (ENOSPC, EACCES, ...) becomes a one-line UserInputError; the previous version is intact.
    """
    from evrobust.errors import UserInputError

    try:
        write_bytes_atomic(path, text.encode("utf-8"))
    except OSError as exc:
        raise UserInputError(
            f"cannot write {path} ({exc.strerror or exc}); the previous version is intact; "
            "check free space and permissions"
        ) from None
