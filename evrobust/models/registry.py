"""Model registry and factory (timm-style): ``register_model``, ``create_model``, ``list_models``.

A builder is a function ``builder(args: ModelArgs, **extra) -> SpikingModel``. ``ModelArgs`` carries the
arguments every model takes (validated once, here); ``extra`` are architecture-specific keyword
arguments (for example ``depth`` of a WRN), declared by the builder's signature with defaults.

``create_model`` returns the model with ``model.config``: a JSON-serialisable dict of every resolved
argument (name, the common ones, the gradient spec as text, and each extra with its default filled in),
so that ``create_model(**model.config)`` rebuilds the same architecture.
"""

from __future__ import annotations

import inspect
import logging
import math
import numbers
import operator
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from evrobust.errors import UserInputError
from evrobust.models.base import SpikingModel
from evrobust.models.layers import POOLS, READOUTS, NeuronFactory
from evrobust.neurons import DEFAULT_SPEC, GradSpec, get_backend, list_backends

logger = logging.getLogger(__name__)

# Overrides every model accepts besides the named create_model arguments.
COMMON_OVERRIDES: tuple[str, ...] = ("tau", "theta", "spec", "pool", "readout")


@dataclass(frozen=True)
class ModelArgs:
    """Validated arguments common to all models.

    Attributes:
        num_classes: number of logits ``K`` (>= 2).
        in_channels: input channels ``C`` (3 for RGB, 1 for grey, 2 for event polarities).
        T: time steps a static image is repeated for (frame input brings its own T).
        width: channel multiplier (> 0) applied to every conv and hidden layer.
        neuron_backend: IF backend for every neuron (see ``evrobust.neurons.list_backends``).
        input_size: side ``H == W`` of the input in pixels.
        mean, std: per-channel normalisation inside the model, or ``None`` for identity.
        tau: membrane leak in ``[0, 1]`` (1 = IF, the paper).
        theta: firing threshold > 0 (1 in the paper).
        spec: training gradient spec of every neuron (attacks switch it temporarily).
        pool: ``"avg"`` (paper) or ``"max"``.
        readout: ``"mean"`` (paper), ``"max"``, ``"last"``, ``"membrane"`` or ``"rate"`` (see ``Readout``).
    """

    num_classes: int
    in_channels: int
    T: int
    width: float
    neuron_backend: str
    input_size: int
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    tau: float
    theta: float
    spec: GradSpec
    pool: str
    readout: str

    def neurons(self) -> NeuronFactory:
        """A factory for this model's IF neurons."""
        return NeuronFactory(self.neuron_backend, self.spec, self.tau, self.theta)

    def to_config(self) -> dict[str, Any]:
        """JSON-serialisable form (tuples -> lists, spec -> its text form)."""
        d = asdict(self)
        d["spec"] = str(self.spec)
        d["mean"] = None if self.mean is None else list(self.mean)
        d["std"] = None if self.std is None else list(self.std)
        return d


Builder = Callable[..., SpikingModel]


@dataclass(frozen=True)
class ModelEntry:
    """One registered architecture: its builder, a one-line description and its extra keyword defaults."""

    name: str
    builder: Builder
    description: str
    extras: dict[str, Any]


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, description: str) -> Callable[[Builder], Builder]:
    """Decorator registering ``builder(args: ModelArgs, **extra)`` under ``name``.

    Every parameter after ``args`` must be keyword-with-default; those are the model's extra overrides.
    """

    def decorate(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        params = list(inspect.signature(builder).parameters.values())[1:]
        extras: dict[str, Any] = {}
        for p in params:
            if p.default is inspect.Parameter.empty:
                raise TypeError(f"extra parameter {p.name!r} of model builder {name!r} needs a default")
            extras[p.name] = p.default
        _REGISTRY[name] = ModelEntry(name, builder, description, extras)
        return builder

    return decorate


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def describe_models() -> dict[str, str]:
    """``{name: one-line description}`` for every registered model (for ``--help`` texts and docs)."""
    return {name: _REGISTRY[name].description for name in list_models()}


def get_entry(name: str) -> ModelEntry:
    """The registry entry for ``name``; UserInputError naming the registered models if unknown."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise UserInputError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    return _REGISTRY[name]


def _positive_int(value: Any, what: str, minimum: int) -> int:
    """``value`` as a builtin int >= minimum; numpy integers (e.g. from a store's attrs) are accepted."""
    try:
        out = operator.index(value) if not isinstance(value, bool) else None
    except TypeError:
        out = None
    if out is None or out < minimum:
        raise UserInputError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(out)


def _number(value: Any, what: str) -> float:
    """``value`` as a builtin float (numpy floats accepted); UserInputError for anything else."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UserInputError(f"{what} must be a number, got {value!r}")
    return float(value)


def _coerce_extra(name: str, model: str, default: Any, value: Any) -> Any:
    """An extra override converted to its default's builtin type, so that ``model.config`` stays JSON."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UserInputError(f"{name} of model {model!r} must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        return _positive_int(value, f"{name} of model {model!r}", 0)
    if isinstance(default, float):
        return _number(value, f"{name} of model {model!r}")
    return value


def _channel_stats(value: Sequence[float] | None, what: str, in_channels: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    if isinstance(value, numbers.Real):
        value = [float(value)] * in_channels  # one number = the same value in every channel
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise UserInputError(f"{what} must be a list of {in_channels} numbers, got {value!r}") from None
    if len(out) != in_channels:
        raise UserInputError(
            f"{what} has {len(out)} values but in_channels={in_channels}; give one value per channel"
        )
    if not all(math.isfinite(v) for v in out):
        raise UserInputError(f"{what} must be finite, got {list(out)}")
    return out


def resolve_args(
    num_classes: int,
    in_channels: int,
    T: int,
    width: float,
    neuron_backend: str,
    input_size: int,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    tau: float = 1.0,
    theta: float = 1.0,
    spec: GradSpec | str = DEFAULT_SPEC,
    pool: str = "avg",
    readout: str = "mean",
) -> ModelArgs:
    """Validate the common arguments; every problem is a one-line UserInputError naming the fix."""
    num_classes = _positive_int(num_classes, "num_classes", 2)
    in_channels = _positive_int(in_channels, "in_channels", 1)
    T = _positive_int(T, "T (time steps)", 1)
    input_size = _positive_int(input_size, "input_size", 1)
    if isinstance(width, bool) or not isinstance(width, numbers.Real) or not (0 < width < math.inf):
        raise UserInputError(f"width must be a number > 0 (1.0 = the paper's size), got {width!r}")
    if neuron_backend not in list_backends():
        get_backend(neuron_backend)  # raises the backend registry's message (unknown / not installed)
    mean_t = _channel_stats(mean, "mean", in_channels)
    std_t = _channel_stats(std, "std", in_channels)
    if (mean_t is None) != (std_t is None):
        raise UserInputError("give both mean and std for input normalisation, or neither")
    if std_t is not None and not all(s > 0 for s in std_t):
        raise UserInputError(f"std must be > 0 in every channel, got {list(std_t)}")
    if pool not in POOLS:
        raise UserInputError(f"unknown pool {pool!r}; choose one of: {', '.join(POOLS)}")
    if readout not in READOUTS:
        raise UserInputError(f"unknown readout {readout!r}; choose one of: {', '.join(READOUTS)}")
    return ModelArgs(
        num_classes=num_classes,
        in_channels=in_channels,
        T=T,
        width=float(width),
        neuron_backend=neuron_backend,
        input_size=input_size,
        mean=mean_t,
        std=std_t,
        tau=_number(tau, "tau"),
        theta=_number(theta, "theta"),
        spec=GradSpec.parse(spec),
        pool=pool,
        readout=readout,
    )


def create_model(
    name: str,
    num_classes: int,
    in_channels: int = 3,
    T: int = 8,
    width: float = 1.0,
    neuron_backend: str = "native",
    input_size: int = 32,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **overrides: Any,
) -> SpikingModel:
    """Build a registered spiking model.

    Args:
        name: one of :func:`list_models`.
        num_classes, in_channels, T, width, neuron_backend, input_size, mean, std: see :class:`ModelArgs`.
        **overrides: ``tau``, ``theta``, ``spec`` (GradSpec or text such as ``"sigmoid:4"``), ``pool``,
            ``readout``, plus the model's own extras (``describe_overrides(name)``).

    Returns:
        A :class:`SpikingModel` (an ``nn.Module``) mapping ``[N,C,H,W]`` or ``[N,T,C,H,W]`` floats in
        ``[0,1]`` to logits ``[N,K]``, with ``model.config`` (resolved kwargs, JSON-serialisable) and
        ``model.name``.

    Raises:
        UserInputError: unknown name / backend / override, or an invalid value (one line, with the choices).
    """
    entry = get_entry(name)
    common = {k: overrides.pop(k) for k in COMMON_OVERRIDES if k in overrides}
    unknown = sorted(set(overrides) - set(entry.extras))
    if unknown:
        accepted = [*COMMON_OVERRIDES, *entry.extras]
        raise UserInputError(
            f"model {name!r} does not accept {', '.join(map(repr, unknown))}; "
            f"accepted overrides: {', '.join(accepted)}"
        )
    args = resolve_args(num_classes, in_channels, T, width, neuron_backend, input_size, mean, std, **common)
    extras = {**entry.extras}
    for key, value in overrides.items():
        extras[key] = _coerce_extra(key, name, entry.extras[key], value)
    model = entry.builder(args, **extras)
    model.name = name
    model.config = {"name": name, **args.to_config(), **extras}
    logger.debug(
        "built %s: %d parameters, config %s", name, sum(p.numel() for p in model.parameters()), model.config
    )
    return model


def describe_overrides(name: str) -> dict[str, Any]:
    """Every override ``name`` accepts with its default (the common ones and the model's extras)."""
    entry = get_entry(name)
    defaults = {"tau": 1.0, "theta": 1.0, "spec": str(DEFAULT_SPEC), "pool": "avg", "readout": "mean"}
    return {**defaults, **entry.extras}
