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
