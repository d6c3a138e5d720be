"""PEP 562 lazy re-exports for a package's ``__init__``: names load their submodule on first access.

Both ``evrobust.preprocess`` and ``evrobust.datasets`` use this, so that importing one light submodule (a
spec, the store format) does not pay for numba, dask or torch that other submodules import.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, namespace: dict[str, Any], exports: Mapping[str, tuple[str, ...]]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``(__all__, __getattr__, __dir__)`` for ``package`` re-exporting ``{submodule: names}`` lazily.

    ``namespace`` is the package's ``globals()``: a loaded name is stored there, so later lookups skip
    ``__getattr__``.
    """
    where = {name: module for module, names in exports.items() for name in names}
    public = sorted(where)

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module-level hook PEP 562 names
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:  # noqa: N807
        return sorted(set(namespace) | set(public))

    return public, __getattr__, __dir__
