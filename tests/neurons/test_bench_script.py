"""scripts/bench_neurons.py stays runnable: a tiny run prints one markdown row per shape and spec."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_neurons.py"


def test_bench_prints_a_markdown_table(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_neurons", SCRIPT)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--shapes", "2,3,4", "--specs", "atan:2", "rate", "--repeats", "1", "--warmup", "0"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    assert lines[0] == (
        "| shape | spec | native (ms) | spikingjelly (ms) | norse (ms) | spikingjelly/native | norse/native |"
    )
    rows = [line.strip("|").split("|") for line in lines[2:]]
    assert [(r[0].strip(), r[1].strip()) for r in rows] == [("[2,3,4]", "atan:2"), ("[2,3,4]", "rate")]
    # norse has no atan: reported as n/a rather than timed or crashed
    assert rows[0][4].strip() == "n/a" and rows[1][4].strip() != "n/a"
    assert float(rows[0][2]) > 0
