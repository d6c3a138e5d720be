"""The NIR graph of a model: nodes, folding, the normalisation at borders, round trip, ties, refusals."""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from evrobust.errors import UserInputError
from evrobust.export import NIRModel, load_nir, norse_from_nir, run_norse, to_nir_graph, write_nir
from evrobust.export.nir_export import fold_conv_bn
from evrobust.models import create_model

CIFAR_TEST = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "cifar10" / "cifar10_test_first1017.npz"
)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def _randomise_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine terms, so that folding is exercised."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) * 0.6 - 0.3)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
    return model.eval()


def _model(name: str, **kw: object) -> nn.Module:
    torch.manual_seed(0)
    base = {"in_channels": 1, "input_size": 8, "T": 3, "mean": [0.3], "std": [0.4]}
    return _randomise_batchnorm(create_model(name, 10, **{**base, **kw}))


def _types(graph: nir.NIRGraph) -> set[str]:
    return {type(n).__name__ for n in graph.nodes.values()}


def test_vgg_graph_has_the_issue_node_types_and_if_semantics(tmp_path: Path) -> None:
    model = _model("vgg_small", theta=0.8)
    path = write_nir(model, tmp_path / "vgg.nir")
    graph = nir.read(str(path))  # nir.read type-checks every edge by default
    assert _types(graph) == {"Input", "Conv2d", "IF", "AvgPool2d", "Flatten", "Affine", "Output"}
    ifs = [n for n in graph.nodes.values() if isinstance(n, nir.IF)]
    assert len(ifs) == 3  # two conv layers and one hidden Linear
    for node in ifs:
        assert np.all(node.r == 1) and np.all(node.v_reset == 0) and np.allclose(node.v_threshold, 0.8)
    assert graph.nodes["features_1"].v_threshold.shape == (32, 8, 8)  # [C, H, W] after the first conv
    assert graph.metadata["format"] == "evrobust-nir" and graph.metadata["time_steps"] == 3
    assert graph.metadata["dt"] == 1.0 and "mean over the T time steps" in graph.metadata["readout"]
    flatten = next(n for n in graph.nodes.values() if isinstance(n, nir.Flatten))
    assert flatten.start_dim == 0  # NIR's dims exclude the batch axis


def test_wrn_residual_is_two_scale_nodes_feeding_the_same_nodes() -> None:
    model = _model("wrn_small")
    with torch.no_grad():
        model.blocks[1].convex.comb.copy_(torch.tensor([0.3, 0.9]))
    graph = to_nir_graph(model)
    assert _types(graph) == {"Input", "Conv2d", "IF", "AvgPool2d", "Flatten", "Affine", "Scale", "Output"}
    skip, res = graph.nodes["blocks_1_skip"], graph.nodes["blocks_1_residual"]
    assert np.all(skip.scale == np.float32(0.3)) and np.all(res.scale == np.float32(0.9))
    # Block 0 (16 -> 16 channels, stride 1) has an identity shortcut: its skip Scale reads the stem.
    into = lambda name: sorted(s for s, d in graph.edges if d == name)  # noqa: E731
    assert into("blocks_0_skip") == ["stem"]
    # Block 1 reads the sum of block 0's two scaled branches, and projects its shortcut from the activated
    # input (as the model does).
    assert into("blocks_1_bn1") == ["blocks_0_residual", "blocks_0_skip"]
    assert into("blocks_1_shortcut") == ["blocks_1_act1"] and into("blocks_1_skip") == ["blocks_1_shortcut"]
    assert into("head_bn") == ["blocks_2_residual", "blocks_2_skip"]


def test_batchnorm_folding_matches_a_hand_computation() -> None:
    conv = nn.Conv2d(1, 1, 1, bias=True)
    bn = nn.BatchNorm2d(1, eps=0.0).eval()
    with torch.no_grad():
        conv.weight.fill_(2.0)
        conv.bias.fill_(1.0)
        bn.running_mean.fill_(3.0)
        bn.running_var.fill_(4.0)
        bn.weight.fill_(0.5)
        bn.bias.fill_(-1.0)
    weight, bias = fold_conv_bn(conv, bn)
    # bn(conv(x)) = 0.5 * (2x + 1 - 3) / 2 - 1 = 0.5x - 1.5
    assert float(weight.flatten()[0]) == 0.5 and float(bias[0]) == -1.5


def _first_conv_input(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The first conv + BN pre-activation of a VGG, as the model computes it: ``[N, C, H, W]``."""
    with torch.no_grad():
        return model.features[0](model.encoder(x))[0]


def _border_mask(side: int) -> torch.Tensor:
    mask = torch.zeros(side, side, dtype=torch.bool)
    mask[0, :] = mask[-1, :] = mask[:, 0] = mask[:, -1] = True
    return mask


@pytest.mark.parametrize("source", ["black", "cifar"])
def test_normalisation_is_exact_at_zero_padded_borders(source: str) -> None:
    """The graph's normalise-then-pad equals the model at every pixel; folding the normalisation would not."""
    torch.manual_seed(1)
    model = _randomise_batchnorm(
        create_model(
            "vgg_small", 10, in_channels=3, input_size=32, T=2, width=0.25, mean=CIFAR_MEAN, std=CIFAR_STD
        )
    )
    if source == "black":
        x = torch.zeros(2, 3, 32, 32)  # raw 0 is far from normalised 0 (= the padding) at the border
    else:
        if not CIFAR_TEST.is_file():
            pytest.skip("../shared/data (CIFAR-10 subset) not present")
        images = np.load(CIFAR_TEST)
        key = next(k for k in images.files if images[k].ndim >= 2 and images[k].dtype == np.uint8)
        x = torch.from_numpy(images[key][:4].reshape(4, 3, 32, 32).astype(np.float32) / 255.0)
    expected = _first_conv_input(model, x)
    nir_model = load_nir(to_nir_graph(model))
    with torch.no_grad():
        got = nir_model.layers["features_0"](nir_model.layers["normalize"](x))
        # The tempting shortcut: fold (x - m) / s into the conv weights and bias.
        weight, bias = fold_conv_bn(model.features[0][0], model.features[0][1])
        m = torch.tensor(CIFAR_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
        s = torch.tensor(CIFAR_STD, dtype=torch.float64).view(1, 3, 1, 1)
        folded_bias = bias - (weight * m / s).sum((1, 2, 3))
        naive = F.conv2d(x.double(), weight / s, folded_bias, padding=1).float()
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)
    border = _border_mask(32)
    naive_error = (naive - expected).abs()
    assert float(naive_error[..., ~border].max()) < 1e-4  # the shortcut is right inside the image ...
    assert float(naive_error[..., border].max()) > 0.05  # ... and wrong at the border, where padding acts


def _assert_same_graph(a: nir.NIRGraph, b: nir.NIRGraph) -> None:
    assert list(a.nodes) == list(b.nodes) and sorted(a.edges) == sorted(b.edges)
    for name, node in a.nodes.items():
        other = b.nodes[name]
        assert type(node) is type(other)
        for key, value in node.to_dict().items():
            if isinstance(value, np.ndarray):
                assert np.array_equal(value, np.asarray(other.to_dict()[key])), (name, key)
    assert {k: v for k, v in a.metadata.items()} == {k: v for k, v in b.metadata.items()}


@pytest.mark.parametrize("name", ["vgg_small", "wrn_small"])
def test_round_trip_is_identical(name: str, tmp_path: Path) -> None:
    """evrobust -> NIR -> evrobust -> NIR: the same graph bit for bit, and the same logits as the model."""
    model = _model(name)
    first = write_nir(model, tmp_path / "a.nir", {"defense": "sr", "lambda": 0.008})
    imported = load_nir(first)
    assert isinstance(imported, NIRModel) and imported.T == 3
    assert imported.metadata["defense"] == "sr" and imported.metadata["lambda"] == 0.008
    second = write_nir(imported, tmp_path / "b.nir")
    _assert_same_graph(nir.read(str(first)), nir.read(str(second)))
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected, got = model(x), imported(x)
    trace = imported.trace(x)
    # BatchNorm folding rounds differently from conv-then-BN, so a potential within float32 rounding of the
    # threshold may fire on one side only; away from that, the spikes -- and hence the logits, a Linear of
    # spikes with the model's own weights -- are identical.
    differ = (got != expected).any(1)
    near_tie = trace["sample_margin"] < 1e-5
    assert not bool((differ & ~near_tie).any())
    assert int((~near_tie).sum()) >= 32 and torch.equal(got[~near_tie], expected[~near_tie])
    assert torch.equal(trace["logits"], got)


def test_imported_model_runs_frames_and_attacks() -> None:
    """A NIRModel takes [N, T, C, H, W] frames and gives input gradients (attacks run on it)."""
    model = _model("vgg_small", in_channels=2, mean=None, std=None)
    imported = load_nir(to_nir_graph(model))
    x = torch.rand(4, 5, 2, 8, 8, requires_grad=True)
    logits = imported(x)
    assert logits.shape == (4, 10)
    logits.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


def _tie_graph() -> nir.NIRGraph:
    """Input [1, 2, 2] -> x/2 (1x1 conv) -> IF(theta=1) -> Flatten -> sum (Affine) -> Output."""
    nodes = {
        "input": nir.Input(input_type={"input": np.array([1, 2, 2])}),
        "halve": nir.Conv2d(
            input_shape=(2, 2),
            weight=np.full((1, 1, 1, 1), 0.5, np.float32),
            stride=1,
            padding=0,
            dilation=1,
            groups=1,
            bias=np.zeros(1, np.float32),
        ),
        "lif": nir.IF(r=np.ones((1, 2, 2), np.float32), v_threshold=np.ones((1, 2, 2), np.float32)),
        "flat": nir.Flatten(input_type={"input": np.array([1, 2, 2])}, start_dim=0),
        "sum": nir.Affine(weight=np.ones((1, 4), np.float32), bias=np.zeros(1, np.float32)),
        "output": nir.Output(output_type={"output": np.array([1])}),
    }
    edges = [("input", "halve"), ("halve", "lif"), ("lif", "flat"), ("flat", "sum"), ("sum", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"time_steps": 4})


def test_exact_tie_fires_in_evrobust_and_not_in_norse() -> None:
    """Input 1 gives currents 0.5 per step: v = 0.5, 1.0 (a tie), ... evrobust fires at step 1, norse at 2."""
    graph = _tie_graph()
    ours = load_nir(graph).trace(torch.ones(1, 1, 2, 2))
    theirs = run_norse(norse_from_nir(graph), torch.ones(1, 1, 2, 2), T=4)
    # evrobust: v = 0.5, 1.0 -> spike, reset, 0.5, 1.0 -> spike: spikes 0 1 0 1 in each of the 4 neurons.
    assert ours["spikes"]["lif"][:, 0].flatten(1)[:, 0].tolist() == [0, 1, 0, 1]
    # norse: v = 0.5, 1.0, 1.5 -> spike, reset, 0.5: spikes 0 0 1 0.
    assert theirs["spikes"]["lif"][:, 0].flatten(1)[:, 0].tolist() == [0, 0, 1, 0]
    assert ours["ties"]["lif"] == 8 and bool(ours["tie_samples"][0])
    assert ours["logits"].tolist() == [[2.0]] and theirs["logits"].tolist() == [[1.0]]
    # Input 0.9 never ties (0.45, 0.9, 1.35 -> spike, 0.45): both fire at step 2 only.
    ours = load_nir(graph).trace(torch.full((1, 1, 2, 2), 0.9))
    theirs = run_norse(norse_from_nir(graph), torch.full((1, 1, 2, 2), 0.9), T=4)
    assert ours["ties"]["lif"] == 0 and torch.equal(ours["spikes"]["lif"], theirs["spikes"]["lif"])


@pytest.mark.parametrize(
    ("name", "overrides", "needle"),
    [
        ("vgg_small", {"pool": "max"}, "max pooling"),
        ("wrn_small", {"pool": "max"}, "max pooling"),
        ("vgg_small", {"readout": "last"}, "readout='last'"),
        ("vgg_small", {"readout": "max"}, "readout='max'"),
        ("wrn_small", {"readout": "membrane"}, "readout='membrane'"),
        ("vgg_small", {"readout": "rate"}, "readout='rate'"),
        ("vgg_small", {"tau": 0.75}, "tau=0.75"),
    ],
)
def test_unsupported_settings_are_refused_by_name(
    name: str, overrides: dict, needle: str, tmp_path: Path
) -> None:
    model = _model(name, **overrides)
    with pytest.raises(UserInputError, match="cannot export") as info:
        write_nir(model, tmp_path / "x.nir")
    assert needle in str(info.value) and "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_all_problems_are_named_in_one_line_and_foreign_modules_refused() -> None:
    model = _model("vgg_small", pool="max", readout="last", tau=0.5)
    with pytest.raises(UserInputError) as info:
        to_nir_graph(model)
    message = str(info.value)
    assert "max pooling" in message and "readout='last'" in message and "tau=0.5" in message
    with pytest.raises(UserInputError, match="only evrobust VGG and WRN"):
        to_nir_graph(nn.Linear(3, 2))


def test_write_refuses_a_missing_directory_and_reads_refuse_damaged_files(tmp_path: Path) -> None:
    model = _model("vgg_small")
    with pytest.raises(UserInputError, match="does not exist"):
        write_nir(model, tmp_path / "missing" / "model.nir")
    assert not (tmp_path / "missing").exists()
    path = write_nir(model, tmp_path / "model.nir")
    damaged = tmp_path / "damaged.nir"
    damaged.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(UserInputError, match="cannot read NIR file"):
        load_nir(damaged)
    with pytest.raises(UserInputError, match="not found"):
        load_nir(tmp_path / "absent.nir")
