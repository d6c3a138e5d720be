"""Per-sample robustness bookkeeping: flags per attack and per ensemble member, worst case across attacks.

The unit of record is a per-sample flag, not an accuracy: accuracies are computed from flags at the end, so
batches can be appended (and a run resumed) without losing the per-sample worst case. Flags are int8:
1 = the model is right on that sample under that attack, 0 = fooled, -1 = not attacked (an ensemble member
that skipped a sample already fooled). Text form for JSON: one character per sample, ``1``/``0``/``-``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from evrobust.attacks.base import Attack, predict
from evrobust.attacks.ensemble import NOT_ATTACKED, Ensemble, EnsembleResult
from evrobust.errors import UserInputError

__all__ = [
    "AttackFlags",
    "evaluate_batch",
    "flags_from_text",
    "flags_to_text",
    "worst_case",
]

_CHARS = {1: "1", 0: "0", NOT_ATTACKED: "-"}
_VALUES = {v: k for k, v in _CHARS.items()}


def flags_to_text(flags: Tensor) -> str:
    """``[N]`` int8/bool flags -> ``"10-1..."``."""
    return "".join(_CHARS[int(v)] for v in flags.to(torch.int8).tolist())


def flags_from_text(text: str) -> Tensor:
    """Inverse of :func:`flags_to_text`: ``[N]`` int8."""
    try:
        return torch.tensor([_VALUES[c] for c in text], dtype=torch.int8)
    except KeyError as err:
        raise UserInputError(
            f"corrupt flag string: unexpected character {err.args[0]!r} (valid: 1, 0, -)"
        ) from None


@dataclass
class AttackFlags:
    """Per-sample flags of one attack over the samples evaluated so far.

    Attributes:
        name: attack name (``clean`` for the unattacked input).
        correct: ``[N]`` int8, 1 when the model survives the attack (and every member of its ensemble).
        members: member label -> ``[N]`` int8 flags of that member (-1 where it skipped the sample).
    """

    name: str
    correct: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int8))
    members: dict[str, Tensor] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """Number of samples recorded."""
        return int(self.correct.shape[0])

    def append(self, correct: Tensor, members: Mapping[str, Tensor] | None = None) -> None:
        """Append one batch: ``correct`` ``[n]`` bool/int8 and optional per-member ``[n]`` flags."""
        n_before = self.count
        self.correct = torch.cat([self.correct, correct.detach().to("cpu", torch.int8)])
        for name, flags in (members or {}).items():
            old = self.members.get(name, torch.full((n_before,), NOT_ATTACKED, dtype=torch.int8))
            self.members[name] = torch.cat([old, flags.detach().to("cpu", torch.int8)])

    def append_result(self, result: EnsembleResult) -> None:
        """Append the outcome of an ensemble on one batch."""
        members = dict(zip(result.members, result.member_correct, strict=True))
        self.append(result.correct, members)

    def accuracy(self) -> float:
        """Fraction of samples that survive (0 when empty)."""
        return float((self.correct == 1).float().mean()) if self.count else 0.0

    def member_accuracy(self) -> dict[str, float | None]:
        """Accuracy under each member alone; ``None`` where the member skipped some samples."""
        out: dict[str, float | None] = {}
        for name, flags in self.members.items():
            skipped = bool((flags == NOT_ATTACKED).any())
            out[name] = None if skipped or not self.count else float((flags == 1).float().mean())
        return out

    def to_json(self) -> dict[str, Any]:
        """JSON form with flag strings."""
        return {
            "name": self.name,
            "correct": flags_to_text(self.correct),
            "members": {k: flags_to_text(v) for k, v in self.members.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AttackFlags:
        """Inverse of :meth:`to_json`."""
        return cls(
            name=str(data["name"]),
            correct=flags_from_text(str(data["correct"])),
            members={k: flags_from_text(str(v)) for k, v in data.get("members", {}).items()},
        )


def worst_case(flags: Iterable[Tensor]) -> Tensor:
    """Per-sample worst case across attacks: robust only if robust under every one. ``[N]`` bool.

    Args:
        flags: ``[N]`` bool/int8 flags, one per attack, all for the same samples in the same order.
    """
    items = [f.to(torch.int8) == 1 for f in flags]
    if not items:
        raise UserInputError("worst_case needs at least one attack's flags")
    n = items[0].shape[0]
    if any(f.shape[0] != n for f in items):
        raise UserInputError("worst_case: every attack's flags must cover the same samples")
    return torch.stack(items).all(0)


def evaluate_batch(
    model: nn.Module,
    attack: Attack | None,
    x: Tensor,
    y: Tensor,
    *,
    specs: Iterable[Any] | str = "single",
    source: nn.Module | None = None,
    seed: int | None = None,
) -> EnsembleResult:
    """Robust flags of ``model`` on one batch under ``attack`` (``None`` = clean) with an ensemble of specs.

    Args:
        model: the model under evaluation (the judge).
        attack: a configured attack, or ``None`` for clean accuracy.
        x: inputs ``[N, ...]`` in [0,1]; y: labels ``[N]``.
        specs: the ensemble members (see :class:`~evrobust.attacks.Ensemble`).
        source: craft on this model instead (black-box transfer); ``None`` = white-box.
        seed: per-call seed (e.g. derived from the batch index, so that a resumed run is identical).
    """
    if attack is None:
        ok = predict(model, x) == y.to(x.device)
        no_members = torch.zeros((0, x.shape[0]), dtype=torch.int8, device=x.device)
        return EnsembleResult(x_adv=x, correct=ok, clean_correct=ok, member_correct=no_members, members=[])
    ensemble = Ensemble(attack, specs)
    crafter = model if source is None else source
    return ensemble(crafter, x, y, judge=model, seed=seed)

