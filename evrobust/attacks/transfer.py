"""Black-box transfer: examples crafted on a source model, scored on the target (paper §5, DESIGN §6).

The attacker never queries the target: the (ensemble) attack runs entirely on the source model. The target
only judges the finished examples; a sample counts as robust only if the target classifies the clean input
and every member's transferred example correctly. Skipping samples already fooled on the target is an
evaluation shortcut that does not change that verdict.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from evrobust.attacks.base import check_batch, eval_mode
from evrobust.attacks.ensemble import Ensemble, EnsembleResult
from evrobust.errors import UserInputError

__all__ = ["check_compatible", "transfer_attack"]


def check_compatible(source: nn.Module, target: nn.Module, x: Tensor) -> None:
    """Raise :class:`UserInputError` unless both models accept ``x`` and give logits of the same shape.

    ``x`` is a small sample batch (e.g. the first test batch); both models are run once without a graph.
    """
    shapes: list[tuple[int, ...]] = []
    for role, model in (("source", source), ("target", target)):
        try:
            with eval_mode(model), torch.no_grad():
                shapes.append(tuple(model(x).shape))
        except (RuntimeError, ValueError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise UserInputError(
                f"the {role} model does not accept inputs of shape {tuple(x.shape)} ({first}); "
                "black-box transfer needs a source trained on the same data layout as the target"
            ) from None
    if shapes[0] != shapes[1]:
        raise UserInputError(
            f"source logits {shapes[0]} differ from target logits {shapes[1]}; "
            "use a source trained on the same dataset (same classes) as the target"
        )


def transfer_attack(
    ensemble: Ensemble,
    source: nn.Module,
    target: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    seed: int | None = None,
) -> EnsembleResult:
    """Craft with ``ensemble`` on ``source`` and score on ``target``.

    Args:
        ensemble: the attack and its gradient-spec members, applied to the *source* model.
        source: the model whose gradients craft the examples.
        target: the model under evaluation; only its predictions are used.
        x: clean inputs ``[N, ...]`` in [0,1]; y: labels ``[N]``.

    Returns:
        An :class:`EnsembleResult` whose flags are the target's verdicts.
    """
    check_batch(x, y)
    if source is target:
        raise UserInputError("black-box transfer needs a source model different from the target")
    return ensemble(source, x, y, judge=target, seed=seed)
