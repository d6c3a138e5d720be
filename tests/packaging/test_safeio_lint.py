"""Lint: every file evrobust opens goes through ``evrobust.safeio`` (issue: one safe way in and out).

The test reads every module of the four source folders with ``ast`` and lists each call that opens, reads,
writes, renames or deletes a file by path, or parses JSON from outside: builtin ``open``, ``os.open``,
``os.unlink``, ``os.replace``, ``shutil.rmtree``, ``json.load(s)``, ``torch.load``, ``zarr.open_*``,
``safe_open``, ``h5py.File``, ``tempfile.*``, and the ``Path`` methods ``read_text``, ``read_bytes``,
``write_text``, ``write_bytes``, ``unlink``, ``open``, ``touch``, ``rename``. Outside ``evrobust/safeio/``
each such call must be in :data:`ALLOWED` with the reason it is safe; a new one fails the test, and so does an
allowed entry that no longer exists (the list stays true).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("evrobust", "pipelines", "preprocess", "datasets")
SAFEIO = ROOT / "evrobust" / "safeio"

FUNCTIONS = {
    "open",
    "os.open",
    "os.fdopen",
    "os.unlink",
    "os.remove",
    "os.replace",
    "os.rename",
    "shutil.rmtree",
    "shutil.copy",
    "shutil.copyfile",
    "shutil.move",
    "json.load",
    "json.loads",
    "pickle.load",
    "pickle.loads",
    "np.load",
    "np.save",
    "torch.load",
    "torch.save",
    "safe_open",
    "zarr.open",
    "zarr.open_array",
    "zarr.open_group",
    "h5py.File",
    "tempfile.mkdtemp",
    "tempfile.mkstemp",
    "tempfile.NamedTemporaryFile",
    "tempfile.TemporaryDirectory",
    "tarfile.open",
    "zipfile.ZipFile",
}
METHODS = {
    "read_text", "read_bytes", "write_text", "write_bytes", "unlink", "open", "touch", "rename", "rmdir",
}  # fmt: skip

ALLOWED: dict[tuple[str, str, str], str] = {
    # (file, enclosing function, call) -> why it is safe.
    ("preprocess/locks.py", "_unlink_if_same", "os.unlink"): (
        "unlinks the lock file only after lstat shows it is the very inode this process holds locked"
    ),
    ("preprocess/download.py", "fetch", "os.replace"): (
        "renames the verified .part into place after check_write_target(target); rename never follows links"
    ),
    ("preprocess/extract.py", "extract_tar", "tempfile.mkdtemp"): (
        "a fresh private directory (mode 0o700, random name) beside the target"
    ),
    ("preprocess/extract.py", "extract_tar", "tarfile.open"): (
        "reads the archive from a file object opened by safeio.open_read (fileobj=)"
    ),
    ("preprocess/extract.py", "extract_tar", "os.replace"): (
        "moves the fully extracted folder (created by this call in its private directory) into place"
    ),
    ("preprocess/extract.py", "extract_tar", "shutil.rmtree"): (
        "removes this call's own private scratch directory; rmtree never follows links inside it"
    ),
    ("preprocess/sources.py", "read_source_bytes", "zipfile.ZipFile"): (
        "reads the zip from a file object opened by safeio.open_read"
    ),
    ("preprocess/sources.py", "read_source_bytes", ".open"): "a member of that zip (ZipFile.open), bounded",
    ("preprocess/sources.py", "zip_event_members", "zipfile.ZipFile"): (
        "lists the zip from a file object opened by safeio.open_read"
    ),
    ("pipelines/reproduce/reuse.py", "copy_run", "tempfile.mkdtemp"): (
        "a fresh private directory (random name) beside the target run, for the copy being written"
    ),
    ("pipelines/reproduce/reuse.py", "copy_run", "os.rename"): (
        "moves the complete copy (created by this call in its own staging directory) into place after "
        "checking that nothing is at the target; rename never follows links"
    ),
    ("pipelines/reproduce/reuse.py", "copy_run", "shutil.rmtree"): (
        "removes this call's own staging directory after a failure; rmtree never follows links inside it"
    ),
    ("pipelines/reproduce/cost.py", "_warmup", "tempfile.TemporaryDirectory"): (
        "a fresh private directory (mode 0o700, random name) for a throw-away warm-up run"
    ),
    ("preprocess/store.py", "_array", "zarr.open_array"): (
        "store arrays: readers walk the whole store with store_verify.store_files first (no link, FIFO or "
        "oversized file), writers own the store under its lock"
    ),
    ("preprocess/store.py", "_create_arrays", "zarr.open_group"): (
        "creates the store's arrays on the real path, under the store's lock (mode w)"
    ),
    ("preprocess/store.py", "_write_chunk", "os.replace"): (
        "renames this writer's own temporary chunk (created O_EXCL | O_NOFOLLOW) into place"
    ),
    ("preprocess/store_stats.py", "finalize_store", "zarr.open_group"): (
        "writes the root attributes of a store this process holds the lock of"
    ),
    ("datasets/stores.py", "_open_array", "zarr.open_array"): (
        "read-only, after _check_store_arrays walked the store with store_verify.store_files"
    ),
    ("evrobust/checkpoint.py", "_read_safetensors", "safe_open"): (
        "maps the descriptor opened by safeio.open_read (/proc/self/fd/N)"
    ),
    ("evrobust/checkpoint.py", "load_torch_checkpoint", "torch.load"): (
        "weights_only unpickler over a file object opened by safeio.open_read, only with trust=True"
    ),
}


def _call_name(node: ast.Call) -> str | None:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        if isinstance(func.value, ast.Name):
            dotted = f"{func.value.id}.{func.attr}"
            if dotted in FUNCTIONS:
                return dotted
        if func.attr in METHODS:
            return f".{func.attr}"
    return None


def _is_roundtrip(node: ast.Call, name: str) -> bool:
    """``json.loads(json.dumps(x))``: no outside input is parsed."""
    if name != "json.loads" or not node.args or not isinstance(node.args[0], ast.Call):
        return False
    inner = _call_name(node.args[0])
    return inner is None and ast.unparse(node.args[0].func) == "json.dumps"


def file_calls() -> set[tuple[str, str, str]]:
    """Every (file, enclosing function, call) that touches files by path, outside evrobust/safeio."""
    found: set[tuple[str, str, str]] = set()
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if SAFEIO in path.parents:
                continue
            rel = path.relative_to(ROOT).as_posix()
            tree = ast.parse(path.read_text(), filename=rel)
            stack: list[tuple[ast.AST, str]] = [(tree, "<module>")]
            while stack:
                node, where = stack.pop()
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    where = node.name
                if isinstance(node, ast.Call):
                    name = _call_name(node)
                    if name is not None and (name in FUNCTIONS or name.startswith(".")):
                        if not _is_roundtrip(node, name) and not (name == "open" and where == "<lambda>"):
                            found.add((rel, where, name))
                stack.extend((child, where) for child in ast.iter_child_nodes(node))
    return found


def test_every_file_access_goes_through_safeio() -> None:
    unexplained = sorted(file_calls() - set(ALLOWED))
    assert not unexplained, (
        "files opened outside evrobust.safeio (route them through it, or add an entry with the reason to "
        "ALLOWED):\n" + "\n".join(f"  {f}: {fn}() calls {c}" for f, fn, c in unexplained)
    )


def test_the_allowed_list_is_current() -> None:
    stale = sorted(set(ALLOWED) - file_calls())
    assert not stale, "ALLOWED entries that no longer exist:\n" + "\n".join(map(str, stale))


def test_the_lint_sees_a_planted_open(tmp_path: Path) -> None:
    """The scanner finds each kind of call it claims to (it cannot pass vacuously)."""
    source = (
        "import json, os\n"
        "def f(p):\n"
        "    open(p)\n"
        "    os.unlink(p)\n"
        "    p.read_text()\n"
        "    json.loads(p)\n"
        "    json.loads(json.dumps(p))\n"
    )
    tree = ast.parse(source)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    names = sorted(
        name for n in calls if (name := _call_name(n)) is not None and not _is_roundtrip(n, name)
        if name in FUNCTIONS or name.startswith(".")
    )
    assert names == [".read_text", "json.loads", "open", "os.unlink"]
