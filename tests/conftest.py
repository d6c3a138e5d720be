"""The real-data fixture every test that reads real files goes through, and the end-of-run skip count.

Real files (recordings, CIFAR subsets, the paper's text) live outside the repository, in
``$EVROBUST_TEST_DATA`` (default ``../shared/data``; a relative value is taken from the repository root).
Without them those tests skip, each with one reason line, and the run ends with one line that counts what
was skipped and why. CI must not lose them silently: with ``$EVROBUST_SKIP_REPORT`` set, the counts are also
written there as JSON, and ``.ci/run`` fails when real-data tests were skipped (see ``.ci/check_skips.py``).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_ENV = "EVROBUST_TEST_DATA"
DEFAULT_DATA = "../shared/data"
REPORT_ENV = "EVROBUST_SKIP_REPORT"
MARKER = "real_data"


def real_data_dir() -> Path:
    """``$EVROBUST_TEST_DATA`` (relative to the repository root), else ``<repo>/../shared/data``."""
    return (REPO / os.environ.get(DATA_ENV, DEFAULT_DATA)).resolve()


def missing_reason(root: Path) -> str:
    return f"real test data not found at {root} (set {DATA_ENV} to the shared data folder)"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: reads real files through the real_data fixture")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Mark every test whose fixture closure holds real_data, so the summary can tell its skips apart.
    for item in items:
        if MARKER in getattr(item, "fixturenames", ()):
            item.add_marker(MARKER)


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The folder of real test files (``cifar10/``, ``cifar100/``, ``dvs/``, ... and ``../paper``).

    Skips the requesting test when the folder does not exist. A file missing inside an existing folder is
    a failure, not a skip: the data set is incomplete.
    """
    root = real_data_dir()
    if not root.is_dir():
        pytest.skip(missing_reason(root))
    return root


@pytest.fixture(scope="session")
def cifar10_layout(real_data: Path) -> Callable[..., Path]:
    """Factory: ``make(root, per_batch=10, n_test=None)`` writes a small official-layout
    ``<root>/cifar-10-batches-py`` from the exact subsets (``per_batch`` train rows of each batch, the first
    ``n_test`` test rows, default ``per_batch``) and returns that folder."""

    def make(root: Path, per_batch: int = 10, n_test: int | None = None) -> Path:
        import pickle
        import shutil

        import numpy as np

        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        shutil.copy(real_data / "cifar10" / "batches.meta", folder / "batches.meta")
        train = np.load(real_data / "cifar10" / "cifar10_train_subset_5170.npz")
        for b in range(1, 6):
            rows = np.flatnonzero(train["batch"] == b)[:per_batch]
            batch = {b"labels": train["labels"][rows].tolist(), b"data": train["data"][rows]}
            (folder / f"data_batch_{b}").write_bytes(pickle.dumps(batch, protocol=2))
        test = np.load(real_data / "cifar10" / "cifar10_test_first1017.npz")
        k = per_batch if n_test is None else n_test
        batch = {b"labels": test["labels"][:k].tolist(), b"data": test["data"][:k]}
        (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
        return folder

    return make


def _reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _skips(terminalreporter: pytest.TerminalReporter) -> tuple[Counter[str], int, int]:
    """(skip count per reason, real-data tests skipped, real-data tests run)."""
    reasons: Counter[str] = Counter()
    real_skipped = 0
    real_seen: set[str] = set()
    for key in ("passed", "failed", "error"):
        for report in terminalreporter.stats.get(key, []):
            if isinstance(report, pytest.TestReport) and MARKER in report.keywords:
                real_seen.add(report.nodeid)
    for report in terminalreporter.stats.get("skipped", []):
        if not isinstance(report, pytest.TestReport):
            continue
        reasons[_reason(report)] += 1
        if MARKER in report.keywords:
            real_skipped += 1
    return reasons, real_skipped, len(real_seen)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    reasons, real_skipped, real_ran = _skips(terminalreporter)
    if reasons:
        total = sum(reasons.values())
        parts = "; ".join(f"{n} {reason}" for reason, n in reasons.most_common())
        terminalreporter.write_line(f"skipped {total}: {parts}")
    path = os.environ.get(REPORT_ENV)
    if path:
        Path(path).write_text(
            json.dumps(
                {
                    "real_data": str(real_data_dir()),
                    "real_data_ran": real_ran,
                    "real_data_skipped": real_skipped,
                    "skipped": dict(reasons),
                },
                indent=1,
            )
            + "\n"
        )
