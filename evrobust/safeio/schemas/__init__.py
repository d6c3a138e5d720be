"""The schema of every kind of JSON document evrobust reads, and :func:`validate`.

Each kind (a key of :data:`evrobust.safeio.caps.CAPS` that holds JSON) maps to a pydantic v2 model in one of
the modules of this package; the model is imported only when a document of that kind is validated, so a
command pays pydantic's start-up (about 0.1 s) only when it reads a document, and ``preprocess`` never imports
a schema it does not need.

The models state what the code that consumes a document relies on: types, ranges (finite numbers, counts
within bounds), lengths (a flag list as long as the samples it claims) and the fields' relations. Fields the
code does not read are allowed and ignored (``extra="allow"``), so a document written by a newer evrobust
still reads. A document that fails gives one line naming the file and the first field at fault.
"""

from __future__ import annotations

import importlib
from typing import Any

from evrobust.errors import UserInputError

__all__ = ["SCHEMAS", "validate"]

SCHEMAS: dict[str, str] = {
    "run_config": "evrobust.safeio.schemas.run:RunConfig",
    "metrics": "evrobust.safeio.schemas.run:MetricsRecord",
    "attack_result": "evrobust.safeio.schemas.attack:AttackResult",
    "attack_partial": "evrobust.safeio.schemas.attack:AttackPartial",
    "compare_input": "evrobust.safeio.schemas.attack:AttackResult",
    "analysis": "evrobust.safeio.schemas.analysis:Analysis",
    "results": "evrobust.safeio.schemas.results:ReproduceResults",
    "report_manifest": "evrobust.safeio.schemas.files:ReportManifest",
    "lock": "evrobust.safeio.schemas.preprocess:LockHolder",
    "verified_cache": "evrobust.safeio.schemas.preprocess:VerifiedCache",
    "nir_metadata": "evrobust.safeio.schemas.nir:NirMetadata",
    "leaderboard": "evrobust.safeio.schemas.leaderboard:Leaderboard",
}
"""Kind -> ``module:Model`` of its schema."""


def model_of(kind: str) -> Any:
    """The pydantic model class of ``kind`` (KeyError for a kind with no schema: a programming error)."""
    module, _, name = SCHEMAS[kind].partition(":")
    return getattr(importlib.import_module(module), name)


def validate(document: Any, kind: str, source: str) -> None:
    """Check ``document`` against ``kind``'s schema.

    Raises:
        UserInputError: one line, ``<source>: field <a.b.c>: <what is wrong>``.
    """
    from pydantic import ValidationError

    try:
        model_of(kind).model_validate(document)
    except ValidationError as exc:
        raise UserInputError(
            f"{source}: {describe_error(exc)}; it is not a valid {kind.replace('_', ' ')} file"
        ) from None


def describe_error(exc: Any) -> str:
    """``field a.b.3: Input should be a valid integer`` for the first error of a pydantic ValidationError."""
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "(document)"
    message = " ".join(str(first.get("msg", "invalid")).split())[:160]
    return f"field {where}: {message}"
