"""Attack-failure indicators: the binarization test passes a working attack and fails a blinded one, the loss
plateau and the finite-difference checks on cases computed by hand."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from evrobust.analysis.indicators import (
    binarization_test,
    binarized_model,
    fd_disagreement,
    loss_still_moving,
    readout_features,
)
from evrobust.attacks import APGD, PGD, SAPGD, Square, predict
from evrobust.attacks.base import recording_traces

from .conftest import Masked


def test_readout_features_rebuild_the_logits_and_binarized_model_uses_them(
    snn: nn.Module, digits: tuple[Tensor, ...]
) -> None:
    x = digits[2][:16]
    phi = readout_features(snn, x)
    assert phi is not None
    layer = [m for m in snn.modules() if isinstance(m, nn.Linear)][-1]
    torch.testing.assert_close(phi @ layer.weight.T + layer.bias, snn(x), atol=1e-4, rtol=1e-4)
    w, b = torch.randn(phi.shape[1]), 0.3
    binary = binarized_model(snn, w, b)
    torch.testing.assert_close(binary(x)[:, 1], phi @ w + b, atol=1e-4, rtol=1e-4)
    assert torch.all(binary(x)[:, 0] == 0)
    # the original is untouched
    torch.testing.assert_close(snn(x), phi @ layer.weight.T + layer.bias, atol=1e-4, rtol=1e-4)


def test_binarization_passes_a_working_attack_and_fails_a_blinded_one(
    snn: nn.Module, digits: tuple[Tensor, ...]
) -> None:
    x = digits[2][:40]
    eps = 0.15
    pgd = PGD(eps, alpha=eps / 4, steps=20)
    attacks = {
        "pgd": lambda m, xx, yy: pgd(m, xx, yy),
        "pgd-blind": lambda m, xx, yy: pgd(Masked(m), xx, yy),
        "square": lambda m, xx, yy: Square(eps, n_queries=300)(m, xx, yy),
    }
    out = binarization_test(snn, x, eps, attacks)
    assert out["valid"] >= 20, out
    assert out["rates"]["pgd"] >= 0.95, out
    assert out["rates"]["square"] >= 0.95, out
    assert out["rates"]["pgd-blind"] < 0.5, out


def test_loss_still_moving_by_hand() -> None:
    # three samples over 10 steps: flat after step 5; still rising at the end; fooled (excluded)
    steps = torch.arange(11, dtype=torch.float32)
    flat = torch.clamp(steps, max=5.0)
    rising = steps.clone()
    best = torch.stack([flat, rising, rising], 1)
    fooled = torch.tensor([False, False, True])
    assert loss_still_moving(best, fooled) == (1, 2)
    # a rise below 1 % of the run's whole rise does not count
    tiny = flat.clone()
    tiny[-1] += 0.01
    assert loss_still_moving(tiny[:, None], torch.tensor([False])) == (0, 1)


def test_traces_are_recorded_and_the_attacks_restored(snn: nn.Module, digits: tuple[Tensor, ...]) -> None:
    x, y = digits[2][:8], digits[3][:8]
    apgd, sapgd = APGD(0.05, steps=6), SAPGD(0.05, steps=4)
    seen: list[tuple[str, tuple[int, ...]]] = []
    with recording_traces([apgd, sapgd], lambda a, best, fooled: seen.append((a.name, tuple(best.shape)))):
        apgd(snn, x, y)
        sapgd(snn, x, y)
    names = [s[0] for s in seen]
    assert "apgd" in names[0] and names[-1] == "sapgd"
    assert seen[0][1][0] == 7 and seen[-1][1][0] == 5  # steps + 1 rows
    assert apgd.on_trace is None and sapgd.on_trace is None


def test_fd_disagreement_is_zero_for_a_smooth_linear_model_and_counts_zero_gradients() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
    x = 0.2 + 0.6 * torch.rand(5, 1, 4, 4)
    y = torch.tensor([0, 1, 2, 0, 1])
    zero, disagreement = fd_disagreement(model, x, y)
    assert torch.all(zero == 0)
    assert float(disagreement.max()) < 1e-2
    # a blinded model: all-zero gradient, a loss that still changes -> disagreement 1
    zero, disagreement = fd_disagreement(Masked(model), x, y)
    assert torch.all(zero == 1) and torch.allclose(disagreement, torch.ones(5))


def test_binarized_model_predicts_with_the_new_readout(snn: nn.Module, digits: tuple[Tensor, ...]) -> None:
    x = digits[2][:8]
    phi = readout_features(snn, x)
    assert phi is not None
    w = torch.zeros(phi.shape[1])
    assert torch.all(predict(binarized_model(snn, w, 1.0), x) == 1)
    assert torch.all(predict(binarized_model(snn, w, -1.0), x) == 0)
