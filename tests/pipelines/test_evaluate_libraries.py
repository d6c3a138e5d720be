"""``evrobust.evaluate`` on networks built with spikingjelly, snntorch and norse, each trained here for a few
steps on the embedded digits: the reliable suite runs, the surrogate ensemble reaches their neurons, and the
model comes back bit-identical. A neuron no adapter knows gets the gradient-free stages and one line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

import evrobust
from evrobust.datasets import load_split, resolve_data

T = 4
BUDGET = {"steps": 3, "queries": 30, "max_doublings": 1, "limit": 24, "batch_size": 12}


def _spikingjelly() -> nn.Module:
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    class CSNN(nn.Module):
        """Conv -> IF -> pool -> linear, multi-step; the input repeated over T, logits = mean over T."""

        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(
                layer.Conv2d(1, 8, 3, padding=1), neuron.IFNode(surrogate_function=surrogate.ATan()),
                layer.MaxPool2d(2), layer.Flatten(), layer.Linear(8 * 4 * 4, 10),
            )
            functional.set_step_mode(self, "m")

        def forward(self, x: Tensor) -> Tensor:
            return self.net(x.unsqueeze(0).repeat(T, 1, 1, 1, 1)).mean(0)

    return CSNN()


def _snntorch() -> nn.Module:
    import snntorch as snn

    class Net(nn.Module):
        """Linear -> Leaky (hidden state inside the module) -> Linear; logits = mean output over T."""

        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(64, 32), nn.Linear(32, 10)
            self.lif = snn.Leaky(beta=0.9, init_hidden=True)

        def forward(self, x: Tensor) -> Tensor:
            return torch.stack([self.fc2(self.lif(self.fc1(x.flatten(1)))) for _ in range(T)]).mean(0)

    return Net()


def _norse() -> nn.Module:
    import norse.torch as norse

    class Net(nn.Module):
        """Linear -> LIFCell (explicit state) -> Linear; logits = mean output over T."""

        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(64, 32), nn.Linear(32, 10)
            self.lif = norse.LIFCell(norse.LIFParameters(tau_mem_inv=torch.tensor(200.0)))

        def forward(self, x: Tensor) -> Tensor:
            state, out = None, []
            for _ in range(T):
                z, state = self.lif(10 * self.fc1(x.flatten(1)), state)
                out.append(self.fc2(z))
            return torch.stack(out).mean(0)

    return Net()


class MyLIFNeuron(nn.Module):
    """A spiking neuron no adapter knows: a hard threshold with a straight-through backward."""

    def forward(self, x: Tensor) -> Tensor:
        return x + ((x > 0.5).float() - x).detach()


def _unknown() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), MyLIFNeuron(), nn.Linear(32, 10))


BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "spikingjelly": _spikingjelly, "snntorch": _snntorch, "norse": _norse, "unknown": _unknown,
}


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    store = resolve_data("digits", tmp_path_factory.mktemp("data"))
    return (*load_split(store, "train"), *load_split(store, "test"))


def _trained(name: str, x: Tensor, y: Tensor) -> nn.Module:
    """A few Adam steps with the library's own training loop conventions (state reset per batch)."""
    torch.manual_seed(0)
    model = BUILDERS[name]()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for step in range(30):
        rows = slice(64 * step % 1200, 64 * step % 1200 + 64)
        if name == "spikingjelly":
            from spikingjelly.activation_based import functional

            functional.reset_net(model)
        if name == "snntorch":
            from snntorch import utils

            utils.reset(model)
        loss = nn.functional.cross_entropy(model(x[rows]), y[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.mark.parametrize("name", ["spikingjelly", "snntorch", "norse"])
def test_reliable_suite_on_a_library_model(name: str, digits: tuple[Tensor, ...]) -> None:
    x_train, y_train, x_test, y_test = digits
    model = _trained(name, x_train, y_train)
    x, y = x_test[:24], y_test[:24]
    reference = _trained(name, x_train, y_train)  # same seed, same steps: the model as it came
    result = evrobust.evaluate(model, x, y, suite="reliable", ensemble="paper", dataset="digits", **BUDGET)
    document = result.document
    assert result.samples == 24 and document["neurons"].get(name, 0) >= 1
    # the paper ensemble reaches the neurons, less RGA ("rate"), which foreign neurons cannot take
    assert document["members"] == ["triangle:1", "sigmoid:4", "atan:2"]
    assert any(note.startswith("member rate not applied") for note in result.notes)
    # the reliable verdict is the per-sample AND over every attack that ran
    table = [a["name"] for a in document["attacks"] if a["in_table"]]
    alive = torch.stack([result.flags(k) for k in table]).all(0)
    assert torch.equal(result.flags("reliable"), alive)
    assert 0.0 <= result.robust_accuracy <= result.accuracy["clean"]
    low, high = result.intervals["reliable"]
    assert low <= result.robust_accuracy <= high
    assert {c["name"] for c in result.checks} >= {"adv_le_noise", "monotone_eps", "large_eps"}
    names = [i["name"] for i in result.indicators]
    assert "loss_plateau/apgd-ce" in names and any(n.startswith("binarization") for n in names)
    assert any(n.startswith("unbounded_eps/") for n in names)
    stages = [s["name"] for s in document["cascade"]["stages"]]
    assert stages == ["sapgd", "apgd-ce", "apgd-t", "square", "rays"]
    # given back exactly: same outputs (twice in a row: no state left behind), same flags
    with torch.no_grad():
        for _ in range(2):
            if name == "spikingjelly":
                from spikingjelly.activation_based import functional

                functional.reset_net(model)
                functional.reset_net(reference)
            assert torch.equal(model(x), reference(x))
    assert not model.training


def test_unknown_neuron_gets_gradient_free_stages_and_one_line(digits: tuple[Tensor, ...]) -> None:
    x_train, y_train, x_test, y_test = digits
    model = _trained("unknown", x_train, y_train)
    result = evrobust.evaluate(model, x_test[:24], y_test[:24], suite="reliable", **BUDGET)
    assert "surrogate ensemble not applied: unknown neuron type MyLIFNeuron" in result.notes
    assert "surrogate ensemble not applied: unknown neuron type MyLIFNeuron" in result.to_markdown()
    assert result.document["members"] == ["own"]
    stages = {s["name"]: s for s in result.document["cascade"]["stages"]}
    assert {"square", "rays"} <= set(stages) and stages["apgd-ce"]["members"] == ["apgd-ce/own"]


def test_readme_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's "Evaluate your own SNN" examples run as written (at a tiny budget)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Evaluate your own SNN", 1)[1].split("\n## ", 1)[0]
    blocks = [b.split("```", 1)[0] for b in section.split("```python\n")[1:]]
    assert len(blocks) == 3
    real = evrobust.evaluate
    calls: list[dict[str, object]] = []

    def small(*args: object, **kwargs: object) -> object:
        calls.append(kwargs)
        return real(*args, **{**kwargs, **BUDGET, "limit": 12})

    monkeypatch.setattr(evrobust, "evaluate", small, raising=False)
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        assert len([line for line in block.splitlines() if line.strip()]) <= 15
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})  # noqa: S102 - the README's code
    assert len(calls) == 3 and all(c.get("suite") == "reliable" for c in calls)
