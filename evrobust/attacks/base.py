"""The attack contract shared by every L-inf attack in :mod:`evrobust.attacks`.

An :class:`Attack` is a small configured object (``eps``, steps, seed, optional gradient spec) that is
pointed at a model per call: ``attack(model, x, y) -> x_adv``. The base class owns everything that must be
the same for every attack, so subclasses only implement :meth:`Attack.perturb`:

- inputs are checked: ``x`` float in [0,1] (images ``[N,C,H,W]`` or frames ``[N,T,2,H,W]``; any shape with
  the batch first works), ``y`` integer ``[N]``; bad input raises :class:`~evrobust.errors.UserInputError`;
- the model runs in eval mode during the attack (BN statistics frozen) and every submodule's train/eval flag
  is restored afterwards, also on exceptions;
- an optional :class:`~evrobust.neurons.GradSpec` selects how the backward pass estimates dSpike/dU for the
  duration of the call (via :func:`evrobust.neurons.gradient_spec`); the forward pass is unchanged;
- gradients are taken with :func:`torch.autograd.grad` w.r.t. the input only, so parameter ``.grad`` is
  never touched and ``requires_grad`` of the parameters is left as it was;
- the result is projected onto the eps ball around ``x`` intersected with [0,1] and detached.

Randomness is reproducible: each call draws from a CPU generator seeded with ``seed`` (the call's or the
attack's), and every draw is made for the *whole* batch and then indexed by ``rows``. An ensemble that
re-attacks only a subset of a batch therefore gives each sample exactly the random start it would get in the
full batch, so the per-sample outcome does not depend on which other samples are attacked.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from evrobust.errors import UserInputError
from evrobust.neurons import GradSpec, gradient_spec

__all__ = [
    "Attack",
    "RandomSource",
    "ce_loss",
    "check_batch",
    "dlr_loss",
    "eval_mode",
    "input_gradient",
    "margin",
    "predict",
    "project_linf",
    "spec_context",
]

logger = logging.getLogger(__name__)

LossFn = Callable[[Tensor, Tensor], Tensor]
"""Per-sample loss: (logits [N,K], labels [N]) -> [N]. The attacks ascend it."""


def ce_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Per-sample cross-entropy, ``[N,K], [N] -> [N]`` (nats)."""
    return F.cross_entropy(logits, y, reduction="none")


def dlr_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Difference of Logits Ratio loss of Croce & Hein (2020), ``[N,K], [N] -> [N]``, needs K >= 3.

    ``-(z_y - max_{i != y} z_i) / (z_(1) - z_(3) + 1e-12)`` where ``z_(k)`` is the k-th largest logit. It is
    invariant to shifting and rescaling the logits, which makes it robust to the logit scaling that can mask
    the CE gradient.
    """
    if logits.shape[1] < 3:
        raise UserInputError(
            f"the DLR loss needs at least 3 classes, the model has {logits.shape[1]}; use loss='ce'"
        )
    top, _ = logits.sort(dim=1, descending=True)
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    # The largest logit other than y: the runner-up if y is on top, else the top one.
    y_on_top = logits.argmax(1) == y
    z_other = torch.where(y_on_top, top[:, 1], top[:, 0])
    return -(z_y - z_other) / (top[:, 0] - top[:, 2] + 1e-12)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule of ``model`` in eval mode; restore each one's own flag on exit.

    Restoring per module (not ``model.train(flag)``) keeps mixed states exact, e.g. a model in train mode with
    a frozen BN layer.
    """
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, flag in flags:
            module.training = flag


def predict(model: nn.Module, x: Tensor) -> Tensor:
    """Predicted labels ``[N]`` (int64) of ``model`` on ``x``, in eval mode and without a graph."""
    with eval_mode(model), torch.no_grad():
        return model(x).argmax(1)


def margin(logits: Tensor, y: Tensor) -> Tensor:
    """``z_y - max_{j != y} z_j`` per sample, ``[N, K], [N] -> [N]`` (< 0: misclassified, ties aside)."""
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    return z_y - others


def judge_logits(model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """``(correct [N] bool, margin [N])`` of ``model`` on ``x`` from one forward in eval mode without a graph:
    ``correct`` as :func:`predict` decides it (argmax), ``margin = z_y - max_{j != y} z_j`` (< 0: fooled)."""
    with eval_mode(model), torch.no_grad():
        logits = model(x)
    y = y.to(logits.device)
    return logits.argmax(1) == y, margin(logits, y)


def project_linf(x_adv: Tensor, x: Tensor, eps: float) -> Tensor:
    """Project ``x_adv`` onto ``{z : |z - x|_inf <= eps} ∩ [0,1]^d`` (element-wise clamp)."""
    return torch.minimum(torch.maximum(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)


def input_gradient(
    model: nn.Module, x: Tensor, y: Tensor, loss_fn: LossFn = ce_loss
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample loss, logits and the gradient of the summed loss w.r.t. the input.

    Args:
        model: maps ``x`` to logits ``[N,K]``.
        x: input batch (any shape with the batch first), values in [0,1]; not modified.
        y: labels ``[N]``.
        loss_fn: per-sample loss ``[N,K],[N] -> [N]``.

    Returns:
        ``(loss [N], logits [N,K], grad like x)``, all detached. Summing (not averaging) the loss keeps each
        sample's gradient independent of the batch size.
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        loss = loss_fn(logits, y)
        (grad,) = torch.autograd.grad(loss.sum(), [x])
    return loss.detach(), logits.detach(), grad.detach()


class RandomSource:
    """Reproducible random draws for one attack call, independent of which rows of the batch are attacked.

    Every draw is made on a CPU generator for the full batch ``[total, *tail]`` and then indexed by ``rows``
    and moved to ``device``, so sample ``i`` of a batch always sees the same numbers for a given seed.
    """

    def __init__(self, seed: int, total: int, rows: Tensor | None, device: torch.device) -> None:
        self.seed = int(seed)
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(self.seed)
        self.total = total
        self.rows = None if rows is None else rows.detach().to("cpu", torch.long)
        self.device = device

    def _take(self, full: Tensor) -> Tensor:
        if self.rows is not None:
            full = full[self.rows]
        return full.to(self.device)

    def uniform(self, like: Tensor, low: float = -1.0, high: float = 1.0) -> Tensor:
        """Uniform in ``[low, high)`` with the shape, dtype and device of ``like``."""
        full = torch.rand((self.total, *like.shape[1:]), generator=self.generator, dtype=like.dtype)
        return self._take(full * (high - low) + low)

    def normal(self, like: Tensor) -> Tensor:
        """Standard normal with the shape, dtype and device of ``like``."""
        full = torch.randn((self.total, *like.shape[1:]), generator=self.generator, dtype=like.dtype)
        return self._take(full)


def check_batch(x: Any, y: Any) -> None:
    """Raise :class:`UserInputError` unless ``x`` is a float batch in [0,1] and ``y`` its integer labels."""
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise UserInputError("attack inputs must be torch tensors: x [N,...] float in [0,1], y [N] int64")
    if not x.is_floating_point():
        raise UserInputError(f"attack input x must be a float tensor in [0,1], got dtype {x.dtype}")
    if x.dim() < 2 or x.shape[0] == 0:
        raise UserInputError(f"attack input x must be a non-empty batch [N,...], got shape {tuple(x.shape)}")
    if y.dim() != 1 or y.shape[0] != x.shape[0] or y.is_floating_point() or y.dtype == torch.bool:
        raise UserInputError(
            f"attack labels y must be an integer tensor [N] with N = {x.shape[0]}, "
            f"got {y.dtype} {tuple(y.shape)}"
        )
    lo, hi = float(x.min()), float(x.max())
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < 0.0 or hi > 1.0:
        raise UserInputError(
            f"attack input x must lie in [0,1] (pixels or normalised frames), "
            f"got values in [{lo:.4g}, {hi:.4g}]; "
            "normalisation belongs inside the model"
        )


def _check_eps(eps: Any) -> float:
    try:
        value = float(eps)
    except (TypeError, ValueError):
        raise UserInputError(f"eps must be a number >= 0 (e.g. 8/255), got {eps!r}") from None
    if not math.isfinite(value) or value < 0:
        raise UserInputError(f"eps must be a finite number >= 0 (e.g. 8/255), got {eps!r}")
    return value


def _check_positive(name: str, value: Any, integer: bool = False) -> Any:
    kind = "integer" if integer else "number"
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise UserInputError(f"{name} must be a positive {kind}, got {value!r}") from None
    if (integer and number != value) or not math.isfinite(number) or number <= 0:
        raise UserInputError(f"{name} must be a positive {kind}, got {value!r}")
    return number


def spec_context(model: nn.Module, spec: Any) -> AbstractContextManager[Any]:
    """Context setting gradient spec ``spec`` on every IF neuron of ``model`` (no-op for ``None``)."""
    if spec is None:
        return nullcontext()
    return gradient_spec(model, GradSpec.parse(spec))


@contextmanager
def recording_traces(attacks: Any, sink: Callable[[Attack, Tensor, Tensor], None]) -> Iterator[None]:
    """Within the block, every attack in ``attacks`` reports its loss traces to ``sink(attack, best, fooled)``
    (see :attr:`Attack.on_trace`); the attacks are restored on exit, also on errors."""
    attacks = list(attacks)
    before = [a.__dict__.get("on_trace") for a in attacks]
    try:
        for a in attacks:
            a.on_trace = lambda best, fooled, a=a: sink(a, best, fooled)
        yield
    finally:
        for a, old in zip(attacks, before, strict=True):
            if old is None:
                a.__dict__.pop("on_trace", None)
            else:
                a.on_trace = old


class Attack:
    """Base class of the L-inf attacks. Subclasses implement :meth:`perturb` only.

    Args:
        eps: radius of the L-inf ball, in [0,1] pixel / normalised-frame units (8/255 in the paper).
        seed: seed of the random draws (random starts, noise); a call may override it.
        spec: optional gradient spec (``GradSpec`` or its text form, e.g. ``"sigmoid:4"``) under which the
            gradient is taken; ``None`` uses whatever spec the model currently has.
    """

    name: str = "attack"
    uses_gradient: bool = True
    supports_warm_start: bool = False
    on_trace: Callable[[Tensor, Tensor], None] | None = None
    """Set only inside :func:`recording_traces`: iterative gradient attacks call it after each run with the
    best loss so far per iteration ``[S + 1, m]`` and the samples the run fooled ``[m]``."""
    """Whether :meth:`perturb` takes ``x_init`` (a start per sample, e.g. a cascade's best point so far)."""

    def __init__(self, eps: float, *, seed: int = 0, spec: Any = None) -> None:
        self.eps = _check_eps(eps)
        self.seed = int(seed)
        self.spec = spec

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.describe().items())
        return f"{type(self).__name__}({fields})"

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable settings (for reports and resume fingerprints)."""
        return {"eps": self.eps, "seed": self.seed, "spec": None if self.spec is None else str(self.spec)}

    def __call__(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        *,
        seed: int | None = None,
        spec: Any = None,
        rows: Tensor | None = None,
        total: int | None = None,
        x_init: Tensor | None = None,
    ) -> Tensor:
        """Craft adversarial examples.

        Args:
            model: maps ``x`` to logits ``[N,K]``.
            x: clean inputs in [0,1], ``[N,C,H,W]`` or ``[N,T,2,H,W]``.
            y: true labels ``[N]``.
            seed: overrides the attack's seed for this call.
            spec: overrides the attack's gradient spec for this call.
            rows, total: ``x`` holds rows ``rows`` of a batch of ``total`` samples (see
                :class:`RandomSource`); by default ``x`` is the whole batch.
            x_init: optional starting points like ``x`` (projected into the eps-ball), for attacks with
                :attr:`supports_warm_start`; others refuse it.

        Returns:
            ``x_adv`` like ``x``, detached, with ``|x_adv - x|_inf <= eps`` and values in [0,1].
        """
        check_batch(x, y)
        x = x.detach()
        y = y.detach().to(device=x.device, dtype=torch.long)
        if rows is not None and rows.shape[0] != x.shape[0]:
            raise UserInputError(f"rows has {rows.shape[0]} entries but the batch has {x.shape[0]} samples")
        total = x.shape[0] if total is None else int(total)
        rng = RandomSource(self.seed if seed is None else seed, total, rows, x.device)
        chosen = self.spec if spec is None else spec
        if self.eps == 0.0:
            return x.clone()
        extra: dict[str, Tensor] = {}
        if x_init is not None:
            if not self.supports_warm_start:
                raise UserInputError(f"{type(self).__name__} takes no starting point (x_init)")
            if x_init.shape != x.shape:
                raise UserInputError(
                    f"x_init must have the shape of x {tuple(x.shape)}, got {tuple(x_init.shape)}"
                )
            extra["x_init"] = project_linf(x_init.detach().to(x.device, x.dtype), x, self.eps)
        with eval_mode(model), spec_context(model, chosen), torch.enable_grad():
            x_adv = self.perturb(model, x, y, rng, **extra)
        return project_linf(x_adv.detach(), x, self.eps)

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, rng: RandomSource) -> Tensor:
        """Return a perturbed copy of ``x`` (the caller projects it); the model is already in eval mode."""
        raise NotImplementedError
