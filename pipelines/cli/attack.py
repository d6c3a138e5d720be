"""``evrobust attack``: a thin typer wrapper over :func:`evrobust.pipelines.attack.pipeline.run_attack`.

The budgets' upper bounds come from :data:`evrobust.pipelines.common.options.ATTACK_BOUNDS` (torch-free, so
``--help`` stays fast): typer refuses a value beyond them in one line before any run is looked up, and
``run_attack`` refuses them again for callers that import it.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from evrobust.pipelines.common.options import (
    MAX_BATCH_SIZE,
    MAX_DOUBLINGS,
    MAX_EVENT_BUDGET,
    MAX_LIMIT,
    MAX_QUERIES,
    MAX_SEED,
    MAX_STEPS,
)


class Mode(StrEnum):
    whitebox = "whitebox"
    blackbox = "blackbox"


class Suite(StrEnum):
    quick = "quick"
    paper = "paper"
    strong = "strong"
    reliable = "reliable"
    exhaustive = "exhaustive"


class EnsembleName(StrEnum):
    """The CLI's copy of :data:`evrobust.attacks.ENSEMBLES` (a test keeps the two equal)."""

    paper = "paper"
    widths = "widths"
    single = "single"
    wide = "wide"
    assg = "assg"


class Checkpoint(StrEnum):
    best = "best"
    last = "last"


EVENT_ONLY = ("max_events", "max_shift", "max_moved", "spec")
"""Options of the event threats only (left out of the defaults line of a frame attack)."""
FRAME_ONLY = ("mode", "source", "suite", "eps", "ensemble", "checks", "steps", "queries", "model", "weights",
              "data", "defense", "max_doublings")
"""Options of the frame attacks only (left out of the defaults line of an event attack)."""


class Threat(StrEnum):
    """The CLI's copy of :data:`evrobust.attacks.event_base.THREATS` (a test keeps the two equal)."""

    frames = "frames"
    events = "events"
    retiming = "retiming"


def attack_command(
    ctx: typer.Context,
    run: Annotated[
        Path | None,
        typer.Option("--run", help="Run directory of the model under evaluation [the newest run in runs/]."),
    ] = None,
    mode: Annotated[
        Mode, typer.Option("--mode", help="Attack the run itself, or transfer from --source.")
    ] = Mode.whitebox,
    source: Annotated[
        Path | None,
        typer.Option(
            "--source",
            help="Run dir of the model crafting the examples (blackbox) [a vanilla run beside --run "
            "on the same data and architecture with another seed].",
        ),
    ] = None,
    suite: Annotated[
        Suite,
        typer.Option(
            "--suite",
            help="quick: clean, FGSM, PGD10; paper: Table 1; strong: + APGD-DLR; reliable: paper + the "
            "cascade SA-PGD, APGD-CE (wide ensemble), APGD-T, Square on the survivors, and the overestimate; "
            "exhaustive: reliable with APGD-T over the wide ensemble too.",
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
        int | None,
        typer.Option(
            "--limit",
            min=1,
            max=MAX_LIMIT,
            help=f"Use only the first N test samples (at most {MAX_LIMIT:,}).",
        ),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            min=1,
            max=MAX_BATCH_SIZE,
            help=f"Samples per batch, also the resume granularity (at most {MAX_BATCH_SIZE:,}).",
        ),
    ] = 64,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
    seed: Annotated[
        int,
        typer.Option("--seed", min=0, max=MAX_SEED, help="Seed of the attacks' random draws (0 to 2**63-1)."),
    ] = 0,
    checks: Annotated[
        bool, typer.Option("--checks/--no-checks", help="Run the gradient-masking checks (extra attacks).")
    ] = True,
    checkpoint: Annotated[Checkpoint, typer.Option("--checkpoint", help="Which checkpoint of the run.")] = (
        Checkpoint.best
    ),
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Data directory if the run's store has moved.")
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(
            "--steps",
            min=1,
            max=MAX_STEPS,
            help="Iterations of APGD-DLR, APGD-T, SA-PGD and of every gradient stage of a cascade "
            f"[100; at most {MAX_STEPS:,}].",
        ),
    ] = None,
    queries: Annotated[
        int | None,
        typer.Option(
            "--queries",
            min=1,
            max=MAX_QUERIES,
            help="Queries of Square (per draw) and RayS, also inside a cascade "
            f"[5000; at most {MAX_QUERIES:,}].",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Evaluate a model trained elsewhere: an importable factory "
            "pkg.module:function returning a torch.nn.Module (spikingjelly, snntorch, norse or "
            "plain torch); needs --weights, --data and --run (the directory to write).",
        ),
    ] = None,
    weights: Annotated[
        Path | None,
        typer.Option(
            "--weights",
            help="With --model: its weights, safetensors or a torch state_dict file "
            "(read with weights_only=True; a pickle that needs code is refused).",
        ),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            "--data", help="With --model: a dataset name or an evrobust store; its test split is evaluated."
        ),
    ] = None,
    defense: Annotated[
        str | None, typer.Option("--defense", help="With --model: the defense's name for the tables.")
    ] = None,
    threat: Annotated[
        Threat,
        typer.Option(
            "--threat",
            help="frames: L-inf attacks on the model input (the paper's); events: insert "
            "or delete events (SDA); retiming: move events in time. Event threats need an event "
            "store at sensor resolution and write attack-<threat>.json; they ignore --suite, --eps, "
            "--ensemble, --steps, --queries and --checks.",
        ),
    ] = Threat.frames,
    max_events: Annotated[
        int | None,
        typer.Option(
            "--max-events",
            min=0,
            max=MAX_EVENT_BUDGET,
            help="--threat events: events added plus deleted per sample [unbounded: until fooled].",
        ),
    ] = None,
    max_shift: Annotated[
        int,
        typer.Option(
            "--max-shift",
            min=0,
            max=MAX_EVENT_BUDGET,
            help="--threat retiming: the largest shift of an event, in bins (D).",
        ),
    ] = 1,
    max_moved: Annotated[
        int | None,
        typer.Option(
            "--max-moved",
            min=0,
            max=MAX_EVENT_BUDGET,
            help="--threat retiming, attack retime-zero: events moved per sample (k) [100].",
        ),
    ] = None,
    spec: Annotated[
        str | None,
        typer.Option(
            "--spec", help="--threat events|retiming: the gradient spec the attacks craft under [pdsg]."
        ),
    ] = None,
    max_doublings: Annotated[
        int | None,
        typer.Option(
            "--max-doublings",
            min=0,
            max=MAX_DOUBLINGS,
            help="Convergence certificate after a cascade: double the survivors' SA-PGD/Square "
            "budget until it breaks <= max(1, 0.5% of n), at most this often; 0 = off "
            f"[3; at most {MAX_DOUBLINGS}].",
        ),
    ] = None,
) -> None:
    """Robust accuracy under white-box or black-box attacks (resumable; writes attack-<mode>.json and .md)."""
    from evrobust.errors import UserInputError
    from evrobust.pipelines.attack.pipeline import render_markdown, result_paths, run_attack
    from evrobust.pipelines.cli.defaults import defaults_line
    from evrobust.pipelines.defaults import RUNS_DIR, newest_run, transfer_source

    notes: dict[str, str] = {}
    if threat is not Threat.frames:
        _event_attack(
            ctx,
            run,
            mode,
            source,
            model,
            threat.value,
            attacks,
            max_events,
            max_shift,
            max_moved,
            spec,
            limit,
            batch_size,
            device,
            seed,
            checkpoint.value,
            data_dir,
        )
        return
    event_only = [
        name
        for name, value in (("--max-events", max_events), ("--max-moved", max_moved), ("--spec", spec))
        if value is not None
    ]
    if max_shift != 1:
        event_only.append("--max-shift")
    if event_only:
        raise UserInputError(f"{', '.join(event_only)} apply to --threat events or retiming, not frames")
    if model is None and (weights is not None or data is not None or defense is not None):
        raise UserInputError(
            "--weights, --data and --defense describe a --model; give --model pkg.module:factory"
        )
    if model is not None and run is None:
        raise UserInputError("--model needs --run DIR: the directory its results are written to")
    if run is None:
        run, count = newest_run(RUNS_DIR, checkpoint.value)
        notes["run"] = f"newest of {count} runs in {RUNS_DIR}/" if count > 1 else f"the run in {RUNS_DIR}/"
    if mode is Mode.blackbox and source is None:
        source = transfer_source(run, run.parent, checkpoint.value)
        notes["source"] = "vanilla, same data and architecture, another seed"
    for name, path in (("run", run), ("source", source)):
        if name in notes:  # the chosen defaults, at once (the full line follows the validated run)
            logging.getLogger(__name__).info("--%s %s (%s)", name, path, notes[name])

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
        steps=steps,
        queries=queries,
        max_doublings=max_doublings,
        **({"model": model, "weights": weights, "data": data, "defense": defense} if model else {}),
    )
    # Printed once the inputs were accepted: a bad option stays one error line with nothing before it.
    typer.echo(defaults_line(ctx, {"run": run, "source": source}, notes, skip=EVENT_ONLY))
    typer.echo(render_markdown(result))
    json_path, md_path, _ = result_paths(run, mode.value)
    typer.echo(f"wrote {json_path} and {md_path}")


def _event_attack(
    ctx: typer.Context,
    run: Path | None,
    mode: Mode,
    source: Path | None,
    model: str | None,
    threat: str,
    attacks: str | None,
    max_events: int | None,
    max_shift: int,
    max_moved: int | None,
    spec: str | None,
    limit: int | None,
    batch_size: int,
    device: str,
    seed: int,
    which: str,
    data_dir: Path | None,
) -> None:
    """``--threat events|retiming``: white-box event attacks on a run of ``evrobust train``."""
    from evrobust.errors import UserInputError
    from evrobust.pipelines.attack.events import render_event_markdown, run_event_attack
    from evrobust.pipelines.attack.inputs import result_paths
    from evrobust.pipelines.cli.defaults import defaults_line
    from evrobust.pipelines.defaults import RUNS_DIR, newest_run

    if mode is Mode.blackbox or source is not None or model is not None:
        raise UserInputError(
            f"--threat {threat} attacks a run of `evrobust train` white-box; drop --mode "
            "blackbox, --source and --model"
        )
    notes: dict[str, str] = {}
    if run is None:
        run, count = newest_run(RUNS_DIR, which)
        notes["run"] = f"newest of {count} runs in {RUNS_DIR}/" if count > 1 else f"the run in {RUNS_DIR}/"
    result = run_event_attack(
        run,
        threat=threat,
        attacks=attacks,
        max_events=max_events,
        max_shift=max_shift,
        max_moved=max_moved,
        spec=spec,
        limit=limit,
        batch_size=batch_size,
        device=device,
        seed=seed,
        which=which,
        data_dir=None if data_dir is None else str(data_dir),
    )
    typer.echo(defaults_line(ctx, {"run": run, "spec": result.get("spec")}, notes, skip=FRAME_ONLY))
    typer.echo(render_event_markdown(result))
    json_path, md_path, _ = result_paths(run, threat)
    typer.echo(f"wrote {json_path} and {md_path}")
