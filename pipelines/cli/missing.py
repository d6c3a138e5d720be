"""Commands whose capability is not built yet.

They exist so that ``evrobust --help`` shows the whole tool, but they never pretend: each says which
capability is missing and exits with code 2.
"""

from __future__ import annotations

from collections.abc import Callable

import typer

from evrobust.pipelines.cli.errors import fail


def not_built(command: str, capability: str) -> Callable[[], None]:
    """A command callback that reports the missing capability and exits with code 2."""

    def callback() -> None:
        raise fail(f"`evrobust {command}` is not built yet: it needs {capability}.")

    callback.__doc__ = f"(not built yet) needs {capability}."
    return callback


def add_missing(app: typer.Typer, command: str, capability: str) -> None:
    """Register a not-built command on ``app``."""
    app.command(command, help=f"(not built yet) needs {capability}.")(not_built(command, capability))
