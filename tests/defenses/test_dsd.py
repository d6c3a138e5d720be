"""Dominant singular deflation: the top singular value goes, the rest of the spectrum stays."""

from __future__ import annotations

import torch
from torch import nn

from evrobust.defenses import deflate_dominant, dominant_singular_deflation


def test_hand_example() -> None:
    g = torch.tensor([[3.0, 0.0], [0.0, 1.0]])  # singular values 3 and 1; the top pair is e1 e1^T
    torch.testing.assert_close(deflate_dominant(g), torch.tensor([[0.0, 0.0], [0.0, 1.0]]))


def test_spectrum_loses_only_its_top_value_for_matrices_and_conv_kernels() -> None:
    gen = torch.Generator().manual_seed(0)
    for shape in [(6, 9), (9, 6), (4, 3, 3, 3)]:
        g = torch.randn(shape, generator=gen, dtype=torch.float64)
        matrix = g.reshape(shape[0], -1)
        u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
        out = deflate_dominant(g)
        assert out.shape == g.shape
        flat = out.reshape(shape[0], -1)
        after = torch.linalg.svdvals(flat)
        torch.testing.assert_close(after[: s.numel() - 1], s[1:])  # the rest unchanged, in order
        assert after[-1].item() < 1e-12  # the removed direction is now a zero singular value
        torch.testing.assert_close(flat @ vh[0], torch.zeros(shape[0], dtype=torch.float64))
        torch.testing.assert_close(flat, matrix - s[0] * torch.outer(u[:, 0], vh[0]))


def test_model_gradients_with_two_or_more_dims_only() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(12, 4))
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    model[3].weight.grad = torch.zeros_like(model[3].weight)  # a zero gradient: left as it is
    before = {n: p.grad.clone() for n, p in model.named_parameters()}
    assert dominant_singular_deflation(model) == 2
    for name, p in model.named_parameters():
        changed = not torch.equal(p.grad, before[name])
        assert changed == (name == "0.weight"), name
    top = torch.linalg.svdvals(before["0.weight"].reshape(3, -1))
    torch.testing.assert_close(torch.linalg.svdvals(model[0].weight.grad.reshape(3, -1))[:2], top[1:])
