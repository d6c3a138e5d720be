"""Packaging traps from DESIGN §1: every package folder is listed, and the mapped folders do not leak out."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# folder on disk -> dotted name it is installed as
MAPPED = {
    "evrobust": "evrobust",
    "preprocess": "evrobust.preprocess",
    "datasets": "evrobust.datasets",
    "pipelines": "evrobust.pipelines",
}


def _packages_on_disk() -> set[str]:
    found: set[str] = set()
    for folder, dotted in MAPPED.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            if any(part.startswith((".", "__")) for part in rel.parts):
                continue
            found.add(".".join([dotted, *rel.parts]))
    return found


def test_every_package_folder_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    on_disk = _packages_on_disk()
    assert on_disk - listed == set(), f"package folders missing from pyproject packages: {on_disk - listed}"
    assert listed - on_disk == set(), f"pyproject lists packages that do not exist: {listed - on_disk}"
    # the mapping itself
    assert config["tool"]["setuptools"]["package-dir"] == {
        "evrobust.preprocess": "preprocess",
        "evrobust.datasets": "datasets",
        "evrobust.pipelines": "pipelines",
    }


def test_top_level_datasets_is_not_the_project_folder(tmp_path: Path) -> None:
    code = (
        "import importlib.util, json\n"
        "spec = importlib.util.find_spec('datasets')\n"
        "ours = importlib.util.find_spec('evrobust.datasets')\n"
        "print(json.dumps([spec.origin if spec else None, ours.origin]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    import json

    top, ours = json.loads(out.stdout)
    assert top is None or not str(top).startswith(str(ROOT)), f"`import datasets` finds the project: {top}"
    assert Path(ours).resolve() == (ROOT / "datasets" / "__init__.py").resolve()


def test_preprocess_never_imports_torch(tmp_path: Path) -> None:
    code = "import sys, evrobust.preprocess\nprint('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
