"""``evrobust train``: a thin typer wrapper over :func:`evrobust.pipelines.train.pipeline.train`.

Heavy imports (torch, models, data) happen inside the command so that ``evrobust --help`` stays fast.
"""

from __future__ import annotations

import math
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from evrobust.errors import UserInputError


class Defense(StrEnum):
    """Training defenses (the values of ``evrobust.defenses.DEFENSES``)."""

    vanilla = "vanilla"
    sr = "sr"
    at = "at"
    sr_star = "sr_star"
    rat = "rat"
    trades = "trades"
    dsd = "dsd"
    dlif = "dlif"
    tgo = "tgo"


class DsdBase(StrEnum):
    """The loss DSD deflates the gradients of (the values of ``evrobust.defenses.DSD_BASES``)."""

    vanilla = "vanilla"
    at = "at"
    trades = "trades"


class Penalty(StrEnum):
    """SR penalties: l2sq = mean D^2 (released code, default), l1 = mean |D| (paper Eq. 14)."""

    l2sq = "l2sq"
    l1 = "l1"


class AtMethod(StrEnum):
    """Training attacks."""

    pgd = "pgd"
    fgsm = "fgsm"


class Device(StrEnum):
    """Compute device."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


MAX_OPTION_CHARS = 4096
"""Longest ``--model-opt`` VALUE: no model option is longer, and the run's config.json must stay readable."""


def parse_model_options(items: list[str]) -> dict[str, Any]:
    """``["tau=0.5", "pool=max"]`` -> ``{"tau": 0.5, "pool": "max"}`` (values parsed as JSON if possible).

    Checks: each item is ``KEY=VALUE`` with a VALUE of at most :data:`MAX_OPTION_CHARS` characters; a VALUE
    is parsed by :func:`evrobust.safeio.parse_json` (depth- and string-limited); one that starts like a JSON
    list, object or string (``[``, ``{``, ``"``) must parse, any other text that is not JSON is taken as a
    string (``pool=max``); numbers must be finite (``NaN``, ``Infinity``, ``1e400``).

    Raises:
        UserInputError: one line naming the option.
    """
    from evrobust.safeio import parse_json

    options: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UserInputError(f"--model-opt {item!r} is not KEY=VALUE; e.g. --model-opt tau=0.5")
        source = f"--model-opt {key.strip()}"
        if len(text) > MAX_OPTION_CHARS:
            raise UserInputError(
                f"{source}: the value has {len(text):,} characters; at most {MAX_OPTION_CHARS:,} are accepted"
            )
        try:
            value: Any = parse_json(text, source)
        except UserInputError:
            if text.lstrip()[:1] in ("[", "{", '"'):
                raise  # meant as JSON: a typo must fail here, not become a string the model then misreads
            value = text
        if not _all_finite(value):
            raise UserInputError(f"{source}={text} holds a number that is not finite; give a finite number")
        options[key.strip()] = value
    return options


def _all_finite(value: Any) -> bool:
    """No NaN or infinity anywhere in a parsed JSON value (the run's config.json refuses them on reading)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return False
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def train_command(
    ctx: typer.Context,
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="digits | digits-dvs (built on first use) | cifar10 | cifar100 | cifar10dvs | a store path "
            "[the most recently built store in the data directory].",
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Data directory for named stores [env EVROBUST_DATA, else ./data]."),
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            "--model", help="vgg11 | wrn16 (paper) | vgg_small | wrn_small (CPU); see `evrobust info`."
        ),
    ] = "vgg11",
    width: Annotated[float, typer.Option("--width", help="Channel multiplier of the model.")] = 1.0,
    T: Annotated[
        int | None,
        typer.Option("--T", help="Time steps for images [8]; event frames use the store's frame count."),
    ] = None,
    model_opt: Annotated[
        list[str] | None,
        typer.Option(
            "--model-opt", help="Model override KEY=VALUE, repeatable (tau, theta, pool, readout, ...)."
        ),
    ] = None,
    defense: Annotated[Defense, typer.Option("--defense", help="Training defense.")] = Defense.vanilla,
    lam: Annotated[
        float | None,
        typer.Option(
            "--lam",
            help="SR weight [paper, Appendix D: SR 0.008 CIFAR-10, 0.002 CIFAR-100/DVS; "
            "SR* 0.002 CIFAR-10/DVS, 0.001 CIFAR-100; 0.002 other data].",
        ),
    ] = None,
    sr_penalty: Annotated[
        Penalty,
        typer.Option("--sr-penalty", help="l2sq = mean D^2 (released code) or l1 = mean |D| (Eq. 14)."),
    ] = Penalty.l2sq,
    h: Annotated[float, typer.Option("--h", help="SR finite-difference step in input units.")] = 0.01,
    at_method: Annotated[
        AtMethod | None, typer.Option("--at-method", help="Training attack [fgsm for cifar10dvs, else pgd].")
    ] = None,
    at_eps: Annotated[
        str | None,
        typer.Option(
            "--at-eps", help="Training attack radius, e.g. 2/255 [2/255; trades 8/255; dlif 4/255]."
        ),
    ] = None,
    at_step: Annotated[
        str | None, typer.Option("--at-step", help="PGD/TRADES step size, e.g. 0.01 [0.01; trades 3/255].")
    ] = None,
    at_steps: Annotated[
        int | None, typer.Option("--at-steps", help="PGD/TRADES iterations [5; trades 4].")
    ] = None,
    rat_beta: Annotated[float, typer.Option("--rat-beta", help="RAT Parseval retraction strength.")] = 5e-4,
    trades_beta: Annotated[
        float | None, typer.Option("--trades-beta", help="TRADES weight of the KL term [5].")
    ] = None,
    trades_tau: Annotated[
        float | None, typer.Option("--trades-tau", help="TRADES softmax temperature [2].")
    ] = None,
    dsd_base: Annotated[
        DsdBase | None, typer.Option("--dsd-base", help="Loss DSD deflates: vanilla | at | trades [at].")
    ] = None,
    dlif_kappa: Annotated[
        float | None, typer.Option("--dlif-kappa", help="DLIF share of the clean cross-entropy [0.5].")
    ] = None,
    dlif_alpha: Annotated[
        float | None, typer.Option("--dlif-alpha", help="DLIF weight of the perturbation energy [1].")
    ] = None,
    input_gain: Annotated[
        bool | None,
        typer.Option("--input-gain/--no-input-gain", help="Learnable per-step IF input gain [on for dlif]."),
    ] = None,
    tgo_delta: Annotated[
        float | None, typer.Option("--tgo-delta", help="TGO margin to the threshold [0.3, not the authors'].")
    ] = None,
    tgo_lam: Annotated[float | None, typer.Option("--tgo-lam", help="TGO final penalty weight [1].")] = None,
    tgo_warmup: Annotated[
        float | None, typer.Option("--tgo-warmup", help="TGO linear warm-up, share of the epochs [0.5].")
    ] = None,
    tgo_noise: Annotated[
        float | None, typer.Option("--tgo-noise", help="TGO training membrane noise sigma [0 = off].")
    ] = None,
    epochs: Annotated[int, typer.Option("--epochs", help="Epochs (cosine schedule length).")] = 200,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Global batch [64; 24 for cifar10dvs].")
    ] = None,
    lr: Annotated[float, typer.Option("--lr", help="Initial SGD learning rate.")] = 0.1,
    momentum: Annotated[float, typer.Option("--momentum", help="SGD momentum.")] = 0.9,
    weight_decay: Annotated[
        float | None, typer.Option("--weight-decay", help="SGD weight decay [5e-4; 0 for rat].")
    ] = None,
    neuron_backend: Annotated[
        str, typer.Option("--neuron-backend", help="IF backend: native | spikingjelly | norse.")
    ] = "native",
    augment: Annotated[
        bool | None,
        typer.Option(
            "--augment/--no-augment", help="Training augmentation [on for cifar10/cifar100/cifar10dvs]."
        ),
    ] = None,
    limit_train: Annotated[
        int | None, typer.Option("--limit-train", help="Use only the first N training samples (quick runs).")
    ] = None,
    limit_val: Annotated[
        int | None, typer.Option("--limit-val", help="Use only the first N validation samples.")
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of weights, data order, augmentation, noise.")
    ] = 0,
    device: Annotated[Device, typer.Option("--device", help="Compute device.")] = Device.auto,
    amp: Annotated[bool, typer.Option("--amp", help="bf16 autocast (CUDA only).")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Run directory [runs/<dataset>-<model>-<defense>-s<seed>].")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint.")
    ] = False,
    workers: Annotated[int, typer.Option("--workers", help="DataLoader workers for on-disk stores.")] = 0,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Progress bar [when on a terminal].")
    ] = None,
    stop_after: Annotated[
        int | None, typer.Option("--stop-after", help="Stop after N epochs in this call (resume later).")
    ] = None,
) -> None:
    """Train a spiking network with a defense; writes config, metrics and checkpoints to the run directory."""
    from evrobust.pipelines.cli.defaults import defaults_line
    from evrobust.pipelines.common.options import parse_eps, parse_fraction
    from evrobust.pipelines.defaults import newest_store, train_defaults
    from evrobust.pipelines.train.config import TrainConfig
    from evrobust.pipelines.train.pipeline import NonFiniteLossError, train

    notes: dict[str, str] = {}
    if data is None:
        from evrobust.datasets.specs import data_dir as resolve_data_dir

        where = resolve_data_dir(data_dir)
        store, count = newest_store(where)
        data = str(store)
        notes["data"] = f"newest of {count} stores in {where}/" if count > 1 else f"the store in {where}/"
    config = TrainConfig(
        data=data,
        data_dir=None if data_dir is None else str(data_dir),
        model=model,
        width=width,
        T=T,
        model_options=parse_model_options(model_opt or []),
        defense=defense.value,
        lam=lam,
        sr_penalty=sr_penalty.value,
        h=h,
        at_method=None if at_method is None else at_method.value,
        at_eps=None if at_eps is None else parse_eps(at_eps, "--at-eps"),
        at_step=None if at_step is None else parse_fraction(at_step, "--at-step"),
        at_steps=at_steps,
        rat_beta=rat_beta,
        trades_beta=trades_beta,
        trades_tau=trades_tau,
        dsd_base=None if dsd_base is None else dsd_base.value,
        dlif_kappa=dlif_kappa,
        dlif_alpha=dlif_alpha,
        input_gain=input_gain,
        tgo_delta=tgo_delta,
        tgo_lam=tgo_lam,
        tgo_warmup=tgo_warmup,
        tgo_noise=tgo_noise,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        neuron_backend=neuron_backend,
        augment=augment,
        limit_train=limit_train,
        limit_val=limit_val,
        seed=seed,
        device=device.value,
        amp=amp,
        out=None if out is None else str(out),
        resume=resume,
        workers=workers,
        progress=progress,
        stop_after=stop_after,
    )
    config.validate()  # cheap mistakes first, before a store is opened or the defaults line is printed
    resolved, _ = train_defaults(config)
    typer.echo(defaults_line(ctx, {"data": data, **resolved}, notes))
    try:
        run_dir = train(config)
    except NonFiniteLossError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(str(run_dir))
