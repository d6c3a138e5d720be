"""Safe extraction of a downloaded ``.tar.gz`` (the CIFAR python archives): all or nothing, never outside.

Only regular files under the one expected top folder are written; an absolute member name, a ``..`` part, a
name outside the folder, a link, a device or a member over 1 GiB stops the extraction. Everything is written
into a temporary folder beside the target and renamed into place only once the archive was read to its end.
No torch here (preprocessing never imports it).
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

from evrobust.errors import UserInputError
from evrobust.safeio import cap, fsync_directory, open_new, open_read

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
MAX_TAR_MEMBER_BYTES = cap("raw_member")  # the largest CIFAR pickle (cifar-100 train) is ~155 MB


def _safe_member_parts(name: str, top: str) -> tuple[str, ...] | None:
    """The path parts of a tar member under ``top``; None for the ``top`` folder entry itself.

    Raises:
        UserInputError: an absolute name, a ``..`` part, or a name outside ``top``.
    """
    path = PurePosixPath(name.replace("\\", "/"))
    parts = tuple(p for p in path.parts if p not in ("", "."))
    if path.is_absolute() or ".." in parts or not parts or parts[0] != top:
        raise ValueError(f"member {name!r} lies outside {top}/")
    return parts if len(parts) > 1 else None


def extract_tar(archive: Path, folder: Path, top: str) -> Path:
    """Extract the ``top/`` folder of a ``.tar.gz`` into ``folder/top``, safely and all or nothing.

    Only regular files under ``top/`` are written (directories are made as needed); an absolute member
    name, a ``..`` part, a name outside ``top/``, a link, a device or a member over 1 GiB stops the
    extraction. Files are written into a temporary folder beside the target that is renamed into place only
    when the archive has been read to its end, so ``folder/top`` never holds half an archive.

    Raises:
        UserInputError: the archive is corrupt, truncated or holds an unsafe member.
    """
    final = folder / top
    if final.is_dir():
        return final
    scratch = Path(tempfile.mkdtemp(prefix=f".{top}.", suffix=".partial", dir=folder))
    try:
        with open_read(archive, "raw_archive") as raw, tarfile.open(fileobj=raw, mode="r:gz") as tar:
            for member in tar:
                try:
                    parts = _safe_member_parts(member.name, top)
                    if member.isdir():
                        continue
                    if not member.isfile():
                        raise ValueError(f"member {member.name!r} is a link or special file")
                    if parts is None:
                        raise ValueError(f"member {member.name!r} is not a folder")
                    if member.size > MAX_TAR_MEMBER_BYTES:
                        raise ValueError(f"member {member.name!r} claims {member.size} bytes")
                except ValueError as exc:
                    raise UserInputError(f"{archive} is not a safe archive to extract: {exc}") from None
                dest = scratch.joinpath(*parts)
                dest.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                if source is None:  # pragma: no cover - regular files always have data
                    continue
                with source, open_new(dest) as out:  # O_EXCL | O_NOFOLLOW: never through a link
                    shutil.copyfileobj(source, out, CHUNK_BYTES)
        if not (scratch / top).is_dir():
            raise UserInputError(f"{archive} holds no file under {top}/; it is not the expected archive")
        try:
            os.replace(scratch / top, final)
        except OSError:
            if not final.is_dir():  # else another process extracting it finished first: keep its copy
                raise
        fsync_directory(folder)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        message = " ".join(str(exc).split())[:200]
        raise UserInputError(
            f"{archive} cannot be extracted ({type(exc).__name__}: {message}); delete it and rerun to "
            "download it again"
        ) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    logger.info("extracted %s into %s", archive, final)
    return final
