"""The one I/O layer: every file evrobust reads or writes goes through this package.

* :mod:`.files`: open for reading (regular files only, ``O_NOFOLLOW | O_NONBLOCK``, ``fstat``, size caps),
  create (``O_CREAT | O_EXCL | O_NOFOLLOW``), append, remove; :class:`UnsafeFileError`.
* :mod:`.atomic`: the atomic writer (temporary file, fsync, rename, directory fsync).
* :mod:`.jsondoc`: the size-, depth- and string-limited JSON loader, validated by kind.
* :mod:`.caps`: the size cap of every kind of file, in one table.
* :mod:`.schemas`: the pydantic schema of every kind of JSON document.

Torch-free and light to import (pydantic is loaded only when a document is validated), so that
``evrobust.preprocess`` uses it too. ``tests/packaging/test_safeio_lint.py`` fails on a file opened anywhere
else.
"""

from __future__ import annotations

from evrobust.safeio.atomic import fsync_directory, write_bytes_atomic, write_text_atomic
from evrobust.safeio.caps import CAPS, cap
from evrobust.safeio.files import (
    UnsafeFileError,
    check_regular,
    check_write_target,
    open_append,
    open_lock_file,
    open_new,
    open_read,
    read_bytes,
    read_text,
    remove_file,
    removing_on_error,
    sha256_file,
)
from evrobust.safeio.jsondoc import parse_json, read_json, roundtrip

__all__ = [
    "CAPS",
    "UnsafeFileError",
    "cap",
    "check_regular",
    "check_write_target",
    "fsync_directory",
    "open_append",
    "open_lock_file",
    "open_new",
    "open_read",
    "parse_json",
    "read_bytes",
    "read_json",
    "read_text",
    "remove_file",
    "removing_on_error",
    "roundtrip",
    "sha256_file",
    "write_bytes_atomic",
    "write_text_atomic",
]
