"""Registry and factory: names, config round trip, overrides reaching every neuron, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from evrobust.errors import UserInputError
from evrobust.models import (
    SpikingModel,
    create_model,
    describe_models,
    describe_overrides,
    list_models,
    register_model,
)
from evrobust.models.registry import COMMON_OVERRIDES
from evrobust.neurons import GradSpec, IFNeuron, list_backends

from .conftest import if_neurons, small_model


def test_registry_lists_the_paper_models_and_cpu_variants() -> None:
    names = list_models()
    assert names == sorted(names)
    assert {"vgg11", "wrn16", "vgg_small", "wrn_small"} <= set(names)
    descriptions = describe_models()
    assert set(descriptions) == set(names)
    assert all(isinstance(d, str) and d for d in descriptions.values())


@pytest.mark.parametrize("name", list_models())
def test_config_is_json_and_rebuilds_the_same_architecture(name: str) -> None:
    model = small_model(name, in_channels=2, input_size=16, mean=[0.1, 0.2], std=[0.5, 0.25], spec="atan:2")
    text = json.dumps(model.config)  # JSON-serialisable as stored in a run directory
    config = json.loads(text)
    assert config["name"] == name and config["spec"] == "atan:2" and config["mean"] == [0.1, 0.2]
    for key in COMMON_OVERRIDES:
        assert key in config
    rebuilt = create_model(**config)
    assert rebuilt.config == model.config
    assert type(rebuilt) is type(model)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()} == shapes
    # Same weights -> same function, including the normalisation that lives in config, not in the state dict.
    rebuilt.load_state_dict(model.state_dict())
    x = torch.rand(3, 2, 16, 16)
    model.train()
    rebuilt.train()
    torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", list_models())
def test_overrides_reach_every_neuron(name: str) -> None:
    model = small_model(name, input_size=8, tau=0.5, theta=0.75, spec="sigmoid:4")
    neurons = if_neurons(model)
    assert neurons, "a spiking model without IF neurons"
    for n in neurons:
        assert n.spec == GradSpec("surrogate", "sigmoid", 4.0)
        assert n.tau == 0.5 and n.theta == 0.75 and n.backend == "native"
    cfg = model.config
    assert (cfg["tau"], cfg["theta"], cfg["spec"]) == (0.5, 0.75, "sigmoid:4")


def test_defaults_are_the_paper_settings() -> None:
    model = small_model("vgg11")
    cfg = model.config
    assert (cfg["in_channels"], cfg["input_size"], cfg["neuron_backend"]) == (3, 32, "native")
    paper = (1.0, 1.0, "triangle:1", "avg", "mean")
    assert (cfg["tau"], cfg["theta"], cfg["spec"], cfg["pool"], cfg["readout"]) == paper
    assert create_model("vgg11", 10, width=0.125).config["T"] == 8
    assert describe_overrides("wrn16")["depth"] == 16 and describe_overrides("wrn16")["widen"] == 4


def test_extra_overrides_are_part_of_the_config() -> None:
    model = small_model("wrn16", depth=10, input_size=8)
    assert model.config["depth"] == 10 and model.config["widen"] == 4
    assert len(model.blocks) == 3  # (10 - 4) / 6 = 1 block per group


def _message(excinfo: pytest.ExceptionInfo[UserInputError]) -> str:
    text = str(excinfo.value)
    assert "\n" not in text, "user-facing errors are one line"
    return text


def test_unknown_model_names_the_choices() -> None:
    with pytest.raises(UserInputError) as e:
        create_model("resnet50", 10)
    text = _message(e)
    assert "resnet50" in text
    for name in list_models():
        assert name in text


def test_unknown_backend_names_the_choices() -> None:
    with pytest.raises(UserInputError) as e:
        create_model("vgg_small", 10, neuron_backend="loihi")
    text = _message(e)
    assert "loihi" in text
    for name in list_backends():
        assert name in text


def test_unknown_override_names_the_accepted_ones() -> None:
    with pytest.raises(UserInputError) as e:
        create_model("vgg_small", 10, dropout=0.5)
    text = _message(e)
    assert "dropout" in text
    for key in COMMON_OVERRIDES:
        assert key in text
    # depth is a WRN extra, not a VGG one
    with pytest.raises(UserInputError, match="depth"):
        create_model("vgg11", 10, depth=16)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"T": 0}, "T"),
        ({"T": -3}, "T"),
        ({"num_classes": 1}, "num_classes"),
        ({"in_channels": 0}, "in_channels"),
        ({"width": 0.0}, "width"),
        ({"width": float("nan")}, "width"),
        ({"pool": "median"}, "avg, max"),
        ({"readout": "softmax"}, "mean"),
        ({"spec": "relu:1"}, "triangle"),
        ({"mean": [0.5, 0.5], "std": [0.2, 0.2]}, "in_channels=1"),
        ({"mean": [0.5], "std": None}, "both"),
        ({"mean": [0.5], "std": [0.0]}, "std"),
        ({"input_size": 2}, "input_size"),
        ({"tau": 1.5}, "tau"),
        ({"theta": 0.0}, "theta"),
    ],
)
def test_bad_arguments_raise_one_line_user_errors(kwargs: dict, fragment: str) -> None:
    args = {"name": "vgg_small", "num_classes": 10, "in_channels": 1, "input_size": 8, "T": 2, **kwargs}
    with pytest.raises(UserInputError) as e:
        create_model(**args)
    assert fragment in _message(e)


def test_bad_wrn_depth_names_valid_depths() -> None:
    with pytest.raises(UserInputError, match="6n\\+4"):
        create_model("wrn16", 10, depth=12)


def test_register_model_rejects_duplicates_and_extras_without_defaults() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model("vgg11", "again")(lambda args: None)

    def builder(args, depth):  # noqa: ANN001, ANN202 - the point is the missing default
        return None

    with pytest.raises(TypeError, match="default"):
        register_model("__test_no_default", "x")(builder)
    assert "__test_no_default" not in list_models()


def test_T_can_be_changed_after_building_and_config_follows() -> None:
    model = small_model("vgg_small", in_channels=1, input_size=8, T=2)
    assert isinstance(model, SpikingModel) and model.name == "vgg_small"
    seen: list[int] = []
    first = next(m for m in model.modules() if isinstance(m, IFNeuron))
    first.register_forward_hook(lambda m, i, o: seen.append(o.shape[0]))
    model.T = 5
    model(torch.rand(2, 1, 8, 8))
    assert seen == [5] and model.config["T"] == 5
    assert create_model(**model.config).T == 5
    with pytest.raises(UserInputError, match="T"):
        model.T = 0


def test_numpy_numbers_are_accepted_and_config_stays_json() -> None:
    # A dataset's DataInfo / store attrs may hand over numpy scalars and arrays.
    model = create_model(
        "wrn16",
        np.int64(10),
        in_channels=np.int64(2),
        T=np.int32(3),
        width=np.float32(0.25),
        input_size=np.int64(8),
        mean=np.array([0.5, 0.25]),
        std=np.float32(0.5),  # one number: the same std in every channel
        depth=np.int64(10),
        tau=np.float32(1.0),
    )
    config = json.loads(json.dumps(model.config))
    assert config["num_classes"] == 10 and config["T"] == 3 and config["depth"] == 10
    assert config["mean"] == [0.5, 0.25] and config["std"] == [0.5, 0.5]
    assert all(type(config[k]) is int for k in ("num_classes", "in_channels", "T", "input_size", "depth"))
    with pytest.raises(UserInputError, match="depth"):
        create_model("wrn16", 10, depth=16.5)
