"""``evrobust attack --threat events|retiming`` end to end on a digits-dvs run (20x20 sensor, no resize)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from evrobust.attacks.event_base import CountModel, EventFrontEnd, retiming_stats
from evrobust.errors import UserInputError
from evrobust.pipelines.attack.events import event_inputs, run_event_attack
from evrobust.pipelines.train.config import TrainConfig
from evrobust.pipelines.train.pipeline import train
from evrobust.pipelines.train.run_dir import load_run
from evrobust.safeio import read_json

COMMON: dict[str, Any] = {"limit": 12, "batch_size": 6, "device": "cpu", "seed": 0}


@pytest.fixture(scope="module")
def events_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("attack-events")
    config = TrainConfig(
        data="digits-dvs", data_dir=str(root / "data"), model="vgg_small", epochs=1, batch_size=32,
        lr=0.1, limit_train=320, device="cpu", out=str(root / "run"), seed=0, progress=False,
    )
    return train(config)


def _without_seconds(result: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(result))
    for entry in out["attacks"]:
        entry.pop("seconds", None)
    return out


def test_events_threat_records_valid_event_attacks(events_run: Path) -> None:
    result = run_event_attack(events_run, threat="events", max_events=40, **COMMON)
    assert result["threat"] == "events" and result["samples"] == 12
    doc = read_json(events_run / "attack-events.json", "attack_result")  # the schema accepts it
    assert doc["budgets"] == {"sda": result["attacks"][1]["budgets"]}
    clean, sda = result["attacks"]
    assert sda["name"] == "sda" and sda["budgets"]["max_events"] == 40
    assert sda["accuracy"] <= clean["accuracy"]
    flags_clean = result["flags"]["clean"]["correct"]
    flags_sda = result["flags"]["sda"]["correct"]
    for ok, robust, changed in zip(flags_clean, flags_sda, sda["events_changed"], strict=True):
        if ok == "1":
            assert changed is not None and 0 <= changed <= 40
        else:  # wrong on the clean counts: not attacked, not robust
            assert changed is None and robust == "0"
    # the example is a real fooling change of a clean-correct sample, within budget
    example = result["example"]
    if example is not None:
        total = sum(abs(c[-1]) for c in example["changes"])
        assert total == sda["events_changed"][example["sample"]] <= 40
    md = (events_run / "attack-events.md").read_text()
    assert "| SDA |" in md and "events changed" in md


def test_retiming_threat_keeps_every_pixel_total(events_run: Path) -> None:
    result = run_event_attack(events_run, threat="retiming", max_shift=1, max_moved=10, **COMMON)
    names = [a["name"] for a in result["attacks"]]
    assert names == ["clean", "retime-inf", "retime-zero"]
    by = {a["name"]: a for a in result["attacks"]}
    assert all(s is None or s <= 1 for s in by["retime-inf"]["max_shift"])
    # digits-dvs: the shift in microseconds too (frames of the 1 s loop last about 250 ms each)
    for bins, us in zip(by["retime-inf"]["max_shift"], by["retime-inf"]["max_shift_us"], strict=True):
        assert (bins is None) == (us is None)
        assert bins is None or (us == 0) == (bins == 0) and us <= 1_000_000
    assert all(m is None or m <= 10 for m in by["retime-zero"]["events_changed"])
    # replay one attack on the stored counts and check validity on each returned sample
    from evrobust.attacks.event_registry import create_event_attack

    model, config = load_run(events_run, which="best", device=torch.device("cpu"))
    inputs = event_inputs(Path(config["data"]["store"]), 6)
    counts, labels, attrs = inputs.counts, inputs.labels, inputs.attrs
    cm = CountModel(model, EventFrontEnd(float(attrs["scale"])))
    attack = create_event_attack("retime-inf", seed=0, spec="pdsg", max_shift=1)
    clean = torch.from_numpy(counts.astype(np.float32))
    adv = attack(cm, clean, torch.from_numpy(labels))
    assert torch.equal(adv.sum(1), clean.sum(1))  # every pixel's and polarity's total is kept
    assert int(retiming_stats(clean, adv).max_shift.max()) <= 1


def test_killed_and_resumed_event_attack_ends_with_identical_flags(events_run: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from evrobust.pipelines.attack import events as events_module

    run = tmp_path / "run"
    shutil.copytree(events_run, run)
    whole = run_event_attack(run, threat="events", max_events=30, **COMMON)
    (run / "attack-events.json").unlink()
    original = events_module._attack_batch
    calls = {"n": 0}

    def dies_in_second_batch(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(events_module, "_attack_batch", dies_in_second_batch)
    with pytest.raises(KeyboardInterrupt):
        run_event_attack(run, threat="events", max_events=30, **COMMON)
    assert (run / "attack-events.partial.json").exists()
    monkeypatch.setattr(events_module, "_attack_batch", original)
    resumed = run_event_attack(run, threat="events", max_events=30, **COMMON)
    assert _without_seconds(resumed) | {"run": None} == _without_seconds(whole) | {"run": None}


def test_static_images_and_resized_stores_are_refused(tmp_path: Path) -> None:
    from evrobust.pipelines.preprocess import preprocess_cifar10dvs
    from evrobust.preprocess.embedded import build_digits
    from evrobust.preprocess.emulator import make_raw_cifar10dvs_dir

    digits = tmp_path / "digits.zarr"
    build_digits(digits)
    with pytest.raises(UserInputError, match="static images"):
        event_inputs(digits, 4)
    images = np.random.default_rng(0).integers(0, 256, size=(10, 8, 8), dtype=np.uint8)
    raw = tmp_path / "raw"
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    make_raw_cifar10dvs_dir(images, list(range(10)), classes, raw, n_steps=4)
    store = tmp_path / "resized.zarr"
    preprocess_cifar10dvs(raw, frames=2, size=16, out=store, mode="sync")
    with pytest.raises(UserInputError, match="no full-resolution counts"):
        event_inputs(store, 4)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"threat": "events", "max_events": -1}, "--max-events must be an integer"),
        ({"threat": "retiming", "max_shift": -2}, "--max-shift must be an integer"),
        ({"threat": "events", "attacks": "retime-inf"}, "unknown attack 'retime-inf' for --threat events"),
        ({"threat": "sideways"}, "unknown event threat"),
    ],
)
def test_bad_event_options_are_one_line(events_run: Path, options: dict[str, Any], match: str) -> None:
    with pytest.raises(UserInputError, match=match):
        run_event_attack(events_run, **{**COMMON, **options})


def test_cli_threat_events_prints_the_table(events_run: Path, tmp_path: Path) -> None:
    import shutil

    from typer.testing import CliRunner

    from evrobust.pipelines.cli.app import app

    run = tmp_path / "run"
    shutil.copytree(events_run, run)
    args = ["attack", "--run", str(run), "--threat", "events", "--max-events", "25", "--limit", "6",
            "--batch-size", "6", "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "| SDA | max_events 25 |" in result.output and "attack-events.json" in result.output
    defaults = next(line for line in result.output.splitlines() if line.startswith("defaults:"))
    assert "--spec pdsg" in defaults and "--suite" not in defaults and "--eps" not in defaults
    assert read_json(run / "attack-events.json", "attack_result")["threat"] == "events"


def test_digits_dvs_bin_times_rebuild_the_stored_frames(events_run: Path) -> None:
    """The emulator rebuilds each sample's events bit for bit: binned again, they equal the stored frames; the
    frames' first/last event times are ordered and lie within the 1 s loop."""
    from evrobust.datasets.stores import split_indices
    from evrobust.preprocess.embedded import DIGITS_DVS_EMULATOR, DIGITS_DVS_FRAMES, digits_dvs_bin_times
    from evrobust.preprocess.emulator import emulate_events
    from evrobust.preprocess.frames import events_to_frames
    from evrobust.preprocess.sources import read_digits

    _, config = load_run(events_run, which="best", device=torch.device("cpu"))
    store = Path(config["data"]["store"])
    counts = event_inputs(store, 3).counts
    indices = split_indices(store, "test")[:3]
    images = read_digits().images
    for row, i in enumerate(indices):
        events = emulate_events(images[int(i)], **DIGITS_DVS_EMULATOR)
        frames = events_to_frames(events, DIGITS_DVS_FRAMES, (20, 20))
        np.testing.assert_array_equal(frames, counts[row])
    times = digits_dvs_bin_times(indices)
    assert times.shape == (3, DIGITS_DVS_FRAMES, 2)
    assert (times[..., 0] <= times[..., 1]).all() and (np.diff(times[..., 0], axis=1) >= 0).all()
    assert times.min() >= 0 and times.max() <= 1_000_000


def test_resized_emulated_store_rebuilds_its_full_resolution_counts(
    real_data: Path, cifar10_layout: Callable[..., Path], tmp_path: Path
) -> None:
    """A cifar10dvs-emu store resized to 16x16: the counts are rebuilt at 128x128 from the CIFAR-10 files it
    was made from, and the area-resize front end gives back the dataset's input exactly; other CIFAR-10 files
    are refused in one line."""
    import pickle
    import shutil

    from evrobust.datasets import open_split
    from evrobust.pipelines.attack.events import _check_front_end
    from evrobust.pipelines.preprocess import preprocess_cifar10dvs_emu

    folder = cifar10_layout(tmp_path / "raw", per_batch=2, n_test=3)
    test = np.load(real_data / "cifar10" / "cifar10_test_first1017.npz")
    store = tmp_path / "emu.zarr"
    preprocess_cifar10dvs_emu(folder, frames=3, size=16, out=store, limit=2, settings={"n_loops": 1},
                              mode="sync")
    inputs = event_inputs(store, 2, raw=folder)
    assert inputs.counts.shape == (2, 3, 2, 128, 128) and inputs.weights is not None
    assert int(inputs.counts.sum()) > 1000  # whole emulated recordings, at the sensor's resolution
    front = EventFrontEnd(float(inputs.attrs["scale"]), int(inputs.attrs["count_unit"]), inputs.weights)
    _check_front_end(front, inputs.counts, open_split(store, "test"), 2)  # raises unless bit-exact
    other = tmp_path / "other" / "cifar-10-batches-py"
    shutil.copytree(folder, other)
    (other / "test_batch").write_bytes(pickle.dumps(
        {b"labels": test["labels"][3:6].tolist(), b"data": test["data"][3:6]}, protocol=2))
    with pytest.raises(UserInputError, match="not the CIFAR-10 file"):
        event_inputs(store, 2, raw=other)
