"""Spike retiming (Yu et al., ICLR 2026, "Time Is All It Takes: Spike-Retiming Attacks on Event-Driven SNNs").

The adversary moves existing events in time and nothing else: every pixel keeps its events and polarity,
and each event lands in another of the clean sample's frozen bins. Two budgets:

- **B-inf** (``budget="inf"``): every event moves by at most ``D = max_shift`` bins;
- **B0** (``budget="zero"``): at most ``k = max_moved`` events move (each still by at most ``D`` bins;
  ``max_shift=None`` lifts that bound, as in the authors' B0).

Every cell also has a **capacity**: after retiming no bin of a pixel holds more than ``capacity`` events
(``None``: the sample's largest clean cell count), so retiming cannot pile a pixel's events into one bin.
A cell that already holds more than the capacity keeps its own events but receives none.

**Algorithm.** Each cell ``(t, p, y, x)`` of counts ``[N, T, 2, H, W]`` gets logits ``phi [K]`` over the
shifts ``d in {-D..D}`` (shifts that leave the time axis are masked out); ``pi = softmax(phi / tau)`` is
the cell's preference. Each step

1. places the events (the hard point): :func:`~evrobust.attacks.retime_kernel.place_events`, a Numba
   kernel, walks all (cell, shift) candidates of a sample from the highest ``pi`` down and moves each
   cell's events to its most preferred target that has room, within the capacity and the B0 budget
   (under B0, "stay" ranks last: the budget goes to the k highest-scoring moves of the sample);
2. evaluates the model on the straight-through point ``hard + (soft - soft.detach())``, where ``soft`` is
   the expected retiming ``soft[t] = sum_d pi[t - d, d] * counts[t - d]``: the forward sees the integer
   hard point, the backward the gradient of the soft one;
3. ascends ``CE - 20 * overflow - 5 * excess`` by a sign step of 1 on ``phi`` (clamped to [-10, 10]):
   ``overflow`` is the mean over cells of ``relu(soft - limit)^2`` (soft capacity), ``excess``
   (B0 only) is ``relu(E[moved] - k) / k`` with ``E[moved] = sum counts * (1 - pi_stay)``.

The lowest-margin point seen is returned, the clean sample included (a sample the model already gets
wrong is returned unchanged), and a sample stops as soon as it is misclassified.

**The authors' settings** (read from ``yuyi-sd/Spike-Retiming-Attacks``, ``utils/attack.py``: classes
``PGDTimeShiftAfterEncoder_Lowgpu`` for B-inf, the one ``test.py`` runs for ``PGDTimeShift``, and
``PGDTimeShiftAfterEncoder_L0`` for B0; budgets from ``some_scripts.sh``), taken here as defaults:
per-cell softmax over shifts at temperature 1; soft shift + straight-through; cross-entropy ascended by
sign steps of size 1 on the logits, clamped to [-10, 10]; 20 steps for B-inf and 40 for B0; logits start
at 4 on the shifts -1, 0, +1 (0 elsewhere) for B-inf and at 0 for B0; no random start (their optional one
adds ``0.01 * N(0, 1)``: ``init_noise``); occupancy penalty weight 20 on the squared overflow averaged over
cells; B0 penalty ``5 * relu(E[moved] - k) / k``; a greedy, most-confident-first final projection that
keeps every event and the cell occupancy, where under B-inf staying competes with the moves and under B0
the moves alone are ranked and the k highest-scoring ones made (even where the cell scores staying higher:
the budget penalty keeps ``pi_stay`` high everywhere, so otherwise hardly any move would be made).
They evaluate D in {1, 2, 3} and k in {1000 .. 8000} at T = 10, one sample at a time.

**Where this differs, and why:**

- *Events, not packets.* The authors move a cell's whole value as one packet and allow one packet per
  cell. evrobust's counts are frames ``[T, 2, H, W]`` over frozen bins, and an event is one unit of count:
  a cell's events may split, a target takes as many as its capacity leaves room for, and B0 counts events.
  The binary-frame protocol (one event per cell) is ``capacity=1``.
- *The same placement at every step.* Under B-inf the authors optimise through a relaxed projection (a
  target takes the most confident packet, the others stay) and apply the strict one at the end (their B0
  uses the strict one throughout); here the kernel is the strict one at every step, so the logits the
  attack sees are those of a point it may return.
- *The time axis is closed.* Shifts past the first or last bin are masked out of the softmax (the authors
  let that soft mass fall off the edge), so the soft point keeps every pixel's total too.
- *B0 keeps the D bound* (the registry's "at most k events, each by at most D bins"); ``max_shift=None``
  gives the authors' unbounded B0.
- *Best point and early stop.* The authors return the last iterate; here the lowest-margin point, as the
  rest of evrobust's evaluation takes the per-sample worst case (under B0 the first hard point already
  spends the budget on tied moves, so the clean point is kept as a candidate explicitly).
- *Restarts.* The authors run once (``restarts=1``, the default); ``restarts > 1`` start again from the
  logits plus ``init_noise * N(0, 1)`` drawn from the call's :class:`~evrobust.attacks.base.RandomSource`.
- *Per-sample losses are summed,* so a sample's gradient is the one the authors get at batch size 1.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from evrobust.attacks.base import RandomSource, _check_positive
from evrobust.attacks.base import margin as margin_of
from evrobust.attacks.event_base import EventAttack, check_budget_int, retiming_stats
from evrobust.errors import UserInputError

__all__ = ["SpikeRetiming"]

logger = logging.getLogger(__name__)

BUDGETS: tuple[str, ...] = ("inf", "zero")
"""``inf``: B-inf (shift <= D per event); ``zero``: B0 (at most k events moved)."""

AUTHORS_STEPS: dict[str, int] = {"inf": 20, "zero": 40}
"""Steps of the authors' B-inf and B0 attacks."""

LOGIT_CLAMP = 10.0
"""The shift logits are kept in [-10, 10], as the authors do (softmax stays away from exact 0/1)."""


class SpikeRetiming(EventAttack):
    """Spike retiming under B-inf or B0: sign steps on per-cell shift logits, placed by a Numba kernel.

    Args:
        budget: ``"inf"`` (B-inf: every event moves by at most ``max_shift`` bins) or ``"zero"`` (B0: at most
            ``max_moved`` events move).
        max_shift: D, the largest shift of an event in bins (>= 0); ``None``: anywhere on the time axis.
        max_moved: k, the events a sample may move (>= 0); required for ``"zero"``, refused for ``"inf"``.
        capacity: the most events a cell ``(t, p, y, x)`` may hold after retiming (>= 1); ``None``: the
            sample's largest clean cell count. Cells above it keep their clean events and receive none.
        steps: gradient steps per restart (>= 1); ``None``: the authors' 20 (B-inf) or 40 (B0).
        step_size: sign-step size on the shift logits (the authors' 1.0).
        restarts: runs per sample (>= 1); the first starts from the authors' logits, later ones add noise.
        temperature: softmax temperature of the shift logits (the authors' 1.0).
        cap_weight: weight of the soft capacity penalty (the authors' 20.0; 0 turns it off).
        budget_weight: weight of the soft B0 budget penalty (the authors' 5.0).
        init_noise: std of the Gaussian added to the starting logits of restarts after the first (0.01, the
            authors' random start).
        seed, spec: see :class:`~evrobust.attacks.event_base.EventAttack`.
    """

    name = "retime"
    threat = "retiming"

    def __init__(
        self,
        *,
        budget: str = "inf",
        max_shift: int | None = 1,
        max_moved: int | None = None,
        capacity: int | None = None,
        steps: int | None = None,
        step_size: float = 1.0,
        restarts: int = 1,
        temperature: float = 1.0,
        cap_weight: float = 20.0,
        budget_weight: float = 5.0,
        init_noise: float = 0.01,
        seed: int = 0,
        spec: Any = None,
    ) -> None:
        super().__init__(seed=seed, spec=spec)
        if budget not in BUDGETS:
            raise UserInputError(f"retiming budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
        self.budget = budget
        self.max_shift = None if max_shift is None else check_budget_int("max_shift", max_shift)
        if budget == "zero":
            if max_moved is None:
                raise UserInputError("the B0 retiming budget (budget='zero') needs max_moved (k events)")
            self.max_moved: int | None = check_budget_int("max_moved", max_moved)
        elif max_moved is not None:
            raise UserInputError("max_moved is the B0 budget; use budget='zero' with it, not 'inf'")
        else:
            self.max_moved = None
        self.capacity = None if capacity is None else check_budget_int("capacity", capacity, minimum=1)
        chosen = AUTHORS_STEPS[budget] if steps is None else steps
        self.steps = check_budget_int("retiming steps", chosen, minimum=1)
        self.step_size = _check_positive("retiming step_size", step_size)
        self.restarts = check_budget_int("retiming restarts", restarts, minimum=1)
        self.temperature = _check_positive("retiming temperature", temperature)
        self.cap_weight = _check_weight("cap_weight", cap_weight)
        self.budget_weight = _check_weight("budget_weight", budget_weight)
        self.init_noise = _check_weight("init_noise", init_noise)

    def budgets(self) -> dict[str, Any]:
        """``budget`` (inf/zero), ``max_shift_bins`` (D; None: unbounded), ``max_moved`` (k; None under
        B-inf), ``capacity`` (events per cell; None: the sample's clean maximum)."""
        return {
            "budget": self.budget,
            "max_shift_bins": self.max_shift,
            "max_moved": self.max_moved,
            "capacity": self.capacity,
        }

    def describe(self) -> dict[str, Any]:
        extra = {
            "steps": self.steps,
            "step_size": self.step_size,
            "restarts": self.restarts,
            "temperature": self.temperature,
            "cap_weight": self.cap_weight,
            "budget_weight": self.budget_weight,
            "init_noise": self.init_noise,
        }
        return {**super().describe(), **extra}

    def cell_limit(self, clean: Tensor) -> Tensor:
        """The most events each cell may hold after retiming, like ``clean [N, T, 2, H, W]`` (float).

        ``max(capacity, clean)`` per cell, with ``capacity`` the sample's largest clean count when ``None``.
        """
        if self.capacity is None:
            cap = clean.flatten(1).amax(1).view(-1, *([1] * (clean.dim() - 1)))
        else:
            cap = torch.full_like(clean, float(self.capacity))
        return torch.maximum(cap.expand_as(clean), clean)

    def check_valid(self, clean: Tensor, adv: Tensor) -> None:
        """Base checks, then: every pixel's (and polarity's) total kept, the cell limit kept, shifts <= D and
        (B0) moved <= k, with the minimal matching of :func:`~evrobust.attacks.event_base.retiming_stats`."""
        super().check_valid(clean, adv)
        try:
            stats = retiming_stats(clean, adv)
        except ValueError as err:
            raise AssertionError(f"{self.name} changed a pixel's event count: {err}") from None
        if bool((adv > self.cell_limit(clean)).any()):
            raise AssertionError(f"{self.name} put more events in a cell than its capacity")
        if self.max_shift is not None and bool((stats.max_shift > self.max_shift).any()):
            raise AssertionError(
                f"{self.name} shifted an event by {int(stats.max_shift.max())} > {self.max_shift} bins"
            )
        if self.max_moved is not None and bool((stats.moved > self.max_moved).any()):
            raise AssertionError(f"{self.name} moved {int(stats.moved.max())} > {self.max_moved} events")

    def perturb(self, model: nn.Module, counts: Tensor, y: Tensor, rng: RandomSource) -> Tensor:
        """Retimed counts like ``counts [N, T, 2, H, W]`` (whole numbers), the lowest-margin point found."""
        n, n_bins = counts.shape[:2]
        reach = n_bins - 1 if self.max_shift is None else min(self.max_shift, n_bins - 1)
        if reach == 0 or self.max_moved == 0:
            return counts.clone()
        problem = _Problem(self, counts, reach)
        best = counts.clone()
        # The clean point is the first candidate: a sample the model already gets wrong is left as it is,
        # and no sample ends worse than clean.
        with torch.no_grad():
            best_margin = margin_of(model(counts), y).to(counts.device)
        start = problem.start_logits().expand(n, -1, problem.lines.shape[2], -1)
        for restart in range(self.restarts):
            active = torch.nonzero(~(best_margin < 0), as_tuple=False).squeeze(1)
            if active.numel() == 0:
                break
            phi = start[active]
            if restart > 0 and self.init_noise > 0:
                # drawn for the whole batch, then indexed: a sample's noise does not depend on its neighbours
                noise = rng.normal(torch.empty(start.shape, dtype=start.dtype, device=start.device))
                phi = phi + self.init_noise * noise[active]
            self._run(model, problem, y, phi, active, best, best_margin)
            logger.debug(
                "retime restart %d: %d of %d samples fooled", restart, int((best_margin < 0).sum()), n
            )
        return best

    def _run(
        self,
        model: nn.Module,
        problem: _Problem,
        y: Tensor,
        phi: Tensor,
        rows: Tensor,
        best: Tensor,
        best_margin: Tensor,
    ) -> None:
        """One run of sign steps on the logits ``phi [m, T, P, K]`` of samples ``rows [m]``; updates ``best``
        and ``best_margin`` in place (a point replaces the best only with a strictly lower margin)."""
        for step in range(self.steps + 1):
            last = step == self.steps
            phi = phi.detach().requires_grad_(not last)
            with torch.set_grad_enabled(not last):
                pi = problem.preferences(phi)
                hard = problem.place(pi, rows)
                if last:
                    x = hard
                else:
                    soft = problem.soft_shift(pi, rows)
                    # straight-through: the model sees the integer point, the gradient is the soft one's
                    x = hard + (soft - soft.detach())
                logits = model(problem.to_frames(x))
                margin = margin_of(logits.detach(), y[rows])
            better = margin < best_margin[rows]
            if bool(better.any()):
                best[rows[better]] = problem.to_frames(hard[better])
                best_margin[rows[better]] = margin[better]
            keep = ~(margin < 0)
            if last or not bool(keep.any()):
                return
            loss = F.cross_entropy(logits, y[rows], reduction="none")
            if self.cap_weight > 0:
                loss = loss - self.cap_weight * problem.overflow(soft, rows)
            if self.max_moved is not None and self.budget_weight > 0:
                loss = loss - self.budget_weight * problem.excess(pi, rows, self.max_moved)
            # fooled samples stop here: their loss is left out, then their rows are dropped
            (grad,) = torch.autograd.grad((loss * keep).sum(), [phi])
            with torch.no_grad():
                phi = (phi + self.step_size * grad.sign()).clamp_(-LOGIT_CLAMP, LOGIT_CLAMP)
            phi, rows = phi[keep], rows[keep]


class _Problem:
    """One call's fixed data: the clean counts as lines ``[N, T, P]`` (``P = 2 * H * W``), the cell limits,
    the shifts ``[K]`` and which (bin, shift) pairs stay on the time axis."""

    def __init__(self, attack: SpikeRetiming, counts: Tensor, reach: int) -> None:
        n, n_bins = counts.shape[:2]
        self.attack = attack
        self.frame_shape = tuple(counts.shape[1:])
        self.device = counts.device
        self.lines = counts.reshape(n, n_bins, -1)
        self.limit = attack.cell_limit(counts).reshape(n, n_bins, -1)
        self.shifts = list(range(-reach, reach + 1))
        self.stay = reach  # column of shift 0
        bins = torch.arange(n_bins, device=self.device)[:, None]
        target = bins + torch.tensor(self.shifts, device=self.device)[None, :]
        self.valid = (target >= 0) & (target < n_bins)  # [T, K]
        # numpy copies for the kernel (CPU), made once per call
        self.lines_np = self.lines.round().long().cpu().numpy()
        self.limit_np = self.limit.round().long().cpu().numpy()
        self.shifts_np = np.asarray(self.shifts, dtype=np.int64)
        moved = -1 if attack.max_moved is None else attack.max_moved
        self.budget_np = np.full(n, moved, dtype=np.int64)

    def start_logits(self) -> Tensor:
        """``[1, T, 1, K]``: the authors' start, 4 on shifts -1, 0, +1 (B-inf) or 0 everywhere (B0)."""
        k = len(self.shifts)
        phi = torch.zeros(1, self.valid.shape[0], 1, k, device=self.device)
        if self.attack.budget == "inf":
            phi[..., max(self.stay - 1, 0) : self.stay + 2] = 4.0
        return phi

    def preferences(self, phi: Tensor) -> Tensor:
        """``pi [m, T, P, K]``: each cell's softmax over the shifts that stay on the time axis."""
        masked = phi.masked_fill(~self.valid[None, :, None, :], -math.inf)
        return torch.softmax(masked / self.attack.temperature, dim=-1)

    def place(self, pi: Tensor, rows: Tensor) -> Tensor:
        """The hard point ``[m, T, P]`` (float whole numbers) of samples ``rows`` for preferences ``pi``."""
        from evrobust.attacks.retime_kernel import place_events

        idx = rows.cpu().numpy()
        scores = pi.detach().double().cpu().numpy()
        if self.attack.max_moved is not None:
            # B0, as the authors project it: the budget goes to the k highest-scoring moves, staying ranks
            # last (the soft budget penalty holds every pi_stay high, so a move would rarely outrank it)
            scores[..., self.stay] = -1.0
        out, _ = place_events(
            self.lines_np[idx], scores, self.limit_np[idx], self.shifts_np, self.budget_np[idx]
        )
        return torch.from_numpy(out).to(device=self.device, dtype=self.lines.dtype)

    def soft_shift(self, pi: Tensor, rows: Tensor) -> Tensor:
        """The expected retiming ``[m, T, P]``: ``soft[t] = sum_d pi[t - d, d] * counts[t - d]``."""
        mass = pi * self.lines[rows].unsqueeze(-1)  # [m, T, P, K], events of cell t sent by shift d
        n_bins = mass.shape[1]
        soft = torch.zeros_like(mass[..., 0])
        for k, d in enumerate(self.shifts):
            part = mass[..., k]
            if d > 0:  # source t lands on t + d: pad d empty bins in front
                part = F.pad(part[:, : n_bins - d], (0, 0, d, 0))
            elif d < 0:
                part = F.pad(part[:, -d:], (0, 0, 0, -d))
            soft = soft + part
        return soft

    def overflow(self, soft: Tensor, rows: Tensor) -> Tensor:
        """Soft capacity violation ``[m]``: the mean over cells of ``relu(soft - limit)^2``."""
        return (soft - self.limit[rows]).clamp(min=0.0).pow(2).flatten(1).mean(1)

    def excess(self, pi: Tensor, rows: Tensor, k: int) -> Tensor:
        """Soft B0 violation ``[m]``: ``relu(E[moved] - k) / max(k, 1)``, with the expected events moved
        ``E[moved] = sum counts * (1 - pi_stay)``."""
        expected = (self.lines[rows] * (1.0 - pi[..., self.stay])).flatten(1).sum(1)
        return (expected - k).clamp(min=0.0) / max(k, 1)

    def to_frames(self, lines: Tensor) -> Tensor:
        """``[m, T, P]`` -> ``[m, T, 2, H, W]``."""
        return lines.reshape(lines.shape[0], *self.frame_shape)


def _check_weight(name: str, value: Any) -> float:
    """``value`` as a finite float >= 0, or :class:`UserInputError` naming ``name``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserInputError(f"retiming {name} must be a number >= 0, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise UserInputError(f"retiming {name} must be a finite number >= 0, got {value!r}")
    return number
