"""WRN: parameter count by hand, block wiring vs a plain re-implementation, the convex combination."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from evrobust.errors import UserInputError
from evrobust.models import ConvexCombination, PreActBlock, WideResNet, create_model
from evrobust.models.layers import NeuronFactory
from evrobust.neurons import DEFAULT_SPEC, IFNeuron

from .conftest import assert_active, make_active, n_params


def _block_params(c_in: int, c_out: int, projection: bool) -> int:
    """BN(c_in) + conv3x3 + BN(c_out) + conv3x3 [+ 1x1 projection] + the two mixing weights."""
    shortcut = c_in * c_out if projection else 0
    return 2 * c_in + 9 * c_in * c_out + 2 * c_out + 9 * c_out * c_out + shortcut + 2


def test_wrn16_4_parameter_count_by_hand() -> None:
    stem = 3 * 16 * 9  # conv3x3, no bias
    group1 = _block_params(16, 64, True) + _block_params(64, 64, False)
    group2 = _block_params(64, 128, True) + _block_params(128, 128, False)
    group3 = _block_params(128, 256, True) + _block_params(256, 256, False)
    head = 2 * 256 + 256 * 10 + 10  # BN + Linear
    expected = stem + group1 + group2 + group3 + head
    assert expected == 2_748_902
    assert n_params(create_model("wrn16", 10)) == expected
    # CIFAR-100 differs only in the fc.
    assert n_params(create_model("wrn16", 100)) == expected - 2570 + 25700


def test_wrn16_structure() -> None:
    model = create_model("wrn16", 10)
    assert isinstance(model, WideResNet)
    blocks = list(model.blocks)
    assert len(blocks) == 6 and all(isinstance(b, PreActBlock) for b in blocks)
    convs = [(b.conv1[0].in_channels, b.conv1[0].out_channels, b.conv1[0].stride[0]) for b in blocks]
    assert convs == [(16, 64, 1), (64, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1)]
    assert [b.shortcut is not None for b in blocks] == [True, False, True, False, True, False]
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))
    # 2 neurons per block + the head's
    assert sum(isinstance(m, IFNeuron) for m in model.modules()) == 13
    for b in blocks:
        torch.testing.assert_close(b.convex.comb.detach(), torch.tensor([0.5, 0.5]))


@pytest.mark.parametrize(("size", "final"), [(8, 2), (32, 8), (48, 12)])
def test_spatial_sizes_and_global_pooling(size: int, final: int) -> None:
    model = create_model("wrn16", 10, input_size=size, width=0.125, T=2)
    seen: list[tuple[int, ...]] = []
    model.head_bn.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
    assert model(torch.rand(2, 3, size, size)).shape == (2, 10)
    assert seen == [(2, 2, 32, final, final)]  # [T, N, 64k * width, h, w]


def _reference_if(current: torch.Tensor) -> torch.Tensor:
    """IF (tau = theta = 1, H(0) = 1, hard reset) over dim 0."""
    u = torch.zeros_like(current[0])
    out = []
    for t in range(current.shape[0]):
        u = u + current[t]
        s = (u >= 1.0).float()
        u = u * (1 - s)
        out.append(s)
    return torch.stack(out)


def _bn_eval(h: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    v = lambda t: t.view(1, -1, 1, 1)  # noqa: E731
    return (h - v(bn.running_mean)) / torch.sqrt(v(bn.running_var) + bn.eps) * v(bn.weight) + v(bn.bias)


def _reference_block(block: PreActBlock, x: torch.Tensor) -> torch.Tensor:
    """The SNN-RAT block in eval mode, per time step: x [T, N, C, H, W]."""
    T = x.shape[0]
    a = _reference_if(torch.stack([_bn_eval(x[t], block.bn1[0]) for t in range(T)]))
    conv1, bn2 = block.conv1[0], block.conv1[1]
    h = torch.stack(
        [_bn_eval(F.conv2d(a[t], conv1.weight, stride=conv1.stride, padding=1), bn2) for t in range(T)]
    )
    h = _reference_if(h)
    r = torch.stack([F.conv2d(h[t], block.conv2[0].weight, padding=1) for t in range(T)])
    if block.shortcut is None:
        skip = x  # identity: the raw input, not its activation
    else:
        sc = block.shortcut[0]
        skip = torch.stack([F.conv2d(a[t], sc.weight, stride=sc.stride) for t in range(T)])  # taps the spikes
    c0, c1 = block.convex.comb
    return c0 * skip + c1 * r


@pytest.mark.parametrize(("c_in", "c_out", "stride"), [(4, 4, 1), (4, 8, 2), (4, 8, 1), (6, 6, 2)])
def test_block_matches_the_reference_wiring(c_in: int, c_out: int, stride: int) -> None:
    block = PreActBlock(c_in, c_out, stride, NeuronFactory("native", DEFAULT_SPEC, 1.0, 1.0)).eval()
    with torch.no_grad():
        for m in block.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.2, 0.5)  # small variance -> large normalised currents -> spikes
                m.weight.uniform_(0.8, 1.5)
                m.bias.uniform_(0.2, 0.6)
            if isinstance(m, nn.Conv2d):
                m.weight.normal_(0.0, 0.5)
        block.convex.comb.copy_(torch.tensor([0.3, 0.9]))  # unequal, so swapped branches would show
        x = torch.rand(3, 2, c_in, 8, 8)
        got = block(x)
        want = _reference_block(block, x)
    assert (got != 0).float().mean() > 0.5
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # The projection is used whenever the shapes differ (the reference checks only the channel counts).
    assert (block.shortcut is None) == (c_in == c_out and stride == 1)


def test_convex_combination_weights_learn() -> None:
    comb = ConvexCombination(2)
    a, b = torch.full((3,), 2.0), torch.full((3,), -1.0)
    out = comb(a, b)
    torch.testing.assert_close(out, torch.full((3,), 0.5))
    out.sum().backward()
    torch.testing.assert_close(comb.comb.grad, torch.tensor([6.0, -3.0]))


def test_whole_wrn_eval_forward_uses_the_blocks_and_head() -> None:
    """End-to-end: stem -> blocks -> BN-IF-global-avg -> fc -> mean over T, re-done by hand."""
    model = create_model("wrn_small", 4, in_channels=1, input_size=8, T=3, mean=[0.5], std=[0.25])
    x = torch.rand(5, 1, 8, 8)
    make_active(model, x)
    with torch.no_grad():
        got = model(x)
        h = ((x - 0.5) / 0.25).unsqueeze(0).expand(3, -1, -1, -1, -1)
        h = torch.stack([F.conv2d(h[t], model.stem[0].weight, padding=1) for t in range(3)])
        for block in model.blocks:
            h = _reference_block(block, h)
        h = _reference_if(torch.stack([_bn_eval(h[t], model.head_bn[0]) for t in range(3)]))
        pooled = h.mean(dim=(-2, -1))  # [T, N, C]
        fc = model.fc[0]
        want = (pooled @ fc.weight.T + fc.bias).mean(0)
    assert_active(got)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_bad_depth_and_widen() -> None:
    for depth in (4, 12, 15):
        with pytest.raises(UserInputError, match="6n\\+4"):
            create_model("wrn16", 10, depth=depth)
    with pytest.raises(UserInputError, match="widen"):
        create_model("wrn16", 10, widen=0)
