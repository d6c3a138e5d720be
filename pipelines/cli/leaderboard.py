"""``evrobust leaderboard``: thin wrapper over :func:`evrobust.pipelines.leaderboard.build_leaderboard`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evrobust.pipelines.cli.reproduce_options import RunsFrom, ScaleName, runs_from_texts


def leaderboard_command(
    data: Annotated[
        str | None,
        typer.Option(help="Dataset name or store path of the table [the scale's: digits below cpu scale]; at "
                     "cpu scale a real CIFAR-10 store. digits-dvs for the event table."),
    ] = None,
    scale: Annotated[
        ScaleName,
        typer.Option(help="The scales of `evrobust reproduce`: tiny (seconds), smoke (minutes), cpu (hours, "
                     "VGG-11 x0.125), paper."),
    ] = ScaleName.smoke,
    limit: Annotated[
        int | None,
        typer.Option("--limit", help="Evaluate the first N test images (every entry the same) [the scale's: "
                     "tiny 8, smoke 200, cpu 500, paper all]."),
    ] = None,
    only: Annotated[
        str | None,
        typer.Option(help="Comma-separated entries (vanilla, at, rat, sr, sr_star, trades, dsd, dlif, tgo) "
                     "[all]."),
    ] = None,
    add: Annotated[
        list[Path] | None,
        typer.Option("--add", help="Put an external run on the table: a directory holding "
                     "attack-whitebox.json of `evrobust attack --suite reliable` on the same test images "
                     "(repeatable)."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Output root, shared with `evrobust reproduce` (runs are reused).")
                   ] = Path("runs/reproduce"),
    data_dir: Annotated[Path | None, typer.Option(help="Data directory ($EVROBUST_DATA, ./data).")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    stop_after: Annotated[
        int | None,
        typer.Option("--stop-after", min=1, help="Stop after N units of work (a training epoch, an "
                     "evaluation); no table is written until every entry is evaluated."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue partly trained runs (after --stop-after or a kill).")
    ] = False,
    plots: Annotated[bool, typer.Option(help="Write the two PNG figures beside the table.")] = True,
    runs_from: RunsFrom = None,
) -> None:
    """Train every entry, evaluate each with the converged reliable suite, and write the ranked table."""
    from evrobust.errors import UserInputError
    from evrobust.pipelines.leaderboard import build_leaderboard

    if limit is not None and limit < 1:
        raise UserInputError(f"--limit must be an integer >= 1 (got {limit})")
    path = build_leaderboard(
        data, scale.value, out=out, limit=limit, only=only, add=[str(p) for p in add or []],
        data_dir=None if data_dir is None else str(data_dir), device=device, stop_after=stop_after,
        resume=resume, plots=plots, runs_from=runs_from_texts(runs_from),
    )
    if path is None:
        typer.echo("stopped before every entry was evaluated; rerun with --resume to continue")
        return
    typer.echo(f"leaderboard written to {path.parent / 'leaderboard.md'} and {path}")
