"""The real-data fixture, the end-of-run skip line and the CI check, run on a tiny suite in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SUITE = '''
from pathlib import Path


def test_reads_a_real_file(real_data: Path) -> None:
    assert (real_data / "x.txt").read_text() == "real"


def test_reads_another(real_data: Path) -> None:
    assert real_data.is_dir()


def test_needs_nothing() -> None:
    assert True
'''


def run_suite(tmp: Path, data: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    suite = tmp / "suite"
    if not suite.exists():
        suite.mkdir()
        shutil.copy(REPO / "tests" / "conftest.py", suite / "conftest.py")
        (suite / "test_x.py").write_text(SUITE)
        (suite / "pytest.ini").write_text("[pytest]\n")
    report = tmp / "report.json"
    env = {**os.environ, "EVROBUST_TEST_DATA": str(data), "EVROBUST_SKIP_REPORT": str(report)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(suite)],
        cwd=suite, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return result, json.loads(report.read_text())


def check(report: Path, ci: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, str(REPO / ".ci" / "check_skips.py"), str(report)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_without_data_the_tests_skip_and_one_line_counts_them(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-data"
    result, report = run_suite(tmp_path, missing)
    assert result.returncode == 0, result.stdout
    reason = f"real test data not found at {missing} (set EVROBUST_TEST_DATA to the shared data folder)"
    assert f"skipped 2: 2 {reason}" in result.stdout.splitlines()
    assert report == {"real_data": str(missing), "real_data_ran": 0, "real_data_skipped": 2,
                      "skipped": {reason: 2}}  # fmt: skip
    assert check(tmp_path / "report.json", ci=False).returncode == 0
    refused = check(tmp_path / "report.json", ci=True)
    assert refused.returncode == 1 and "0 ran, 2 skipped" in refused.stderr


def test_with_data_none_is_skipped_and_ci_passes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "x.txt").write_text("real")
    result, report = run_suite(tmp_path, data)
    assert result.returncode == 0, result.stdout
    assert not any(line.startswith("skipped ") for line in result.stdout.splitlines())
    assert report["real_data_ran"] == 2 and report["real_data_skipped"] == 0
    assert check(tmp_path / "report.json", ci=True).returncode == 0


def test_a_missing_report_fails_the_ci_check(tmp_path: Path) -> None:
    assert check(tmp_path / "absent.json", ci=True).returncode == 1
