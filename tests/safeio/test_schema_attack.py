"""The attack documents' schemas (``attack_result``, ``compare_input``, ``attack_partial``), the attack's
content-aware resume, and the bounded attack budgets.

* A real ``attack-whitebox.json`` of a tiny run (with the ``reliable`` cascade, its certificate and
  indicators) validates; hand-made wrong documents are refused in one line naming the field.
* A seeded fuzz mutates that real file (wrong types, huge numbers and strings, deep nesting, truncation,
  invalid UTF-8) and drives the real consumers: ``evrobust compare`` exits 0 or 2 with one error line, and
  ``render_markdown`` after :func:`~evrobust.safeio.read_json` renders or raises a UserInputError, nothing
  else. A FIFO or a symbolic link given to ``compare`` is exit 2 without blocking.
* A resume against a changed checkpoint (the run's, or the black-box source's) or a changed data store, or
  from a partial file whose batch count its flags do not cover, starts over with one warning; an unchanged
  rerun still resumes to bit-identical results.
* ``--steps``, ``--queries``, ``--max-doublings``, ``--limit``, ``--batch-size`` and ``--seed`` above their
  documented bounds are one error line, exit 2, and nothing written.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import json
import logging
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import evrobust.pipelines.attack.core as attack_core
from evrobust.attacks import SAPGD, Cascade, Square, Stage
from evrobust.attacks.registry import ATTACKS
from evrobust.checkpoint import load_checkpoint, save_checkpoint
from evrobust.errors import UserInputError
from evrobust.pipelines.attack.pipeline import render_markdown, result_paths, run_attack
from evrobust.pipelines.cli.app import app
from evrobust.pipelines.common.options import (
    MAX_BATCH_SIZE,
    MAX_DOUBLINGS,
    MAX_LIMIT,
    MAX_QUERIES,
    MAX_SEED,
    MAX_STEPS,
)
from evrobust.pipelines.train.config import TrainConfig
from evrobust.pipelines.train.pipeline import train
from evrobust.safeio import read_json
from evrobust.safeio.schemas import validate

runner = CliRunner()
TALLY: collections.Counter[str] = collections.Counter()


@pytest.fixture(scope="module", autouse=True)
def _crash_logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Crash and after-error logs of the CLI go to a temporary folder, not the user's cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EVROBUST_LOG_DIR", str(tmp_path_factory.mktemp("logs")))
        yield


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The app's callback points the root logger at the runner's (then closed) stderr; undo that."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _small_cascade(eps: float, seed: int) -> Cascade:
    """The ``reliable`` cascade at tiny budgets: one gradient and one gradient-free stage (certificate)."""
    return Cascade([Stage("sapgd", SAPGD(eps, steps=3, seed=seed), (None,)),
                    Stage("square", Square(eps, n_queries=20, seed=seed), (None,))])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run on the embedded digits (vgg_small, T=2, two short epochs)."""
    root = tmp_path_factory.mktemp("schema-attack")
    config = TrainConfig(
        data="digits", data_dir=str(root / "data"), model="vgg_small", T=2, epochs=2, batch_size=32,
        lr=0.1, limit_train=640, device="cpu", out=str(root / "run"), seed=0, progress=False,
    )
    return train(config)


@pytest.fixture(scope="module")
def real_json(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``attack-whitebox.json`` of the tiny run: the paper ensemble, masking checks, and the ``reliable``
    cascade with its certificate, indicators and overestimate (the largest layout evrobust writes)."""
    run = tmp_path_factory.mktemp("reliable") / "run"
    shutil.copytree(trained, run)
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(ATTACKS, "reliable", dataclasses.replace(ATTACKS["reliable"], factory=_small_cascade))
        run_attack(run, attacks="clean,fgsm,reliable", ensemble="paper", limit=8, batch_size=4, device="cpu",
                   max_doublings=1)
    return result_paths(run, "whitebox")[0]


def _document(path: Path) -> dict[str, Any]:
    return json.loads(path.read_bytes())


def _refused(document: Any, kind: str = "attack_result") -> str:
    with pytest.raises(UserInputError) as info:
        validate(document, kind, "doc.json")
    message = str(info.value)
    assert "\n" not in message and message.startswith("doc.json: field ")
    return message


# ----------------------------------------------------------------------------------------- the schemas


def test_a_real_attack_json_validates_as_every_attack_kind(real_json: Path) -> None:
    document = read_json(real_json, "attack_result")
    assert read_json(real_json, "compare_input") == document
    assert {"reliable", "cascade", "overestimate", "checks", "zero_gradients"} <= set(document)
    assert document["reliable"]["indicators"] and document["reliable"]["doublings"]
    assert render_markdown(document) == real_json.with_suffix(".md").read_text()


def _set(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(document)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


def _entry(document: dict[str, Any], name: str) -> int:
    return next(i for i, a in enumerate(document["attacks"]) if a["name"] == name)


WRONG: dict[str, tuple[Any, Any, str]] = {
    # case: (path, value, what the error line names)
    "samples as text": (("samples",), "8", "field samples"),
    "no samples": (("samples",), 0, "field samples"),
    "too many samples": (("samples",), 10**7 + 1, "field samples"),
    "accuracy above 1": (("attacks", "fgsm", "accuracy"), 1.5, "accuracy"),
    "accuracy NaN": (("attacks", "fgsm", "accuracy"), float("nan"), "accuracy"),
    "accuracy as text": (("attacks", "fgsm", "accuracy"), "0.5", "accuracy"),
    "interval reversed": (("attacks", "fgsm", "ci95"), [0.9, 0.1], "ci95"),
    "interval of one": (("attacks", "fgsm", "ci95"), [0.1], "ci95"),
    "robust not the flags'": (("attacks", "fgsm", "robust"), 0, "robust"),
    "n not the samples": (("attacks", "fgsm", "n"), 9, "states n = 9"),
    "robust above n": (("attacks", "fgsm", "robust"), 9, "robust"),
    "label of 1000 chars": (("attacks", "fgsm", "label"), "L" * 1000, "label"),
    "in_table as text": (("attacks", "fgsm", "in_table"), "yes", "in_table"),
    "members null": (("attacks", "fgsm", "members"), None, "members"),
    "eps 8": (("eps",), 8, "field eps"),
    "mode greybox": (("mode",), "greybox", "field mode"),
    "format other": (("format",), "evrobust-analysis", "field format"),
    "check passed as text": (("checks", 0, "passed"), "true", "checks.0.passed"),
    "flag string short": (("flags", "fgsm", "correct"), "1010", "covers 4 samples, not 8"),
    "flag string letters": (("flags", "fgsm", "correct"), "1x101010", "characters other than"),
    "member flags short": (("flags", "fgsm", "members", "triangle:1"), "1", "members['triangle:1']"),
    "no flags": (("flags",), {}, "field flags"),
    "reliable n": (("reliable", "n"), 7, "reliable.n"),
    "indicator passed as text": (("reliable", "indicators", 0, "passed"), "yes", "passed"),
    "fidelity lengths": (("reliable", "gradient_fidelity", "zero_share"), [0.0], "zero_share"),
    "broken_by short": (("cascade", "broken_by"), ["clean"], "broken_by"),
    "doubling without threshold": (("reliable", "threshold"), None, "threshold"),
    "overestimate beyond 1": (("overestimate", "difference"), 2.0, "overestimate.difference"),
    "test set of other size": (("test_set", "samples"), 9, "test_set.samples"),
    "merged key without flags": (("merged_keys",), ["nope"], "merged_keys"),
}


@pytest.mark.parametrize("case", list(WRONG))
def test_wrong_documents_are_refused_naming_the_field(real_json: Path, case: str) -> None:
    document = _document(real_json)
    path, value, needle = WRONG[case]
    if path[0] == "attacks" and isinstance(path[1], str):
        path = ("attacks", _entry(document, path[1]), *path[2:])
    message = _refused(_set(document, path, value))
    assert needle in message, message
    assert _refused(_set(document, path, value), "compare_input")


def test_the_minimal_compare_layout_and_its_refusals() -> None:
    minimal = {"format": "evrobust-attack", "samples": 3, "attacks": [{"name": "mine"}],
               "flags": {"mine": {"correct": "10-"}}}
    validate(minimal, "compare_input", "doc.json")  # a user's own attack: nothing else is required
    assert "field (document)" in _refused([minimal], "compare_input")
    assert "attacks.0.name" in _refused({**minimal, "attacks": [{}]}, "compare_input")
    assert "field flags" in _refused({**minimal, "flags": None}, "compare_input")


def _partial(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, Any]]:
    """A run copy killed during its second batch: (run, its partial document)."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    _kill_during_batch(monkeypatch, run)
    return run, _document(result_paths(run, "whitebox")[2])


def test_a_real_partial_file_validates_and_wrong_counts_are_refused(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, state = _partial(trained, tmp_path, monkeypatch)
    validate(state, "attack_partial", "doc.json")
    assert state["batches_done"] == 1 and len(state["flags"]["fgsm"]["correct"]) == 8
    # more batches claimed than the flags cover: the tables would count samples never attacked
    assert "covers 8 samples, not 16" in _refused({**state, "batches_done": 2}, "attack_partial")
    assert "make only 3 batches" in _refused({**state, "batches_done": 4}, "attack_partial")
    fewer = _set(state, ("flags", "fgsm", "correct"), "1")
    assert "covers 1 samples, not 8" in _refused(fewer, "attack_partial")
    missing = copy.deepcopy(state)
    del missing["flags"]["fgsm"]
    assert "are missing" in _refused(missing, "attack_partial")
    early = {**state, "certificate": {"doubling": 1, "batches_done": 0, "doublings": [], "broke": 0,
                                      "finished": False}}
    assert "certificate progress after only 1 of 3" in _refused(early, "attack_partial")
    assert "plateau" in _refused({**state, "plateau": {"sapgd": [5, 3]}}, "attack_partial")
    no_batches = _set(state, ("fingerprint", "batch_size"), 0)
    assert "fingerprint.batch_size" in _refused(no_batches, "attack_partial")


# ----------------------------------------------------------------------------------------- fuzz

FUZZ = settings(
    max_examples=60,
    deadline=30000,  # a hang is what this catches; single calls take seconds on a loaded 2-core machine
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
_DEEP = "\x00deep\x00"  # replaced in the text by nesting deeper than the reader's limit
BAD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([10**400, -(10**400), 1e308, -1e308, float("inf"), float("-inf"), float("nan")]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["1" * 7, "1" * 9, "10x-1010", "", "x" * 5000, "y" * (2 * 1024 * 1024), _DEEP]),
    st.lists(st.integers(min_value=-5, max_value=5), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON value (the root excluded), depth first."""
    out: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        out.append((*prefix, key))
        out += _paths(item, (*prefix, key))
    return out


def _mutated(document: dict[str, Any], paths: list[tuple[Any, ...]], which: int, op: str, value: Any,
             cut: int, depth: int) -> bytes:
    """``document`` with one value replaced or deleted, then serialised, maybe truncated or made invalid."""
    doc = copy.deepcopy(document)
    path = paths[which % len(paths)]
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if op == "delete":
        del parent[path[-1]]
    elif op == "replace":
        parent[path[-1]] = value
    text = json.dumps(doc, allow_nan=True).replace(json.dumps(_DEEP), "[" * depth + "]" * depth)
    data = text.encode()
    if op == "truncate":
        data = data[: cut % max(1, len(data))]
    elif op == "utf8":
        at = cut % max(1, len(data))
        data = data[:at] + b"\xff\xfe\xc3" + data[at:]
    return data


def _one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("warning:")]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0] == lines[-1], stderr[-2000:]
    return errors[0]


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(which=st.integers(min_value=0, max_value=10**6), op=st.sampled_from(["replace", "delete", "truncate",
       "utf8"]), value=BAD_VALUES, cut=st.integers(min_value=0, max_value=10**7),
       depth=st.sampled_from([65, 1000, 100_000]))
def test_fuzzed_attack_json_drives_compare_and_render(
    real_json: Path, fuzz_dir: Path, which: int, op: str, value: Any, cut: int, depth: int
) -> None:
    original = _document(real_json)
    path = fuzz_dir / "mutated.json"
    path.write_bytes(_mutated(original, _paths(original), which, op, value, cut, depth))
    TALLY["inputs"] += 1
    # evrobust compare: the mutated file against the untouched one
    result = runner.invoke(app, ["compare", str(path), str(real_json)])
    assert result.exit_code in (0, 2), (result.exit_code, result.stderr[-2000:])
    if result.exit_code == 2:
        _one_error_line(result.stderr)
        TALLY["compare exit 2"] += 1
    else:
        TALLY["compare exit 0"] += 1
    # the attack's own markdown, from the document as the reader hands it over
    try:
        document = read_json(path, "attack_result")
    except UserInputError as exc:
        assert "\n" not in str(exc)
        TALLY["refused"] += 1
        return
    assert isinstance(render_markdown(document), str)
    TALLY["rendered"] += 1


def test_fuzz_tally_is_reported() -> None:
    """Runs after the fuzz (file order): the outcome counts, for docs/reliability.md (``pytest -s``)."""
    print(f"\nattack JSON fuzz outcomes: {dict(TALLY)}")
    assert TALLY["inputs"] == 0 or TALLY["refused"] + TALLY["rendered"] == TALLY["inputs"]


@contextlib.contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    """Fail (instead of blocking the suite) if the block takes longer than ``seconds``."""
    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"blocked for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_a_fifo_and_a_link_given_to_compare_are_refused_without_blocking(
    real_json: Path, tmp_path: Path
) -> None:
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    link = tmp_path / "link.json"
    link.symlink_to(real_json)
    for bad, word in ((fifo, "FIFO"), (link, "symbolic link")):
        for args in (["compare", str(bad), str(real_json)], ["compare", str(real_json), str(bad)]):
            with _deadline(30):
                result = runner.invoke(app, args)
            assert result.exit_code == 2, (args, result.exit_code, result.stderr, result.exception)
            line = _one_error_line(result.stderr)
            assert word in line and str(bad) in line, line


# ----------------------------------------------------------------------------------------- resume

RESUME: dict[str, Any] = {"attacks": "clean,fgsm", "ensemble": "single", "limit": 24, "batch_size": 8,
                          "device": "cpu", "checks": False}


def _kill_during_batch(monkeypatch: pytest.MonkeyPatch, run: Path, **options: Any) -> None:
    """Run the attack and interrupt it in its second batch (two jobs per batch): one batch is saved."""
    real = attack_core.evaluate_batch
    calls = {"n": 0}

    def dying(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    with monkeypatch.context() as mp:
        mp.setattr(attack_core, "evaluate_batch", dying)
        with pytest.raises(KeyboardInterrupt):
            run_attack(run, **{**RESUME, **options})
    mode = options.get("mode", "whitebox")
    assert _document(result_paths(run, mode)[2])["batches_done"] == 1


def strip_seconds(result: dict[str, Any]) -> dict[str, Any]:
    """The result without wall-clock timings (the only fields allowed to differ between reruns)."""
    copy_ = json.loads(json.dumps(result))
    for a in copy_["attacks"]:
        a.pop("seconds")
    if isinstance(copy_.get("reliable"), dict):
        copy_["reliable"].pop("seconds", None)
    return copy_


def _perturb_weights(checkpoint: Path) -> None:
    """Save the same checkpoint with one weight changed (still a valid checkpoint of the same model)."""
    tensors, metadata = load_checkpoint(checkpoint)
    name = next(k for k, t in tensors.items() if k.startswith("model.") and t.is_floating_point())
    tensors[name] = tensors[name] + 1e-3
    save_checkpoint(checkpoint, tensors, metadata)


def _messages(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records)


def test_damaged_partial_starts_over_and_an_unchanged_rerun_resumes_bit_identically(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    json_path, _, partial = result_paths(run, "whitebox")
    reference = run_attack(run, **RESUME)
    json_path.unlink()
    caplog.set_level(logging.INFO)
    # a partial file claiming two batches while its flags cover one: refused, the attack starts over
    _kill_during_batch(monkeypatch, run)
    state = _document(partial)
    partial.write_text(json.dumps({**state, "batches_done": 2}))
    caplog.clear()
    assert strip_seconds(run_attack(run, **RESUME)) == strip_seconds(reference)
    log = _messages(caplog)
    assert "ignoring the partial results" in log and "starting over" in log and "resuming" not in log
    assert "covers 8 samples, not 16" in log
    # killed again and rerun unchanged: it resumes from the saved batch and ends bit-identical
    json_path.unlink()
    _kill_during_batch(monkeypatch, run)
    caplog.clear()
    assert strip_seconds(run_attack(run, **RESUME)) == strip_seconds(reference)
    log = _messages(caplog)
    assert "resuming attack-whitebox.partial.json from batch 1" in log and "starting over" not in log
    assert "batch 1/3" not in log and not partial.exists()


def test_a_changed_checkpoint_or_store_starts_over_saying_why(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    caplog.set_level(logging.INFO)
    _kill_during_batch(monkeypatch, run)
    _perturb_weights(run / "checkpoint-best.safetensors")
    caplog.clear()
    assert run_attack(run, **RESUME)["samples"] == 24
    log = _messages(caplog)
    assert "the checkpoint changed since the partial results" in log and "starting over" in log
    assert "resuming" not in log and "batch 1/3" in log  # every batch attacked again

    store = Path(json.loads((run / "config.json").read_text())["data"]["store"])
    _kill_during_batch(monkeypatch, run)
    stray = store / "notes.txt"  # any byte of the store's tree counts; the split still reads
    stray.write_text("changed")
    try:
        caplog.clear()
        run_attack(run, **RESUME)
    finally:
        stray.unlink()
    log = _messages(caplog)
    assert "the data store changed since the partial results" in log and "resuming" not in log


def test_a_changed_source_checkpoint_restarts_a_blackbox_attack(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    run, source = tmp_path / "run", tmp_path / "source"
    shutil.copytree(trained, run)
    shutil.copytree(trained, source)  # the same weights in another run: enough to craft on
    options = {"mode": "blackbox", "source": source}
    caplog.set_level(logging.INFO)
    _kill_during_batch(monkeypatch, run, **options)
    fingerprint = _document(result_paths(run, "blackbox")[2])["fingerprint"]
    assert fingerprint["source_checkpoint_sha256"] == fingerprint["checkpoint_sha256"]
    assert len(fingerprint["store_sha256"]) == 64
    _perturb_weights(source / "checkpoint-best.safetensors")
    caplog.clear()
    run_attack(run, **RESUME, **options)
    log = _messages(caplog)
    assert "the source run's checkpoint changed since the partial results" in log and "resuming" not in log


# ----------------------------------------------------------------------------------------- budgets

ABOVE = [
    ("--steps", MAX_STEPS + 1),
    ("--queries", MAX_QUERIES + 1),
    ("--max-doublings", MAX_DOUBLINGS + 1),
    ("--limit", MAX_LIMIT + 1),
    ("--batch-size", MAX_BATCH_SIZE + 1),
    ("--seed", MAX_SEED + 1),
    ("--seed", -1),
]


def _tree(path: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(path)), p.stat().st_size) for p in path.rglob("*"))


@pytest.mark.parametrize(("option", "value"), ABOVE, ids=[f"{o}={v}" for o, v in ABOVE])
def test_cli_budget_above_its_bound_is_one_line_and_writes_nothing(
    trained: Path, option: str, value: int
) -> None:
    before = _tree(trained)
    args = ["attack", "--run", str(trained), "--suite", "reliable", "--device", "cpu", option, str(value)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert option in _one_error_line(result.stderr)
    assert _tree(trained) == before


@pytest.mark.parametrize(
    ("option", "value"),
    [("steps", MAX_STEPS + 1), ("queries", MAX_QUERIES + 1), ("max_doublings", MAX_DOUBLINGS + 1),
     ("limit", MAX_LIMIT + 1), ("batch_size", MAX_BATCH_SIZE + 1), ("seed", MAX_SEED + 1), ("seed", -1),
     ("steps", True), ("limit", 2.5), ("batch_size", "8")],
)
def test_run_attack_refuses_a_budget_beyond_its_bound_before_locking(
    trained: Path, option: str, value: Any
) -> None:
    before = _tree(trained)
    flag = "--" + option.replace("_", "-")
    with pytest.raises(UserInputError, match=f"^{flag} must be an integer from"):
        run_attack(trained, suite="reliable", device="cpu", **{option: value})
    assert _tree(trained) == before  # not even the lock file


def test_the_bounds_are_stated_in_the_help_and_agree_with_the_certificate() -> None:
    from evrobust.pipelines.attack.certificate import MAX_DOUBLINGS as CERTIFICATE_MAX

    assert CERTIFICATE_MAX == MAX_DOUBLINGS
    result = runner.invoke(app, ["attack", "--help"], env={"COLUMNS": "300"})
    plain = " ".join(result.output.split())
    for text in (f"{MAX_STEPS:,}", f"{MAX_QUERIES:,}", f"at most {MAX_DOUBLINGS}", f"{MAX_LIMIT:,}",
                 f"{MAX_BATCH_SIZE:,}"):
        assert text in plain, text
