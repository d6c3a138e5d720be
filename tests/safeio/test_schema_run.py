"""The ``run_config`` and ``metrics`` kinds: a run's ``config.json`` and ``metrics.jsonl`` are checked against
their schemas (:mod:`evrobust.safeio.schemas.run`) before any code uses them.

A real run written by a tiny training validates; hand-made wrong documents are refused with one line naming
the field; a seeded fuzz mutates the real files (wrong types, huge numbers and strings, deep nesting,
truncation, invalid UTF-8) and drives the real readers and the consumers that build things from a run's
config, and nothing but a valid result or a UserInputError may come out; links and FIFOs are refused by name
without blocking.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import shutil
import threading
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evrobust.errors import UserInputError
from evrobust.safeio import UnsafeFileError
from evrobust.safeio.schemas import run as schema
from evrobust.safeio.schemas import validate

TALLY: collections.Counter[str] = collections.Counter()
FUZZ = settings(
    max_examples=40,
    deadline=None,  # no timing assertions; a hang is caught by the readers never blocking (FIFO tests below)
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=True,
)


# ----------------------------------------------------------------------------- fixtures and helpers
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run directory written by ``evrobust train`` (one epoch of a tiny VGG on digits)."""
    from evrobust.pipelines.train.config import TrainConfig
    from evrobust.pipelines.train.pipeline import train

    root = tmp_path_factory.mktemp("schema-run")
    config = TrainConfig(data="digits", data_dir=str(root / "data"), model="vgg_small", width=0.25, T=2,
                         epochs=1, batch_size=32, limit_train=64, limit_val=32, device="cpu",
                         out=str(root / "run"), progress=False)  # fmt: skip
    return train(config)


def _copy(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


def _document(run: Path) -> dict[str, Any]:
    return json.loads((run / "config.json").read_text())


def _write(run: Path, document: Any) -> None:
    (run / "config.json").write_text(json.dumps(document))


def _set(document: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set ``document[path[0]][path[1]]... = value`` (creating missing sections)."""
    for key in path[:-1]:
        if not isinstance(document.get(key), dict):
            document[key] = {}
        document = document[key]
    document[path[-1]] = value


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _expect_user_error_or_ok(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a reader; a UserInputError is fine, anything else fails the test (counted either way)."""
    TALLY["inputs"] += 1
    try:
        out = fn(*args, **kwargs)
    except UserInputError:
        TALLY["user_errors"] += 1
        return None
    except BaseException as exc:  # noqa: BLE001 - the point: count and report any other escape
        TALLY["crashes"] += 1
        raise AssertionError(f"{fn.__name__} raised {type(exc).__name__}: {exc}") from exc
    TALLY["accepted"] += 1
    return out


def _one_line(exc: pytest.ExceptionInfo[UserInputError]) -> str:
    text = str(exc.value)
    assert "\n" not in text, text
    return text


def _finishes(fn: Callable[..., Any], *args: Any, wait: float = 60.0) -> BaseException | None:
    """Run ``fn`` in a daemon thread and return what it raised (None if nothing); fail if it is still running
    after ``wait`` seconds: a reader blocked on a FIFO fails the test instead of hanging the suite."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            fn(*args)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(wait)
    assert not worker.is_alive(), f"{getattr(fn, '__name__', fn)} blocked (on a FIFO?)"
    return outcome[0]


# ----------------------------------------------------------------------------- the real documents
def test_a_real_run_validates(tiny_run: Path) -> None:
    from evrobust.pipelines.defaults import read_run_config
    from evrobust.pipelines.train.run_dir import read_config, read_metrics

    document = _document(tiny_run)
    validate(document, "run_config", "config.json")
    assert read_config(tiny_run) == document
    assert read_run_config(tiny_run) == document
    lines = (tiny_run / "metrics.jsonl").read_text().splitlines()
    for line in lines:
        validate(json.loads(line), "metrics", "metrics.jsonl")
    assert read_metrics(tiny_run) == [json.loads(line) for line in lines]


def test_the_schema_never_refuses_what_train_and_stores_accept() -> None:
    """The sanity bounds sit at or above the limits ``evrobust train`` and the stores enforce, so a run that
    evrobust wrote always reads back."""
    from evrobust.pipelines.train import config as train_config
    from evrobust.preprocess import store

    assert schema.MAX_T >= train_config.MAX_T and schema.MAX_T >= store.MAX_FRAMES
    assert schema.MAX_WIDTH >= train_config.LIMITS["width"][1]
    assert schema.MAX_EPOCHS >= train_config.MAX_EPOCHS
    assert schema.MAX_BATCH >= train_config.MAX_BATCH
    assert schema.MAX_STEPS >= train_config.MAX_AT_STEPS
    assert schema.MAX_SIDE >= store.MAX_SIDE


def test_a_minimal_hand_made_run_still_reads(tmp_path: Path) -> None:
    from evrobust.pipelines.train.run_dir import read_config

    document = {"format": "evrobust-run", "model": {"name": "vgg_small", "num_classes": 10}, "data": {},
                "defense": None, "newer_field": {"anything": [1, "two"]}}  # fmt: skip
    _write(tmp_path, document)
    assert read_config(tmp_path) == document


# ----------------------------------------------------------------------------- wrong documents
WRONG: dict[str, tuple[tuple[str, ...], Any, str]] = {
    # name: (where, value, what the line must say)
    "T a word": (("model", "T"), "four", "T must be an integer"),
    "T a float": (("model", "T"), 4.0, "T must be an integer"),
    "T null": (("model", "T"), None, "field model.T"),
    "width NaN": (("model", "width"), float("nan"), "width must be > 0"),
    "width infinite": (("model", "width"), float("inf"), "width must be > 0"),
    "num_classes true": (("model", "num_classes"), True, "field model.num_classes"),
    "in_channels 1e9": (("model", "in_channels"), 10**9, "field model.in_channels"),
    "input_size negative": (("model", "input_size"), -8, "field model.input_size"),
    "mean a word": (("model", "mean"), "dark", "field model.mean"),
    "depth 1e9": (("model", "depth"), 10**9, "field model.depth"),
    "epochs 1e12 (float)": (("train", "epochs"), 1e12, "field train.epochs"),
    "epochs 1e12 (int)": (("identity", "epochs"), 10**12, "field identity.epochs"),
    "epochs null": (("train", "epochs"), None, "field train.epochs"),
    "T of the options 10^6": (("train", "T"), 10**6, "field train.T"),
    "width of the options 1e3": (("identity", "width"), 1000.0, "field identity.width"),
    "seed negative": (("train", "seed"), -1, "field train.seed"),
    "augment a word": (("train", "augment"), "yes", "field train.augment"),
    "model_options a list": (("train", "model_options"), [1, 2], "field train.model_options"),
    "limit a string": (("train", "limit_train"), "64", "field train.limit_train"),
    "lambda a string": (("defense", "lam"), "0.1", "field defense.lam"),
    "penalty null": (("defense", "penalty"), None, "field defense.penalty"),
    "defense a list": (("defense",), [1], "field defense"),
    "identity null": (("identity",), None, "field identity"),
    "split size negative": (("data", "split_sizes", "train"), -1, "field data.split_sizes.train"),
    "classes a number": (("data", "classes"), 10, "field data.classes"),
    "frames 0": (("data", "frames"), 0, "field data.frames"),
    "store with a NUL byte": (("data", "store"), "/data/a\x00b.zarr", "field data.store"),
    "dataset of 100 KB": (("data", "dataset"), "d" * 100_000, "field data.dataset"),
    "format_version a float": (("format_version",), 1.5, "field format_version"),
    "model not an object": (("model",), 5, "entry 'model' is not a JSON object"),
    "data not an object": (("data",), [], "entry 'data' is not a JSON object"),
    "format of another tool": (("format",), "something-else", "is not an evrobust run configuration"),
}


@pytest.mark.parametrize("case", list(WRONG))
def test_a_wrong_config_is_one_line_naming_the_field(tiny_run: Path, tmp_path: Path, case: str) -> None:
    from evrobust.pipelines.train.run_dir import read_config

    where, value, needle = WRONG[case]
    run = _copy(tiny_run, tmp_path / "run")
    document = _document(run)
    _set(document, where, value)
    _write(run, document)
    with pytest.raises(UserInputError) as exc:
        read_config(run)
    line = _one_line(exc)
    assert needle in line and "config.json" in line, line


@pytest.mark.parametrize(
    ("where", "value", "field"),
    [
        (("model", "T"), "four", "model.T"),
        (("model", "T"), 10**9, "model.T"),
        (("model", "width"), float("nan"), "model.width"),
        (("model", "width"), 1e9, "model.width"),
        (("model", "num_classes"), 10**10, "model.num_classes"),
    ],
)
def test_the_schema_alone_names_the_field(
    tiny_run: Path, where: tuple[str, ...], value: Any, field: str
) -> None:
    """Readers that call read_json(path, "run_config") directly (defaults) get the schema's own line."""
    document = _document(tiny_run)
    _set(document, where, value)
    with pytest.raises(UserInputError, match=f"field {field}: "):
        validate(document, "run_config", "config.json")


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda blob: blob[: len(blob) // 2], "is not valid JSON"),
        (lambda blob: blob[:10] + b"\xff\xfe" + blob[12:], "is not valid JSON (not UTF-8"),
        (lambda blob: b"", "is not valid JSON"),
        (lambda blob: json.dumps({"format": "evrobust-run", "model": {"mean": _nested(100)}}).encode(),
         "is not valid JSON (nests deeper than 64 levels)"),
        (lambda blob: ("[" * 100_000 + "]" * 100_000).encode(), "is not valid JSON (nests deeper"),
        (lambda blob: json.dumps({"format": "evrobust-run", "junk": "x" * (2 << 20)}).encode(),
         "over the 1,048,576-byte cap of a run config file"),
    ],
    ids=["truncated", "invalid UTF-8", "empty", "nested 100 deep", "nested 100,000 deep", "2 MB string"],
)  # fmt: skip
def test_a_damaged_config_file_is_one_line(
    tiny_run: Path, tmp_path: Path, damage: Callable[[bytes], bytes], needle: str
) -> None:
    from evrobust.pipelines.defaults import read_run_config
    from evrobust.pipelines.train.run_dir import read_config

    run = _copy(tiny_run, tmp_path / "run")
    (run / "config.json").write_bytes(damage((tiny_run / "config.json").read_bytes()))
    with pytest.raises(UserInputError) as exc:
        read_config(run)
    assert needle in _one_line(exc), str(exc.value)
    assert read_run_config(run) is None  # never a default


def test_no_config_is_still_not_a_run_directory(tmp_path: Path) -> None:
    from evrobust.pipelines.train.run_dir import read_config

    with pytest.raises(UserInputError, match="is not a run directory"):
        read_config(tmp_path)
    (tmp_path / "config.json").mkdir()
    with pytest.raises(UnsafeFileError, match="config.json is a directory, not a regular file"):
        read_config(tmp_path)


# ----------------------------------------------------------------------------- absurd models: no allocation
@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("width", 1e9, "width must be > 0 and <= 16"),  # 1e9-channel layers
        ("num_classes", 10**9, "parameters, more than"),  # a 10^9-logit head: the meta-device count says no
        ("input_size", 1 << 16, "parameters, more than"),  # a classifier sized by a 65,536-pixel side
        ("depth", 10**9, "field model.depth"),  # 10^9 residual blocks, never built, not even on meta
    ],
)
def test_an_absurd_model_is_refused_before_allocation(
    tiny_run: Path, tmp_path: Path, key: str, value: Any, needle: str
) -> None:
    from evrobust.pipelines.attack.inputs import load_evaluated_run

    run = _copy(tiny_run, tmp_path / "run")
    document = _document(run)
    document["model"][key] = value
    _write(run, document)
    tracemalloc.start()
    try:
        with pytest.raises(UserInputError, match=needle):
            load_evaluated_run(run, "best", torch.device("cpu"), "target")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 << 20


# ----------------------------------------------------------------------------- metrics.jsonl
def test_metrics_lines_that_fail_are_skipped_with_a_warning(
    tiny_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from evrobust.pipelines.train.run_dir import read_metrics

    run = _copy(tiny_run, tmp_path / "run")
    good = json.loads((tiny_run / "metrics.jsonl").read_text().splitlines()[0])
    lines = [
        json.dumps(good).encode(),  # 1: kept
        json.dumps({**good, "epoch": 2, "loss": "1.5"}).encode(),  # 2: a number as a string
        json.dumps({**good, "epoch": True}).encode(),  # 3: true is not an epoch
        json.dumps({**good, "epoch": 4, "val_acc": 1e9}).encode(),  # 4: a percentage of 1e9
        json.dumps({**good, "epoch": 5, "seconds": float("nan")}).encode(),  # 5: NaN
        json.dumps(_nested(100)).encode(),  # 6: nested 100 deep
        b"[" * 100_000 + b"]" * 100_000,  # 7: nested 100,000 deep
        json.dumps({"epoch": 8, "note": "x" * (2 << 20)}).encode(),  # 8: a 2 MB string
        # 9: invalid UTF-8 inside a string (latin-1 e-acute)
        json.dumps({**good, "epoch": 9, "note": "caf\xe9"}, ensure_ascii=False).encode("latin-1"),
        b"\xff\xfe" + json.dumps({**good, "epoch": 10}).encode(),  # 10: invalid UTF-8 outside a string
        json.dumps([good]).encode(),  # 11: not an object
        json.dumps({**good, "epoch": 12, "seconds": None}).encode(),  # 12: seconds are never null
        json.dumps({**good, "epoch": 13, "val_grad_l1": None}).encode(),  # 13: kept (a norm may be null)
        json.dumps({**good, "epoch": 14})[:40].encode(),  # 14: torn last line
    ]
    (run / "metrics.jsonl").write_bytes(b"\n".join(lines))
    with caplog.at_level(logging.WARNING):
        records = read_metrics(run)
    assert [r["epoch"] for r in records] == [1, 9, 13]  # 9: its note decodes to a replacement character
    assert records[1]["note"] == "caf\ufffd"
    numbers = [re.match(r"skipping .*?line (\d+) of", r.getMessage()) for r in caplog.records]
    skipped = {int(m.group(1)) for m in numbers if m}
    assert skipped == {2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 14}
    assert any("field loss" in r.getMessage() for r in caplog.records)


def test_a_non_finite_metric_is_written_as_null_and_read_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from evrobust.pipelines.train.run_dir import append_metrics, read_metrics, truncate_metrics

    with caplog.at_level(logging.WARNING):
        append_metrics(tmp_path, {"epoch": 1, "loss": 0.5, "val_grad_l1": float("inf"), "val_grad_l2": 1.0})
        append_metrics(tmp_path, {"epoch": 2, "loss": 0.4, "val_grad_l1": float("nan")})
    assert "val_grad_l1 recorded as null" in caplog.text
    assert "NaN" not in (tmp_path / "metrics.jsonl").read_text()  # strict JSON
    assert read_metrics(tmp_path) == [
        {"epoch": 1, "loss": 0.5, "val_grad_l1": None, "val_grad_l2": 1.0},
        {"epoch": 2, "loss": 0.4, "val_grad_l1": None},
    ]
    truncate_metrics(tmp_path, 1)
    assert [r["epoch"] for r in read_metrics(tmp_path)] == [1]


def test_a_metrics_file_over_its_cap_is_refused(tmp_path: Path) -> None:
    from evrobust.pipelines.train.run_dir import append_metrics, read_metrics

    with (tmp_path / "metrics.jsonl").open("wb") as fh:
        fh.truncate((32 << 20) + 1)  # sparse: no 32 MB written
    with pytest.raises(UnsafeFileError, match="over the 33,554,432-byte cap of a metrics file"):
        read_metrics(tmp_path)
    with pytest.raises(UnsafeFileError, match="over the 33,554,432-byte cap"):
        append_metrics(tmp_path, {"epoch": 1})


# ----------------------------------------------------------------------------- links and FIFOs
def test_links_are_refused_and_never_followed(tiny_run: Path, tmp_path: Path) -> None:
    from evrobust.pipelines.defaults import read_run_config
    from evrobust.pipelines.train.run_dir import append_metrics, read_config, read_metrics, truncate_metrics

    run = _copy(tiny_run, tmp_path / "run")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("config.json", "metrics.jsonl"):
        (run / name).rename(elsewhere / name)
        (run / name).symlink_to(elsewhere / name)  # a link to a perfectly valid file
    before = {p.name: p.read_bytes() for p in elsewhere.iterdir()}
    with pytest.raises(UnsafeFileError, match="config.json is a symbolic link") as exc:
        read_config(run)
    _one_line(exc)
    assert read_run_config(run) is None
    link_line = r"metrics.jsonl is not a regular file \(a symbolic link"
    for reader in (read_metrics, lambda r: append_metrics(r, {"epoch": 2}), lambda r: truncate_metrics(r, 0)):
        with pytest.raises(UnsafeFileError, match=link_line) as exc:
            reader(run)
        _one_line(exc)
    assert {p.name: p.read_bytes() for p in elsewhere.iterdir()} == before  # nothing written through a link
    assert (run / "metrics.jsonl").is_symlink()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifos_are_refused_without_blocking(tiny_run: Path, tmp_path: Path) -> None:
    from evrobust.pipelines.defaults import read_run_config
    from evrobust.pipelines.report.runs import load_run as report_load_run
    from evrobust.pipelines.train.run_dir import append_metrics, read_config, read_metrics

    run = _copy(tiny_run, tmp_path / "run")
    (run / "metrics.jsonl").unlink()
    os.mkfifo(run / "metrics.jsonl")
    for reader in (read_metrics, lambda r: append_metrics(r, {"epoch": 2}), report_load_run):
        raised = _finishes(reader, run)
        assert isinstance(raised, UserInputError), raised
        assert "metrics.jsonl is not a regular file (a FIFO" in str(raised), raised
    (run / "config.json").unlink()
    os.mkfifo(run / "config.json")
    for reader in (read_config, report_load_run):
        raised = _finishes(reader, run)
        assert isinstance(raised, UnsafeFileError) and "config.json is a FIFO" in str(raised), raised
    assert _finishes(read_run_config, run) is None  # returns None: nothing raised, nothing blocked


# ----------------------------------------------------------------------------- fuzz: the real readers
def _paths(value: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path of a JSON document's objects (sections and leaves)."""
    out: list[tuple[str, ...]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            out.append((*prefix, key))
            out += _paths(item, (*prefix, key))
    return out


HUGE = st.sampled_from([10**9 + 1, 10**12, 2**63, 10**4000, -1, 0, 1e300, -1e300, 1e9, 1e-300])
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**13), 10**13), HUGE,
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
    st.sampled_from(["x" * 600, "x" * 5000, "a\x00b", "x" * (2 << 20)]),
    st.lists(st.integers(-3, 10**12), max_size=4),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sampled_from([_nested(30), _nested(100)]),
)  # fmt: skip
FUZZ_MAX_PARAMETERS = 10**7  # the tiny run's model has about 17,000
DAMAGE = {
    "cut": st.integers(0, 4096),
    "flips": st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=4),
}


def _damage(blob: bytes, cut: int, flips: list[tuple[int, int]]) -> bytes:
    """``blob`` cut to ``cut`` bytes (when longer) with some bytes replaced (invalid UTF-8 among them)."""
    data = bytearray(blob[:cut] if cut < len(blob) else blob)
    for pos, val in flips:
        if data:
            data[pos % len(data)] = val
    return bytes(data)


def _drive_run_readers(run: Path) -> None:
    """Every reader of a run's config.json and metrics.jsonl that needs no data store: each must return a
    valid result or raise UserInputError."""
    from evrobust.pipelines.attack.inputs import load_evaluated_run
    from evrobust.pipelines.defaults import read_run_config, source_train_command
    from evrobust.pipelines.report.runs import load_run as report_load_run
    from evrobust.pipelines.train import run_dir
    from evrobust.pipelines.train.run_dir import read_config, read_metrics

    config = _expect_user_error_or_ok(read_config, run)
    if config is not None:  # what read_config returns is what the schema states
        validate(config, "run_config", "returned config")
    records = _expect_user_error_or_ok(read_metrics, run)
    for record in records or []:
        validate(record, "metrics", "returned record")
    report = _expect_user_error_or_ok(report_load_run, run)
    if report is not None:
        assert isinstance(report.dataset, str) and isinstance(report.defense, str)
    # A mutated model that is valid and only large (a 10^6-class head) is built for real by load_run, up to
    # its cap of 2^31 parameters; the fuzz lowers that cap so that no example allocates gigabytes. The real
    # cap is exercised by test_an_absurd_model_is_refused_before_allocation.
    with mock.patch.object(run_dir, "MAX_PARAMETERS", FUZZ_MAX_PARAMETERS):
        loaded = _expect_user_error_or_ok(load_evaluated_run, run, "best", torch.device("cpu"), "target")
    if loaded is not None:
        assert isinstance(loaded[0], torch.nn.Module)
    target = read_run_config(run)
    if target is not None:
        command = _expect_user_error_or_ok(source_train_command, target)
        assert command is None or command.startswith("evrobust train")


@FUZZ
@given(data=st.data(), value=VALUES)
def test_fuzz_config_values(
    tiny_run: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, value: Any
) -> None:
    run = _copy(tiny_run, tmp_path_factory.mktemp("fv") / "run")
    document = _document(run)
    where = data.draw(st.sampled_from(_paths(document)), label="where")
    _set(document, where, value)
    _write(run, document)
    _drive_run_readers(run)


@FUZZ
@given(**DAMAGE, junk=st.binary(max_size=16))
def test_fuzz_config_bytes(
    tiny_run: Path,
    tmp_path_factory: pytest.TempPathFactory,
    cut: int,
    flips: list[tuple[int, int]],
    junk: bytes,
) -> None:
    run = _copy(tiny_run, tmp_path_factory.mktemp("fb") / "run")
    (run / "config.json").write_bytes(_damage((tiny_run / "config.json").read_bytes(), cut, flips) + junk)
    _drive_run_readers(run)


def _metrics_lines(tiny_run: Path) -> list[dict[str, Any]]:
    first = json.loads((tiny_run / "metrics.jsonl").read_text().splitlines()[0])
    return [{**first, "epoch": epoch} for epoch in (1, 2, 3)]


@FUZZ
@given(data=st.data(), value=VALUES, line=st.integers(0, 2), cut=st.integers(0, 2048),
       flips=DAMAGE["flips"])  # fmt: skip
def test_fuzz_metrics(
    tiny_run: Path,
    tmp_path_factory: pytest.TempPathFactory,
    data: st.DataObject,
    value: Any,
    line: int,
    cut: int,
    flips: list[tuple[int, int]],
) -> None:
    from evrobust.pipelines.train.run_dir import read_metrics, truncate_metrics

    run = _copy(tiny_run, tmp_path_factory.mktemp("fm") / "run")
    records = _metrics_lines(tiny_run)
    key = data.draw(st.sampled_from(sorted(records[line])), label="key")
    records[line][key] = value
    blob = "".join(json.dumps(r) + "\n" for r in records).encode()
    (run / "metrics.jsonl").write_bytes(_damage(blob, cut, flips))
    _drive_run_readers(run)
    kept = _expect_user_error_or_ok(read_metrics, run)
    if kept is not None:
        # The lines not touched by the value survive unless the byte damage reached them.
        assert all(isinstance(r["epoch"], int) for r in kept)
        _expect_user_error_or_ok(truncate_metrics, run, 1)
        assert all(r["epoch"] <= 1 for r in read_metrics(run))


def test_zz_fuzz_tally() -> None:
    """Run last in this file: no reader let anything but a UserInputError escape."""
    logging.getLogger(__name__).info("fuzz tally: %s", dict(TALLY))
    assert TALLY["crashes"] == 0


# ----------------------------------------------------------------------------- the other migrated readers
def test_model_options_go_through_the_json_loader() -> None:
    from evrobust.pipelines.cli.train import parse_model_options

    assert parse_model_options(["tau=0.5", "pool=max", "depth=16", "x=[1, 2]", "s=\"a b\""]) == {
        "tau": 0.5, "pool": "max", "depth": 16, "x": [1, 2], "s": "a b"}  # fmt: skip
    for bad, needle in (
        ("tau=NaN", "not finite"),
        ("tau=1e400", "not finite"),
        ('x={"a": [Infinity]}', "not finite"),
        ("x=[1, 2", "--model-opt x is not valid JSON"),
        ("x=" + "[" * 100 + "]" * 100, "nests deeper than 64 levels"),
        ("x=" + "[" * 100_000 + "]" * 100_000, "characters; at most 4,096"),
        ("pool=" + "m" * 5000, "characters; at most 4,096"),
    ):
        with pytest.raises(UserInputError, match=needle):
            parse_model_options([bad])


def test_stale_temporaries_removes_only_the_atomic_writers_files(tmp_path: Path) -> None:
    from evrobust.pipelines.train.checkpoints import remove_stale_temporaries

    run = tmp_path / "run"
    run.mkdir()
    ours = run / ".checkpoint-last.safetensors.4242.deadbeef.tmp"
    ours.write_bytes(b"\0" * 10)
    notes = run / ".notes.tmp"  # a user's file, not the writer's pattern
    notes.write_text("keep")
    target = tmp_path / "precious"
    target.write_text("keep")
    link = run / ".config.json.4243.cafebabe.tmp"  # a link planted under the writer's pattern
    link.symlink_to(target)
    assert remove_stale_temporaries(run) == [ours]
    assert not ours.exists() and notes.read_text() == "keep"
    assert link.is_symlink() and target.read_text() == "keep"
