"""``evrobust analyze ...``: thin typer wrappers over :func:`evrobust.pipelines.analyze.run_analysis`.

Each command prints a few summary lines and the paths it wrote (``<run>/analysis-<kind>.json`` and PNGs).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="analyze",
    help="Gradient sparsity, random vs adversarial vulnerability, the Theorem 1 check, gradient plots and "
    "the masking study's loss landscape and surrogate fidelity.",
    no_args_is_help=True,
    add_completion=False,
)


class Checkpoint(StrEnum):
    best = "best"
    last = "last"


class Target(StrEnum):
    two_class = "two_class"
    softmax = "softmax"


class EnsembleName(StrEnum):
    """The CLI's copy of :data:`evrobust.attacks.ENSEMBLES` (a test keeps the two equal)."""

    single = "single"
    paper = "paper"
    widths = "widths"
    wide = "wide"
    assg = "assg"


Run = Annotated[Path, typer.Option("--run", help="Run directory written by `evrobust train`.")]
Runs = Annotated[
    list[Path], typer.Option("--run", help="Run directory; repeat to compare several runs in one figure.")
]
Limit = Annotated[int, typer.Option("--limit", min=1, help="Analyse the first N test samples.")]
Spec = Annotated[
    str | None,
    typer.Option("--spec", help="Gradient spec, e.g. triangle:1, sigmoid:4, atan:2, rate [model's own]."),
]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Samples per batch.")]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed of the random draws.")]
Which = Annotated[Checkpoint, typer.Option("--checkpoint", help="Which checkpoint of the run.")]
DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory if the run's store has moved.")
]
Plots = Annotated[bool, typer.Option("--plots/--no-plots", help="Write the PNG figure(s).")]
TargetOpt = Annotated[
    Target, typer.Option("--target", help="f_y: two_class = sigmoid(z_y - z_k) (SR's), softmax = p_y.")
]


def _common(
    limit: int, spec: str | None, batch_size: int, device: str, seed: int, which: Checkpoint,
    data_dir: Path | None, plots: bool,
) -> dict[str, Any]:
    return {
        "limit": limit,
        "spec": spec,
        "batch_size": batch_size,
        "device": device,
        "seed": seed,
        "which": which.value,
        "data_dir": None if data_dir is None else str(data_dir),
        "plots": plots,
    }


def _echo_written(result: dict[str, Any], kind: str) -> None:
    from evrobust.pipelines.analyze import result_path

    typer.echo(f"wrote {result_path(result['run'], kind)}")
    for path in result["plots"]:
        typer.echo(f"wrote {path}")


def _header(result: dict[str, Any]) -> str:
    return (
        f"{result['arch']} {result['defense']} on {result['dataset']}: {result['samples']} test samples, "
        f"clean accuracy {100 * result['clean_accuracy']:.2f}%, gradient spec {result['spec']}"
    )


@app.command("sparsity")
def sparsity_command(
    run: Run,
    limit: Limit = 256,
    targets: Annotated[
        str, typer.Option("--targets", help="Comma list of f_y: two_class, softmax.")
    ] = "two_class,softmax",
    tol: Annotated[float, typer.Option("--tol", help="l0 counts |g| > tol (absolute).")] = 1e-12,
    rel_tol: Annotated[float, typer.Option("--rel-tol", help="l0_rel counts |g| > rel_tol * max|g|.")] = 1e-6,
    spec: Spec = None, batch_size: BatchSize = 64, device: Device = "auto", seed: Seed = 0,
    checkpoint: Which = Checkpoint.best, data_dir: DataDir = None, plots: Plots = True,
) -> None:
    """l0 / l1 / l2 norms of grad_x f_y per test sample (writes analysis-sparsity.json)."""
    from evrobust.pipelines.analyze import run_analysis

    common = _common(limit, spec, batch_size, device, seed, checkpoint, data_dir, plots)
    result = run_analysis(run, "sparsity", targets=targets, tol=tol, rel_tol=rel_tol, **common)
    typer.echo(_header(result))
    typer.echo(
        f"input dimension {result['input_dim']}; l0 counts |g| > {tol:g}, l0_rel |g| > {rel_tol:g}*max|g|"
    )
    for target, data in result["targets"].items():
        m = data["mean"]
        typer.echo(
            f"{target:>9}: mean l0 {m['l0']:.1f} (density {m['density']:.4f}), l0_rel {m['l0_rel']:.1f}, "
            f"l1 {m['l1']:.4g}, l2 {m['l2']:.4g}, all-zero gradients {100 * m['zero_gradient_share']:.1f}%"
        )
    _echo_written(result, "sparsity")


@app.command("vulnerability")
def vulnerability_command(
    run: Run,
    limit: Limit = 256,
    eps: Annotated[
        str, typer.Option("--eps", help="Strictly increasing comma list, e.g. 0,2/255,4/255,8/255.")
    ] = "0,1/255,2/255,4/255,8/255,16/255,32/255",
    attacks: Annotated[
        str, typer.Option("--attacks", help="Comma list of attack names.")
    ] = "noise,fgsm,pgd10",
    ensemble: Annotated[
        EnsembleName, typer.Option("--ensemble", help="Gradient-spec members (ignored with --spec).")
    ] = EnsembleName.single,
    spec: Spec = None, batch_size: BatchSize = 64, device: Device = "auto", seed: Seed = 0,
    checkpoint: Which = Checkpoint.best, data_dir: DataDir = None, plots: Plots = True,
) -> None:
    """Accuracy under uniform noise vs FGSM vs PGD across eps (paper Fig. 1)."""
    from evrobust.pipelines.analyze import run_analysis

    common = _common(limit, spec, batch_size, device, seed, checkpoint, data_dir, plots)
    result = run_analysis(
        run, "vulnerability", eps_grid=eps, attacks=attacks, ensemble=ensemble.value, **common
    )
    typer.echo(_header(result))
    typer.echo("eps      " + " ".join(f"{t:>8}" for t in result["eps_text"]))
    for name, curve in result["curves"].items():
        typer.echo(f"{name:<8} " + " ".join(f"{100 * a:>7.2f}%" for a in curve))
    for check in result["checks"]:
        if not check["passed"]:
            typer.echo(f"check failed [{check['subject']}] {check['name']}: {check['detail']}")
    _echo_written(result, "vulnerability")


@app.command("theorem")
def theorem_command(
    run: Run,
    limit: Limit = 64,
    eps: Annotated[str, typer.Option("--eps", help="Strictly increasing comma list of eps > 0.")] = (
        "1/255,2/255,8/255"
    ),
    target: TargetOpt = Target.two_class,
    mc_samples: Annotated[
        int, typer.Option("--mc-samples", min=2, help="Monte Carlo draws per sample for rho_rand.")
    ] = 64,
    pgd_steps: Annotated[
        int, typer.Option("--pgd-steps", min=0, help="Sign-gradient steps per direction for rho_adv.")
    ] = 20,
    clip: Annotated[bool, typer.Option("--clip/--no-clip", help="Clip x + delta to [0,1].")] = False,
    spec: Spec = None, batch_size: BatchSize = 64, device: Device = "auto", seed: Seed = 0,
    checkpoint: Which = Checkpoint.best, data_dir: DataDir = None, plots: Plots = True,
) -> None:
    """Measured rho_adv / rho_rand beside 3 l1^2 / l2^2 and the bounds [3, 3 l0] (Theorem 1)."""
    from evrobust.pipelines.analyze import run_analysis

    common = _common(limit, spec, batch_size, device, seed, checkpoint, data_dir, plots)
    result = run_analysis(
        run, "theorem", eps_grid=eps, target=target.value, mc_samples=mc_samples, pgd_steps=pgd_steps,
        clip=clip, **common,
    )
    typer.echo(_header(result))
    for entry in result["results"]:
        median = entry["median"]
        in_bounds = "n/a" if entry["in_bounds"] is None else f"{100 * entry['in_bounds']:.1f}%"
        below = "n/a" if entry["below_estimate"] is None else f"{100 * entry['below_estimate']:.1f}%"
        ratio = "n/a" if median["ratio"] is None else f"{median['ratio']:.4g}"
        estimate = "n/a" if median["estimate"] is None else f"{median['estimate']:.4g}"
        typer.echo(
            f"eps {entry['eps_text']}: median ratio {ratio} vs estimate {estimate}; "
            f"in [3, 3 l0] {in_bounds}, <= estimate {below} of {entry['defined']} samples with rho_rand > 0"
        )
    _echo_written(result, "theorem")


def _compare(results: list[dict[str, Any]], kind: str, out: Path | None) -> None:
    from evrobust.pipelines.analyze import compare_plot

    if len(results) < 2:
        return
    path = out if out is not None else Path(results[0]["run"]) / f"analysis-{kind}-compare.png"
    typer.echo(f"wrote {compare_plot(results, kind, path)}")


Out = Annotated[
    Path | None,
    typer.Option("--out", help="Comparison PNG for several runs [<first run>/analysis-<kind>-compare.png]."),
]


@app.command("distribution")
def distribution_command(
    run: Runs,
    limit: Limit = 256,
    target: TargetOpt = Target.two_class,
    bins: Annotated[int, typer.Option("--bins", min=2, help="Histogram bins (odd: 0 sits mid-bin).")] = 101,
    out: Out = None,
    spec: Spec = None, batch_size: BatchSize = 64, device: Device = "auto", seed: Seed = 0,
    checkpoint: Which = Checkpoint.best, data_dir: DataDir = None, plots: Plots = True,
) -> None:
    """Histogram of the components of grad_x f_y over the test samples (paper Fig. 4)."""
    from evrobust.pipelines.analyze import run_analysis

    common = _common(limit, spec, batch_size, device, seed, checkpoint, data_dir, plots)
    results = []
    for one in run:
        result = run_analysis(one, "distribution", target=target.value, bins=bins, **common)
        typer.echo(_header(result))
        zeros = result["zero_count"] / max(result["total"], 1)
        typer.echo(
            f"{result['total']} components: exact zeros {100 * zeros:.2f}%, std {result['std']:.4g}, "
            f"max |g| {result['abs_max']:.4g}"
        )
        _echo_written(result, "distribution")
        results.append(result)
    if plots:
        _compare(results, "distribution", out)


@app.command("heatmap")
def heatmap_command(
    run: Runs,
    # max: evrobust.safeio.schemas.analysis.MAX_HEATMAP_SAMPLES (not imported: the CLI starts without
    # pydantic; tests/safeio/test_schema_analysis.py keeps the two equal).
    count: Annotated[
        int, typer.Option("--count", min=1, max=64, help="Number of test samples to show (at most 64).")
    ] = 4,
    target: TargetOpt = Target.two_class,
    out: Out = None,
    spec: Spec = None, batch_size: BatchSize = 64, device: Device = "auto", seed: Seed = 0,
    checkpoint: Which = Checkpoint.best, data_dir: DataDir = None, plots: Plots = True,
) -> None:
    """|grad_x f_y| heatmaps of the first test samples beside the inputs (paper Fig. 5)."""
    from evrobust.pipelines.analyze import run_analysis

    common = _common(count, spec, batch_size, device, seed, checkpoint, data_dir, plots)
    results = []
    for one in run:
        result = run_analysis(one, "heatmap", target=target.value, count=count, **common)
        typer.echo(_header(result))
        _echo_written(result, "heatmap")
        results.append(result)
    if plots:
        _compare(results, "heatmap", out)



def _radius_text(value: float | None) -> str:
    return "never (within the grid, for half the samples or more)" if value is None else f"{value:.4g}"


MaskEps = Annotated[
    str, typer.Option("--eps", help="Attack radius: the default radii end at 4 eps.")
]
Random = Annotated[int, typer.Option("--random", min=0, max=16, help="Random sign directions (seeded).")]
Radii = Annotated[
    str | None,
    typer.Option("--radii", help="Strictly increasing comma list in (0, 1] [log-spaced 1e-3 .. 4 eps]."),
]
Steps = Annotated[
    str, typer.Option("--steps", help="Strictly increasing comma list of steps in (0, 0.5] (input units).")
]
AdvSteps = Annotated[
    int, typer.Option("--adv-steps", min=0, max=1000, help="PGD steps to the adversarial example (0: none).")
]


@app.command("landscape")
def landscape_command(
    run: Runs,
    limit: Limit = 64,
    eps: MaskEps = "8/255",
    radii: Radii = None,
    points: Annotated[int, typer.Option("--points", min=2, max=256, help="Radii of the default grid.")] = 16,
    rise: Annotated[
        float, typer.Option("--rise", help="Loss rise (nats) that ends the flat region around a sample.")
    ] = 0.1,
    random: Random = 2,
    adv_steps: AdvSteps = 10,
    out: Out = None,
    spec: Spec = None, batch_size: BatchSize = 64, device: Device = "auto", seed: Seed = 0,
    checkpoint: Which = Checkpoint.best, data_dir: DataDir = None, plots: Plots = True,
) -> None:
    """The loss around each test sample along gradient, random and adversarial directions, over radii."""
    from evrobust.pipelines.analyze import run_analysis

    common = _common(limit, spec, batch_size, device, seed, checkpoint, data_dir, plots)
    results = []
    for one in run:
        result = run_analysis(one, "landscape", eps=eps, radii=radii, points=points, rise=rise, random=random,
                              adv_steps=adv_steps, **common)
        typer.echo(_header(result))
        typer.echo(f"{len(result['radii'])} radii {result['radii'][0]:.3g} .. {result['radii'][-1]:.3g}; "
                   f"flat region = loss rise below {result['rise']:g} nats (SR's h = {result['sr_h']:g})")
        for name, body in result["directions"].items():
            typer.echo(f"{name:>12}: median rise radius {_radius_text(body['rise']['median_radius'])}, "
                       f"{100 * body['rise']['share']:.1f}% rise within the grid")
        if result["adversarial"] is not None:
            typer.echo(result["adversarial"]["note"])
        _echo_written(result, "landscape")
        results.append(result)
    if plots:
        _compare(results, "landscape", out)


@app.command("fidelity")
def fidelity_command(
    run: Run,
    limit: Limit = 64,
    steps: Steps = "1e-3,1e-2,3e-2",
    eps: MaskEps = "8/255",
    random: Random = 2,
    ensemble: Annotated[
        EnsembleName, typer.Option("--ensemble", help="Gradient specs compared (ignored with --spec).")
    ] = EnsembleName.paper,
    spec: Spec = None, batch_size: BatchSize = 64, device: Device = "auto", seed: Seed = 0,
    checkpoint: Which = Checkpoint.best, data_dir: DataDir = None, plots: Plots = True,
) -> None:
    """Surrogate directional derivatives against finite differences of the exact spiking forward pass."""
    from evrobust.pipelines.analyze import run_analysis

    common = _common(limit, spec, batch_size, device, seed, checkpoint, data_dir, plots)
    result = run_analysis(run, "fidelity", steps=steps, eps=eps, random=random, ensemble=ensemble.value,
                          **common)
    typer.echo(_header(result))
    for name, body in result["specs"].items():
        for entry in body["results"]:
            cosine = "n/a" if entry["cosine"] is None else f"{entry['cosine']:.3f}"
            ratio = "n/a" if entry["ratio"] is None else f"{entry['ratio']:.3g}"
            typer.echo(f"{name:>12} step {entry['step']:<6g}: cosine {cosine}, ratio {ratio}, "
                       f"fd exactly zero {100 * entry['zero_fd_share']:.1f}%, flat but moving at eps "
                       f"{100 * entry['flat_changes_share']:.1f}% of samples")
    _echo_written(result, "fidelity")
