"""The zarr store schema: creation, resume checks, statistics, finalize, verify (real MNIST-DVS events)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import zarr

from evrobust.errors import UserInputError
from evrobust.preprocess import store, store_stats, store_verify
from evrobust.preprocess.aedat2 import read_aedat2, write_aedat2
from evrobust.preprocess.build import write_event_store
from evrobust.preprocess.convert import FrameParams, events_to_sample
from evrobust.preprocess.frames import events_to_frames
from evrobust.preprocess.resize import area_weights
from evrobust.preprocess.sources import scan_event_dir
from evrobust.preprocess.splits import per_class_split

MNIST_DVS = "dvs/aedat2_dvs128/mnist_0_scale04_0001.aedat"  # under the real_data fixture's folder
CLASSES = ("airplane", "automobile", "bird")


def make_raw_dir(data: Path, root: Path, per_class: int = 2, classes: tuple[str, ...] = CLASSES) -> Path:
    """A CIFAR10-DVS-layout dir whose files are distinct windows of the real MNIST-DVS recording."""
    events = read_aedat2(data / MNIST_DVS)
    n_files = per_class * len(classes)
    window = events.shape[0] // n_files
    k = 0
    for c in classes:
        (root / c).mkdir(parents=True)
        for j in range(per_class):
            part = events[k * window : (k + 1) * window].copy()
            part["t"] -= part["t"][0]
            write_aedat2(root / c / f"cifar10_{c}_{j}.aedat", part)
            k += 1
    return root


def build(raw: Path, out: Path, size: int | None = 32, **kw: object) -> Path:
    sources = scan_event_dir(raw, CLASSES)
    labels = [s.label for s in sources]
    params = FrameParams(4, "number", size, (128, 128), "spikingjelly")
    write_event_store(
        out,
        dataset="test-dvs",
        raw_dir=raw,
        sources=sources,
        classes=CLASSES,
        params=params,
        splits={"per-class": per_class_split(labels, 1, 2)},
        default_split="per-class",
        split_rule="test",
        **kw,  # type: ignore[arg-type]
    )
    return out


@pytest.fixture(scope="module")
def raw_dir(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_raw_dir(real_data, tmp_path_factory.mktemp("raw") / "raw")


@pytest.fixture(scope="module")
def built(raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(raw_dir, tmp_path_factory.mktemp("store") / "s.zarr", mode="sync")


def test_store_holds_the_frames_of_each_file(raw_dir: Path, built: Path) -> None:
    attrs = store.read_attrs(built)
    frames = zarr.open_array(store=str(built), path="frames", mode="r")
    assert (
        frames.shape == (6, 4, 2, 32, 32) and frames.dtype == np.uint16 and frames.chunks == (1, 4, 2, 32, 32)
    )
    # 128 -> 32 is an integer factor: the area resize is the 4x4 box sum, so one stored unit is one event.
    assert attrs["count_unit"] == 1
    for i, rel in enumerate(attrs["sources"]):
        ev = read_aedat2(raw_dir / rel, orientation="spikingjelly")
        full = events_to_frames(ev, 4, sensor_size=(128, 128), split_by="number")
        box = full.reshape(4, 2, 32, 4, 32, 4).sum(axis=(3, 5))
        np.testing.assert_array_equal(frames[i], box)
        assert int(frames[i].astype(np.int64).sum()) == ev.shape[0]
    labels = zarr.open_array(store=str(built), path="labels", mode="r")[:]
    np.testing.assert_array_equal(labels, [0, 0, 1, 1, 2, 2])
    assert store_verify.verify_store(built, raw_dir=raw_dir) == []


def test_attrs_describe_the_store(raw_dir: Path, built: Path) -> None:
    attrs = store.read_attrs(built)
    assert attrs["format"] == "evrobust-store" and attrs["format_version"] == store.FORMAT_VERSION
    assert attrs["kind"] == "events" and attrs["frames"] == 4 and attrs["split_by"] == "number"
    assert attrs["sensor"] == [128, 128] and attrs["resize"] == 32 and attrs["orientation"] == "spikingjelly"
    assert attrs["classes"] == list(CLASSES) and attrs["complete"] is True and attrs["skipped"] == []
    assert attrs["splits"]["per-class"]["test"] == [1, 3, 5]
    for rel, digest in attrs["source_sha256"].items():
        assert digest == store_verify.sha256_file(raw_dir / rel)


def test_scale_and_mean_std_match_a_direct_numpy_computation(built: Path) -> None:
    attrs = store.read_attrs(built)
    frames = zarr.open_array(store=str(built), path="frames", mode="r")
    train = attrs["splits"]["per-class"]["train"]
    data = np.stack([frames[i] for i in train]).astype(np.float64)
    nonzero = data[data > 0]
    # "higher" percentile = the smallest value with at least 99% of the non-zero values at or below it.
    assert attrs["scale"] == float(np.percentile(nonzero, 99, method="higher"))
    x = np.clip(data / attrs["scale"], 0, 1)
    for c in range(2):
        assert attrs["mean"][c] == pytest.approx(x[:, :, c].mean(), abs=1e-7)
        assert attrs["std"][c] == pytest.approx(x[:, :, c].std(), abs=1e-7)


def test_auto_scale_by_hand() -> None:
    hist = np.zeros((2, 10), dtype=np.int64)
    hist[0, 0] = 1000  # zeros are ignored
    hist[0, 1] = 98
    hist[1, 5] = 1
    hist[1, 9] = 1
    # 100 non-zero values: 98 ones, one 5, one 9 -> the 99th is 5.
    assert store_stats.auto_scale(hist) == 5.0
    assert store_stats.auto_scale(hist, 100.0) == 9.0
    assert store_stats.auto_scale(np.zeros((2, 4), dtype=np.int64)) == 1.0


def test_stats_from_histogram_by_hand() -> None:
    hist = np.array([[2, 0, 2]])  # values 0, 0, 2, 2 with scale 4 -> 0, 0, .5, .5
    mean, std = store_stats.stats_from_histogram(hist, 4.0)
    assert mean == [0.25] and std == [0.25]
    mean, std = store_stats.stats_from_histogram(hist, 1.0)  # clipped: 0, 0, 1, 1
    assert mean == [0.5] and std == [0.5]


def test_area_resize_count_unit_is_exact(raw_dir: Path) -> None:
    params = FrameParams(4, "number", 48, (128, 128), "spikingjelly")
    assert params.count_unit() == 9  # shares of 1/3 per axis
    ev = read_aedat2(raw_dir / "bird" / "cifar10_bird_0.aedat", orientation="spikingjelly")
    sample = events_to_sample(ev, params)
    full = events_to_frames(ev, 4, sensor_size=(128, 128)).astype(np.float64)
    w = area_weights(128, 48)
    ref = np.einsum("ai,tcij,bj->tcab", w, full, w) * 9
    np.testing.assert_array_equal(sample, np.rint(ref))
    assert int(sample.astype(np.int64).sum()) == 9 * ev.shape[0]


def test_reopening_with_other_options_is_refused(raw_dir: Path, built: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.zarr"
    import shutil

    shutil.copytree(built, copy)
    with pytest.raises(UserInputError, match="differs in: sample_shape, resize, count_unit"):
        build(raw_dir, copy, size=48, mode="sync")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("x")
    with pytest.raises(UserInputError, match="not an evrobust store"):
        build(raw_dir, tmp_path / "junk", mode="sync")


def test_rerun_of_a_complete_store_changes_nothing(raw_dir: Path, built: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "again.zarr"
    shutil.copytree(built, copy)
    before = {
        p.relative_to(copy): (p.read_bytes(), p.stat().st_mtime_ns) for p in copy.rglob("*") if p.is_file()
    }
    build(raw_dir, copy, mode="sync")
    after = {
        p.relative_to(copy): (p.read_bytes(), p.stat().st_mtime_ns) for p in copy.rglob("*") if p.is_file()
    }
    assert before == after


def test_verify_finds_problems(raw_dir: Path, built: Path, tmp_path: Path) -> None:
    import shutil

    bad = tmp_path / "bad.zarr"
    shutil.copytree(built, bad)
    # A corrupt chunk, a label out of range, a cleared done flag and a changed raw file.
    (bad / "frames" / "c.2.0.0.0.0").write_bytes(b"garbage")
    labels = zarr.open_array(store=str(bad), path="labels", mode="r+")
    labels[4] = 7
    (bad / "done" / "c.5").unlink()
    raw_copy = tmp_path / "raw"
    shutil.copytree(raw_dir, raw_copy)
    with open(raw_copy / "airplane" / "cifar10_airplane_1.aedat", "ab") as fh:
        fh.write(b"\0" * 8)
    problems = store_verify.verify_store(bad, raw_dir=raw_copy)
    text = "\n".join(problems)
    assert "sample 2: chunk unreadable" in text
    assert "1 labels outside [0, 3), first at index 4" in text
    assert "1 samples not written (first index 5)" in text
    assert "airplane/cifar10_airplane_1.aedat: sha256 differs" in text
    assert store_verify.verify_store(tmp_path / "nothing") != []


def test_half_written_sample_is_never_marked_done(
    raw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "crash.zarr"
    real_write = store._write_chunk
    calls = {"n": 0}

    def crashing(path: Path, name: str, index: int, value: np.ndarray) -> None:
        # Crash when the third sample goes to set its done flag: its chunk is written, its flag is not.
        if name == "done":
            calls["n"] += 1
            if calls["n"] == 3:
                raise RuntimeError("power cut")
        real_write(path, name, index, value)

    monkeypatch.setattr(store, "_write_chunk", crashing)
    with pytest.raises(RuntimeError, match="power cut"):
        build(raw_dir, out, mode="sync", files_per_task=1)
    monkeypatch.undo()
    flags = store.done_flags(out)
    np.testing.assert_array_equal(flags, [1, 1, 0, 0, 0, 0])
    (out / "frames" / ".c.3.0.0.0.0.999.1.tmp").write_bytes(b"half")  # as if a writer was killed mid-write
    assert (out / "frames" / "c.2.0.0.0.0").exists()  # written, but not flagged
    assert any("not written" in p for p in store_verify.verify_store(out))
    assert json.loads((out / "zarr.json").read_text())["attributes"]["complete"] is False
    build(raw_dir, out, mode="sync")  # the rerun completes it and drops the stale temporary file
    assert store_verify.verify_store(out, raw_dir=raw_dir) == []
    assert not list((out / "frames").glob(".*"))


def test_direct_chunk_writes_are_what_zarr_writes(tmp_path: Path) -> None:
    """The fast path writes the same chunk bytes and keys that zarr itself writes for the same values."""
    rng = np.random.default_rng(0)
    sample = (rng.poisson(0.7, (3, 2, 6, 6)) * 9).astype(np.uint16)
    digest = rng.integers(0, 256, 32, dtype=np.uint8)
    kw = dict(
        dataset="x",
        kind="events",
        sample_shape=(3, 2, 6, 6),
        labels=np.array([0, 1]),
        classes=["a", "b"],
        splits={"s": {"train": [0], "val": [], "test": [1]}},
        default_split="s",
        split_rule="",
        sources=["a.aedat", "b.aedat"],
    )
    fast, slow = tmp_path / "fast.zarr", tmp_path / "slow.zarr"
    store.create_store(fast, **kw)
    store.create_store(slow, **kw)
    store.write_sample(fast, 1, sample, digest.tobytes())
    zarr.open_array(store=str(slow), path="frames", mode="r+")[1] = sample
    zarr.open_array(store=str(slow), path="source_sha256", mode="r+")[1] = digest
    zarr.open_array(store=str(slow), path="done", mode="r+")[1] = store.WRITTEN
    files = {p.relative_to(slow) for p in slow.rglob("*") if p.is_file()}
    assert Path("frames/c.1.0.0.0.0") in files and Path("done/c.1") in files
    assert files == {p.relative_to(fast) for p in fast.rglob("*") if p.is_file()}
    for rel in files:
        assert (fast / rel).read_bytes() == (slow / rel).read_bytes(), rel
    np.testing.assert_array_equal(zarr.open_array(store=str(fast), path="frames", mode="r")[1], sample)


def test_finalize_refuses_pending_samples(raw_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.zarr"
    store.create_store(
        out,
        dataset="x",
        kind="images",
        sample_shape=(1, 2, 2),
        labels=np.array([0, 1]),
        classes=["a", "b"],
        splits={"s": {"train": [0], "val": [], "test": [1]}},
        default_split="s",
        split_rule="",
        sources=[],
    )
    with pytest.raises(UserInputError, match="2 samples are not written"):
        store_stats.finalize_store(out)
    store.write_block(out, 0, np.array([[[[0, 255], [255, 0]]], [[[1, 2], [3, 4]]]], dtype=np.uint8))
    final = store_stats.finalize_store(out)
    assert final["scale"] == 255.0 and final["mean"] == [0.5] and final["std"] == [0.5]
    assert store_verify.verify_store(out) == []
    assert math.isclose(final["mean"][0], 0.5)


def test_package_reexports_every_public_name() -> None:
    import evrobust.preprocess as pre

    for name in pre.__all__:
        assert getattr(pre, name) is not None
    assert pre.EVENT_DTYPE.names == ("t", "x", "y", "p")
    assert pre.verify_store is store_verify.verify_store
    with pytest.raises(AttributeError):
        pre.no_such_name  # noqa: B018


def test_preprocess_never_imports_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, evrobust.preprocess as p\n"
        "for n in p.__all__: getattr(p, n)\n"
        "import evrobust.preprocess.build, evrobust.preprocess.embedded, evrobust.preprocess.parallel\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_aedat4_files_convert(real_data: Path, tmp_path: Path) -> None:
    """A real AEDAT 4.0 recording (320x240 DAVIS) goes through the same task: every event lands in a frame."""
    from evrobust.preprocess.aedat4 import read_aedat4
    from evrobust.preprocess.convert import convert_event_file

    src = real_data / "dvs" / "aedat4" / "sample.aedat4"
    params = FrameParams(3, "time", None, (320, 240), "raw")
    out = tmp_path / "a4.zarr"
    store.create_store(
        out,
        dataset="x",
        kind="events",
        sample_shape=params.sample_shape(),
        labels=np.array([0]),
        classes=["a"],
        splits={"s": {"train": [0], "val": [], "test": []}},
        default_split="s",
        split_rule="",
        sources=["sample.aedat4"],
    )
    result = convert_event_file(str(out), 0, str(src), params)
    events = read_aedat4(src)
    assert result.status == "written" and result.n_events == events.shape[0] == 111954
    sample = zarr.open_array(store=str(out), path="frames", mode="r")[0]
    np.testing.assert_array_equal(
        sample, events_to_frames(events, 3, sensor_size=(320, 240), split_by="time")
    )
    store_stats.finalize_store(out)
    assert store_verify.verify_store(out, raw_dir=src.parent) == []
    # On a 128x128 sensor the same file is reported as unreadable, not raised.
    bad = convert_event_file(str(out), 0, str(src), FrameParams(3, "time", None, (128, 128), "raw"))
    assert bad.status == "error" and "outside" in bad.message


def test_a_crash_inside_create_store_is_recovered(tmp_path: Path) -> None:
    kw = dict(
        dataset="x",
        kind="images",
        sample_shape=(1, 2, 2),
        labels=np.array([0, 1]),
        classes=["a", "b"],
        splits={"s": {"train": [0], "val": [], "test": [1]}},
        default_split="s",
        split_rule="",
        sources=[],
    )
    out = tmp_path / "c.zarr"
    assert store.create_store(out, **kw) is True
    # As if the process died before the attributes were written: arrays, no format attribute.
    meta = json.loads((out / "zarr.json").read_text())
    meta["attributes"] = {}
    (out / "zarr.json").write_text(json.dumps(meta))
    assert store.create_store(out, **kw) is True  # created afresh, not refused
    assert store.create_store(out, **kw) is False  # and now resumable
    store.write_block(out, 0, np.zeros((2, 1, 2, 2), np.uint8))
    meta = json.loads((out / "zarr.json").read_text())
    meta["attributes"] = {}
    (out / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(UserInputError, match="not an evrobust store"):  # samples exist: never wiped
        store.create_store(out, **kw)


def test_worker_histograms_give_the_same_stats_as_reading_back(built: Path) -> None:
    frames = zarr.open_array(store=str(built), path="frames", mode="r")
    idx = np.arange(frames.shape[0])
    known = {int(i): store_stats.sample_histogram(frames[int(i)], "events") for i in idx[::2]}
    h = known[0]
    assert h.shape[0] == 3 and (h[2] > 0).all()
    assert int(h[2].sum()) == frames[0].size  # every pixel value counted once
    np.testing.assert_array_equal(
        store_stats._histograms(built, idx, "events", known), store_stats._histograms(built, idx, "events")
    )
