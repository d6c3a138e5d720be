"""The placement step of spike retiming: per-cell shift scores -> an integer retiming of the counts (Numba).

:func:`place_events` is the hard projection of :class:`~evrobust.attacks.retiming.SpikeRetiming`. It takes
the clean counts of a batch, laid out as ``[N, T, P]`` (``P = 2 * H * W`` pixel-polarity lines, each a row
of ``T`` frozen bins), and for every cell ``(t, p)`` a score per candidate shift ``d`` (the attack passes
the softmax probabilities of its shift logits). It returns counts ``[N, T, P]`` that

- keep every line's total: each event ends in exactly one bin of its own line (retiming only moves events);
- respect the per-cell limit: no bin of a line ends with more events than ``limit[n, t, p]``;
- move no event by more than the largest ``|d|`` offered (the B-inf budget ``D``);
- move at most ``budget[n]`` events in sample ``n`` (the B0 budget ``k``; ``budget < 0``: no limit).

The placement is greedy, most confident first. Every (cell, shift) pair whose target bin lies on the time
axis and whose source cell holds events is a candidate; the candidates of a sample are ordered by score,
highest first (ties: staying put before moving, shorter shifts before longer, earlier shifts before later,
then cell order, so the result is deterministic). Walking that order, a candidate places the events its
cell still holds: staying always succeeds; a move places as many as the target bin has room for (its
limit minus the events already placed there and those still waiting in it, which may yet stay) and as the
sample's remaining B0 budget allows; the rest wait for the cell's next candidate. Every source cell offers
a "stay" candidate, so no event is left unplaced. The "waiting" term keeps the limit an invariant: at every
point ``placed[u] + waiting[u] <= limit[u]``, so the result respects the limit whatever the order.

A cell's events may split (some move, the rest stay) when the target fills up or the budget runs out: an
event is one unit of count, not a packet. Under B0 a sample's moves compete for its budget across all of
its lines, so the highest-scoring moves of the whole sample are the ones kept.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["place_events"]


@njit(cache=True, nogil=True)
def _place_sample(
    counts: np.ndarray,
    scores: np.ndarray,
    limit: np.ndarray,
    shifts: np.ndarray,
    budget: int,
    out: np.ndarray,
) -> int:
    """Place one sample's events (``counts``/``limit``/``out`` ``[T, P]``, ``scores`` ``[T, P, K]``) into
    ``out`` (zeros on entry); return the number of events moved."""
    n_bins, n_lines = counts.shape
    n_shifts = shifts.shape[0]
    # Columns in tie-break order: stay, then -1, +1, -2, +2, ... (key 2|d| + [d > 0] is unique per shift)
    col_key = np.empty(n_shifts, dtype=np.int64)
    for j in range(n_shifts):
        col_key[j] = 2 * abs(shifts[j]) + (1 if shifts[j] > 0 else 0)
    col_order = np.argsort(col_key, kind="mergesort")

    m = 0
    for jj in range(n_shifts):
        d = shifts[col_order[jj]]
        for t in range(n_bins):
            if 0 <= t + d < n_bins:
                for p in range(n_lines):
                    if counts[t, p] > 0:
                        m += 1
    neg_score = np.empty(m, dtype=np.float64)
    cand_t = np.empty(m, dtype=np.int64)
    cand_p = np.empty(m, dtype=np.int64)
    cand_d = np.empty(m, dtype=np.int64)
    i = 0
    for jj in range(n_shifts):
        j = col_order[jj]
        d = shifts[j]
        for t in range(n_bins):
            if 0 <= t + d < n_bins:
                for p in range(n_lines):
                    if counts[t, p] > 0:
                        neg_score[i] = -scores[t, p, j]
                        cand_t[i] = t
                        cand_p[i] = p
                        cand_d[i] = d
                        i += 1
    # stable sort: equal scores keep the tie-break order in which they were listed
    order = np.argsort(neg_score, kind="mergesort")

    waiting = counts.copy()
    left = budget if budget >= 0 else np.iinfo(np.int64).max
    moved = 0
    for idx in order:
        t = cand_t[idx]
        p = cand_p[idx]
        r = waiting[t, p]
        if r == 0:
            continue
        d = cand_d[idx]
        if d == 0:
            out[t, p] += r
            waiting[t, p] = 0
            continue
        if left <= 0:
            continue
        u = t + d
        room = limit[u, p] - out[u, p] - waiting[u, p]
        take = min(r, room, left)
        if take <= 0:
            continue
        out[u, p] += take
        waiting[t, p] -= take
        left -= take
        moved += take
    # Every source cell has a "stay" candidate, so nothing waits here; kept as a guard for the invariant.
    for t in range(n_bins):
        for p in range(n_lines):
            out[t, p] += waiting[t, p]
    return moved


@njit(cache=True, nogil=True)
def _place_batch(
    counts: np.ndarray,
    scores: np.ndarray,
    limit: np.ndarray,
    shifts: np.ndarray,
    budget: np.ndarray,
    out: np.ndarray,
    moved: np.ndarray,
) -> None:
    for n in range(counts.shape[0]):
        moved[n] = _place_sample(counts[n], scores[n], limit[n], shifts, budget[n], out[n])


def place_events(
    counts: np.ndarray,
    scores: np.ndarray,
    limit: np.ndarray,
    shifts: np.ndarray,
    budget: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy placement of each cell's events by its shift scores (see the module docstring).

    Args:
        counts: clean event counts ``[N, T, P]``, integers >= 0.
        scores: ``[N, T, P, K]``, the score of moving cell ``(t, p)``'s events by ``shifts[k]`` bins; higher
            is preferred. Scores of shifts that leave the time axis are ignored.
        limit: the most events a cell may hold after retiming ``[N, T, P]``, integers; must be
            ``>= counts`` (a cell over the capacity keeps its own events but gains none).
        shifts: the candidate shifts ``[K]`` in bins, distinct integers, one of them 0.
        budget: events each sample may move ``[N]`` (B0's k), or a negative value for no limit.

    Returns:
        ``(retimed [N, T, P] int64, moved [N] int64)``: the retimed counts and how many events each sample
        moved. ``moved`` counts every event placed outside its own bin, so it is an upper bound on the
        minimal count of :func:`~evrobust.attacks.event_base.retiming_stats`.
    """
    c = np.ascontiguousarray(counts, dtype=np.int64)
    s = np.ascontiguousarray(scores, dtype=np.float64)
    lim = np.ascontiguousarray(limit, dtype=np.int64)
    sh = np.ascontiguousarray(shifts, dtype=np.int64)
    b = np.ascontiguousarray(budget, dtype=np.int64)
    if c.ndim != 3 or s.shape != (*c.shape, sh.shape[0]) or lim.shape != c.shape or b.shape != c.shape[:1]:
        raise ValueError(
            f"place_events: counts [N,T,P], scores [N,T,P,K], limit [N,T,P], budget [N] expected; got "
            f"{c.shape}, {s.shape}, {lim.shape}, {b.shape} with K = {sh.shape[0]}"
        )
    if sh.ndim != 1 or np.unique(sh).shape[0] != sh.shape[0] or not bool((sh == 0).any()):
        raise ValueError(f"place_events: shifts must be distinct integers including 0, got {sh.tolist()}")
    if bool((c < 0).any()) or bool((lim < c).any()):
        raise ValueError("place_events: counts must be >= 0 and limit >= counts")
    out = np.zeros_like(c)
    moved = np.zeros(c.shape[0], dtype=np.int64)
    _place_batch(c, s, lim, sh, b, out, moved)
    return out, moved
