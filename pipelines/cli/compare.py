"""``evrobust compare A B``: a thin wrapper over :mod:`evrobust.pipelines.common.paired`.

Torch-free: it reads the per-sample flags of two attack results (``compare_input`` documents, read through
:mod:`evrobust.safeio`: regular files only, schema-checked) and tests their difference on the samples where
they disagree (exact McNemar).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

_ADD = "More attack files of model {}: merged with it as the per-sample worst case (your own attacks)."
_NAME = "Name of {} in the verdict (default: its defense)."


def compare_command(
    a: Annotated[Path, typer.Argument(help="Run directory or attack JSON of model A.")],
    b: Annotated[Path, typer.Argument(help="Run directory or attack JSON of model B.")],
    mode: Annotated[
        str, typer.Option(help="whitebox | blackbox: which attack-<mode>.json of a run directory.")
    ] = "whitebox",
    add_a: Annotated[list[Path] | None, typer.Option(help=_ADD.format("A"))] = None,
    add_b: Annotated[list[Path] | None, typer.Option(help=_ADD.format("B"))] = None,
    name_a: Annotated[str | None, typer.Option(help=_NAME.format("A"))] = None,
    name_b: Annotated[str | None, typer.Option(help=_NAME.format("B"))] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the comparison as JSON to this file.")
    ] = None,
) -> None:
    """Compare two models' robust accuracy on the same samples: intervals, paired counts, McNemar p-value."""
    from evrobust.pipelines.common.paired import compare_paths, render_comparison
    from evrobust.safeio import check_write_target, write_text_atomic

    if json_out is not None:
        check_write_target(json_out)  # a link or FIFO at --json: refused before reading the inputs
    result = compare_paths([a, *(add_a or [])], [b, *(add_b or [])], mode=mode, name_a=name_a, name_b=name_b)
    if json_out is not None:
        import json

        write_text_atomic(json_out, json.dumps(result, indent=1))
    typer.echo(render_comparison(result))
