"""Raw datasets on first use: the official archives, downloaded resumably and MD5-checked before use.

``evrobust preprocess cifar10dvs|cifar10|cifar100`` without ``--raw`` reads ``<data dir>/raw/<name>/``
(:func:`ensure_raw`). What is missing there is fetched from the official source:

* CIFAR10-DVS: the ten per-class zips of the original AEDAT 2.0 release on figshare (the URLs and MD5s
  spikingjelly lists); they are read in place, member by member (never extracted).
* CIFAR-10 / CIFAR-100: the python-pickle ``.tar.gz`` archives from cs.toronto.edu with their published MD5s;
  the archive is extracted once, safely (:func:`evrobust.preprocess.extract.extract_tar`).

Download protocol (:func:`fetch`): the bytes go to ``<file>.part`` beside the target; a rerun, or a retry
after a dropped connection, continues it with an HTTP ``Range`` request (a server that ignores the range
answers 200 and the file restarts from zero). Only when the MD5 of the whole file matches is it renamed to
its final name, so a file under a final name is always complete and checked; a mismatch removes the
partial file. A file a person put there by hand is checked once too; the result is remembered in
``.verified.json`` (keyed by size and modification time) so later runs do not hash gigabytes again.

Every failure (no network, HTTP error, checksum mismatch, a data dir that is a file or not writable,
a corrupt archive) is one :class:`~evrobust.errors.UserInputError` line that says which files to put where.
No torch here (preprocessing never imports it).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from evrobust import __version__
from evrobust.errors import UserInputError
from evrobust.preprocess.extract import extract_tar
from evrobust.safeio import (
    UnsafeFileError,
    cap,
    check_regular,
    check_write_target,
    fsync_directory,
    open_append,
    open_lock_file,
    open_new,
    open_read,
    read_json,
    remove_file,
    write_bytes_atomic,
)

logger = logging.getLogger(__name__)

RAW_FOLDER = "raw"  # <data dir>/raw/<dataset>/ holds the raw files
PART_SUFFIX = ".part"
VERIFIED_FILE = ".verified.json"
CHUNK_BYTES = 1 << 20


DOWNLOAD_MARGIN = 1 << 20
"""Bytes a transfer may run past a resource's expected size before it is cut off (a server that pads)."""


@dataclass(frozen=True)
class Resource:
    """One official file: its name under the raw folder, where to get it, its published MD5 and size.

    ``size`` is the file's size in bytes where it is known (the CIFAR archives); a transfer is cut off at
    ``size + DOWNLOAD_MARGIN``. Where the publisher states none (the CIFAR10-DVS zips on figshare), the bound
    is the ``raw_archive`` size cap (:mod:`evrobust.safeio.caps`).
    """

    file: str
    url: str
    md5: str
    size: int | None = None

    @property
    def max_bytes(self) -> int:
        """The most bytes a download of this resource may bring."""
        return self.size + DOWNLOAD_MARGIN if self.size is not None else cap("raw_archive")


@dataclass(frozen=True)
class RawSource:
    """How a dataset's raw files are obtained.

    Attributes:
        name: the dataset name (``evrobust preprocess <name>``).
        resources: the files to download into ``<data dir>/raw/<name>/``.
        page: where a person can download them by hand (named in errors).
        extract: for a ``.tar.gz`` archive, the one top folder it holds (extracted beside it); ``None`` when
            the files are read in place (CIFAR10-DVS's per-class zips).
    """

    name: str
    resources: tuple[Resource, ...]
    page: str
    extract: str | None = None


_FIGSHARE = "https://ndownloader.figshare.com/files/"
# (class, figshare file id, MD5) of the original CIFAR10-DVS release, as spikingjelly's cifar10_dvs.py
# lists them.
_CIFAR10DVS_ZIPS = (
    ("airplane", 7712788, "0afd5c4bf9ae06af762a77b180354fdd"),
    ("automobile", 7712791, "8438dfeba3bc970c94962d995b1b9bdd"),
    ("bird", 7712794, "a9c207c91c55b9dc2002dc21c684d785"),
    ("cat", 7712812, "52c63c677c2b15fa5146a8daf4d56687"),
    ("deer", 7712815, "b6bf21f6c04d21ba4e23fc3e36c8a4a3"),
    ("dog", 7712818, "f379ebdf6703d16e0a690782e62639c3"),
    ("frog", 7712842, "cad6ed91214b1c7388a5f6ee56d08803"),
    ("horse", 7712851, "e7cbbf77bec584ffbf913f00e682782a"),
    ("ship", 7712836, "41c7bd7d6b251be82557c6cce9a7d5c9"),
    ("truck", 7712839, "89f3922fd147d9aeff89e76a2b0b70a7"),
)

RAW_SOURCES: dict[str, RawSource] = {
    "cifar10dvs": RawSource(
        "cifar10dvs",
        tuple(Resource(f"{c}.zip", f"{_FIGSHARE}{i}", md5) for c, i, md5 in _CIFAR10DVS_ZIPS),
        "https://figshare.com/articles/dataset/CIFAR10-DVS_New/4724671",
    ),
    "cifar10": RawSource(
        "cifar10",
        (
            Resource(
                "cifar-10-python.tar.gz",
                "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                "c58f30108f718f92721af3b95e74349a",
                170_498_071,
            ),
        ),
        "https://www.cs.toronto.edu/~kriz/cifar.html",
        extract="cifar-10-batches-py",
    ),
    "cifar100": RawSource(
        "cifar100",
        (
            Resource(
                "cifar-100-python.tar.gz",
                "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                "eb9058c3a382ffc7106e4002c42a8d85",
                169_001_437,
            ),
        ),
        "https://www.cs.toronto.edu/~kriz/cifar.html",
        extract="cifar-100-python",
    ),
}

# Progress hook: (file name, bytes done, total bytes or None).
ProgressHook = Callable[[str, int, int | None], None]


def raw_folder(name: str, data_dir: str | Path | None = None) -> Path:
    """``<data dir>/raw/<name>``; the data dir is ``data_dir``, else ``$EVROBUST_DATA``, else ``./data``."""
    # The rule of evrobust.datasets.specs.data_dir, restated: importing evrobust.datasets would load torch.
    if data_dir is None:
        data_dir = os.environ.get("EVROBUST_DATA") or "data"
    return Path(data_dir) / RAW_FOLDER / name


def get_raw_source(name: str) -> RawSource:
    """The download description of ``name`` (UserInputError naming the downloadable datasets otherwise)."""
    try:
        return RAW_SOURCES[name]
    except KeyError:
        raise UserInputError(
            f"{name!r} has no official download; choose one of {', '.join(RAW_SOURCES)}"
        ) from None


def manual_hint(source: RawSource, folder: Path, missing: list[Resource] | None = None) -> str:
    """``put a.zip, b.zip (from <page>) into <folder>/, or pass --raw DIR``: the manual way, one line."""
    files = missing if missing else list(source.resources)
    return f"put {', '.join(r.file for r in files)} (from {source.page}) into {folder}/, or pass --raw DIR"


def ready(source: RawSource, folder: Path) -> bool:
    """True when ``folder`` already holds what preprocessing reads, so nothing must be fetched or extracted.

    CIFAR10-DVS: every class as a folder (already extracted by hand) or as its zip. CIFAR: the extracted
    top folder.
    """
    if source.extract is not None:
        return (folder / source.extract).is_dir()
    return all((folder / r.file).is_file() or (folder / Path(r.file).stem).is_dir() for r in source.resources)


def ensure_raw(
    name: str,
    data_dir: str | Path | None = None,
    *,
    download: bool = True,
    progress: bool = False,
    timeout: float = 60.0,
    retries: int = 3,
    on_progress: ProgressHook | None = None,
) -> Path:
    """The raw directory of ``name`` under the data dir, fetched, checked and extracted as needed.

    Args:
        name: ``cifar10dvs``, ``cifar10`` or ``cifar100``.
        data_dir: the data directory (default ``$EVROBUST_DATA``, else ``./data``).
        download: fetch missing files; ``False`` (``--no-download``) stops with the manual hint instead.
        progress: draw a rich progress bar (bytes, MB/s) on stderr.
        timeout: seconds a connection may stall before it counts as dropped.
        retries: consecutive failed attempts (without new bytes) allowed per file before giving up.
        on_progress: extra hook called as bytes arrive (tests use it).

    Returns:
        The directory to pass to the preprocessing pipeline (``--raw``).

    Raises:
        UserInputError: the data dir is a file or not writable, files are missing and ``download`` is off,
            a download fails, a checksum does not match, or an archive is corrupt or unsafe.
    """
    source = get_raw_source(name)
    folder, missing = raw_status(name, data_dir, download=download)
    if not missing and ready(source, folder) and _present_verified(source, folder):
        return folder
    with _progress_bar(progress) as bar_hook:
        hook = _chain(bar_hook, on_progress)
        for resource in missing:
            fetch(
                resource,
                folder / resource.file,
                on_progress=hook,
                timeout=timeout,
                retries=retries,
                hint=manual_hint(source, folder, missing),
            )
            _remember(folder, resource)
    _present_verified(source, folder)
    if source.extract is not None and not (folder / source.extract).is_dir():
        _make_writable_folder(folder)
        extract_tar(folder / source.resources[0].file, folder, source.extract)
    return folder


def raw_status(
    name: str, data_dir: str | Path | None = None, *, download: bool = True
) -> tuple[Path, list[Resource]]:
    """The raw folder of ``name`` and the official files that must still be downloaded into it.

    Cheap (no hashing, no network): the CLI calls it to report where the files go before a long download.
    When files are missing, the folder is created (empty) and checked to be writable.

    Raises:
        UserInputError: the data dir (or a parent) is a file, files are missing and ``download`` is off, or
            the folder cannot be written.
    """
    source = get_raw_source(name)
    folder = raw_folder(name, data_dir)
    _check_folder(folder)
    if ready(source, folder):
        return folder, []
    missing = [
        r
        for r in source.resources
        if not (folder / r.file).is_file()
        and not (source.extract is None and (folder / Path(r.file).stem).is_dir())
    ]
    if missing and not download:
        raise UserInputError(
            f"the {name} raw files are not in {folder} and --no-download was given; "
            + manual_hint(source, folder, missing)
        )
    if missing:
        _make_writable_folder(folder)
    return folder, missing


def _check_folder(folder: Path) -> None:
    """UserInputError when the data dir or the raw folder (or a parent) exists but is not a directory."""
    for path in (folder, *folder.parents):
        if path.exists() and not path.is_dir():
            raise UserInputError(f"{path} is a file, not a directory; give --data-dir a directory")
        if path.is_dir():
            return


def _make_writable_folder(folder: Path) -> None:
    """Create ``folder`` and check that files can be created in it (one line naming it otherwise)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}-{secrets.token_hex(4)}"
        open_new(probe).close()
        remove_file(probe)
    except OSError as exc:
        raise UserInputError(
            f"cannot write to the data directory {folder} ({exc.strerror or exc}); "
            "choose another --data-dir or fix its permissions"
        ) from None


def md5_file(path: Path) -> str:
    """The hex MD5 of a file, read in 1 MiB chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open_read(path, "raw_archive") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _present_verified(source: RawSource, folder: Path) -> bool:
    """Check the MD5 of every resource file present in ``folder`` (cached by size + mtime); True if all ok.

    Raises:
        UserInputError: a present file does not match its published MD5 (it is left in place: it may be a
            file a person put there; the message says to delete it).
    """
    present = [r for r in source.resources if (folder / r.file).is_file()]
    if not present:
        return True
    cache = _read_cache(folder)
    changed = False
    for r in present:
        path = folder / r.file
        key = _cache_key(path, r)
        if cache.get(r.file) == key:
            continue
        logger.debug("checking the MD5 of %s", path)
        actual = md5_file(path)
        if actual != r.md5:
            raise UserInputError(
                f"{path} has MD5 {actual}, not the published {r.md5} (corrupt or another file); delete it "
                "and rerun to download it again, or " + manual_hint(source, folder, [r])
            )
        cache[r.file] = key
        changed = True
    if changed:
        _write_cache(folder, cache)
    return True


def _read_cache(folder: Path) -> dict:
    """The verified cache of ``folder``; {} when missing or invalid (the MD5s are then recomputed)."""
    path = folder / VERIFIED_FILE
    try:
        if check_regular(path, "verified_cache", missing_ok=True) is None:
            return {}
        return read_json(path, "verified_cache")
    except UserInputError as exc:
        logger.warning("ignoring the verified cache (%s)", exc)
        return {}


def _cache_key(path: Path, resource: Resource) -> dict:
    st = check_regular(path, "raw_archive")
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "md5": resource.md5}


def _write_cache(folder: Path, cache: dict) -> None:
    with contextlib.suppress(OSError):  # only a cache: a read-only raw folder still works, just slower
        write_bytes_atomic(
            folder / VERIFIED_FILE, (json.dumps(cache, indent=1, sort_keys=True) + "\n").encode()
        )


def _remember(folder: Path, resource: Resource) -> None:
    """Record that ``folder/<resource.file>`` (just downloaded and checked by :func:`fetch`) is verified."""
    cache = _read_cache(folder)
    cache[resource.file] = _cache_key(folder / resource.file, resource)
    _write_cache(folder, cache)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (POSIX ``flock``): two processes never append to one partial file."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    fd = open_lock_file(path)  # never through a link planted at the lock's path
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class _Incomplete(Exception):
    """A transfer ended early (dropped connection, short body); the partial file is kept for a resume."""


class _TooLarge(Exception):
    """The server sent (or announced) more bytes than the resource can have: the transfer is abandoned."""


def fetch(
    resource: Resource,
    target: Path,
    *,
    on_progress: ProgressHook | None = None,
    timeout: float = 60.0,
    retries: int = 3,
    backoff: float = 1.0,
    hint: str = "",
) -> Path:
    """Download ``resource`` to ``target``: resumable, MD5-checked, renamed into place only when correct.

    Bytes go to ``<target>.part``. Each attempt asks for the bytes after those already there (``Range:
    bytes=N-``); a 206 answer is appended, a 200 answer (the server ignored the range) restarts the file, a
    416 answer means the part already holds everything. After a dropped connection the next attempt resumes;
    ``retries`` attempts in a row that bring no new byte give up. HTTP 4xx errors are final at once. Any
    protocol error (``http.client.HTTPException``: a bad status line, a header too long, ...) counts as a
    failed attempt. A transfer is bounded by :attr:`Resource.max_bytes`: a server that announces or sends
    more is refused at once and the partial file removed.

    Returns:
        ``target``.

    Raises:
        UserInputError: the download failed (the partial file stays for the next run) or the MD5 does not
            match (the partial file is removed).
    """
    target = Path(target)
    part = target.with_name(target.name + PART_SUFFIX)
    with _file_lock(target.with_name(f".{target.name}.lock")):
        if check_regular(target, "raw_archive", missing_ok=True) is not None:
            return target  # another process finished it while this one waited for the lock
        failures = 0
        while True:
            before = _size(part)
            try:
                if _attempt(resource, part, on_progress, timeout):
                    break
                raise _Incomplete("the server closed the connection early")
            except urllib.error.HTTPError as exc:
                if 400 <= exc.code < 500 and exc.code != 408 and exc.code != 429:
                    raise _download_error(resource, f"HTTP {exc.code} {exc.reason}", hint) from None
                why = f"HTTP {exc.code} {exc.reason}"
            except _TooLarge as exc:
                remove_file(part)
                raise UserInputError(
                    f"{resource.url} {exc} (at most {resource.max_bytes:,} bytes are expected); refused it "
                    f"and removed the partial file{'; ' + hint if hint else ''}"
                ) from None
            except UnsafeFileError:
                raise
            except (_Incomplete, urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError,
                    ValueError) as exc:
                why = _reason(exc)
            after = _size(part)
            failures = 0 if after > before else failures + 1
            if failures >= retries:
                raise _download_error(resource, why, hint)
            logger.info("download of %s interrupted (%s); resuming at byte %d", resource.file, why, after)
            time.sleep(backoff * failures)
        actual = md5_file(part)
        if actual != resource.md5:
            remove_file(part)
            raise UserInputError(
                f"{resource.url} gave a file with MD5 {actual}, not the published {resource.md5}; removed it "
                f"(rerun to try again{'; or ' + hint if hint else ''})"
            )
        _fsync(part)
        check_write_target(target)  # never replace a link or a directory standing at the target
        os.replace(part, target)
        fsync_directory(target.parent)
    logger.info("downloaded %s (MD5 ok)", target)
    return target


def _attempt(resource: Resource, part: Path, on_progress: ProgressHook | None, timeout: float) -> bool:
    """One HTTP request continuing ``part``; True when the body arrived whole (or there was nothing left)."""
    have = _size(part)
    headers = {"User-Agent": f"evrobust/{__version__}", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(resource.url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - https/http URLs only
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing after byte `have`: the part is whole (the MD5 decides)
            return True
        raise
    with response:
        length = response.headers.get("Content-Length")
        if have and response.status == 206:
            start = _range_start(response.headers.get("Content-Range", ""))
            if start != have:
                raise _Incomplete(f"the server resumed at byte {start}, not {have}")
            mode = "ab"
        else:
            have, mode = 0, "wb"  # a full answer: restart the file
        total = have + int(length) if length is not None and length.isdigit() and len(length) < 20 else None
        if total is not None and total > resource.max_bytes:
            raise _TooLarge(f"announced {total:,} bytes")
        done = have
        if mode == "wb":
            remove_file(part)
        with open_append(part, "raw_archive") as out:
            while True:
                try:
                    chunk = response.read(CHUNK_BYTES)
                except Exception as exc:  # noqa: BLE001 - a cut body raises OSError or http.client's IncompleteRead
                    raise _Incomplete(_reason(exc)) from None
                if not chunk:
                    break
                done += len(chunk)
                if done > resource.max_bytes:
                    raise _TooLarge(f"sent over {resource.max_bytes:,} bytes")
                out.write(chunk)
                if on_progress is not None:
                    on_progress(resource.file, done, total)
            out.flush()
    return total is None or done >= total


def _range_start(content_range: str) -> int | None:
    """The first byte of ``bytes START-END/TOTAL`` (None when unparsable)."""
    unit, _, spec = content_range.strip().partition(" ")
    first = spec.split("-", 1)[0]
    return int(first) if unit == "bytes" and first.isdigit() else None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return str(exc.reason)
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _download_error(resource: Resource, why: str, hint: str) -> UserInputError:
    return UserInputError(
        f"cannot download {resource.file} from {resource.url} ({why}); "
        + (hint or "try again later")
        + " (a partial download is resumed on the next run)"
    )


def _fsync(path: Path) -> None:
    with open_read(path, "raw_archive") as fh:
        os.fsync(fh.fileno())


def _size(path: Path) -> int:
    """Bytes already in the regular file ``path`` (0 when absent; a link or FIFO there is refused)."""
    st = check_regular(path, "raw_archive", missing_ok=True)
    return 0 if st is None else st.st_size


@contextlib.contextmanager
def _progress_bar(enabled: bool) -> Iterator[ProgressHook | None]:
    """A rich progress bar on stderr (bytes, MB/s, time left) per downloaded file; yields its hook."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    tasks: dict[str, int] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as bar:

        def hook(name: str, done: int, total: int | None) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total, completed=0)
            bar.update(tasks[name], completed=done, total=total)

        yield hook


def _chain(*hooks: ProgressHook | None) -> ProgressHook | None:
    live = [h for h in hooks if h is not None]
    if not live:
        return None

    def call(name: str, done: int, total: int | None) -> None:
        for h in live:
            h(name, done, total)

    return call
