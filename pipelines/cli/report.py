"""``evrobust report PATH...``: thin wrapper over :func:`evrobust.pipelines.report.pipeline.write_report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report_command(
    paths: Annotated[
        list[Path],
        typer.Argument(help="Run directories and/or `evrobust reproduce` outputs (<out>/<name> or <out>)."),
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Directory for report.md (default: the input, or the inputs' common parent)."),
    ] = None,
) -> None:
    """Write report.md: tables in the paper's layout beside the published numbers, masking checks, plots.

    The output directory is locked while the report writes it (a second report into it stops with one line),
    and .report-manifest.json there lists what the report wrote: a later report removes only those files.
    """
    from evrobust.pipelines.report.pipeline import write_report

    path = write_report(paths, out)
    typer.echo(f"report written to {path}")
