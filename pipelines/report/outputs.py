"""What ``evrobust report`` owns in its output directory: the manifest of the files it wrote.

A report writes ``report.md`` and its ``plot-*.png`` figures into one directory that may hold other things too
(the run itself, when a report is written into a run directory; a user's own files). It records the names it
wrote in ``.report-manifest.json`` (kind ``report_manifest``,
:class:`evrobust.safeio.schemas.files.ReportManifest`) and, on the next report into that directory, removes
only what the previous manifest lists and this report did not write again: a figure that is no longer drawn
goes, a file the report never wrote (a user's ``plot-x.png``) stays.

A manifest entry is a plain file name inside the directory (the schema refuses ``../x``, ``/etc/passwd``,
``.``); a damaged or hostile manifest is ignored with a warning, and nothing is removed. An entry whose path
is now a link, a FIFO or a directory is skipped with a warning, never followed or emptied
(:func:`evrobust.safeio.remove_file` refuses it again, should it be swapped in after the check).

:class:`OutputRecord` keeps the manifest true even when a report fails halfway: what was written before the
failure is added to the previous manifest, so the next report can still clean it up.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from evrobust.errors import UserInputError

log = logging.getLogger(__name__)

__all__ = [
    "MANIFEST_FILE", "MANIFEST_VERSION", "OutputRecord", "read_manifest", "remove_stale", "write_manifest",
]

MANIFEST_FILE = ".report-manifest.json"
MANIFEST_VERSION = 1


def _plain(name: str) -> bool:
    """A file name inside the directory (the schema checks the same; checked again before any removal)."""
    return name not in ("", ".", "..") and "/" not in name and "\\" not in name and "\x00" not in name


def read_manifest(directory: Path) -> list[str]:
    """The names the previous report's manifest lists; empty without one, or when it cannot be trusted.

    A manifest that is a link, not JSON, or not a valid ``report_manifest`` document is ignored with one
    warning: removing nothing is always safe, removing what a hostile manifest names is not.
    """
    from evrobust.safeio import read_json

    path = directory / MANIFEST_FILE
    if not os.path.lexists(path):
        return []
    try:
        document = read_json(path, "report_manifest")
    except UserInputError as exc:
        log.warning("ignoring %s: %s; no earlier report output is removed", path, " ".join(str(exc).split()))
        return []
    return [name for name in document["files"] if _plain(name)]


def write_manifest(directory: Path, names: Iterable[str]) -> None:
    """Write the manifest of ``names`` (sorted, unique) atomically; never through a link."""
    from evrobust.safeio import write_text_atomic
    from evrobust.safeio.schemas.files import MANIFEST_FORMAT

    document = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "files": sorted(set(names))}
    write_text_atomic(directory / MANIFEST_FILE, json.dumps(document, indent=1) + "\n")


def remove_stale(directory: Path, names: Iterable[str]) -> list[str]:
    """Remove the regular files ``names`` (plain names) from ``directory``; return those removed.

    Missing files are skipped quietly; a link or anything but a regular file is skipped with a warning and
    left as it is.
    """
    from evrobust.safeio import remove_file
    from evrobust.safeio.files import describe_mode

    removed = []
    for name in sorted(set(names)):
        if not _plain(name):
            log.warning("not removing %r: not a plain file name inside %s", name, directory)
            continue
        path = directory / name
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("not removing %s: %s", path, exc.strerror or exc)
            continue
        if not stat.S_ISREG(mode):
            log.warning("not removing %s: it is %s, not a file a report wrote", path, describe_mode(mode))
            continue
        try:
            if remove_file(path):
                removed.append(name)
        except UserInputError as exc:  # swapped for a link after the lstat: left alone
            log.warning("not removing %s: %s", path, " ".join(str(exc).split()))
    if removed:
        log.info("removed %d file(s) an earlier report wrote into %s: %s", len(removed), directory,
                 ", ".join(removed))
    return removed


class OutputRecord:
    """The files one report writes into its directory, and the manifest bookkeeping around them.

    Use :meth:`add` for every file written; :meth:`commit` after the report is complete (manifest of what was
    written, stale files removed); :meth:`abandon` when it failed (the previous manifest plus what was
    written, nothing removed).
    """

    def __init__(self, directory: Path) -> None:
        """Read the previous manifest of ``directory``.

        Raises:
            UnsafeFileError: a link, FIFO or directory stands at the manifest's path. The report could not
                write its manifest there at the end (it never writes through a link), so it stops before doing
                any work, with one line naming the path.
        """
        from evrobust.safeio import check_write_target

        self.directory = directory
        check_write_target(directory / MANIFEST_FILE)
        self.previous = read_manifest(directory)
        self.written: list[str] = []

    def add(self, path: str | os.PathLike[str]) -> None:
        """Record a file the report wrote; one outside the directory is not the manifest's business."""
        path = Path(path)
        if path.parent.resolve() == self.directory.resolve():
            self.written.append(path.name)

    def commit(self) -> list[str]:
        """Record what was written, then remove what the previous report wrote and this one did not.

        The manifest first lists both (a crash during the removals leaves them listed, so the next report
        removes them), then only what this report wrote. Returns the names removed.
        """
        stale = sorted(set(self.previous) - set(self.written))
        if stale:
            write_manifest(self.directory, [*self.previous, *self.written])
        removed = remove_stale(self.directory, stale)
        write_manifest(self.directory, self.written)
        return removed

    def abandon(self) -> None:
        """After a failure: keep track of what was written (nothing is removed); never raises."""
        new = set(self.written) - set(self.previous)
        if not new:
            return
        with contextlib.suppress(UserInputError, OSError):
            write_manifest(self.directory, [*self.previous, *self.written])
