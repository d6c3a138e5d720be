"""SDA, the Sparse Dynamic Attack (Lun et al., CVPR 2025): the fewest event changes that fool the model.

SDA searches the event domain directly. Each iteration ranks every cell ``(t, p, y, x)`` by the gradient of
the margin loss, tests the top ``k`` single-cell flips one forward pass each (batched), keeps every flip that
does not raise the loss, and stops at the first misclassification; a binary search then undoes the flips
that were not needed. The result is reported as an L0 count: the number of events changed per sample.

Reference implementation: ``ryime/PDSG-SDA``, class ``SDA`` in ``utils/attack.py`` (commit ``52cd59a``), run
by ``test.py`` with the binary-frame configs ``configs/*_binary.yaml``. This module is a re-implementation,
batched over samples and extended from binary frames to integer event counts (see :class:`SDA`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from evrobust.attacks.base import RandomSource, margin
from evrobust.attacks.event_base import CountModel, EventAttack, check_budget_int, events_changed
from evrobust.errors import UserInputError

__all__ = ["SDA", "SDA_MODES", "SDAStats"]

logger = logging.getLogger(__name__)

SDA_MODES: tuple[str, ...] = ("count", "binary")

# A candidate whose loss change is within this fraction of (1 + |margin|) of zero counts as a tie. The
# authors accept ties (FD <= 0); float noise of a batched forward (1e-7 relative) must not decide whether a
# flip with no real effect is kept, or the result would depend on which samples share a batch.
_TIE_RTOL = 1e-5


@dataclass(frozen=True)
class SDAStats:
    """What one :class:`SDA` call found, per sample ``[N]`` (in the order of the call's rows).

    Attributes:
        fooled: bool; the returned point is misclassified (clean samples already misclassified included).
        flips_found: int64; flips held when the sample was first misclassified (before the reduction); 0 if
            it never was, or was misclassified clean.
        flips_kept: int64; flips left after the reduction, = ``events_changed`` of the returned point (0 when
            the clean point is returned).
        iterations: int64; candidate rounds run (0 for a sample misclassified clean).
    """

    fooled: Tensor
    flips_found: Tensor
    flips_kept: Tensor
    iterations: Tensor


def _margin(logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """``(margin [m], wrong [m] bool)``: ``z_y - max_{j != y} z_j`` and ``argmax != y`` (as ``predict``)."""
    return margin(logits, y), logits.argmax(1) != y


class SDA(EventAttack):
    """Sparse Dynamic Attack on event counts or binary event frames, untargeted, L0 in events.

    The attack keeps, per sample, a set of *flips*: cells ``(t, p, y, x)`` changed by one unit from the clean
    value (``adv = clean + delta``, ``delta`` in {-1, 0, +1} per cell). With the margin loss
    ``L = z_y - max_{j != y} z_j`` (minimised; misclassified when ``argmax != y``):

    1. **Gradient.** ``g = dL/d counts`` through the model (a :class:`CountModel`), by
       :func:`torch.autograd.grad` w.r.t. the counts only, under the call's gradient spec. The same forward
       pass tells whether the current point is already misclassified: then the sample stops (step 5).
    2. **Candidates.** Each cell not yet flipped gets one candidate flip and a score:

       - ``mode="binary"`` (the authors' protocol): cells are 0/1 and a flip toggles the cell. It is
         *contributing* if its first-order change ``(1 - 2x) g`` is negative; score ``|g|``.
       - ``mode="count"`` (default): a flip inserts one event (``+1``) where ``g < 0`` or the cell is empty,
         else deletes one (``-1``, only where the count is > 0). It is contributing if ``g < 0``, or
         ``g > 0`` with an event to delete; score ``|g|``.

       Every other cell (zero gradient, or the only possible flip raises ``L`` to first order) scores a
       random value below the smallest contributing score, as the authors do: they are tried last, in a
       random order, so that a vanishing gradient (dead neurons) still leaves a search.
    3. **Test.** The ``k = (n + 1) * k_init`` best-scored cells (iteration ``n = 0, 1, ...``) are each
       flipped alone on the current point and evaluated, one forward pass per candidate, ``chunk``
       candidates per batch. ``FD = L(candidate) - L(current)``.
    4. **Accept.** Every candidate with ``FD <= 0`` (ties included, as the authors do; ties within
       ``1e-5 (1 + |L|)`` are treated as exact) joins the set, all at once; rejected cells may be tried again
       in a later iteration. Flips already in the set stay there.
    5. **Stop** at the first iteration whose point is misclassified, or after ``max_iters`` rounds (then the
       sample is not fooled), or when no unflipped cell is left.
    6. **Reduce.** The flips of a fooled sample are ordered by ``|FD|`` ascending (the least useful first;
       ties in acceptance order), and a binary search finds the longest prefix whose undoing keeps the point
       misclassified (assuming the property is monotone in the prefix length, as the authors do). The
       point returned is the one with the most flips undone among those probed and found misclassified, so
       the reduction never adds a flip and never returns a correctly classified point.

    **Result.** A fooled sample within the budget: the reduced point. A sample not fooled after
    ``max_iters`` rounds, or whose reduced point changes more than ``max_events`` events: the clean point
    (as the authors return the clean input on failure), so ``events_changed == 0`` marks a failure on a
    sample the model classifies correctly. Samples misclassified clean are returned unchanged.

    **Events changed** (what :func:`~evrobust.attacks.event_base.events_changed` measures against
    :meth:`clean_reference`): ``mode="count"``: ``sum |adv - clean|`` = events inserted plus deleted, and
    since a cell holds at most one flip, also the number of cells changed. ``mode="binary"``: the counts are
    first binarised (``count > 0 -> 1``) and the result is a binary frame; ``sum |adv - binarise(clean)|`` =
    cells toggled (the authors' L0). The pipeline must compare against the binarised counts in that mode.

    **Settings** taken from the authors' code: ``k_init = 10`` and the linear growth ``k = (n + 1) k_init``;
    ``max_iters = 500`` (their ``N``); ``chunk = 64`` (their ``batch_limit``, which ``test.py`` sets to the
    configs' ``batch_size: 64``); accepting ``FD <= 0`` with all accepted flips applied together; the random
    ranking of non-contributing cells below the smallest contributing gradient; ``|FD|``-ordered binary
    search; returning the clean input on failure; binary frames via ``count > 0`` (their ``Sign_STE``
    encoder ``x >= 1`` on integer counts).

    Chosen here: the loss is the plain margin, whereas the authors clip it at 0 (their ``CWLoss``). The two
    agree while the sample is correctly classified, which is the only time a gradient is taken; the
    unclipped ``FD`` of a flip that alone fools the model also says by how much, so the reduction keeps the
    strongest of them. Integer counts (``mode="count"``, one event inserted or deleted per cell). Samples are
    attacked together (one gradient batch, candidates of all samples chunked together), each with its own
    ``k``, iteration count and random draws, so a sample's result does not depend on the others. The
    budget ``max_events`` (the authors report the L0 distribution instead of attacking under a budget).
    The tie tolerance (see above).

    After a call, :attr:`last_stats` holds :class:`SDAStats` of that call.

    Args:
        max_events: the budget in events changed per sample (``None``: unbounded; 0 returns the clean point).
        mode: ``"count"`` (insert/delete one event per cell) or ``"binary"`` (toggle binary cells).
        k_init: candidates tested in the first iteration; iteration ``n`` tests ``(n + 1) * k_init``.
        max_iters: candidate rounds per sample before giving up.
        chunk: candidates (and samples of a gradient batch) per forward pass: bounds the memory.
        seed: seed of the random ranking of non-contributing cells.
        spec: gradient spec under which the gradient is taken (e.g. the authors' PDSG).
    """

    name = "sda"
    threat = "events"
    uses_gradient = True

    def __init__(
        self,
        max_events: int | None = None,
        *,
        mode: str = "count",
        k_init: int = 10,
        max_iters: int = 500,
        chunk: int = 64,
        seed: int = 0,
        spec: Any = None,
    ) -> None:
        super().__init__(seed=seed, spec=spec)
        self.max_events = None if max_events is None else check_budget_int("SDA max_events", max_events)
        if mode not in SDA_MODES:
            raise UserInputError(f"unknown SDA mode {mode!r}; valid choices: {', '.join(SDA_MODES)}")
        self.mode = mode
        self.k_init = check_budget_int("SDA k_init", k_init, minimum=1)
        self.max_iters = check_budget_int("SDA max_iters", max_iters, minimum=1)
        self.chunk = check_budget_int("SDA chunk", chunk, minimum=1)
        self.last_stats: SDAStats | None = None

    def budgets(self) -> dict[str, Any]:
        return {"max_events": self.max_events}

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "mode": self.mode,
            "k_init": self.k_init,
            "max_iters": self.max_iters,
            "chunk": self.chunk,
        }

    def clean_reference(self, counts: Tensor) -> Tensor:
        """The point the attack starts from, and against which events changed are counted: the counts
        (float) in count mode, ``(counts > 0)`` as 0/1 floats in binary mode. Same shape as ``counts``."""
        counts = counts.detach().float()
        return (counts > 0).float() if self.mode == "binary" else counts.clone()

    def check_valid(self, clean: Tensor, adv: Tensor) -> None:
        super().check_valid(clean, adv)
        ref = self.clean_reference(clean)
        if self.mode == "binary" and bool(((adv != 0) & (adv != 1)).any()):
            raise AssertionError("sda (binary) returned a frame with values other than 0 and 1")
        if self.max_events is not None:
            changed = events_changed(ref, adv)
            if bool((changed > self.max_events).any()):
                raise AssertionError(
                    f"sda changed up to {int(changed.max())} events, over the budget {self.max_events}"
                )

    # -- the attack ---------------------------------------------------------------------------------------

    def perturb(self, model: nn.Module, counts: Tensor, y: Tensor, rng: RandomSource) -> Tensor:
        if isinstance(model, CountModel) and model.front.binary != (self.mode == "binary"):
            want = "EventFrontEnd(..., binary=True)" if self.mode == "binary" else "a count front end"
            raise UserInputError(f"SDA mode={self.mode!r} needs a CountModel with {want}")
        shape = counts.shape[1:]
        n_rows, cells = counts.shape[0], math.prod(shape)
        clean = self.clean_reference(counts).reshape(n_rows, cells)
        rounds = 0 if self.max_events == 0 else self.max_iters
        delta, fd, order, wrong, iterations = self._generate(model, clean, y, rng, shape, rounds)

        selected = delta != 0
        found = selected.sum(1)
        undo = self._reduce(model, clean, delta, fd, order, y, wrong & (found > 0), shape)
        delta = torch.where(undo, torch.zeros_like(delta), delta)
        kept = (delta != 0).sum(1)
        over = kept > (cells if self.max_events is None else self.max_events)
        fooled = wrong & ~over
        # not fooled, or fooled over the budget: the clean point (the authors' answer on failure)
        delta[~fooled] = 0
        kept = torch.where(fooled, kept, torch.zeros_like(kept))
        self.last_stats = SDAStats(
            fooled=fooled.cpu(),
            flips_found=torch.where(wrong, found, torch.zeros_like(found)).cpu(),
            flips_kept=kept.cpu(),
            iterations=iterations.cpu(),
        )
        attacked = kept > 0
        if bool(attacked.any()):
            logger.debug(
                "sda (%s): %d of %d fooled, median %d events changed (before reduction %d)",
                self.mode,
                int(attacked.sum()),
                n_rows,
                int(kept[attacked].median()),
                int(found[attacked].median()),
            )
        return (clean + delta).reshape(counts.shape)

    def _logits(self, model: nn.Module, flat: Tensor, shape: torch.Size) -> Tensor:
        """Logits ``[r, K]`` of ``flat [r, cells]`` (any r) in chunks of ``chunk`` rows, without a graph."""
        out = []
        for start in range(0, flat.shape[0], self.chunk):
            # inference mode skips autograd's bookkeeping; the clone makes the logits ordinary tensors
            with torch.inference_mode():
                logits = model(flat[start : start + self.chunk].reshape(-1, *shape))
            out.append(logits.clone())
        return torch.cat(out)

    def _margin_grad(
        self, model: nn.Module, flat: Tensor, y: Tensor, shape: torch.Size
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(margin [m], wrong [m], grad [m, cells])`` at ``flat [m, cells]``; the gradient of the summed
        margin w.r.t. the counts only (per sample, as the rows do not interact in eval mode)."""
        margins, wrongs, grads = [], [], []
        for start in range(0, flat.shape[0], self.chunk):
            x = flat[start : start + self.chunk].reshape(-1, *shape).detach().requires_grad_(True)
            with torch.enable_grad():
                margin, wrong = _margin(model(x), y[start : start + self.chunk])
                if margin.requires_grad:
                    (grad,) = torch.autograd.grad(margin.sum(), [x], allow_unused=True)
                else:  # a model whose output does not depend on its input
                    grad = None
            grads.append(torch.zeros_like(x) if grad is None else grad.detach())
            margins.append(margin.detach())
            wrongs.append(wrong)
        return torch.cat(margins), torch.cat(wrongs), torch.cat(grads).reshape(flat.shape)

    def _generate(
        self,
        model: nn.Module,
        clean: Tensor,
        y: Tensor,
        rng: RandomSource,
        shape: torch.Size,
        rounds: int,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The generation process on ``clean [N, cells]``, all samples together.

        Returns ``(delta [N, cells] in {-1, 0, 1}, fd [N, cells] (FD of each accepted flip), order [N, cells]
        int64 (acceptance order, -1 where none), wrong [N] bool (misclassified at the end), iterations
        [N])``.
        """
        n_rows, cells = clean.shape
        device = clean.device
        delta = torch.zeros_like(clean)
        fd = torch.zeros_like(clean)
        order = torch.full((n_rows, cells), -1, dtype=torch.long, device=device)
        active = torch.ones(n_rows, dtype=torch.bool, device=device)
        wrong = torch.zeros(n_rows, dtype=torch.bool, device=device)
        iterations = torch.zeros(n_rows, dtype=torch.long, device=device)
        for n in range(rounds + 1):
            rows = active.nonzero().squeeze(1)
            if rows.numel() == 0:
                break
            adv = clean[rows] + delta[rows]
            margin, now_wrong, grad = self._margin_grad(model, adv, y[rows], shape)
            wrong[rows] = now_wrong
            active[rows[now_wrong]] = False  # stop at the first misclassification
            if n == rounds:
                break
            # One draw per round for every row of the call, used or not: a sample's random ranking depends
            # only on the seed, its row and the round, never on which other samples are still searching.
            noise = rng.uniform(clean, 0.0, 1.0)
            keep = ~now_wrong
            rows, adv, margin, grad = rows[keep], adv[keep], margin[keep], grad[keep]
            if rows.numel() == 0:
                break
            iterations[rows] += 1
            exhausted = self._round(
                model, n, rows, adv, margin, grad, noise[rows], clean, y, shape, delta, fd, order
            )
            active[rows[exhausted]] = False
        return delta, fd, order, wrong, iterations

    def _round(
        self,
        model: nn.Module,
        n: int,
        rows: Tensor,
        adv: Tensor,
        margin: Tensor,
        grad: Tensor,
        noise: Tensor,
        clean: Tensor,
        y: Tensor,
        shape: torch.Size,
        delta: Tensor,
        fd: Tensor,
        order: Tensor,
    ) -> Tensor:
        """Round ``n`` on the samples ``rows``: current points ``adv [m, cells]``, ``margin [m]``, ``grad``.

        Ranks, tests and accepts the candidates, updating ``delta``, ``fd`` and ``order`` in place. Returns
        ``[m]`` bool: the samples with no unflipped cell left."""
        m, cells = adv.shape
        selected = delta[rows] != 0
        if self.mode == "binary":
            insert = adv == 0
            contributing = torch.where(insert, grad < 0, grad > 0)
        else:
            insert = (grad < 0) | (adv == 0)
            contributing = (grad < 0) | ((grad > 0) & (adv > 0))
        step = torch.where(insert, 1.0, -1.0).to(adv.dtype)
        magnitude = grad.abs()
        # the random scores of the other cells stay below every contributing one (the authors' rule)
        floor = torch.where(contributing, magnitude, torch.inf).amin(1, keepdim=True)
        floor = torch.where(torch.isfinite(floor), floor, torch.ones_like(floor))
        score = torch.where(contributing, magnitude, noise * floor).masked_fill(selected, -1.0)
        k = min((n + 1) * self.k_init, cells)
        # a stable sort: equal scores rank by cell index, the same whatever else is in the batch
        ranked = torch.sort(score, dim=1, descending=True, stable=True).indices[:, :k]
        available = (~selected).sum(1)
        take = torch.arange(k, device=adv.device)[None, :] < available.clamp(max=k)[:, None]
        cand_row = torch.arange(m, device=adv.device)[:, None].expand(m, k)[take]
        cand_cell = ranked[take]
        cand_rank = torch.arange(k, device=adv.device)[None, :].expand(m, k)[take]
        cand_step = step[cand_row, cand_cell]
        cand_margin = torch.empty(cand_row.shape[0], dtype=adv.dtype, device=adv.device)
        for start in range(0, cand_row.shape[0], self.chunk):
            r = cand_row[start : start + self.chunk]
            batch = adv[r].clone()
            batch[torch.arange(r.shape[0], device=adv.device), cand_cell[start : start + self.chunk]] += (
                cand_step[start : start + self.chunk]
            )
            logits = self._logits(model, batch, shape)
            cand_margin[start : start + r.shape[0]] = _margin(logits, y[rows[r]])[0]
        change = cand_margin - margin[cand_row]
        tol = _TIE_RTOL * (1.0 + margin.abs())[cand_row]
        accept = change <= tol
        r_acc, c_acc = rows[cand_row[accept]], cand_cell[accept]
        delta[r_acc, c_acc] = cand_step[accept]
        change = change[accept]
        fd[r_acc, c_acc] = torch.where(change.abs() <= tol[accept], torch.zeros_like(change), change)
        order[r_acc, c_acc] = n * cells + cand_rank[accept]
        return available == 0

    def _reduce(
        self,
        model: nn.Module,
        clean: Tensor,
        delta: Tensor,
        fd: Tensor,
        order: Tensor,
        y: Tensor,
        todo: Tensor,
        shape: torch.Size,
    ) -> Tensor:
        """The reduction process: ``[N, cells]`` bool, the flips to undo (only on the samples ``todo``).

        Binary search, per sample, for the longest prefix of the flips ordered by ``|FD|`` ascending (ties by
        acceptance order) whose undoing keeps the point misclassified; all samples probe together.
        """
        undo = torch.zeros_like(delta, dtype=torch.bool)
        rows = todo.nonzero().squeeze(1)
        if rows.numel() == 0:
            return undo
        selected = delta[rows] != 0
        cells = delta.shape[1]
        big = torch.iinfo(torch.long).max
        # order by acceptance, then (stable) by |FD|: unflipped cells last
        by_order = torch.sort(torch.where(selected, order[rows], big), dim=1, stable=True).indices
        key = torch.where(selected, fd[rows].abs(), torch.inf).gather(1, by_order)
        perm = by_order.gather(1, torch.sort(key, dim=1, stable=True).indices)
        rank = torch.empty_like(perm)
        rank.scatter_(1, perm, torch.arange(cells, device=perm.device).expand_as(perm))
        adv = clean[rows] + delta[rows]
        low = torch.zeros(rows.shape[0], dtype=torch.long, device=adv.device)
        high = selected.sum(1) - 1
        best = torch.zeros_like(low)  # flips undone at the best probe so far (0: the unreduced point)
        while True:
            searching = (low <= high).nonzero().squeeze(1)
            if searching.numel() == 0:
                break
            pointer = (low[searching] + high[searching]) // 2
            mask = rank[searching] <= pointer[:, None]  # undo the first pointer + 1 flips
            probe = torch.where(mask, clean[rows[searching]], adv[searching])
            _, fooled = _margin(self._logits(model, probe, shape), y[rows[searching]])
            low[searching] = torch.where(fooled, pointer + 1, low[searching])
            high[searching] = torch.where(fooled, high[searching], pointer - 1)
            best[searching] = torch.where(fooled, pointer + 1, best[searching])
        undo[rows] = rank < best[:, None]
        return undo
