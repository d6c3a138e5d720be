"""``evrobust attack``: a thin typer wrapper over :func:`evrobust.pipelines.attack.run_attack`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class Mode(StrEnum):
    whitebox = "whitebox"
    blackbox = "blackbox"


class Suite(StrEnum):
    quick = "quick"
    paper = "paper"
    strong = "strong"
    reliable = "reliable"


class EnsembleName(StrEnum):
    paper = "paper"
    widths = "widths"
    single = "single"


class Checkpoint(StrEnum):
    best = "best"
    last = "last"


def attack_command(
    run: Annotated[Path, typer.Option("--run", help="Run directory of the model under evaluation.")],
    mode: Annotated[
        Mode, typer.Option("--mode", help="Attack the run itself, or transfer from --source.")
    ] = Mode.whitebox,
    source: Annotated[
        Path | None, typer.Option("--source", help="Run dir of the model crafting the examples (blackbox).")
    ] = None,
    suite: Annotated[
        Suite,
        typer.Option(
            "--suite",
            help="quick: clean, FGSM, PGD10; paper: Table 1; strong: + APGD-DLR; reliable: paper + the "
            "cascade APGD-CE, SA-PGD, APGD-T, Square on the survivors, and the overestimate.",
        ),
    ] = Suite.quick,
    attacks: Annotated[
        str | None, typer.Option("--attacks", help="Comma-separated attack names instead of a suite.")
    ] = None,
    eps: Annotated[str, typer.Option("--eps", help="L-inf radius in [0,1] units, e.g. 8/255.")] = "8/255",
    ensemble: Annotated[
        EnsembleName,
        typer.Option("--ensemble", help="Gradient specs: paper (4 members), widths (30 triangles), single."),
    ] = EnsembleName.paper,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Use only the first N test samples.")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Samples per batch.")] = 64,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the attacks' random starts.")] = 0,
    checks: Annotated[
        bool, typer.Option("--checks/--no-checks", help="Run the gradient-masking checks (extra attacks).")
    ] = True,
    checkpoint: Annotated[Checkpoint, typer.Option("--checkpoint", help="Which checkpoint of the run.")] = (
        Checkpoint.best
    ),
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Data directory if the run's store has moved.")
    ] = None,
) -> None:
    """Robust accuracy under white-box or black-box attacks (resumable; writes attack-<mode>.json and .md)."""
    from evrobust.pipelines.attack import render_markdown, result_paths, run_attack

    result = run_attack(
        run,
        mode=mode.value,
        source=source,
        suite=suite.value,
        attacks=attacks,
        eps=eps,
        ensemble=ensemble.value,
        limit=limit,
        batch_size=batch_size,
        device=device,
        seed=seed,
        checks=checks,
        which=checkpoint.value,
        data_dir=None if data_dir is None else str(data_dir),
    )
    typer.echo(render_markdown(result))
    json_path, md_path, _ = result_paths(run, mode.value)
    typer.echo(f"wrote {json_path} and {md_path}")
