"""``evrobust reproduce NAME``: thin wrapper over :func:`evrobust.pipelines.reproduce.run_reproduction`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class ScaleName(StrEnum):
    tiny = "tiny"
    smoke = "smoke"
    paper = "paper"


def reproduce_command(
    name: Annotated[
        str,
        typer.Argument(
            help="table1 | table2 | table3 | table4 | table6 | table7 | fig1 | fig3 | fig4 | fig5 | tradeoff"
        ),
    ],
    scale: Annotated[
        ScaleName,
        typer.Option(help="smoke: minutes on a CPU; paper: the paper's exact settings; tiny: seconds."),
    ] = ScaleName.smoke,
    data: Annotated[
        str | None,
        typer.Option(help="Dataset name or store path replacing every dataset of the experiment."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Output root (runs are shared by all experiments in it).")] = Path(
        "runs/reproduce"
    ),
    data_dir: Annotated[Path | None, typer.Option(help="Data directory ($EVROBUST_DATA, ./data).")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    report: Annotated[bool, typer.Option(help="Write report.md beside results.json.")] = True,
) -> None:
    """Train, attack and analyse what one table or figure of the paper needs; write results and report."""
    from evrobust.pipelines.reproduce import run_reproduction

    path = run_reproduction(
        name,
        scale=scale.value,
        data=data,
        out=out,
        data_dir=None if data_dir is None else str(data_dir),
        device=device,
        report=report,
    )
    typer.echo(f"results written to {path}")
    if report:
        typer.echo(f"report written to {path.parent / 'report.md'}")
