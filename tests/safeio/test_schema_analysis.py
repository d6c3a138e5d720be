"""The ``analysis`` and ``results`` schemas: real documents read back, wrong ones are refused naming the
field, and a hostile document costs ``evrobust report`` neither minutes nor gigabytes.

The real documents come from a tiny trained run on event frames (every kind of analysis, the frame heatmaps
included); the wrong ones are those documents with one field broken.
"""

from __future__ import annotations

import copy
import json
import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from evrobust.errors import UserInputError
from evrobust.pipelines.cli.app import app as main_app
from evrobust.safeio import read_json
from evrobust.safeio.schemas import analysis as schema
from evrobust.safeio.schemas import validate

KINDS_RUN = {
    "sparsity": {},
    "vulnerability": {"eps_grid": "0,4/255,16/255", "attacks": "noise,fgsm"},
    "theorem": {"eps_grid": "2/255,8/255", "mc_samples": 2, "pgd_steps": 1},
    "distribution": {"bins": 11},
    "heatmap": {"count": 2},
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch run on event frames with an attack result and one analysis of every kind."""
    from evrobust.pipelines.analyze import run_analysis
    from evrobust.pipelines.attack.pipeline import run_attack
    from evrobust.pipelines.train.config import TrainConfig
    from evrobust.pipelines.train.pipeline import train

    root = tmp_path_factory.mktemp("schema-analysis")
    config = TrainConfig(
        data="digits-dvs", data_dir=str(root / "data"), model="vgg_small", width=0.25, epochs=1,
        batch_size=32, limit_train=96, limit_val=16, device="cpu", out=str(root / "run"), progress=False,
    )
    run = train(config)
    run_attack(run, attacks="clean,fgsm", ensemble="single", limit=8, batch_size=8, device="cpu")
    for kind, options in KINDS_RUN.items():
        run_analysis(run, kind, limit=6, batch_size=8, device="cpu", plots=False, **options)
    return run


def _doc(run: Path, kind: str) -> dict[str, Any]:
    return json.loads((run / f"analysis-{kind}.json").read_text())


def _refused(document: Any, kind: str = "analysis") -> str:
    with pytest.raises(UserInputError) as info:
        validate(document, kind, "doc.json")
    message = str(info.value)
    assert "\n" not in message and message.startswith("doc.json: field ")
    return message


# ----------------------------------------------------------------------------- real documents


def test_the_kinds_are_those_analyze_writes() -> None:
    from evrobust.pipelines.analyze import KINDS, MAX_COUNTS

    assert schema.KINDS == KINDS
    # The option limits keep every document analyze writes inside the schema's bounds.
    assert MAX_COUNTS["bins"] <= schema.MAX_BINS and MAX_COUNTS["count"] <= schema.MAX_HEATMAP_SAMPLES
    too_many = str(MAX_COUNTS["count"] + 1)
    result = runner.invoke(main_app, ["analyze", "heatmap", "--run", "x", "--count", too_many])
    assert result.exit_code == 2 and "'--count'" in result.output
    assert f"less than or equal to {schema.MAX_HEATMAP_SAMPLES}" in result.output


def test_every_real_analysis_document_validates(tiny_run: Path) -> None:
    for kind in KINDS_RUN:
        document = read_json(tiny_run / f"analysis-{kind}.json", "analysis")
        assert document["kind"] == kind and document["format"] == "evrobust-analysis"
        assert schema.model_for(document) is not schema.OtherAnalysis
        assert len(document["checkpoint_sha256"]) == 64
    heat = _doc(tiny_run, "heatmap")
    assert "input_frames" in heat and schema.check_array(heat["input_frames"][0], (4,))[1] == 2


def test_real_documents_read_back_unchanged(tiny_run: Path) -> None:
    """read_json hands back the parsed JSON itself: validation converts nothing the readers would see."""
    for kind in KINDS_RUN:
        path = tiny_run / f"analysis-{kind}.json"
        assert read_json(path, "analysis") == json.loads(path.read_text())


# ----------------------------------------------------------------------------- wrong documents

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        *head, last = path.split(".")
        target: Any = doc
        for part in head:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return mutate


def _pop_last(path: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        target: Any = doc
        for part in path.split("."):
            target = target[int(part)] if isinstance(target, list) else target[part]
        target.pop()

    return mutate


WRONG: list[tuple[str, Mutation, str]] = [
    # common fields
    ("sparsity", _set("samples", -1), "field samples"),
    ("sparsity", _set("samples", True), "field samples"),
    ("sparsity", _set("format", "evrobust-attack"), "field format"),
    ("sparsity", _set("clean_accuracy", 1.5), "field clean_accuracy"),
    ("sparsity", _set("clean_accuracy", "0.5"), "field clean_accuracy"),
    ("sparsity", _set("defense", "d" * 1000), "field defense"),
    ("sparsity", _set("plots", "analysis-sparsity.png"), "field plots"),
    ("vulnerability", _set("checks.0.passed", "yes"), "field checks.0.passed"),
    ("vulnerability", _set("checks.0.name", None), "field checks.0.name"),
    # sparsity
    ("sparsity", _set("targets.two_class.mean.l1", -1.0), "field targets.two_class.mean.l1"),
    ("sparsity", _set("targets.two_class.mean.density", 2.0), "field targets.two_class.mean.density"),
    ("sparsity", _pop_last("targets.two_class.per_sample.l1"), "two_class.per_sample.l1 has 5 values"),
    # vulnerability
    ("vulnerability", _pop_last("curves.fgsm"), "curve 'fgsm' has 2 points for 3 eps"),
    ("vulnerability", _set("curves.fgsm.1", "0.5"), "field curves.fgsm.1"),
    ("vulnerability", _set("curves.fgsm.1", float("nan")), "field curves.fgsm.1"),
    ("vulnerability", _set("eps", [0.0, 0.2, 0.1]), "eps is not strictly increasing"),
    ("vulnerability", _pop_last("eps_text"), "eps_text has 2 entries for 3 eps"),
    # theorem
    ("theorem", _set("results.0.in_bounds", True), "field results.0.in_bounds"),
    ("theorem", _set("results.0.mean.ratio", float("inf")), "field results.0.mean.ratio"),
    ("theorem", _pop_last("results.1.per_sample.ratio"), "results.1.per_sample.ratio has 5 values"),
    ("theorem", _set("mc_samples", 10**9), "field mc_samples"),
    # distribution
    ("distribution", _pop_last("counts"), "12 edges for 10 counts"),
    ("distribution", _set("bins", 12), "bins is 12 but there are 11 counts"),
    ("distribution", _set("edges.3", float("nan")), "field edges.3"),
    ("distribution", _set("counts.0", -1), "field counts.0"),
    ("distribution", _set("zero_count", 10**9), "above total"),
    # heatmap
    ("heatmap", _set("indices", [0]), "disagree"),
    ("heatmap", _set("input_maps.0.1", [0.0]), "field input_maps.0"),
    ("heatmap", _set("grad_maps.0", [[[0.0]]]), "field grad_maps.0"),
    ("heatmap", _set("labels.0", "3"), "field labels.0"),
    ("heatmap", _set("count", 10**6), "field count"),
    ("heatmap", _set("grad_frames", None), "input_frames and grad_frames come together"),
]


@pytest.mark.parametrize(("kind", "mutate", "expected"), WRONG, ids=[f"{k}-{e[:30]}" for k, _, e in WRONG])
def test_a_wrong_field_is_refused_by_name(tiny_run: Path, kind: str, mutate: Mutation, expected: str) -> None:
    document = _doc(tiny_run, kind)
    mutate(document)
    assert expected in _refused(document)


def test_heatmap_dimensions_must_agree(tiny_run: Path) -> None:
    heat = _doc(tiny_run, "heatmap")
    frames = heat["input_frames"][0]
    wrong = copy.deepcopy(heat)
    wrong["input_frames"] = [[[row for row in step] + [step[0]] for step in frames]]  # 3 polarities
    wrong["grad_frames"] = copy.deepcopy(wrong["input_frames"])
    assert "3 polarities, not 2" in _refused(wrong)
    wrong = copy.deepcopy(heat)
    wrong["grad_frames"] = [frames[:-1]]  # one step fewer than the input frames
    assert "one shape" in _refused(wrong)
    many = {"kind": "heatmap", "indices": list(range(65)), "labels": [0] * 65,
            "input_maps": [[[0.0]]] * 65, "grad_maps": [[[0.0]]] * 65}
    assert "field indices" in _refused(many) and "at most 64" in _refused(many)


def test_unknown_kinds_get_the_common_checks_only() -> None:
    validate({"kind": "saliency", "samples": 3, "anything": [1, "x"]}, "analysis", "doc.json")
    assert "field samples" in _refused({"kind": "saliency", "samples": "3"})
    assert "field kind" in _refused({"kind": "Heat map"})
    assert "valid dictionary" in _refused([1, 2])


# ----------------------------------------------------------------------------- results.json


def _results() -> dict[str, Any]:
    from evrobust.pipelines.reproduce import build_spec

    spec = build_spec("fig3", "smoke")
    attacks = {a.key: {"mode": "whitebox", "attacks": [{"name": "clean", "accuracy": 0.9},
                                                        {"name": "pgd10", "accuracy": 0.1}], "checks": []}
               for a in spec.attacks}
    mean = {"l1": 2.0, "l2": 0.3}
    analyses = {f"{r.key}:sparsity": {"kind": "sparsity", "targets": {"two_class": {"mean": mean}}}
                for r in spec.runs}
    return {"format": "evrobust-reproduction", "version": 1, "spec": json.loads(json.dumps(spec.to_json())),
            "runs": {r.key: {"dir": "x", "epochs": 6, "seconds": 1.5} for r in spec.runs},
            "attacks": attacks, "analyses": analyses}


def test_a_valid_results_document_passes() -> None:
    validate(_results(), "results", "doc.json")


def test_wrong_results_documents_are_refused_by_name() -> None:
    good = _results()
    table = good["spec"]["tables"][0]
    attack_key, analysis_key = next(iter(good["attacks"])), next(iter(good["analyses"]))

    def broken(change: Callable[[dict[str, Any]], None]) -> str:
        doc = copy.deepcopy(good)
        change(doc)
        return _refused(doc, "results")

    assert "field spec.tables.0.rows.0.cells.Clean.source" in broken(
        lambda d: d["spec"]["tables"][0]["rows"][0]["cells"]["Clean"].update(source="bogus"))
    assert f"field attacks.{attack_key}.attacks.0.accuracy" in broken(
        lambda d: d["attacks"][attack_key]["attacks"][0].update(accuracy=2.0))
    assert f"field attacks.{attack_key}.checks" in broken(
        lambda d: d["attacks"][attack_key].update(checks="none"))
    assert f"field analyses.{analysis_key}.sparsity.targets.two_class.mean.l1" in broken(
        lambda d: d["analyses"][analysis_key]["targets"]["two_class"]["mean"].update(l1="big"))
    # A cell whose path ends at an object is refused (the report would stop on float({...})).
    message = broken(lambda d: d["spec"]["tables"][0]["rows"][0]["cells"]["grad l1"].update(
        item="targets.two_class.mean"))
    assert f"table {table['name']!r} row 0 cell 'grad l1'" in message and "not a number" in message
    assert "field runs" in broken(lambda d: d["runs"][next(iter(d["runs"]))].update(seconds="1.5"))
    assert "field spec.title" in broken(lambda d: d["spec"].update(title="t" * 5000))
    assert "field spec.tables.0.rows.0.labels.0" in broken(
        lambda d: d["spec"]["tables"][0]["rows"][0].update(labels=[["nested"]]))
    assert "field format" in broken(lambda d: d.update(format="evrobust-analysis"))
    assert "field spec.tables.0.rows" in broken(
        lambda d: d["spec"]["tables"][0].update(rows=d["spec"]["tables"][0]["rows"] * 3000))


def test_a_tradeoff_table_needs_its_two_labels() -> None:
    from evrobust.pipelines.reproduce import build_spec

    spec = json.loads(json.dumps(build_spec("tradeoff", "tiny").to_json()))
    doc = {"format": "evrobust-reproduction", "spec": spec, "runs": {}, "attacks": {}, "analyses": {}}
    validate(doc, "results", "doc.json")
    doc["spec"]["tables"][0]["rows"][0]["labels"] = ["T"]
    assert "tradeoff row 0 has 1 labels" in _refused(doc, "results")
    doc["spec"]["tables"][0]["name"] = "other"
    assert "no table named 'tradeoff'" in _refused(doc, "results")


# ----------------------------------------------------------------------------- hostile documents, via the CLI


def _copy_run(run: Path, dest: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run, dest, ignore=shutil.ignore_patterns("*.png", "report.md")))


def _one_error_line(result: Any) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, (result.exit_code, result.output[-2000:])
    return lines[0]


def test_a_12_mb_string_is_refused_within_bounded_memory(tiny_run: Path, tmp_path: Path) -> None:
    run = _copy_run(tiny_run, tmp_path / "run")
    path = run / "analysis-vulnerability.json"
    document = json.loads(path.read_text())
    for field, size, why in (("defense", 12 << 20, "holds a string of 12,582,912 characters"),
                             ("dataset", 900_000, "field dataset")):
        document[field] = "A" * size
        path.write_text(json.dumps(document))
        tracemalloc.start()
        try:
            result = runner.invoke(main_app, ["report", str(run), "--out", str(tmp_path / "out")])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert why in _one_error_line(result)
        assert peak < 150 << 20, f"{peak / 2**20:.0f} MiB for a {size:,}-character string"
        document[field] = "x"
    assert not (tmp_path / "out" / "report.md").exists()


def test_a_small_heatmap_claiming_many_samples_draws_nothing(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """16 KB claiming a thousand samples once kept report drawing a thousand subplot columns for minutes."""
    import evrobust.pipelines.report.analysis_plots as plots

    drawn: list[int] = []
    original = plots.plot_heatmaps
    monkeypatch.setattr(plots, "plot_heatmaps", lambda results, *a, **k: drawn.append(
        len(results[0]["input_maps"])) or original(results, *a, **k))
    run = _copy_run(tiny_run, tmp_path / "run")
    n = 1000
    hostile = {**_doc(run, "heatmap"), "indices": list(range(n)), "labels": [0] * n,
               "input_maps": [[[0]]] * n, "grad_maps": [[[0]]] * n}
    for key in ("count", "l0", "l1", "input_frames", "grad_frames"):
        hostile.pop(key)
    (run / "analysis-heatmap.json").write_text(json.dumps(hostile, separators=(",", ":")))
    assert (run / "analysis-heatmap.json").stat().st_size < 24_000
    result = runner.invoke(main_app, ["report", str(run), "--out", str(tmp_path / "out")])
    line = _one_error_line(result)
    assert "analysis-heatmap.json" in line and "field indices" in line and "at most 64" in line
    assert drawn == [] and not list((tmp_path / "out").glob("*.png"))


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


def test_frames_of_many_steps_draw_a_bounded_figure(tiny_run: Path, tmp_path: Path) -> None:
    """1,024 steps (what `evrobust train` allows) are accepted; the figure shows 16 of them, not 1,024."""
    from evrobust.pipelines.report.analysis_plots import FRAME_COLUMNS, _steps

    run = _copy_run(tiny_run, tmp_path / "run")
    heat = _doc(run, "heatmap")
    steps = schema.MAX_FRAMES
    frames = [[[[0.5]], [[0.25]]] for _ in range(steps)]
    heat["input_frames"], heat["grad_frames"] = [frames], [frames]
    (run / "analysis-heatmap.json").write_text(json.dumps(heat))
    result = runner.invoke(main_app, ["report", str(run), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    width, height = _png_size(tmp_path / "out" / "plot-gradient-frames-digits-dvs.png")
    assert width <= 3000 and height <= 3000, (width, height)
    assert _steps(steps, FRAME_COLUMNS)[0] == 0 and _steps(steps, FRAME_COLUMNS)[-1] == steps - 1
    assert len(_steps(steps, FRAME_COLUMNS)) == FRAME_COLUMNS and _steps(3, FRAME_COLUMNS) == [0, 1, 2]
    heat["input_frames"] = heat["grad_frames"] = [[[[[0.5]], [[0.25]]]] * (steps + 1)]
    (run / "analysis-heatmap.json").write_text(json.dumps(heat))
    line = _one_error_line(runner.invoke(main_app, ["report", str(run), "--out", str(tmp_path / "out")]))
    assert f"{steps + 1} steps, above the limit {steps}" in line


def test_a_plot_path_the_file_system_refuses_is_skipped(tiny_run: Path, tmp_path: Path) -> None:
    """A plot path with a 300-character name (ENAMETOOLONG) is within the schema: the report skips it."""
    run = _copy_run(tiny_run, tmp_path / "run")
    document = _doc(run, "sparsity")
    document["plots"] = [str(tmp_path / ("p" * 300 + ".png")), "/dev/null"]
    (run / "analysis-sparsity.json").write_text(json.dumps(document))
    result = runner.invoke(main_app, ["report", str(run), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "p" * 300 not in (tmp_path / "out" / "report.md").read_text()
