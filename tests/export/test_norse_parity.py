"""evrobust -> NIR -> norse: the same spikes and logits as evrobust on real and random inputs, away from
ties."""

from __future__ import annotations

import warnings

import nir
import numpy as np
import pytest
import torch
from torch import nn

from evrobust.export import NIRModel, load_nir, norse_from_nir, norse_parity, run_norse, to_nir_graph
from evrobust.export.nir_model import stateless_module
from evrobust.models import create_model

from .conftest import TRAIN_SAMPLES


def assert_spike_parity(imported: NIRModel, x: torch.Tensor) -> dict:
    """Spikes of every IF node and the logits agree bit for bit on every sample without an exact tie."""
    ours = imported.trace(x)
    theirs = run_norse(norse_from_nir(imported.to_nir_graph()), x, T=imported.T)
    clear = ~ours["tie_samples"]
    assert set(theirs["spikes"]) == set(ours["spikes"])
    for name, spikes in ours["spikes"].items():
        assert torch.equal(spikes[:, clear], theirs["spikes"][name][:, clear]), name
    assert torch.equal(ours["output"][:, clear], theirs["output"][:, clear])
    assert torch.equal(ours["logits"][clear], theirs["logits"][clear])
    return ours


def assert_matches_original(model: nn.Module, imported: NIRModel, x: torch.Tensor, trace: dict) -> None:
    """The imported graph gives the model's logits except where BN folding's rounding meets a threshold."""
    with torch.no_grad():
        expected = model(x)
    differ = (trace["logits"] != expected).any(1)
    assert not bool((differ & (trace["sample_margin"] >= 1e-5)).any())


@pytest.mark.parametrize(("fixture", "least_accuracy"), [("trained_vgg", 0.8), ("trained_wrn", 0.4)])
def test_trained_digits_models_match_norse_on_real_and_random_inputs(
    fixture: str,
    least_accuracy: float,
    request: pytest.FixtureRequest,
    digits: tuple[torch.Tensor, torch.Tensor],
) -> None:
    model = request.getfixturevalue(fixture)
    x, y = digits[0][TRAIN_SAMPLES:], digits[1][TRAIN_SAMPLES:]
    imported = load_nir(to_nir_graph(model))
    trace = assert_spike_parity(imported, x)
    accuracy = float((trace["logits"].argmax(1) == y).float().mean())
    # Trained (chance is 0.1; measured 0.92 and 0.65 after 80 and 60 steps), not a silent model.
    assert accuracy > least_accuracy, accuracy
    assert all(float(s.sum()) > 0 for s in trace["spikes"].values())  # every IF layer fires
    assert_matches_original(model, imported, x, trace)
    noise = torch.rand(64, *x.shape[1:], generator=torch.Generator().manual_seed(0))
    assert_matches_original(model, imported, noise, assert_spike_parity(imported, noise))


def test_frame_model_matches_norse_on_real_dvs_frames(dvs_frames: torch.Tensor) -> None:
    """A frame model (frame t enters at step t) on real MNIST-DVS event frames; theta = 0.5 keeps every layer
    of the untrained model firing on these sparse frames (and checks a threshold other than 1)."""
    torch.manual_seed(0)
    model = create_model(
        "vgg_small",
        10,
        in_channels=2,
        input_size=32,
        T=4,
        width=0.25,
        mean=[0.1, 0.1],
        std=[0.2, 0.2],
        theta=0.5,
    ).eval()
    imported = load_nir(to_nir_graph(model))
    trace = assert_spike_parity(imported, dvs_frames)
    assert trace["output"].shape[0] == 4 and all(float(s.sum()) > 0 for s in trace["spikes"].values())
    assert_matches_original(model, imported, dvs_frames, trace)


def test_parity_summary_counts_ties_and_attributes_every_difference_to_them(
    trained_vgg: nn.Module, digits: tuple[torch.Tensor, torch.Tensor]
) -> None:
    imported = load_nir(to_nir_graph(trained_vgg))
    x = digits[0][TRAIN_SAMPLES:]
    summary = norse_parity(imported, x, batch_size=100)
    assert summary["samples"] == len(x) and summary["mismatch_outside_ties"] == 0
    assert set(summary["ties"]) == {n for n, node in imported.graph.nodes.items() if isinstance(node, nir.IF)}
    # Put the first IF layer's threshold exactly on a potential it reaches: now ties occur, are counted, and
    # explain every difference between evrobust and norse. evrobust computes the current with the T steps
    # merged into one convolution batch (8 x T samples), norse one step at a time (8 samples); the CPU
    # kernel's rounding depends on the batch size and the thread count, so the two may differ in the last
    # bit. The threshold is therefore taken among the currents on which both agree bit for bit: both then
    # sit exactly on it at step 0 (the potential starts at 0), evrobust fires and norse does not.
    with torch.no_grad():
        _, currents = imported._run(x[:8], keep=True)
        ours = currents["features_1"][0]
        per_step = imported.layers["features_0"](imported.layers["normalize"](x[:8]))
    agree = (ours == per_step) & (ours > 0)
    assert bool(agree.any())
    theta = float(ours[agree].max())
    graph = imported.to_nir_graph()
    node = graph.nodes["features_1"]
    graph.nodes["features_1"] = nir.IF(
        r=node.r, v_threshold=np.full_like(node.v_threshold, theta), v_reset=node.v_reset
    )
    tied = norse_parity(load_nir(graph), x[:8])
    assert tied["ties"]["features_1"] >= 1 and tied["tie_samples"] >= 1
    assert tied["spike_mismatches"]["features_1"] >= 1 and tied["mismatch_outside_ties"] == 0


def test_what_norse_1_1_0_lacks_and_why_the_bridge_wires_with_nir_to_torch(trained_wrn: nn.Module) -> None:
    """Facts about norse 1.1.0 / nirtorch 2.6 that the bridge works around (see norse_bridge's docstring)."""
    import nirtorch
    from norse.torch.utils.import_nir import _import_norse_module

    graph = to_nir_graph(trained_wrn)
    by_type = {type(node).__name__: node for node in graph.nodes.values()}
    assert (
        _import_norse_module(by_type["AvgPool2d"]) is None and _import_norse_module(by_type["Scale"]) is None
    )
    assert _import_norse_module(by_type["IF"], dt=1.0).__class__.__name__ == "IAFCell"

    def node_map(node: object) -> nn.Module | None:
        if isinstance(node, nir.AvgPool2d | nir.Scale | nir.Flatten):
            return stateless_module(node, type(node).__name__)
        return _import_norse_module(node, dt=1.0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        legacy = nirtorch.load(graph, node_map)  # what norse.torch.from_nir wires with
    order = [node.name for node in legacy.execution_order]
    # Depth-first order: block 1 reads block 0's skip branch before that branch has run.
    assert order.index("blocks_1_bn1") < order.index("blocks_0_skip")


def test_norse_importer_reads_the_written_file(tmp_path, trained_vgg: nn.Module) -> None:  # noqa: ANN001
    """The file on disk (not only the in-memory graph) runs in norse with identical spikes."""
    from evrobust.export import write_nir

    path = write_nir(trained_vgg, tmp_path / "model.nir")
    graph = nir.read(str(path))
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    ours = load_nir(path).trace(x)
    theirs = run_norse(norse_from_nir(graph), x, T=2)
    clear = ~ours["tie_samples"]
    assert torch.equal(ours["logits"][clear], theirs["logits"][clear])
    assert np.isclose(graph.metadata["time_steps"], 2)
