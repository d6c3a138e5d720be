"""evrobust.safeio: regular files only, never through a link, never past a cap; JSON bounded and validated."""

from __future__ import annotations

import ast
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from evrobust.errors import UserInputError
from evrobust.safeio import (
    CAPS,
    UnsafeFileError,
    open_append,
    open_lock_file,
    open_new,
    open_read,
    parse_json,
    read_bytes,
    read_json,
    remove_file,
    write_bytes_atomic,
)
from evrobust.safeio.caps import JSON_MAX_DEPTH, JSON_MAX_STRING

SAFEIO = Path(__file__).resolve().parents[2] / "evrobust" / "safeio"


def finishes(fn: Callable[[], Any], seconds: float = 20.0) -> Any:
    """Run ``fn`` in a thread; fail (instead of hanging the suite) if it blocks, re-raise what it raised."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the call blocked"
    if "error" in box:
        raise box["error"]
    return box.get("value")


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file someone else owns: no evrobust call may change it."""
    path = tmp_path / "victim.txt"
    path.write_text("precious")
    return path


def planted(kind: str, path: Path, victim: Path) -> Path:
    """Put a symlink (to ``victim``), a FIFO or a directory at ``path``."""
    if kind == "symlink":
        path.symlink_to(victim)
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    return path


HOSTILE = ("symlink", "fifo", "directory")


@pytest.mark.parametrize("kind", HOSTILE)
def test_reads_refuse_links_fifos_and_directories_without_blocking(
    tmp_path: Path, victim: Path, kind: str
) -> None:
    path = planted(kind, tmp_path / "config.json", victim)
    for read in (lambda: read_bytes(path, "run_config"), lambda: read_json(path, "lock")):
        with pytest.raises(UnsafeFileError, match="is a (symbolic link|FIFO|directory)"):
            finishes(read)


def test_a_regular_file_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_bytes(b'{"pid": 12, "host": "h"}')
    assert read_json(path, "lock") == {"pid": 12, "host": "h"}
    with open_read(path, "lock") as fh:
        assert fh.read() == path.read_bytes()


def test_a_file_over_its_cap_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    with path.open("wb") as fh:  # sparse: costs no disk
        fh.truncate(CAPS["lock"] + 1)
    with pytest.raises(UnsafeFileError, match=r"4,097 bytes, over the 4,096-byte cap of a lock file"):
        read_bytes(path, "lock")
    path.write_bytes(b"x" * CAPS["lock"])  # exactly the cap is fine
    assert len(read_bytes(path, "lock")) == CAPS["lock"]


@pytest.mark.parametrize("kind", HOSTILE)
def test_writes_never_go_through_a_link_fifo_or_directory(tmp_path: Path, victim: Path, kind: str) -> None:
    path = planted(kind, tmp_path / "out.json", victim)
    writers = [
        lambda: write_bytes_atomic(path, b"new"),
        lambda: open_append(path, "metrics"),
        lambda: remove_file(path),
    ]
    for write in writers:
        with pytest.raises(UnsafeFileError):
            finishes(write)
    assert victim.read_text() == "precious"
    assert os.path.lexists(path)  # the link (or FIFO, directory) itself is not removed either


@pytest.mark.parametrize("kind", ("symlink", "fifo"))
def test_creations_and_locks_refuse_what_stands_at_the_path(tmp_path: Path, victim: Path, kind: str) -> None:
    lock = planted(kind, tmp_path / ".run.lock", victim)
    with pytest.raises(UnsafeFileError):
        finishes(lambda: open_lock_file(lock))
    part = planted(kind, tmp_path / "file.part", victim)
    with pytest.raises((UnsafeFileError, FileExistsError)):
        finishes(lambda: open_new(part))
    assert victim.read_text() == "precious"


def test_a_dangling_link_is_not_created_through(tmp_path: Path) -> None:
    """A link to a file that does not exist yet: O_CREAT would create the target; O_NOFOLLOW refuses."""
    target = tmp_path / "elsewhere" / "created.txt"
    target.parent.mkdir()
    link = tmp_path / "new.tmp"
    link.symlink_to(target)
    with pytest.raises(UnsafeFileError, match="symbolic link"):
        open_new(link)
    with pytest.raises(UnsafeFileError, match="symbolic link"):
        open_lock_file(link)
    assert not target.exists()


def test_atomic_write_replaces_a_regular_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    path.write_text("old")
    write_bytes_atomic(path, b"new")
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.json"]


# ------------------------------------------------------------------------------------------- JSON loader
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * (JSON_MAX_DEPTH + 1) + "]" * (JSON_MAX_DEPTH + 1), "nests deeper than 64 levels"),
        ("[" * 200_000, "nests deeper than 64 levels"),  # the parser's own recursion limit
        ('{"a": "' + "x" * (JSON_MAX_STRING + 1) + '"}', "holds a string of 1,048,577 characters"),
        ('{"a": ' + "9" * 5000 + "}", "is not valid JSON"),  # Python refuses ints of over 4,300 digits
        ('{"a": 1', "is not valid JSON"),  # truncated
        ("", "is not valid JSON"),
    ],
)
def test_hostile_json_is_one_line(text: str, message: str) -> None:
    with pytest.raises(UserInputError, match=message) as info:
        parse_json(text, "doc.json")
    assert "\n" not in str(info.value)


def test_invalid_utf8_names_the_offset() -> None:
    with pytest.raises(UserInputError, match="doc.json is not UTF-8 .invalid byte at offset 10"):
        parse_json(b'{"host": "\xff"}', "doc.json")


def test_json_at_the_limits_is_accepted() -> None:
    depth = JSON_MAX_DEPTH
    assert parse_json("[" * depth + "]" * depth, "doc") is not None
    assert parse_json(json.dumps({"s": "y" * JSON_MAX_STRING}), "doc")["s"] == "y" * JSON_MAX_STRING


def test_read_json_names_the_file_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / ".store.lock"
    path.write_text('{"pid": "twelve"}')
    with pytest.raises(UserInputError, match=r"\.store\.lock: field pid: Input should be a valid integer"):
        read_json(path, "lock")
    path.write_text('{"pid": -3}')
    with pytest.raises(UserInputError, match="field pid: Input should be greater than or equal to 0"):
        read_json(path, "lock")


def test_every_json_kind_with_a_cap_has_a_schema_and_every_schema_a_cap() -> None:
    from evrobust.safeio.schemas import SCHEMAS, model_of

    assert set(SCHEMAS) <= set(CAPS)
    for kind in SCHEMAS:
        assert hasattr(model_of(kind), "model_validate"), kind


def test_safeio_imports_only_the_standard_library_and_evrobust_errors() -> None:
    """preprocess uses it and must stay torch-free and quick to start: only pydantic, lazily, in schemas/."""
    allowed_evrobust = {"evrobust.errors"}
    for path in sorted(SAFEIO.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )  # fmt: skip
            for name in names:
                top = name.split(".")[0]
                if name.startswith("evrobust."):
                    assert name.startswith("evrobust.safeio") or name in allowed_evrobust, (path, name)
                else:
                    assert top not in {"torch", "numpy", "zarr", "safetensors", "nir", "h5py"}, (path, name)
                    if top == "pydantic":
                        assert "schemas" in path.parts, (path, name)


def test_the_caps_table_in_the_docs_is_the_code() -> None:
    from evrobust.safeio.caps import GiB, KiB, MiB

    def size(n: int) -> str:
        for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
            if n % scale == 0:
                return f"{n // scale} {unit}"
        return f"{n} B"

    text = (SAFEIO.parents[1] / "docs" / "reliability.md").read_text()
    table = text.split("**Size caps**")[1].split("\n\n")[1]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert rows == [f"| `{kind}` | {size(n)} |" for kind, n in CAPS.items()]
