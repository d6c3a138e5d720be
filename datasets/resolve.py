"""Turn a ``--data`` value into a store path: embedded names are built on first use, others must exist."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evrobust.datasets.specs import SPECS, default_store_path, get_spec
from evrobust.errors import UserInputError
from evrobust.preprocess.store import read_attrs
from evrobust.safeio import open_lock_file, remove_file

logger = logging.getLogger(__name__)


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """An exclusive advisory file lock (POSIX ``flock``; no locking where it is unavailable)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    fd = open_lock_file(lock_path)  # O_NOFOLLOW: a link planted at the lock's path is refused
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            # Leave no empty lock file behind; a waiter that opened it before the removal re-checks the
            # store after it gets the (orphaned) lock and finds it complete.
            try:
                if os.lstat(lock_path).st_ino == os.fstat(fd).st_ino:
                    remove_file(lock_path)
            except (OSError, UserInputError):
                pass
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _complete(path: Path) -> bool:
    try:
        return bool(read_attrs(path).get("complete"))
    except UserInputError:
        return False


def resolve_data(data: str, data_dir: str | Path | None = None) -> Path:
    """The store path for ``data``.

    * ``digits``, ``digits-dvs`` (embedded): ``<data dir>/<name>.zarr``, built there on first use (an
      interrupted build resumes).
    * ``cifar10``, ``cifar100``, ``cifar10dvs``: ``<data dir>/<name>.zarr``; if it is not there (complete),
      a UserInputError names the ``evrobust preprocess`` command that builds it.
    * anything else: a path to a store.

    The data dir is ``data_dir``, else ``$EVROBUST_DATA``, else ``./data``.
    """
    if data in SPECS:
        spec = get_spec(data)
        path = default_store_path(data, data_dir)
        if _complete(path):
            return path
        if spec.embedded:
            from evrobust.preprocess.embedded import build_embedded  # the builder runs only on first use

            try:
                if path.parent.exists() and not path.parent.is_dir():
                    raise NotADirectoryError(errno.ENOTDIR, "a file, not a directory")
                path.parent.mkdir(parents=True, exist_ok=True)
                # Several processes (torchrun ranks) may resolve the same name at once: one builds, the
                # others wait on the lock and then find the store complete.
                with _exclusive(path.with_name(path.name + ".lock")):
                    if not _complete(path):
                        build_embedded(data, path)
            except OSError as exc:
                raise UserInputError(
                    f"the data directory {path.parent} cannot be used ({exc.strerror or exc}); pass "
                    "--data-dir naming a writable directory"
                ) from None
            return path
        where = "" if data_dir is None else f" --data-dir {data_dir}"
        state = "is incomplete" if path.exists() else "does not exist"
        raise UserInputError(f"the {data} store {path} {state}; build it with `{spec.build_hint}{where}`")
    path = Path(data)
    if not path.exists():
        raise UserInputError(
            f"--data {data!r} is neither a known dataset ({', '.join(SPECS)}) nor an existing store path"
        )
    read_attrs(path)  # raises a UserInputError when it is not a store
    return path
