"""The import rule of ``pipelines/`` (docs/architecture.md, "Package map"): a unit imports only units of a
lower layer, or itself. Every import is read from the source with ``ast``, the lazy ones inside functions
included, so a cycle cannot hide behind a deferred import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "pipelines"
PREFIX = "evrobust.pipelines"

# unit (subpackage, or flat module) -> layer; the same table as docs/architecture.md
LAYERS: dict[str, int] = {
    "common": 0,
    "preprocess": 1,
    "train": 1,
    "attack": 2,
    "export": 2,
    "report": 2,
    "analyze_masking": 3,
    "analyze": 4,
    "defaults": 3,
    "reproduce": 5,
    "demo": 6,
    "leaderboard": 6,
    "cli": 7,
}


def _unit(dotted: str) -> str | None:
    """The unit a dotted module name belongs to (``evrobust.pipelines.train.config`` -> ``train``)."""
    if not dotted.startswith(PREFIX + "."):
        return None
    return dotted[len(PREFIX) + 1:].split(".")[0]


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every ``evrobust.pipelines`` import in one file; ``from evrobust.pipelines import x``
    counts as an import of ``evrobust.pipelines.x``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith(PREFIX)]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == PREFIX:
                found += [(node.lineno, f"{PREFIX}.{a.name}") for a in node.names]
            elif node.module.startswith(PREFIX + "."):
                found.append((node.lineno, node.module))
    return found


def _files() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts)


def _unit_of_file(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def test_every_unit_has_a_layer() -> None:
    units = {_unit_of_file(p) for p in _files()} - {"__init__"}
    assert units == set(LAYERS), f"units without a layer: {units - set(LAYERS)}; stale: {set(LAYERS) - units}"


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_go_down_the_layers(path: Path) -> None:
    own = _unit_of_file(path)
    bad = []
    for line, module in _imports(path):
        target = _unit(module)
        if target is None or target == own:
            continue
        if LAYERS[target] >= LAYERS.get(own, -1):
            bad.append(f"line {line}: {own} (layer {LAYERS.get(own)}) imports {module} "
                       f"(layer {LAYERS[target]})")
    assert not bad, "\n".join(bad)


def test_the_rule_catches_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: an import of ``report`` from ``train``, even a lazy one, is found."""
    src = tmp_path / "x.py"
    src.write_text("def f():\n    from evrobust.pipelines.report import plots\n"
                   "    import evrobust.pipelines.common.paper\n")
    assert _imports(src) == [(2, f"{PREFIX}.report"), (3, f"{PREFIX}.common.paper")]
    assert LAYERS[_unit(f"{PREFIX}.report")] > LAYERS["train"]
