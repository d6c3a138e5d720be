"""Reading JSON documents: size-capped, depth- and string-limited, then validated against their kind's schema.

:func:`parse_json` turns bytes or text into Python objects and refuses, in one line naming the source:
invalid UTF-8, invalid JSON, nesting deeper than :data:`~evrobust.safeio.caps.JSON_MAX_DEPTH`, a string longer
than :data:`~evrobust.safeio.caps.JSON_MAX_STRING`, an integer of more than 4,300 digits. :func:`read_json`
reads a file through :func:`evrobust.safeio.files.read_bytes` (regular files only, within the kind's cap) and
then validates the document against the kind's schema (:mod:`evrobust.safeio.schemas`): a wrong type, range
or shape is one line naming the file and the field, before any code uses the document.

The document handed back is the parsed JSON itself (dicts and lists), not a model object: callers keep
indexing it as before, now knowing that every field they use has the type and range the schema states.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from evrobust.errors import UserInputError
from evrobust.safeio.caps import JSON_MAX_DEPTH, JSON_MAX_STRING
from evrobust.safeio.files import read_bytes

__all__ = ["check_shape", "parse_json", "read_json", "roundtrip"]


def parse_json(
    data: bytes | str, source: str, *, max_depth: int = JSON_MAX_DEPTH, max_string: int = JSON_MAX_STRING
) -> Any:
    """Parse a JSON document from an untrusted source (``source`` names it in the error).

    Raises:
        UserInputError: invalid UTF-8 or JSON, too deep, a string over ``max_string`` characters, an integer
            too long to convert.
    """
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserInputError(f"{source} is not UTF-8 (invalid byte at offset {exc.start})") from None
    else:
        text = data
    try:
        document = json.loads(text)
    except RecursionError:
        raise UserInputError(
            f"{source} nests deeper than {max_depth} levels; it is not an evrobust file"
        ) from None
    except ValueError as exc:  # JSONDecodeError; ValueError for an integer of over 4,300 digits
        message = " ".join(str(exc).split())[:160]
        raise UserInputError(f"{source} is not valid JSON ({message})") from None
    check_shape(document, source, max_depth=max_depth, max_string=max_string)
    return document


def check_shape(
    document: Any, source: str, *, max_depth: int = JSON_MAX_DEPTH, max_string: int = JSON_MAX_STRING
) -> None:
    """Walk ``document`` iteratively: refuse nesting over ``max_depth`` and strings over ``max_string``."""
    stack: list[tuple[Any, int]] = [(document, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if len(value) > max_string:
                raise UserInputError(
                    f"{source} holds a string of {len(value):,} characters (the limit is {max_string:,}); "
                    "it is not an evrobust file"
                )
        elif isinstance(value, (dict, list)):
            if depth >= max_depth:
                raise UserInputError(
                    f"{source} nests deeper than {max_depth} levels; it is not an evrobust file"
                )
            if isinstance(value, dict):
                for key, item in value.items():
                    if len(key) > max_string:
                        raise UserInputError(f"{source} holds a key of {len(key):,} characters")
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)


def read_json(path: str | os.PathLike[str], kind: str, *, validate: bool = True) -> Any:
    """Read, parse and (by default) validate the JSON file ``path`` of ``kind``.

    Args:
        path: the file; it must be a regular file within ``kind``'s size cap.
        kind: a key of :data:`evrobust.safeio.caps.CAPS` (and, to validate, of the schema registry).
        validate: check the document against ``kind``'s schema (:func:`evrobust.safeio.schemas.validate`).

    Raises:
        UnsafeFileError: not a regular file, or over the cap.
        UserInputError: unreadable, not JSON, or not a valid document of ``kind`` (the field is named).
    """
    path = Path(path)
    document = parse_json(read_bytes(path, kind), str(path))
    if validate:
        from evrobust.safeio.schemas import validate as validate_document

        validate_document(document, kind, str(path))
    return document


def roundtrip(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists, non-string keys strings): for comparing a
    stored fingerprint with a freshly built one."""
    return json.loads(json.dumps(value, default=str))
