"""Fail a CI run whose real-data tests were skipped (or never ran): they must not stop running silently.

Reads the JSON that ``tests/conftest.py`` writes to ``$EVROBUST_SKIP_REPORT``. Enforced where ``CI=true``
(what CI services set); elsewhere it only prints the counts, since a fresh clone has no shared data.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(path: str) -> int:
    report_path = Path(path)
    if not report_path.is_file() or not report_path.read_text().strip():
        print(f"check_skips: no skip report at {path}; did the test run reach its end?", file=sys.stderr)
        return 1
    report = json.loads(report_path.read_text())
    ran, skipped = report["real_data_ran"], report["real_data_skipped"]
    line = f"real-data tests: {ran} ran, {skipped} skipped (data: {report['real_data']})"
    if os.environ.get("CI", "").lower() != "true":
        print(line + "; not enforced outside CI")
        return 0
    if skipped or not ran:
        print(
            f"check_skips: {line}; CI must run them all: provide the data or set EVROBUST_TEST_DATA",
            file=sys.stderr,
        )
        return 1
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
