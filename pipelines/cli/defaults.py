"""The ``defaults:`` line: every option a command took by default, printed first so a run can be repeated.

Example (``evrobust attack --mode blackbox``)::

    defaults: --run runs/cifar10dvs-vgg11-sr_star-s0 (newest of 3 runs in runs/) --source ... --suite quick

An option given on the command line is left out; an option whose default is "decided later from the data"
(``None``) is printed with the value it resolves to when the command knows it, and left out otherwise (leaving
it out again repeats the same choice).
"""

from __future__ import annotations

import shlex
from collections.abc import Collection
from enum import Enum
from pathlib import Path
from typing import Any

import typer


def _text(value: Any) -> str:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, Path):
        value = str(value)
    return shlex.quote(str(value))


def defaults_line(
    ctx: typer.Context,
    resolved: dict[str, Any] | None = None,
    notes: dict[str, str] | None = None,
    skip: Collection[str] = (),
) -> str:
    """``defaults: --opt value ...`` for the command of ``ctx``.

    Args:
        ctx: the command's context (a ``typer.Context`` parameter of the command).
        resolved: values to print instead of the declared default (e.g. the store chosen for ``--data``),
            keyed by parameter name.
        notes: a short reason printed after an option's value, in parentheses (e.g. where it came from).
        skip: parameter names left out (options the chosen mode of the command does not use).
    """
    resolved = resolved or {}
    notes = notes or {}
    parts: list[str] = []
    for param in ctx.command.params:
        name = param.name
        if param.param_type_name != "option" or name is None or name in skip:
            continue
        source = ctx.get_parameter_source(name)
        if source is not None and source.name == "COMMANDLINE":
            continue
        value = resolved.get(name, ctx.params.get(name))
        if value is None or value == [] or value == ():
            continue
        flag = max(param.opts, key=len)
        if getattr(param, "is_flag", False) and isinstance(value, bool):
            if param.secondary_opts:
                parts.append(flag if value else max(param.secondary_opts, key=len))
            elif value:
                parts.append(flag)
        elif isinstance(value, list | tuple):
            parts.extend(f"{flag} {_text(v)}" for v in value)
        else:
            parts.append(f"{flag} {_text(value)}")
        if name in notes and parts:
            parts[-1] += f" ({notes[name]})"
    return "defaults: " + (" ".join(parts) if parts else "none")
