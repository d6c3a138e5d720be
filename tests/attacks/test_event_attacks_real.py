"""Smoke of the event-attack path on real DVS128 recordings (``../shared/data/dvs/aedat2_dvs128``).

The two recordings (a foam object and an MNIST-DVS digit) are binned into 4 count frames at the full 128x128
sensor, exactly as a store without ``--size`` holds them, and attacked through the count front end of a small
spiking network. No trained model exists for them, so the classifier's own clean predictions are the labels:
the point is that every event attack returns valid event frames on recordings as dense and irregular as real
ones, not a robustness number.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from evrobust.attacks.event_base import CountModel, EventFrontEnd, events_changed, retiming_stats
from evrobust.attacks.event_registry import create_event_attack
from evrobust.models import create_model
from evrobust.preprocess.aedat2 import read_aedat2
from evrobust.preprocess.frames import events_to_frames

RECORDINGS = ("dvs/aedat2_dvs128/foam90.aedat", "dvs/aedat2_dvs128/mnist_0_scale04_0001.aedat")


@pytest.fixture(scope="module")
def real_counts(real_data: Path) -> torch.Tensor:
    """``[2, 4, 2, 128, 128]`` float counts of the two recordings."""
    frames = [events_to_frames(read_aedat2(real_data / name), 4, (128, 128)) for name in RECORDINGS]
    return torch.stack([torch.from_numpy(f.astype("float32")) for f in frames])


def _model() -> CountModel:
    torch.manual_seed(0)
    net = create_model("vgg_small", num_classes=10, in_channels=2, input_size=128, T=4, theta=0.2)
    return CountModel(net.eval(), EventFrontEnd(4.0))


def test_real_recordings_hold_many_events(real_counts: torch.Tensor) -> None:
    totals = real_counts.flatten(1).sum(1)
    assert bool((totals > 1000).all())  # real recordings, not a handful of events
    assert float(real_counts.max()) > 1  # cells with several events: counts, not binary frames


@pytest.mark.parametrize(("name", "budget"), [("sda", {"max_events": 60}), ("retime-inf", {"max_shift": 1}),
                                              ("retime-zero", {"max_shift": 1, "max_moved": 40})])
def test_event_attacks_return_valid_frames_on_real_recordings(
    real_counts: torch.Tensor, name: str, budget: dict[str, int]
) -> None:
    model = _model()
    with torch.no_grad():
        y = model(real_counts).argmax(1)
    attack = create_event_attack(name, seed=0, spec="pdsg", **budget)
    adv = attack(model, real_counts, y)
    assert adv.shape == real_counts.shape
    assert bool((adv >= 0).all()) and torch.equal(adv, adv.round())
    if name == "sda":
        assert int(events_changed(real_counts, adv).max()) <= 60
    else:
        assert torch.equal(adv.sum(1), real_counts.sum(1))  # every pixel keeps its events
        stats = retiming_stats(real_counts, adv)
        assert int(stats.max_shift.max()) <= 1
        if name == "retime-zero":
            assert int(stats.moved.max()) <= 40
