"""The event-domain threat model: attacks on integer event counts, behind a fixed front end.

Every frame attack of :mod:`evrobust.attacks` perturbs the model input as real numbers in [0, 1]. An event
camera cannot produce a frame that holds 0.03 of an event. The attacks built on this module act on what a
sensor emits instead:

- **Counts.** The adversary edits ``counts [N, T, 2, Hs, Ws]``, the number of events of each polarity at each
  sensor pixel in each of the T frames. The values are non-negative integers, held in a float tensor so that
  gradients can flow; ``Hs x Ws`` is the sensor (or the store's full-resolution grid).
- **Frozen bins.** The frame boundaries are those of the clean sample. Adding, deleting or moving events
  changes counts inside the fixed bins; it never re-splits the recording. (The store's frames are the counts
  of the clean recording binned once; the attacks edit those bins, so this holds by construction.)
- **Front end.** :class:`EventFrontEnd` maps counts to the model input exactly as the store's dataset does:
  optional area resize to the model's grid (weights given, as :func:`evrobust.preprocess.resize.area_weights`
  computes them), times the store's ``count_unit``, rounded (straight-through), divided by the store's
  ``scale`` and clipped to [0, 1]; or, for the binary-frame protocol, ``count > 0``. It has no parameters and
  is differentiable where a gradient is needed (the rounding and the binarisation pass the gradient straight
  through; the clip keeps its true gradient).
- **Budgets in events.** :func:`events_changed` counts the events added plus the events deleted
  (``sum |adv - clean|``); :func:`retiming_stats` counts the events moved in time and the largest shift in
  bins, with the per-pixel matching that minimises both (in one dimension, matching the k-th clean event of a
  pixel to its k-th adversarial event minimises every convex cost and the bottleneck shift at once).

:class:`EventAttack` is the base of every event attack, as :class:`~evrobust.attacks.base.Attack` is of the
frame attacks: it checks the inputs, puts the model in eval mode and restores every module's flag, applies the
gradient spec for the call, and checks that what the subclass returns is a valid event frame within the
budget. Subclasses implement :meth:`EventAttack.perturb` only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from evrobust.attacks.base import RandomSource, eval_mode, spec_context
from evrobust.errors import UserInputError

__all__ = [
    "THREATS",
    "CountModel",
    "EventAttack",
    "EventFrontEnd",
    "check_budget_int",
    "check_counts",
    "events_changed",
    "retiming_stats",
]

THREATS: tuple[str, ...] = ("frames", "events", "retiming")
"""``--threat`` values: ``frames`` (the L-inf frame attacks, the default), ``events`` (insert/delete events:
SDA), ``retiming`` (move existing events in time: spike retiming)."""


class _RoundST(torch.autograd.Function):
    """``rint`` forward, identity backward (straight-through)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:  # type: ignore[override]
        return torch.round(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:  # type: ignore[override]
        return grad


class _PositiveST(torch.autograd.Function):
    """``(x > 0)`` as float forward, identity backward (straight-through binarisation)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:  # type: ignore[override]
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:  # type: ignore[override]
        return grad


class EventFrontEnd(nn.Module):
    """Counts ``[N, T, 2, Hs, Ws]`` -> model input ``[N, T, 2, H, W]`` in [0, 1], as the store's dataset does.

    Args:
        scale: the store's count scale (``attrs["scale"]``): input = ``clip(stored / scale, 0, 1)``.
        count_unit: stored integers per event (``attrs["count_unit"]``, 9 for 128 -> 48 area resizing).
        weights: ``None`` (no resize: ``H, W = Hs, Ws``) or ``(wy [H, Hs], wx [W, Ws])``, the area shares of
            each sensor row/column in each model row/column (columns sum to 1).
        binary: the binary-frame protocol: input = ``count > 0`` (``scale``/``count_unit`` unused).
    """

    def __init__(
        self,
        scale: float,
        count_unit: int = 1,
        weights: tuple[np.ndarray | Tensor, np.ndarray | Tensor] | None = None,
        *,
        binary: bool = False,
    ) -> None:
        super().__init__()
        if not (isinstance(scale, int | float) and math.isfinite(scale) and scale > 0):
            raise UserInputError(f"the front end's scale must be a finite number > 0, got {scale!r}")
        if int(count_unit) != count_unit or count_unit < 1:
            raise UserInputError(f"count_unit must be a positive integer, got {count_unit!r}")
        self.scale = float(scale)
        self.count_unit = int(count_unit)
        self.binary = bool(binary)
        if weights is None:
            self.wy: Tensor | None = None
            self.wx: Tensor | None = None
        else:
            wy, wx = (torch.as_tensor(np.asarray(w), dtype=torch.float64) for w in weights)
            if wy.dim() != 2 or wx.dim() != 2:
                raise UserInputError("the front end's resize weights must be matrices [H, Hs] and [W, Ws]")
            self.register_buffer("wy", wy.float(), persistent=False)
            self.register_buffer("wx", wx.float(), persistent=False)

    def sensor_shape(self, model_hw: tuple[int, int]) -> tuple[int, int]:
        """The counts' grid ``(Hs, Ws)`` this front end expects for a model grid ``(H, W)``."""
        if self.wy is None or self.wx is None:
            return model_hw
        return int(self.wy.shape[1]), int(self.wx.shape[1])

    def forward(self, counts: Tensor) -> Tensor:
        if self.binary:
            x = _PositiveST.apply(counts)
        else:
            x = counts
        if self.wy is not None and self.wx is not None:
            # [.., Hs, Ws] -> [.., H, W]: rows by wy, columns by wx (a linear map, so its gradient is exact)
            x = torch.matmul(torch.matmul(self.wy.to(x.dtype), x), self.wx.to(x.dtype).T)
        if self.binary:
            return x.clamp(0.0, 1.0)
        stored = _RoundST.apply(x * self.count_unit)
        return (stored / self.scale).clamp(0.0, 1.0)

    def extra_repr(self) -> str:
        resize = "none" if self.wy is None else f"{tuple(self.wy.shape)} x {tuple(self.wx.shape)}"
        return f"scale={self.scale}, count_unit={self.count_unit}, resize={resize}, binary={self.binary}"


class CountModel(nn.Module):
    """``model(front(counts))``: a frame model seen through the event front end, so attacks edit counts."""

    def __init__(self, model: nn.Module, front: EventFrontEnd) -> None:
        super().__init__()
        self.model = model
        self.front = front

    def forward(self, counts: Tensor) -> Tensor:
        """``[N, T, 2, Hs, Ws]`` counts -> logits ``[N, K]``."""
        return self.model(self.front(counts))


def check_counts(counts: Any, y: Any) -> None:
    """Raise :class:`UserInputError` unless ``counts`` is a batch ``[N, T, 2, H, W]`` of non-negative integer
    values (any dtype) and ``y`` its integer labels ``[N]``."""
    if not isinstance(counts, Tensor) or not isinstance(y, Tensor):
        raise UserInputError("event attack inputs must be torch tensors: counts [N,T,2,H,W], labels [N]")
    if counts.dim() != 5 or counts.shape[0] == 0 or counts.shape[2] != 2:
        raise UserInputError(
            f"event attacks need counts [N, T, 2, H, W] (2 polarities), got shape {tuple(counts.shape)}"
        )
    if y.dim() != 1 or y.shape[0] != counts.shape[0] or y.is_floating_point() or y.dtype == torch.bool:
        raise UserInputError(
            f"event attack labels must be an integer tensor [N] with N = {counts.shape[0]}, "
            f"got {y.dtype} {tuple(y.shape)}"
        )
    c = counts.detach()
    if c.is_floating_point():
        if not bool(torch.isfinite(c).all()) or bool((c != torch.round(c)).any()):
            raise UserInputError(
                "event counts must be whole numbers (events), got fractional or non-finite values"
            )
    if bool((c < 0).any()):
        raise UserInputError("event counts must be >= 0")


def check_budget_int(name: str, value: Any, *, minimum: int = 0) -> int:
    """``value`` as an int >= ``minimum``, or :class:`UserInputError` (one line) naming ``name``."""
    if isinstance(value, bool):
        raise UserInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UserInputError(f"{name} must be an integer >= {minimum}, got {value!r}") from None
    if number != value or number < minimum:
        raise UserInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return number


def events_changed(clean: Tensor, adv: Tensor) -> Tensor:
    """Events added plus deleted per sample: ``sum |adv - clean|`` over ``[T, 2, H, W]`` -> ``[N]`` int64."""
    diff = (adv.detach().double() - clean.detach().double()).abs()
    return diff.flatten(1).sum(1).round().long()


@dataclass(frozen=True)
class RetimingStats:
    """Per sample ``[N]`` int64: ``moved`` events moved to another bin, ``max_shift`` in bins (0 if none), and
    ``max_shift_us``, the largest distance between the centres of the bins an event left and entered (us;
    ``None`` when the bins' times were not given)."""

    moved: Tensor
    max_shift: Tensor
    max_shift_us: Tensor | None = None


def retiming_stats(clean: Tensor, adv: Tensor, bin_centres_us: Tensor | None = None) -> RetimingStats:
    """The events moved and the largest shift (bins) that turn ``clean`` into ``adv`` ``[N, T, 2, H, W]``.

    Both must hold the same total per pixel and polarity (retiming keeps every count; :class:`ValueError`
    otherwise). The matching is the monotone one per pixel: the k-th event of a pixel in time order in
    ``clean`` becomes its k-th event in ``adv``. In one dimension it minimises the number of events that move
    and the largest shift at the same time. Moved = ``sum_t max(0, adv - clean)`` per pixel; the largest
    shift = the largest difference of the two event-time quantiles, found from the cumulative counts.

    With ``bin_centres_us [N, T]`` (the time of each frame's centre, from the store's recording), the same
    matching gives the shift in microseconds: under it, bin ``b`` of the clean counts sends events to bin
    ``b'`` of ``adv`` iff the index ranges ``[cc[b-1], cc[b])`` and ``[ca[b'-1], ca[b'])`` of the pixel's
    events overlap; ``max_shift_us`` is the largest ``|centre[b'] - centre[b]|`` over such pairs.
    """
    c = clean.detach().round().long().cpu()
    a = adv.detach().round().long().cpu()
    if c.shape != a.shape:
        raise ValueError(f"retiming_stats: shapes differ, {tuple(c.shape)} vs {tuple(a.shape)}")
    if not torch.equal(c.sum(1), a.sum(1)):
        raise ValueError("retiming_stats: adv changes a pixel's total count; retiming only moves events")
    moved = (a - c).clamp(min=0).flatten(1).sum(1)
    n, t = c.shape[:2]
    # cumulative counts over time, per pixel: [N, T, P]
    cc = c.flatten(2).cumsum(1)
    ca = a.flatten(2).cumsum(1)
    max_shift = torch.zeros(n, dtype=torch.long)
    # The k-th event (k = 1..total) of a pixel sits in the first bin whose cumulative count reaches k.
    # Shift of event k = |bin_a(k) - bin_c(k)|. For a fixed d, some event shifts by more than d iff for
    # some bin b cc[b] > ca[b + d] or ca[b] > cc[b + d] (the cumulative counts are more than d bins apart).
    for d in range(t):
        hi = torch.cat([cc[:, d:], cc[:, -1:].expand(n, d, cc.shape[2])], 1) if d else cc
        ha = torch.cat([ca[:, d:], ca[:, -1:].expand(n, d, ca.shape[2])], 1) if d else ca
        # event shifted later by more than d: clean has reached k at bin b, adv not even at b + d
        late = (cc > ha).flatten(1).any(1)
        early = (ca > hi).flatten(1).any(1)
        exceeded = late | early
        max_shift = torch.where(exceeded, torch.full_like(max_shift, d + 1), max_shift)
        if not bool(exceeded.any()):
            break
    shift_us = None
    if bin_centres_us is not None:
        centres = bin_centres_us.detach().double().cpu()
        if centres.shape != (n, t):
            raise ValueError(f"retiming_stats: bin_centres_us must be [{n}, {t}], got {tuple(centres.shape)}")
        zero = torch.zeros_like(cc[:, :1])
        c0, a0 = torch.cat([zero, cc], 1), torch.cat([zero, ca], 1)  # [N, T + 1, P]
        shift_us = torch.zeros(n, dtype=torch.long)
        for b in range(t):
            for b2 in range(t):
                if b == b2:
                    continue
                flow = torch.minimum(c0[:, b + 1], a0[:, b2 + 1]) > torch.maximum(c0[:, b], a0[:, b2])
                dist = (centres[:, b2] - centres[:, b]).abs().round().long()
                shift_us = torch.where(flow.any(1), torch.maximum(shift_us, dist), shift_us)
    return RetimingStats(moved=moved, max_shift=max_shift, max_shift_us=shift_us)


class EventAttack:
    """Base class of the event-domain attacks. Subclasses implement :meth:`perturb` (and :meth:`budgets`).

    Args:
        seed: seed of the random draws (a call may override it).
        spec: optional gradient spec for the call (see :class:`~evrobust.neurons.GradSpec`).

    A call ``attack(model, counts, y)`` returns adversarial counts like ``counts`` (float, whole numbers
    >= 0), detached. ``model`` maps counts to logits, usually a :class:`CountModel`.
    """

    name: str = "event-attack"
    threat: str = "events"
    uses_gradient: bool = True

    def __init__(self, *, seed: int = 0, spec: Any = None) -> None:
        self.seed = int(seed)
        self.spec = spec

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.describe().items())
        return f"{type(self).__name__}({fields})"

    def budgets(self) -> dict[str, Any]:
        """The budgets in events, as JSON (``{"max_events": 1000}``, ``{"max_shift_bins": 1}``, ...)."""
        return {}

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable settings (for reports and resume fingerprints)."""
        return {
            "name": self.name,
            "threat": self.threat,
            "seed": self.seed,
            "spec": None if self.spec is None else str(self.spec),
            **self.budgets(),
        }

    def __call__(
        self,
        model: nn.Module,
        counts: Tensor,
        y: Tensor,
        *,
        seed: int | None = None,
        spec: Any = None,
        rows: Tensor | None = None,
        total: int | None = None,
    ) -> Tensor:
        check_counts(counts, y)
        clean = counts.detach().float()
        y = y.detach().to(device=clean.device, dtype=torch.long)
        if rows is not None and rows.shape[0] != clean.shape[0]:
            raise UserInputError(
                f"rows has {rows.shape[0]} entries but the batch has {clean.shape[0]} samples"
            )
        total = clean.shape[0] if total is None else int(total)
        rng = RandomSource(self.seed if seed is None else seed, total, rows, clean.device)
        chosen = self.spec if spec is None else spec
        with eval_mode(model), spec_context(model, chosen), torch.enable_grad():
            adv = self.perturb(model, clean, y, rng)
        adv = adv.detach().float()
        self.check_valid(clean, adv)
        return adv

    def perturb(self, model: nn.Module, counts: Tensor, y: Tensor, rng: RandomSource) -> Tensor:
        """Return adversarial counts like ``counts``; the model is in eval mode under the call's spec."""
        raise NotImplementedError

    def clean_reference(self, counts: Tensor) -> Tensor:
        """The clean point the attack starts from and its changes are counted against: ``counts`` itself,
        except for attacks on binary frames (``count > 0``)."""
        return counts

    def check_valid(self, clean: Tensor, adv: Tensor) -> None:
        """Raise :class:`AssertionError` if ``adv`` is not a valid event frame for this threat (a bug in the
        attack, never the user's input): same shape, whole numbers >= 0. Subclasses add their budget."""
        if adv.shape != clean.shape:
            raise AssertionError(f"{self.name} returned shape {tuple(adv.shape)} for {tuple(clean.shape)}")
        whole = bool(torch.isfinite(adv).all()) and not bool((adv != torch.round(adv)).any())
        if not whole or bool((adv < 0).any()):
            raise AssertionError(f"{self.name} returned counts that are not whole numbers >= 0")
