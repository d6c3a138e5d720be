"""The reproduction's ``results.json``: its file name, its format tag and its reader.

Written by :mod:`evrobust.pipelines.reproduce.runner`, read by the runner (to resume) and by
:mod:`evrobust.pipelines.report` (to render): the one piece both need, so it sits below both.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from evrobust.errors import UserInputError

RESULTS_FILE = "results.json"
RESULTS_FORMAT = "evrobust-reproduction"


def load_results(path: str | Path) -> dict[str, Any]:
    """Read a ``results.json`` (or the directory holding it), validated as a ``results`` document.

    Read through :func:`evrobust.safeio.read_json`: a regular file (never a link or FIFO) within the kind's
    size cap, depth- and string-limited JSON; the ``format`` tag is checked first (a file of another tool is
    named as such), then :class:`evrobust.safeio.schemas.results.ReproduceResults`.

    Raises:
        UserInputError: missing, unreadable, not a reproduction result, or a field of the wrong type or range
            (one line naming the file and the field).
    """
    from evrobust.safeio import read_json
    from evrobust.safeio.schemas import validate

    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not os.path.lexists(path):
        raise UserInputError(f"{path} does not exist; run `evrobust reproduce NAME --out ...` first")
    document = read_json(path, "results", validate=False)
    if not isinstance(document, dict) or document.get("format") != RESULTS_FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise UserInputError(f"{path} is not a reproduction result (format {str(found)[:80]!r})")
    validate(document, "results", str(path))
    return document
