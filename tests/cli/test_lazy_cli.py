"""The CLI loads a command's modules only when that command runs; preprocessing never imports torch.

Each check runs in a fresh interpreter (this test process has torch loaded already), and reads
``sys.modules`` there after the command finished.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from evrobust.pipelines.cli.app import COMMANDS
from evrobust.preprocess.aedat2 import write_aedat2
from evrobust.preprocess.events import make_events

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
WATCH = (
    "torch",
    "evrobust.datasets.augment",
    "evrobust.pipelines.train.pipeline",
    *(s.module for s in COMMANDS.values()),
)

RUN = """
import json, sys
from evrobust.pipelines.cli.app import app
try:
    app(sys.argv[1:], prog_name="evrobust")
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "loaded": [m for m in WATCH if m in sys.modules]}))
"""


def _run(args: list[str]) -> tuple[int, list[str], str]:
    code = f"WATCH = {list(WATCH)!r}\n{RUN}"
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, check=True
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["code"], result["loaded"], proc.stdout


def test_root_help_lists_every_command_without_loading_any() -> None:
    code, loaded, out = _run(["--help"])
    assert code == 0
    assert loaded == []
    for name, spec in COMMANDS.items():
        assert name in out
        assert spec.help.split()[0] in out  # the help line is shown from the table


def test_preprocess_help_loads_only_the_preprocess_command() -> None:
    code, loaded, out = _run(["preprocess", "--help"])
    assert code == 0
    assert loaded == ["evrobust.pipelines.cli.preprocess"]
    assert "cifar10dvs" in out and "verify" in out


def test_a_real_preprocess_run_never_imports_torch(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for c in CLASSES:
        (tmp_path / "raw" / c).mkdir(parents=True)
        n = 300
        events = make_events(
            np.sort(rng.integers(0, 10**5, n)),
            rng.integers(0, 128, n),
            rng.integers(0, 128, n),
            rng.integers(0, 2, n),
        )
        write_aedat2(tmp_path / "raw" / c / "0.aedat", events)
    out = tmp_path / "s.zarr"
    code, loaded, _ = _run(
        [
            "preprocess",
            "cifar10dvs",
            "--raw",
            str(tmp_path / "raw"),
            "--out",
            str(out),
            "--no-progress",
            "--size",
            "32",
        ]
    )
    assert code == 0
    assert loaded == ["evrobust.pipelines.cli.preprocess"]
    # ... and it did the work: every sample written, with the split the torch-based rule gives.
    from evrobust.datasets.splits import reference_random_split
    from evrobust.preprocess.store import done_flags, read_attrs

    assert done_flags(out).tolist() == [1] * 10
    assert read_attrs(out)["splits"]["random"] == reference_random_split(10)


def test_compare_never_imports_torch(tmp_path: Path) -> None:
    """Comparing two attack results reads flag strings: no torch, no other command module."""
    for name, flags in (("a", "1100"), ("b", "1000")):
        document = {"format": "evrobust-attack", "samples": 4, "defense": name, "eps": 0.03,
                    "attacks": [{"name": "pgd10", "in_table": True, "eps": 0.03}],
                    "flags": {"pgd10": {"name": "pgd10", "correct": flags, "members": {}}}}
        (tmp_path / f"{name}.json").write_text(json.dumps(document))
    code, loaded, out = _run(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    assert code in (0, None)
    assert loaded == ["evrobust.pipelines.cli.compare"]
    assert "| pgd10 | 50.0 [6.8, 93.2] | 25.0 [0.6, 80.6] | 1 | 0 |" in out
