"""The reproduction's ``results.json``: its file name, its format tag and its reader.

Written by :mod:`evrobust.pipelines.reproduce.runner`, read by the runner (to resume) and by
:mod:`evrobust.pipelines.report` (to render): the one piece both need, so it sits below both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evrobust.errors import UserInputError

RESULTS_FILE = "results.json"
RESULTS_FORMAT = "evrobust-reproduction"


def load_results(path: str | Path) -> dict[str, Any]:
    """Read a ``results.json`` (or the directory holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise UserInputError(f"{path} does not exist; run `evrobust reproduce NAME --out ...` first")
    document = json.loads(path.read_text())
    if document.get("format") != RESULTS_FORMAT:
        raise UserInputError(f"{path} is not a reproduction result (format {document.get('format')!r})")
    return document
