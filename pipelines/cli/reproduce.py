"""``evrobust reproduce NAME``: thin wrapper over :func:`evrobust.pipelines.reproduce.run_reproduction`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evrobust.pipelines.cli.reproduce_options import RunsFrom, ScaleName, runs_from_texts


def reproduce_command(
    name: Annotated[
        str,
        typer.Argument(
            help="table1 | table2 | table3 | table4 | table6 | table7 | fig1 | fig3 | fig4 | fig5 | fig6 | "
            "tradeoff | masking"
        ),
    ],
    scale: Annotated[
        ScaleName,
        typer.Option(help="smoke: minutes on a CPU (digits); cpu: hours on a CPU, real CIFAR images from "
                     "--data; paper: the paper's exact settings; tiny: seconds."),
    ] = ScaleName.smoke,
    data: Annotated[
        str | None,
        typer.Option(help="Dataset name or store path replacing every dataset of the experiment; at cpu "
                     "scale (and for paper scale, comma-separated) one CIFAR-10 and optionally one "
                     "CIFAR-100 store."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Output root (runs are shared by all experiments in it).")] = Path(
        "runs/reproduce"
    ),
    data_dir: Annotated[Path | None, typer.Option(help="Data directory ($EVROBUST_DATA, ./data).")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    report: Annotated[bool, typer.Option(help="Write report.md beside results.json.")] = True,
    stop_after: Annotated[
        int | None,
        typer.Option("--stop-after", min=1, help="Stop after N units of work (a training epoch, an attack, "
                     "an analysis); results.json holds what is done."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue partly trained runs (after --stop-after or a kill).")
    ] = False,
    only: Annotated[
        str | None,
        typer.Option(help="Only the runs whose key contains this text (e.g. wrn16, cifar100_subset), their "
                     "attacks and analyses, and the table rows made of them alone; results go to "
                     "<out>/<name>-<text>/."),
    ] = None,
    runs_from: RunsFrom = None,
    estimate: Annotated[
        bool | None,
        typer.Option("--estimate/--no-estimate", help="Print the estimated training cost from a short timed "
                     "warm-up before starting [default: on at paper scale]."),
    ] = None,
) -> None:
    """Train, attack and analyse what one table or figure of the paper needs; write results and report."""
    from evrobust.pipelines.reproduce import build_spec, estimate_cost, execute

    data_dir_text = None if data_dir is None else str(data_dir)
    spec = build_spec(name, scale.value, data, data_dir=data_dir_text, only=only)
    if estimate if estimate is not None else scale is ScaleName.paper:
        for line in estimate_cost(spec, out, data_dir=data_dir_text, device=device).lines():
            typer.echo(line)
    path = execute(spec, out, data_dir=data_dir_text, device=device, report=report, stop_after=stop_after,
                   resume=resume, runs_from=runs_from_texts(runs_from))
    typer.echo(f"results written to {path}")
    if report:
        typer.echo(f"report written to {path.parent / 'report.md'}")
