"""The configuration of one training run: options, paper defaults (DESIGN §5, Appendix D), validation.

``None`` in a field means "the paper's default for this dataset and defense", filled in by
:func:`resolve_config` once the data store is known:

=================  =========================================================================================
batch_size         64 (CIFAR, digits), 24 for CIFAR10-DVS (paper Table 5)
T                  8 for images; for event frames always the store's frame count
lam                SR: 0.008 CIFAR-10, 0.002 CIFAR-100 and CIFAR10-DVS; SR*: 0.002 CIFAR-10 and
                   CIFAR10-DVS, 0.001 CIFAR-100 (Appendix D); 0.002 for other data; 0 without SR
at_method          FGSM for CIFAR10-DVS (Table 5), PGD otherwise; TRADES always its KL attack (pgd); DLIF FGSM
at_eps/step/steps  per defense (evrobust.defenses.attack_defaults): 2/255, 0.01, 5 (AT-type); 8/255, 3/255, 4
                   (TRADES); FGSM 4/255 (DLIF)
trades_*, dsd_*,   the defense's defaults when the defense uses them, else None (an explicit value is dropped
dlif_*, tgo_*      with a warning); None fields stay out of ``identity``
input_gain         on for DLIF (its learnable per-step input gain), off otherwise
weight_decay       5e-4, but 0 for RAT (the Parseval retraction replaces it)
augment            on for the paper's datasets (CIFAR: crop 32 pad 4 + flip; CIFAR10-DVS: flip + roll |
                   rotate | cutout), off otherwise (a 4-pixel crop of an 8x8 digit and a mirrored digit
                   destroy the class evidence of the embedded data)
=================  =========================================================================================
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from evrobust.defenses import AT_METHODS, DEFENSES, DSD_BASES, PENALTIES, DefenseConfig
from evrobust.errors import UserInputError

log = logging.getLogger(__name__)

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")

# (defense, dataset) -> lambda, Appendix D. Datasets not listed fall back to DEFAULT_LAMBDA.
PAPER_LAMBDA: dict[tuple[str, str], float] = {
    ("sr", "cifar10"): 0.008,
    ("sr", "cifar100"): 0.002,
    ("sr", "cifar10dvs"): 0.002,
    ("sr", "cifar10dvs-emu"): 0.002,
    ("sr_star", "cifar10"): 0.002,
    ("sr_star", "cifar10dvs"): 0.002,
    ("sr_star", "cifar10dvs-emu"): 0.002,
    ("sr_star", "cifar100"): 0.001,
}
DEFAULT_LAMBDA = 0.002
PAPER_BATCH = {"cifar10dvs": 24, "cifar10dvs-emu": 24}
DEFAULT_BATCH = 64
IMAGE_T = 8
# The emulated CIFAR10-DVS (docs/emulated-cifar10dvs.md) stands in for the real recordings, so it trains
# with their recipe: augmentation, FGSM adversarial training, batch 24 and the paper's lambdas.
EVENT_CIFAR = frozenset({"cifar10dvs", "cifar10dvs-emu"})
AUGMENTED_DATASETS = frozenset({"cifar10", "cifar100"}) | EVENT_CIFAR

# Documented limits (docs/reliability.md), checked before anything is allocated. Each sits far above what the
# paper uses and far below what would exhaust a machine or overflow a float/RNG.
LIMITS: dict[str, tuple[float, float]] = {
    # name: (lowest, highest) allowed, both inclusive unless said otherwise in validate()
    "lr": (0.0, 10.0),  # paper 0.1; > 0
    "h": (0.0, 1.0),  # paper 0.01, input units; > 0
    "lam": (0.0, 100.0),  # paper 0.001 .. 0.008
    "at_eps": (0.0, 1.0),  # input units
    "at_step": (0.0, 1.0),  # input units; > 0
    "rat_beta": (0.0, 1.0),  # paper 5e-4
    "weight_decay": (0.0, 1.0),  # paper 5e-4
    "width": (0.0, 16.0),  # paper 1.0; > 0
    "trades_beta": (0.0, 100.0),  # reference 5
    "trades_tau": (0.0, 100.0),  # reference 2; > 0
    "dlif_kappa": (0.0, 1.0),  # reference 0.5
    "dlif_alpha": (0.0, 100.0),  # reference 1
    "tgo_delta": (0.0, 10.0),  # threshold units; > 0
    "tgo_lam": (0.0, 100.0),
    "tgo_warmup": (0.0, 1.0),  # share of the epochs
    "tgo_noise": (0.0, 10.0),  # model current units
}
MAX_T = 1024  # time steps (paper 8 for images, 10 frames for CIFAR10-DVS)
MAX_SEED = 2**32 - 1  # numpy and torch accept it, and seed + epoch stays far below 2**63
MAX_EPOCHS = 100_000
MAX_BATCH = 1 << 16
MAX_AT_STEPS = 10_000
MAX_WORKERS = 256

# Defense options added after runs existed, with their "not used" value: left out of ``identity`` at that
# value, so runs trained before they existed keep their identity (and stay resumable).
DEFENSE_OPTIONS: dict[str, Any] = {
    "trades_beta": None,
    "trades_tau": None,
    "dsd_base": None,
    "dlif_kappa": None,
    "dlif_alpha": None,
    "tgo_delta": None,
    "tgo_lam": None,
    "tgo_warmup": None,
    "tgo_noise": None,
    "input_gain": False,
}


def option_applies(key: str, defense: str, dsd_base: str | None) -> bool:
    """Whether the :data:`DEFENSE_OPTIONS` field ``key`` means something for ``defense``."""
    if key == "input_gain":
        return True  # a neuron option: any defense may train with it
    if key.startswith("trades_"):
        return defense == "trades" or (defense == "dsd" and (dsd_base or "at") == "trades")
    return defense == key.split("_")[0]


# Fields that do not change what a run computes: they may differ between an interrupted run and its resume.
RUNTIME_FIELDS: frozenset[str] = frozenset(
    {"data", "data_dir", "out", "resume", "device", "workers", "progress", "stop_after"}
)


@dataclass
class TrainConfig:
    """Every option of ``evrobust train``; see the module docstring for the ``None`` defaults.

    Attributes:
        data: embedded name (digits, digits-dvs), cifar10 / cifar100 / cifar10dvs, or a store path.
        data_dir: where named stores live (default ``$EVROBUST_DATA`` or ``./data``).
        model: registered model name (``evrobust.models.list_models()``).
        width: channel multiplier of the model.
        T: time steps for static images (event frames bring their own).
        model_options: extra ``create_model`` overrides (tau, theta, pool, readout, ...).
        defense: vanilla | sr | at | sr_star | rat | trades | dsd | dlif | tgo.
        lam, sr_penalty, h: SR weight, penalty (l2sq | l1) and finite-difference step.
        at_method, at_eps, at_step, at_steps: training attack (pgd | fgsm), radius, PGD step and iterations
            (None: the defense's defaults).
        rat_beta: Parseval retraction strength (RAT).
        trades_beta, trades_tau: TRADES KL weight and temperature (trades; dsd with --dsd-base trades).
        dsd_base: the loss DSD deflates (vanilla | at | trades; default at).
        dlif_kappa, dlif_alpha: DLIF clean-CE share and perturbation-energy weight.
        input_gain: the IF layers' learnable per-step input gain (None: on for dlif only).
        tgo_delta, tgo_lam, tgo_warmup, tgo_noise: TGO margin, weight, warm-up share, training noise sigma.
        epochs, batch_size, lr, momentum, weight_decay: SGD with cosine annealing over ``epochs``.
        neuron_backend: IF backend (native | spikingjelly | norse).
        augment: random crop + flip (images) / flip + roll|rotate|cutout (frames) on training batches
            (None = on for cifar10, cifar100, cifar10dvs; off otherwise).
        limit_train, limit_val: use only the first N samples of a split (quick runs).
        seed: seeds weights, data order, augmentation and attack noise.
        device: auto | cpu | cuda; amp: bf16 autocast on CUDA.
        out: run directory; resume: continue from its ``checkpoint-last``.
        workers: DataLoader worker processes for stores read from disk.
        progress: show a progress bar (None = when stderr is a terminal).
        stop_after: stop after this many epochs in this invocation (the run stays resumable).
    """

    data: str
    model: str = "vgg11"
    data_dir: str | None = None
    width: float = 1.0
    T: int | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    defense: str = "vanilla"
    lam: float | None = None
    sr_penalty: str = "l2sq"
    h: float = 0.01
    at_method: str | None = None
    at_eps: float | None = None
    at_step: float | None = None
    at_steps: int | None = None
    rat_beta: float = 5e-4
    trades_beta: float | None = None
    trades_tau: float | None = None
    dsd_base: str | None = None
    dlif_kappa: float | None = None
    dlif_alpha: float | None = None
    input_gain: bool | None = None
    tgo_delta: float | None = None
    tgo_lam: float | None = None
    tgo_warmup: float | None = None
    tgo_noise: float | None = None
    epochs: int = 200
    batch_size: int | None = None
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float | None = None
    neuron_backend: str = "native"
    augment: bool | None = None
    limit_train: int | None = None
    limit_val: int | None = None
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    out: str | None = None
    resume: bool = False
    workers: int = 0
    progress: bool | None = None
    stop_after: int | None = None

    def validate(self) -> None:
        """Cheap checks that need no data (run before any store is opened or built)."""
        if self.defense not in DEFENSES:
            raise UserInputError(f"unknown defense {self.defense!r}; choose one of {', '.join(DEFENSES)}")
        if self.sr_penalty not in PENALTIES:
            raise UserInputError(
                f"unknown SR penalty {self.sr_penalty!r}; choose one of {', '.join(PENALTIES)}"
            )
        if self.at_method is not None and self.at_method not in AT_METHODS:
            raise UserInputError(
                f"unknown --at-method {self.at_method!r}; choose one of {', '.join(AT_METHODS)}"
            )
        if self.device not in DEVICES:
            raise UserInputError(f"unknown device {self.device!r}; choose one of {', '.join(DEVICES)}")
        _in_range("--lr", self.lr, "lr", above_low=True, hint="the paper uses 0.1")
        _in_range("--h", self.h, "h", above_low=True, hint="the paper uses 0.01")
        if self.lam is not None:
            _in_range("--lam", self.lam, "lam", hint="the paper uses 0.001 .. 0.008")
        if self.at_eps is not None:
            _in_range("--at-eps", self.at_eps, "at_eps", hint="input units, e.g. 2/255")
        if self.at_step is not None:
            step_hint = "the PGD step size in input units, e.g. 0.01"
            _in_range("--at-step", self.at_step, "at_step", above_low=True, hint=step_hint)
        if self.dsd_base is not None and self.dsd_base not in DSD_BASES:
            choices = ", ".join(DSD_BASES)
            raise UserInputError(f"unknown --dsd-base {self.dsd_base!r}; choose one of {choices}")
        if self.input_gain is not None and not isinstance(self.input_gain, bool):
            raise UserInputError(f"--input-gain must be true or false (got {self.input_gain!r})")
        for key, above_low, hint in (
            ("trades_beta", False, "the reference uses 5"),
            ("trades_tau", True, "the reference uses 2"),
            ("dlif_kappa", False, "the reference uses 0.5"),
            ("dlif_alpha", False, "the reference uses 1"),
            ("tgo_delta", True, "threshold units"),
            ("tgo_lam", False, ""),
            ("tgo_warmup", False, "a share of the epochs"),
            ("tgo_noise", False, "0 = off"),
        ):
            value = getattr(self, key)
            if value is not None:
                _in_range("--" + key.replace("_", "-"), value, key, above_low=above_low, hint=hint)
        _in_range("--rat-beta", self.rat_beta, "rat_beta", hint="the paper uses 5e-4")
        if self.weight_decay is not None:
            _in_range("--weight-decay", self.weight_decay, "weight_decay", hint="the paper uses 5e-4")
        _in_range("--width", self.width, "width", above_low=True, hint="1.0 is the paper's size")
        _positive("--epochs", self.epochs, MAX_EPOCHS)
        if self.at_steps is not None:
            _positive("--at-steps", self.at_steps, MAX_AT_STEPS)
        for name, value, most in (
            ("--batch-size", self.batch_size, MAX_BATCH),
            ("--T", self.T, MAX_T),
            ("--limit-train", self.limit_train, None),
            ("--limit-val", self.limit_val, None),
            ("--stop-after", self.stop_after, MAX_EPOCHS),
        ):
            if value is not None:
                _positive(name, value, most)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise UserInputError(f"--seed must be an integer in [0, {MAX_SEED}] (got {self.seed!r})")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int):
            raise UserInputError(f"--workers must be an integer (got {self.workers!r})")
        if not 0 <= self.workers <= MAX_WORKERS:
            raise UserInputError(f"--workers must lie in [0, {MAX_WORKERS}] (got {self.workers})")
        if not _is_number(self.momentum) or not 0.0 <= self.momentum < 1.0:
            raise UserInputError(f"--momentum must lie in [0, 1) (got {self.momentum}); the paper uses 0.9")
        self.defense_config(lam=self.lam or 0.0)  # validates the rest

    def defense_config(self, lam: float | None = None) -> DefenseConfig:
        """The :class:`DefenseConfig` of this run (after :func:`resolve_config`, without arguments).

        Options left None take the defense's own defaults (:class:`DefenseConfig`)."""
        given = {
            key: getattr(self, key)
            for key in ("at_method", "at_eps", "at_step", "at_steps", *DEFENSE_OPTIONS)
            if key != "input_gain" and getattr(self, key) is not None
        }
        return DefenseConfig(
            name=self.defense,
            lam=self.lam if lam is None else lam,
            h=self.h,
            penalty=self.sr_penalty,
            rat_beta=self.rat_beta,
            **given,
        )

    def identity(self) -> dict[str, Any]:
        """The fields that determine what the run computes (compared when a run directory is reused).

        A :data:`DEFENSE_OPTIONS` field at its off value is left out, so runs from before it existed match.
        """
        return {
            k: v
            for k, v in dataclasses.asdict(self).items()
            if k not in RUNTIME_FIELDS and not (k in DEFENSE_OPTIONS and v == DEFENSE_OPTIONS[k])
        }

    def to_dict(self) -> dict[str, Any]:
        """All fields, JSON-serialisable."""
        return dataclasses.asdict(self)


def _positive(name: str, value: int, most: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserInputError(f"{name} must be an integer >= 1 (got {value!r})")
    if most is not None and value > most:
        raise UserInputError(f"{name} must be at most {most} (got {value}); see docs/reliability.md")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _in_range(option: str, value: Any, key: str, above_low: bool = False, hint: str = "") -> None:
    """Refuse a non-number, NaN/inf, or a value outside ``LIMITS[key]`` (``above_low``: low excluded)."""
    low, high = LIMITS[key]
    ok = _is_number(value) and (value > low if above_low else value >= low) and value <= high
    if not ok:
        bound = f"> {low:g}" if above_low else f">= {low:g}"
        raise UserInputError(
            f"{option} must be {bound} and <= {high:g}, a finite number (got {value!r})"
            + (f"; {hint}" if hint else "")
        )


def check_model_config_limits(model_config: dict[str, Any], where: str) -> None:
    """The size fields of a saved model config (``config.json``'s ``model``) within the same limits as
    ``evrobust train``: ``T`` in [1, MAX_T], ``width`` in (0, 16]. A damaged or hostile file fails here, as
    one line, before a model is built or an input repeated T times.

    Raises:
        UserInputError: naming ``where`` (the file).
    """
    try:
        if "T" in model_config and model_config["T"] is not None:
            _positive("T", model_config["T"], MAX_T)
        if "width" in model_config:
            _in_range("width", model_config["width"], "width", above_low=True)
    except UserInputError as exc:
        raise UserInputError(f"{where}: {exc}") from None


def resolve_config(config: TrainConfig, dataset: str, kind: str, frames: int | None) -> TrainConfig:
    """A copy of ``config`` with every ``None`` default filled for the given data.

    Args:
        config: the user's options.
        dataset: the dataset name recorded in the store (cifar10, cifar10dvs, digits, ...).
        kind: ``images`` or ``frames``.
        frames: T of an event-frame store (None for images).

    Raises:
        UserInputError: ``--T`` given for an event-frame store with a different frame count.
    """
    c = dataclasses.replace(config, model_options=dict(config.model_options))
    if kind == "frames":
        if c.T is not None and c.T != frames:
            raise UserInputError(
                f"--T {c.T} does not match the store's {frames} event frames; omit --T (frames set T) "
                "or build a store with --frames"
            )
        c.T = frames
    elif c.T is None:
        c.T = IMAGE_T
    if c.batch_size is None:
        c.batch_size = PAPER_BATCH.get(dataset, DEFAULT_BATCH)
    if c.augment is None:
        c.augment = dataset in AUGMENTED_DATASETS
    _resolve_defense_options(c, dataset)
    uses_sr = c.defense in ("sr", "sr_star")
    if c.lam is None:
        c.lam = PAPER_LAMBDA.get((c.defense, dataset), DEFAULT_LAMBDA) if uses_sr else 0.0
    elif not uses_sr and c.lam != 0.0:
        log.warning("--lam %g is ignored: defense %s has no SR term", c.lam, c.defense)
        c.lam = 0.0
    if c.weight_decay is None:
        c.weight_decay = 0.0 if c.defense == "rat" else 5e-4
    elif c.defense == "rat" and c.weight_decay > 0:
        log.warning(
            "RAT is meant to train without weight decay; using --weight-decay %g as asked", c.weight_decay
        )
    return c


def _resolve_defense_options(c: TrainConfig, dataset: str) -> None:
    """Fill the training attack and the newer defenses' options for ``c.defense`` (in place).

    The attack: TRADES (also as DSD's base) always crafts with its KL attack; DLIF uses FGSM unless asked
    otherwise; the other defenses FGSM on CIFAR10-DVS (paper Table 5) and PGD elsewhere. eps, step and steps
    default per defense (:func:`evrobust.defenses.attack_defaults`). An option the defense does not use is
    dropped with a warning, as ``--lam`` is without SR.
    """
    for key, off in DEFENSE_OPTIONS.items():
        value = getattr(c, key)
        if not option_applies(key, c.defense, c.dsd_base) and value is not None and value != off:
            option = "--" + key.replace("_", "-")
            log.warning("%s %s is ignored: defense %s does not use it", option, value, c.defense)
            setattr(c, key, off)
    defaults = DefenseConfig(name=c.defense, dsd_base=c.dsd_base or "at")
    for key, off in DEFENSE_OPTIONS.items():
        if key != "input_gain" and getattr(c, key) is None:
            applies = option_applies(key, c.defense, c.dsd_base)
            setattr(c, key, getattr(defaults, key) if applies else off)
    if c.input_gain is None:  # a neuron option, not in DefenseConfig: on by default for DLIF only
        c.input_gain = c.defense == "dlif"
    if c.at_method is None:
        if defaults.kind in ("trades", "dlif"):
            c.at_method = defaults.at_method
        else:
            c.at_method = "fgsm" if dataset in EVENT_CIFAR else "pgd"
    for key in ("at_eps", "at_step", "at_steps"):
        if getattr(c, key) is None:
            setattr(c, key, getattr(defaults, key))
