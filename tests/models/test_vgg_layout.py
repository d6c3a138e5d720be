"""VGG: the reference layer list, its exact parameter count, and a functional re-implementation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from evrobust.models import VGG, create_model
from evrobust.neurons import IFNeuron

from .conftest import assert_active, make_active, n_params

# The reference VGG-11 (putshua/gradient_reg_defense snn_models/VGG.py), written out layer by layer:
# conv3x3 with bias + BN(affine) per conv; pools have no parameters; classifier Linear layers with bias.
VGG11_CONVS = [64, 128, 256, 512, 512, 512, 512, 512]
VGG11_POOL_AFTER = {0, 2, 5}  # conv indices followed by AvgPool2d(2)


def reference_vgg11_params(in_channels: int, input_size: int, num_classes: int) -> int:
    total, c_in = 0, in_channels
    for c in VGG11_CONVS:
        total += c_in * c * 9 + c  # conv weight + bias
        total += 2 * c  # BN gamma + beta
        c_in = c
    s = (input_size // 8) ** 2
    total += (512 * s) * 4096 + 4096
    total += 4096 * 4096 + 4096
    total += 4096 * num_classes + num_classes
    return total


@pytest.mark.parametrize(
    ("in_channels", "input_size", "num_classes", "expected"),
    [
        (3, 32, 10, 61_377_034),  # CIFAR-10: "about 61.4 M"
        (3, 32, 100, 61_745_764),  # CIFAR-100
        (2, 48, 10, 103_319_498),  # CIFAR10-DVS frames, S = 36: first Linear 18432 x 4096
    ],
)
def test_vgg11_has_the_reference_parameter_count(
    in_channels: int, input_size: int, num_classes: int, expected: int
) -> None:
    assert reference_vgg11_params(in_channels, input_size, num_classes) == expected
    model = create_model("vgg11", num_classes, in_channels=in_channels, input_size=input_size)
    assert n_params(model) == expected
    # BN running statistics are buffers, not parameters; the normalisation constants are not saved at all.
    assert sum(1 for k in model.state_dict() if k.endswith("running_mean")) == len(VGG11_CONVS)


def test_vgg11_layer_sequence_matches_the_reference() -> None:
    model = create_model("vgg11", 10)
    kinds: list[str] = []
    for m in model.features.modules():
        if isinstance(m, nn.Conv2d):
            assert m.kernel_size == (3, 3) and m.padding == (1, 1) and m.stride == (1, 1)
            assert m.bias is not None
            kinds.append(f"conv{m.out_channels}")
        elif isinstance(m, nn.BatchNorm2d):
            kinds.append("bn")
        elif isinstance(m, IFNeuron):
            kinds.append("if")
        elif isinstance(m, nn.AvgPool2d):
            kinds.append("A")
    expected: list[str] = []
    for i, c in enumerate(VGG11_CONVS):
        expected += [f"conv{c}", "bn", "if"] + (["A"] if i in VGG11_POOL_AFTER else [])
    assert kinds == expected
    linears = [m for m in model.classifier.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(8192, 4096), (4096, 4096), (4096, 10)]
    assert sum(isinstance(m, IFNeuron) for m in model.classifier.modules()) == 2
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())


@pytest.mark.parametrize(("size", "spatial"), [(8, 1), (16, 4), (32, 16), (48, 36), (28, 9)])
def test_first_classifier_layer_sees_512_times_S_features(size: int, spatial: int) -> None:
    model = create_model("vgg11", 10, input_size=size, width=0.125)
    first = next(m for m in model.classifier.modules() if isinstance(m, nn.Linear))
    assert first.in_features == 64 * spatial  # 512 * width channels, S = floor(size / 8) ** 2


def test_width_scales_channels_and_hidden_layers() -> None:
    model = create_model("vgg11", 10, width=0.5)
    convs = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [c // 2 for c in VGG11_CONVS]
    linears = [m.out_features for m in model.modules() if isinstance(m, nn.Linear)]
    assert linears == [2048, 2048, 10]


def test_max_pool_override_replaces_every_average_pool() -> None:
    model = create_model("vgg11", 10, width=0.125, pool="max")
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 3
    assert not any(isinstance(m, nn.AvgPool2d) for m in model.modules())


def _reference_if(current: torch.Tensor, tau: float, theta: float) -> torch.Tensor:
    """IF/LIF over dim 0, written as plainly as the paper's Eq. 1-2 (H(0) = 1, hard reset to 0)."""
    u = torch.zeros_like(current[0])
    s = torch.zeros_like(current[0])
    out = []
    for t in range(current.shape[0]):
        u = tau * u * (1 - s) + current[t]
        s = (u >= theta).float()
        out.append(s)
    return torch.stack(out)


def _reference_vgg_forward(model: VGG, x: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """Eval-mode forward of a VGG from its weights alone, one time step and one layer at a time."""
    tau, theta = model.config["tau"], model.config["theta"]
    xn = (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    steps = [xn] * model.config["T"]  # direct encoding
    layers = list(model.features) + list(model.classifier)
    for layer in layers:
        if isinstance(layer, IFNeuron):
            steps = list(_reference_if(torch.stack(steps), tau, theta))
            continue
        if isinstance(layer, nn.Flatten):
            steps = [h.flatten(1) for h in steps]
            continue
        new = []
        for h in steps:
            for m in layer:
                if isinstance(m, nn.Conv2d):
                    h = F.conv2d(h, m.weight, m.bias, padding=1)
                elif isinstance(m, nn.BatchNorm2d):
                    mu, var = m.running_mean.view(1, -1, 1, 1), m.running_var.view(1, -1, 1, 1)
                    gamma, beta = m.weight.view(1, -1, 1, 1), m.bias.view(1, -1, 1, 1)
                    h = (h - mu) / torch.sqrt(var + m.eps) * gamma + beta
                elif isinstance(m, nn.AvgPool2d):
                    n, c, hh, ww = h.shape
                    h = h.view(n, c, hh // 2, 2, ww // 2, 2).mean(dim=(3, 5))
                elif isinstance(m, nn.Linear):
                    h = h @ m.weight.T + m.bias
                else:
                    raise AssertionError(f"unexpected layer {m}")
            new.append(h)
        steps = new
    return torch.stack(steps).mean(0)  # mean over T of the last Linear's output


@pytest.mark.parametrize(("tau", "theta"), [(1.0, 1.0), (0.5, 0.8)])
def test_forward_matches_a_plain_reimplementation(tau: float, theta: float) -> None:
    mean, std = [0.4, 0.5], [0.2, 0.3]
    model = create_model(
        "vgg_small", 5, in_channels=2, input_size=8, T=4, width=0.5, mean=mean, std=std, tau=tau, theta=theta
    )
    x = torch.rand(6, 2, 8, 8)
    make_active(model, x)
    with torch.no_grad():
        # Non-trivial BN statistics, so that a BN applied in the wrong place would show.
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.weight.uniform_(0.8, 1.5)
        got = model(x)
        want = _reference_vgg_forward(model, x, mean, std)
    assert_active(got)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
