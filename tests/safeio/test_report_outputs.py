"""What ``evrobust report`` owns, and what its inputs cannot make it do.

* Outputs: the report removes only files an earlier report's manifest lists; a foreign ``plot-x.png`` stays, a
  manifest naming ``../x``, an absolute path or a link is never followed; two reports into one directory do
  not race (the second exits 2 naming the first).
* Inputs, fuzzed: real analysis, metrics and results files of a tiny reproduction, mutated (wrong types, huge
  numbers and strings, deep nesting, truncation, invalid UTF-8) in a copy, then reported on through the CLI:
  every outcome is exit 0, or exit 2 with one line, never an internal error (exit 1).
* Reuse: ``evrobust reproduce`` reuses a cached attack or analysis only for the same checkpoint and store
  content; a changed checkpoint or store recomputes it, with a logged line saying what changed.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from evrobust.errors import UserInputError
from evrobust.pipelines.cli.app import app as main_app
from evrobust.pipelines.report.outputs import MANIFEST_FILE

runner = CliRunner()
ANALYSES = {
    "vulnerability": {"eps_grid": "0,8/255,32/255", "attacks": "noise,fgsm"},
    "theorem": {"eps_grid": "8/255", "mc_samples": 2, "pgd_steps": 1},
    "distribution": {"bins": 11},
    "heatmap": {"count": 2},
}


@pytest.fixture(scope="module")
def repro(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``evrobust reproduce fig3 --scale tiny`` (two runs, an attack and a sparsity analysis each, a table),
    plus one analysis of every other kind on the first run."""
    from evrobust.pipelines.analyze import run_analysis
    from evrobust.pipelines.reproduce import build_spec, execute

    root = tmp_path_factory.mktemp("report-outputs")
    data_dir = str(root / "data")
    spec = build_spec("fig3", "tiny")
    results = execute(spec, root / "out", data_dir=data_dir, device="cpu", report=False)
    run_dirs = {r.key: root / "out" / "runs" / r.dirname for r in spec.runs}
    first = run_dirs[spec.runs[0].key]
    for kind, options in ANALYSES.items():
        run_analysis(first, kind, limit=6, batch_size=8, device="cpu", data_dir=data_dir, plots=False,
                     **options)
    return {"root": root / "out", "results": results, "spec": spec, "run_dirs": run_dirs, "run": first,
            "data_dir": data_dir}


def _copy_run(run: Path, dest: Path) -> Path:
    # The report reads no checkpoint: a copy without them is a complete input (and quick to make).
    ignore = shutil.ignore_patterns("checkpoint-*", "*.png", "report.md")
    return Path(shutil.copytree(run, dest, ignore=ignore))


def _report(*args: str) -> Any:
    return runner.invoke(main_app, ["report", *args])


def _one_error_line(result: Any) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, (result.exit_code, result.output[-3000:])
    return lines[0]


def _manifest(directory: Path) -> list[str]:
    document = json.loads((directory / MANIFEST_FILE).read_text())
    assert document["format"] == "evrobust-report-manifest" and document["version"] == 1
    return document["files"]


def _write_manifest(directory: Path, files: list[str]) -> None:
    document = {"format": "evrobust-report-manifest", "version": 1, "files": files}
    (directory / MANIFEST_FILE).write_text(json.dumps(document))


# ----------------------------------------------------------------------------- owned outputs


def test_a_foreign_plot_survives_and_only_listed_stale_files_go(repro: dict[str, Any], tmp_path: Path
                                                                 ) -> None:
    run = _copy_run(repro["run"], tmp_path / "run")
    out = tmp_path / "out"
    out.mkdir()
    (out / "plot-x.png").write_bytes(b"mine")  # a user's file with the report's naming pattern
    result = _report(str(run), "--out", str(out))
    assert result.exit_code == 0, result.output
    written = _manifest(out)
    assert "report.md" in written and "plot-accuracy-vs-eps.png" in written and "plot-x.png" not in written
    assert sorted(p.name for p in out.iterdir() if p.name not in ("plot-x.png", MANIFEST_FILE)) == written
    assert (out / "plot-x.png").read_bytes() == b"mine"
    # An earlier report drew plot-old.png (its manifest says so); this one does not: it goes, plot-x stays.
    (out / "plot-old.png").write_bytes(b"old figure")
    _write_manifest(out, [*written, "plot-old.png"])
    result = _report(str(run), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert not (out / "plot-old.png").exists() and (out / "plot-x.png").read_bytes() == b"mine"
    assert _manifest(out) == written


def test_a_manifest_naming_paths_outside_or_links_is_not_followed(repro: dict[str, Any], tmp_path: Path
                                                                   ) -> None:
    run = _copy_run(repro["run"], tmp_path / "run")
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"keep")
    for hostile in (["../victim.png"], [str(victim)], [".."], ["report.md", "sub/x.png"]):
        _write_manifest(out, hostile)
        result = _report(str(run), "--out", str(out))
        assert result.exit_code == 0, result.output
        assert victim.read_bytes() == b"keep", hostile
        assert "ignoring" in result.stderr and MANIFEST_FILE in result.stderr  # one warning says why
        assert all("/" not in name for name in _manifest(out))
    # Plain names that stand for a link or a directory are skipped, never followed or emptied.
    (out / "plot-link.png").symlink_to(victim)
    (out / "plot-dir.png").mkdir()
    (out / "plot-dir.png" / "inside.png").write_bytes(b"inside")
    _write_manifest(out, [*_manifest(out), "plot-link.png", "plot-dir.png"])
    result = _report(str(run), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "plot-link.png").is_symlink() and victim.read_bytes() == b"keep"
    assert (out / "plot-dir.png" / "inside.png").read_bytes() == b"inside"
    assert "not removing" in result.stderr
    assert "plot-link.png" not in _manifest(out) and "plot-dir.png" not in _manifest(out)


def test_a_manifest_that_is_a_link_is_neither_read_nor_written_through(
    repro: dict[str, Any], tmp_path: Path
) -> None:
    run = _copy_run(repro["run"], tmp_path / "run")
    out = tmp_path / "out"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere.json"
    _write_manifest(tmp_path, ["report.md"])
    (tmp_path / MANIFEST_FILE).rename(elsewhere)
    before = elsewhere.read_bytes()
    (out / MANIFEST_FILE).symlink_to(elsewhere)
    line = _one_error_line(_report(str(run), "--out", str(out)))
    assert MANIFEST_FILE in line and "symbolic link" in line
    assert elsewhere.read_bytes() == before and (out / MANIFEST_FILE).is_symlink()


def test_a_failed_report_keeps_track_of_what_it_wrote(repro: dict[str, Any], tmp_path: Path) -> None:
    run = _copy_run(repro["run"], tmp_path / "run")
    bad = Path(shutil.copytree(repro["results"].parent, tmp_path / "fig3"))
    results = json.loads((bad / "results.json").read_text())
    results["spec"]["title"] = 5  # found after the run's figures are drawn
    (bad / "results.json").write_text(json.dumps(results))
    out = tmp_path / "out"
    line = _one_error_line(_report(str(run), str(bad), "--out", str(out)))
    assert "results.json: field spec.title" in line
    assert not (out / "report.md").exists()
    drawn = sorted(p.name for p in out.glob("plot-*.png"))
    assert drawn and _manifest(out) == drawn  # the next report removes them if it does not draw them again


def test_a_second_report_into_the_same_directory_exits_2(repro: dict[str, Any], tmp_path: Path) -> None:
    from evrobust.preprocess.locks import LockedError, exclusive

    assert issubclass(LockedError, UserInputError)  # the CLI's exit-2 contract
    run = _copy_run(repro["run"], tmp_path / "run")
    out = tmp_path / "out"
    out.mkdir()
    with exclusive(out, "evrobust report"):  # the first report, still writing
        line = _one_error_line(_report(str(run), "--out", str(out)))
    assert f"{out} is being written by pid {os.getpid()}" in line and "(evrobust report)" in line
    assert not (out / "report.md").exists() and not list(out.iterdir())
    result = _report(str(run), "--out", str(out))  # once the first is done, the directory is free again
    assert result.exit_code == 0, result.output


# ----------------------------------------------------------------------------- fuzzed inputs

TALLY: collections.Counter[str] = collections.Counter()
FUZZ = settings(
    max_examples=30,
    deadline=None,  # one report draws figures: seconds on a busy 2-core machine
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TARGETS = ["analysis-sparsity.json", "analysis-vulnerability.json", "analysis-theorem.json",
           "analysis-distribution.json", "analysis-heatmap.json", "metrics.jsonl", "results.json"]
HUGE_STRING = "H" * (2 << 20)  # over the 1 MiB string limit of every JSON reader
LONG_STRING = "L" * 200_000  # under it, far over any field's length
DEEP = json.loads("[" * 200 + "]" * 200)
REPLACEMENTS = st.sampled_from([
    "x", "", True, False, None, [], {}, [1, "a"], {"k": [1]}, -1, 0, 1.5, 2**63, 10**400, -1e308, 1e308,
    float("nan"), float("inf"), "HUGE", "LONG", "DEEP",
])  # fmt: skip


def _paths(document: Any, most: int = 20_000) -> list[tuple[Any, ...]]:
    """Every path to a value of ``document`` (breadth first, the root included), at most ``most``."""
    found: list[tuple[Any, ...]] = []
    queue: collections.deque[tuple[tuple[Any, ...], Any]] = collections.deque([((), document)])
    while queue and len(found) < most:
        path, value = queue.popleft()
        found.append(path)
        if isinstance(value, dict):
            queue.extend(((*path, k), v) for k, v in value.items())
        elif isinstance(value, list):
            queue.extend(((*path, i), v) for i, v in enumerate(value))
    return found


def _replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    value = {"HUGE": HUGE_STRING, "LONG": LONG_STRING, "DEEP": DEEP}.get(value, value) if isinstance(
        value, str) else value
    if not path:
        return value
    target = document
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return document


def _mutate(path: Path, data: Any) -> str:
    """Apply one drawn mutation to ``path``; returns what was done (for the failure message)."""
    raw = path.read_bytes()
    operation = data.draw(st.sampled_from(["value", "value", "value", "value", "truncate", "utf8"]))
    if operation == "truncate":
        cut = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        path.write_bytes(raw[:cut])
        return f"truncated at {cut}"
    if operation == "utf8":
        at = data.draw(st.integers(0, len(raw)))
        path.write_bytes(raw[:at] + b"\xff\xfe\xc3" + raw[at:])
        return f"invalid UTF-8 at {at}"
    lines = path.name.endswith(".jsonl")
    document: Any = [json.loads(line) for line in raw.decode().splitlines() if line.strip()] if lines else (
        json.loads(raw))
    paths = _paths(document)
    where = paths[data.draw(st.integers(0, len(paths) - 1))]
    value = data.draw(REPLACEMENTS)
    if lines and not where:
        where = (0,)  # the file of lines stays a file of lines
    document = _replaced(document, where, value)
    if lines:
        path.write_text("".join(json.dumps(record) + "\n" for record in document))
    else:
        path.write_text(json.dumps(document))
    return f"{'.'.join(map(str, where)) or '(root)'} = {str(value)[:40]}"


@FUZZ
@given(data=st.data())
def test_fuzzed_inputs_make_report_exit_0_or_2(repro: dict[str, Any], data: Any) -> None:
    target = data.draw(st.sampled_from(TARGETS))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run = _copy_run(repro["run"], work / "run")
        results = Path(shutil.copytree(repro["results"].parent, work / "fig3"))
        what = _mutate((results if target == "results.json" else run) / target, data)
        result = _report(str(run), str(results), "--out", str(work / "out"))
    TALLY["inputs"] += 1
    assert result.exit_code in (0, 2), (target, what, result.exit_code, result.output[-3000:])
    if result.exit_code == 2:
        TALLY["refused"] += 1
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(errors) == 1 and errors[0].startswith("error: "), (target, what, result.stderr[-3000:])
    else:
        TALLY["accepted"] += 1


def test_zz_fuzz_counts(capsys: pytest.CaptureFixture[str]) -> None:
    """The outcome counts, for docs/reliability.md (``pytest -s``); every input was exit 0 or 2."""
    with capsys.disabled():
        print(f"\nreport fuzz: {dict(TALLY)}")  # noqa: T201 - a test's report line, not library output
    assert TALLY["inputs"] in (0, TALLY["refused"] + TALLY["accepted"])


# ----------------------------------------------------------------------------- reuse by content (runs last:
# it changes the fixture's checkpoint and store)


def _perturb_checkpoint(run: Path) -> None:
    import torch

    from evrobust.checkpoint import load_checkpoint, save_checkpoint
    from evrobust.pipelines.train.run_dir import BEST_CHECKPOINT

    tensors, metadata = load_checkpoint(run / BEST_CHECKPOINT)
    name = next(k for k, v in tensors.items() if v.is_floating_point() and v.numel() > 1)
    tensors[name] = tensors[name] + torch.full_like(tensors[name], 1e-3)
    save_checkpoint(run / BEST_CHECKPOINT, tensors, metadata)


def test_zz_a_changed_checkpoint_or_store_recomputes_with_a_logged_reason(
    repro: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    from evrobust.pipelines.reproduce.runner import ContentDigests, analyse_run, attack_run
    from evrobust.pipelines.train.run_dir import read_config

    spec, root, run_dirs, data_dir = repro["spec"], repro["root"], repro["run_dirs"], repro["data_dir"]
    attack = spec.attacks[0]
    analysis = next(a for a in spec.analyses if a.run == attack.run)

    def both() -> tuple[bool, bool]:
        digests = ContentDigests(data_dir)  # one per reproduction: fresh digests, as a new command has
        common = {"limit": spec.attack_limit, "data_dir": data_dir, "device": "cpu", "with_fresh": True,
                  "digests": digests}
        _, attacked = attack_run(attack, run_dirs, root, batch_size=spec.attack_batch, **common)
        _, analysed = analyse_run(analysis, run_dirs, root, **common)
        return attacked, analysed

    caplog.set_level(logging.INFO, logger="evrobust.pipelines.reproduce.runner")
    assert both() == (False, False)  # cached by the fixture's reproduction, same content
    assert "recomputing" not in caplog.text
    _perturb_checkpoint(run_dirs[attack.run])
    caplog.clear()
    assert both() == (True, True)
    assert caplog.text.count("the checkpoint changed (sha256") == 2
    caplog.clear()
    assert both() == (False, False)  # the recomputed results are cached in turn
    store = Path(read_config(run_dirs[attack.run])["data"]["store"])
    (store / "rebuilt-note.txt").write_text("a store rebuilt with other content")  # any byte counts
    caplog.clear()
    assert both() == (True, True)
    assert caplog.text.count("the data store changed (sha256") == 2
    assert "the checkpoint changed" not in caplog.text
