"""``evrobust export``: thin typer wrapper over :func:`evrobust.pipelines.export.export_run`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def export_command(
    run: Annotated[Path, typer.Option("--run", help="Run directory written by `evrobust train`.")],
    out: Annotated[
        Path, typer.Option("--out", help="Output file, e.g. model.nir (its directory must exist).")
    ],
    format: Annotated[str, typer.Option("--format", help="Export format: nir.")] = "nir",
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="Which checkpoint: best or last.")] = "best",
) -> None:
    """Write a trained run as a NIR graph (IF neurons, BatchNorm folded, robustness numbers in the
    metadata)."""
    from evrobust.pipelines.export import export_run

    result = export_run(run, out, format=format, which=checkpoint)
    meta = result["metadata"]
    typer.echo(
        f"wrote {result['out']}: {result['nodes']} NIR nodes, {result['edges']} edges; "
        f"defense {meta.get('defense')}, white-box robust accuracy {meta.get('whitebox_robust_accuracy')}"
    )
