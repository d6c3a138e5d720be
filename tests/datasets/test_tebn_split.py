"""The TEBN split of CIFAR10-DVS on a synthetic raw directory laid out and named as the real one.

spikingjelly's ``CIFAR10DVSTEBNSplit`` (``_move_data``) links, for every class ``cn``, the files
``cifar10_{cn}_{i}`` with ``i in range(100)`` into ``test/`` and ``i in range(100, 1000)`` into ``train/``.
The rule is restated here from that description (spikingjelly's datasets package is not imported).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evrobust.datasets.splits import per_class_split, recording_number, tebn_split
from evrobust.errors import UserInputError
from evrobust.pipelines.preprocess import preprocess_cifar10dvs
from evrobust.preprocess.sources import scan_event_dir

CLASSES = ("airplane", "automobile", "bird")


def _raw(root: Path, classes: tuple[str, ...] = CLASSES, per_class: int = 1000) -> Path:
    for cn in classes:
        (root / cn).mkdir(parents=True)
        for i in range(per_class):
            (root / cn / f"cifar10_{cn}_{i}.aedat").touch()
    return root


def _reference_test_names(classes: tuple[str, ...]) -> set[str]:
    return {f"{cn}/cifar10_{cn}_{i}.aedat" for cn in classes for i in range(100)}


def test_tebn_tests_on_recordings_0_to_99_of_each_class(tmp_path: Path) -> None:
    sources = scan_event_dir(_raw(tmp_path), CLASSES)
    names = [s.path for s in sources]
    labels = [s.label for s in sources]
    split = tebn_split(names, labels)
    test = [names[i] for i in split["test"]]
    assert len(test) == 300
    for c in range(len(CLASSES)):
        assert sum(1 for i in split["test"] if labels[i] == c) == 100
        assert sum(1 for i in split["train"] + split["val"] if labels[i] == c) == 900
    assert set(test) == _reference_test_names(CLASSES)
    assert sorted(split["train"] + split["val"] + split["test"]) == list(range(3000))
    assert not set(split["train"]) & set(split["val"])
    # val is carved out of the train part (10 %), never out of the test recordings.
    assert len(split["val"]) == 270


def test_tebn_differs_from_the_first_nine_tenths_by_name(tmp_path: Path) -> None:
    sources = scan_event_dir(_raw(tmp_path, CLASSES[:1]), CLASSES[:1])
    names = [s.path for s in sources]
    labels = [s.label for s in sources]
    tebn = {recording_number(names[i]) for i in tebn_split(names, labels)["test"]}
    per_class = {recording_number(names[i]) for i in per_class_split(labels)["test"]}
    assert tebn == set(range(100))
    # Sorted as strings the last tenth is the recordings whose number starts with 9: 909, 91, 910, ... 999.
    assert min(per_class) == 91 and len(per_class) == 100
    assert tebn & per_class == set(range(91, 100))


def test_recording_numbers_from_folder_and_zip_sources() -> None:
    assert recording_number("cat/cifar10_cat_17.aedat") == 17
    assert recording_number("cat.zip::cat/cifar10_cat_0.aedat") == 0
    assert recording_number("cat/cifar10_cat.aedat") is None


@pytest.mark.parametrize(
    ("names", "needle"),
    [
        (["a/rec.aedat"], "<anything>_<0..999>"),
        (["a/cifar10_a_1000.aedat"], "<anything>_<0..999>"),
        (["a/x_5.aedat", "a/y_5.aedat"], "appears twice"),
    ],
)
def test_unnumbered_or_ambiguous_files_are_refused(names: list[str], needle: str) -> None:
    with pytest.raises(UserInputError, match=needle):
        tebn_split(names, [0] * len(names))


def test_preprocess_refuses_tebn_as_default_for_unnumbered_files(tmp_path: Path) -> None:
    from evrobust.datasets.specs import get_spec

    classes = get_spec("cifar10dvs").classes
    for cn in classes:
        (tmp_path / "raw" / cn).mkdir(parents=True)
        (tmp_path / "raw" / cn / "recording.aedat").touch()
    with pytest.raises(UserInputError, match="TEBN split needs files named"):
        preprocess_cifar10dvs(tmp_path / "raw", out=tmp_path / "s.zarr", default_split="tebn")
    assert not (tmp_path / "s.zarr").exists()


def test_a_store_built_with_split_tebn_trains_on_recordings_from_100(real_data: Path, tmp_path: Path) -> None:
    """Real events (windows of the MNIST-DVS recording) under CIFAR10-DVS names: per class recording 0 and
    recording 100; the store's default scheme is then TEBN: the 0s are the test set."""
    from evrobust.datasets import split_indices
    from evrobust.datasets.specs import get_spec
    from evrobust.preprocess import store
    from evrobust.preprocess.aedat2 import read_aedat2, write_aedat2

    classes = get_spec("cifar10dvs").classes
    events = read_aedat2(real_data / "dvs" / "aedat2_dvs128" / "mnist_0_scale04_0001.aedat")
    window = events.shape[0] // 20
    for k in range(20):
        cn = classes[k // 2]
        (tmp_path / "raw" / cn).mkdir(parents=True, exist_ok=True)
        part = events[k * window : (k + 1) * window].copy()
        part["t"] -= part["t"][0]
        write_aedat2(tmp_path / "raw" / cn / f"cifar10_{cn}_{100 * (k % 2)}.aedat", part)
    out = tmp_path / "tebn.zarr"
    preprocess_cifar10dvs(tmp_path / "raw", frames=4, size=32, out=out, mode="sync", default_split="tebn")
    attrs = store.read_attrs(out)
    assert attrs["default_split"] == "tebn" and {"random", "per-class", "tebn"} <= set(attrs["splits"])
    names = scan_event_dir(tmp_path / "raw", classes)
    test = split_indices(out, "test").tolist()
    assert [recording_number(names[i].path) for i in test] == [0] * 10
    assert sorted(split_indices(out, "train+val").tolist()) == [i for i in range(20) if i not in test]
