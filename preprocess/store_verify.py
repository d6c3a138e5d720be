"""Verification of a store: :func:`verify_store` (the findings of ``evrobust preprocess verify``),
:func:`check_is_store` (is the path a store at all) and :func:`sha256_file`.

The store schema and the write protocol it checks are in :mod:`evrobust.preprocess.store`.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from evrobust.errors import UserInputError
from evrobust.preprocess.store import (
    BUILD_KEYS,
    FORMAT_NAME,
    FORMAT_VERSION,
    PENDING,
    SKIPPED,
    WRITTEN,
    _array,
    missing_array_chunks,
    missing_chunks,
    read_attrs,
)
from evrobust.safeio import cap, open_read, read_bytes
from evrobust.safeio import sha256_file as safe_sha256
from evrobust.safeio.files import describe_mode


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a raw source file's bytes (a regular file within the ``events`` cap)."""
    return safe_sha256(path, "events")


def store_files(path: str | Path) -> Iterator[tuple[str, Path, int]]:
    """Every file of a store's tree, in sorted order: ``(relative name, path, size)``.

    The walk never follows a link and refuses anything but regular files and directories (a FIFO among the
    chunk files would block zarr's read forever; a link would make the store read someone else's file), and
    a file over its kind's size cap (``store_metadata`` for ``zarr.json``, ``store_chunk`` else). A writer's
    leftover temporary chunk (``.c.*.tmp``) is skipped: readers never open it.

    Raises:
        UserInputError: naming the first offending file.
    """
    root = Path(path)
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name, reverse=True)
        except OSError as exc:
            raise UserInputError(f"cannot list {folder} ({exc.strerror or exc})") from None
        for entry in entries:
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                stack.append(Path(entry.path))
                continue
            name = Path(entry.path).relative_to(root).as_posix()
            if not stat.S_ISREG(st.st_mode):
                raise UserInputError(
                    f"{entry.path} is {describe_mode(st.st_mode)} inside the store {root}; a store holds "
                    "regular files only: rebuild it"
                )
            if entry.name.endswith(".tmp"):  # a killed writer's temporary chunk, never read
                continue
            kind = "store_metadata" if entry.name == "zarr.json" else "store_chunk"
            if st.st_size > cap(kind):
                raise UserInputError(
                    f"{entry.path} is {st.st_size:,} bytes, over the {cap(kind):,}-byte cap of a "
                    f"{kind.replace('_', ' ')} file; the store is damaged: rebuild it"
                )
            yield name, Path(entry.path), st.st_size


def check_store_files(path: str | Path) -> int:
    """Walk the tree with :func:`store_files` (refusing links, FIFOs, oversized files); the file count."""
    return sum(1 for _ in store_files(path))


def store_digest(path: str | Path) -> str:
    """The content identity of a store: sha256 over every file of its tree (relative name, size, bytes).

    Resume fingerprints (``attack``, ``analyze``, ``reproduce``) hold it, so a resume against a store whose
    content changed (a rebuilt, repaired or damaged store) starts over instead of mixing two datasets. The
    tree is read through :func:`store_files` and :mod:`evrobust.safeio`; about 0.6 s for the 6,187-image
    CIFAR-10 subset store on the 2-core CI machine.
    """
    digest = hashlib.sha256()
    for name, file, _ in store_files(path):
        kind = "store_metadata" if file.name == "zarr.json" else "store_chunk"
        with open_read(file, kind) as fh:
            data = fh.read(cap(kind) + 1)
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def check_is_store(path: str | Path) -> None:
    """Raise a UserInputError unless ``path`` is (at least the shell of) an evrobust store.

    ``evrobust preprocess verify`` uses it so that a path that is not a store at all (missing, a file, a
    plain directory, another zarr group) is a user error (exit 2); a damaged store is a finding (exit 1).
    """
    path = Path(path)
    if not path.is_dir():
        state = "is a file" if path.exists() else "does not exist"
        raise UserInputError(f"{path} {state}; `verify` checks a store built by `evrobust preprocess`")
    meta = path / "zarr.json"
    try:
        head = read_bytes(meta, "store_metadata")[: 1 << 20] if os.path.lexists(meta) else b""
    except OSError as exc:
        raise UserInputError(f"{meta} cannot be read ({exc.strerror or exc})") from None
    if not head or FORMAT_NAME.encode() not in head:
        raise UserInputError(f"{path} is not an evrobust store (no zarr.json naming {FORMAT_NAME})")


def verify_store(path: str | Path, raw_dir: str | Path | None = None, deep: bool = True) -> list[str]:
    """Check a store and return its problems (an empty list means it is sound).

    Checks: the format attributes; array shapes, dtypes and chunking; labels in ``[0, num_classes)``; every
    done flag set (1 written or 2 skipped) and the store marked complete; split index sets in range, disjoint
    within a scheme and free of skipped samples; recorded checksums consistent with the per-sample ones;
    with ``raw_dir``, the source files' sha256 against the recorded ones; with ``deep``, every written chunk
    decodes.
    """
    path = Path(path)
    problems: list[str] = []
    # Per-sample / per-source findings are grouped by kind: one line per kind with a count and the first
    # case, instead of one line per sample (a damaged store can have thousands).
    grouped: dict[str, list[str]] = {}

    def finding(kind: str, line: str) -> None:
        grouped.setdefault(kind, []).append(line)

    try:
        attrs = read_attrs(path)
        check_store_files(path)
    except UserInputError as exc:
        return [str(exc)]
    if attrs.get("format_version") != FORMAT_VERSION:
        problems.append(f"format_version {attrs.get('format_version')} is not {FORMAT_VERSION}")
        return problems
    missing = [k for k in BUILD_KEYS if k not in attrs]
    if missing:
        return [f"root attributes missing: {', '.join(missing)}"]
    n = len(attrs["sources"]) if attrs["kind"] == "events" else None
    try:
        frames = _array(path, "frames")
        labels_arr = _array(path, "labels")
        done_arr = _array(path, "done")
    except Exception as exc:  # noqa: BLE001 - any zarr failure here is a broken store, reported not raised
        return [f"arrays missing or unreadable: {type(exc).__name__}: {exc}"]
    n = frames.shape[0] if n is None else n
    want_shape = (n, *attrs["sample_shape"])
    if tuple(frames.shape) != want_shape:
        problems.append(f"frames has shape {tuple(frames.shape)}, expected {want_shape}")
    if frames.dtype != np.dtype(attrs["dtype"]):
        problems.append(f"frames has dtype {frames.dtype}, expected {attrs['dtype']}")
    if tuple(frames.chunks) != (1, *attrs["sample_shape"]):
        problems.append(f"frames chunks {tuple(frames.chunks)} are not one per sample")
    if tuple(labels_arr.shape) != (n,) or tuple(done_arr.shape) != (n,):
        problems.append(f"labels {labels_arr.shape} / done {done_arr.shape} do not have length {n}")
        return problems
    if n and missing_array_chunks(path, "labels", [0]).size:
        # zarr reads a missing chunk as its fill value: every label would silently be 0.
        problems.append("the labels chunk file (labels/c.0) is missing; rebuild the store")
        return problems
    labels = labels_arr[:]
    bad = np.flatnonzero((labels < 0) | (labels >= attrs["num_classes"]))
    if bad.size:
        problems.append(
            f"{bad.size} labels outside [0, {attrs['num_classes']}), first at index {int(bad[0])}"
        )
    if len(attrs["classes"]) != attrs["num_classes"]:
        problems.append(f"{len(attrs['classes'])} class names for {attrs['num_classes']} classes")
    flags = done_arr[:]
    pending = np.flatnonzero(flags == PENDING)
    if pending.size:
        problems.append(
            f"{pending.size} samples not written (first index {int(pending[0])}); "
            "rerun the preprocess command"
        )
    lost = missing_chunks(path, flags, len(attrs["sample_shape"]))
    if lost.size:
        problems.append(
            f"{lost.size} samples flagged done have no frames chunk file (first index {int(lost[0])}); "
            "rebuild the store (delete it and rerun the preprocess command)"
        )
    if attrs.get("complete"):
        # A complete store has a done chunk per sample; a missing one reads as 0 (pending).
        gone = missing_array_chunks(path, "done", range(n))
        if gone.size:
            problems.append(
                f"{gone.size} done flag chunk files are missing (first index {int(gone[0])}); "
                "rebuild the store"
            )
    if attrs["kind"] == "events":
        gone = missing_array_chunks(path, "source_sha256", np.flatnonzero(flags == WRITTEN))
        if gone.size:
            problems.append(
                f"{gone.size} samples flagged done have no source_sha256 chunk file (first index "
                f"{int(gone[0])}); rebuild the store"
            )
    odd = np.flatnonzero(flags > SKIPPED)
    if odd.size:
        problems.append(f"{odd.size} done flags hold unknown values")
    if not attrs.get("complete"):
        problems.append("the store is not marked complete (the writing run did not finish)")
        return problems
    skipped = set(np.flatnonzero(flags == SKIPPED).tolist())
    recorded_skips = {int(s["index"]) for s in attrs.get("skipped", [])}
    if attrs["kind"] == "events" and recorded_skips != skipped:
        problems.append(
            f"skipped samples {sorted(skipped)} differ from the recorded {sorted(recorded_skips)}"
        )
    for scheme, parts in attrs.get("splits", {}).items():
        seen: set[int] = set()
        for name, idx in parts.items():
            s = set(idx)
            if len(s) != len(idx):
                problems.append(f"split {scheme}/{name} repeats indices")
            if any(i < 0 or i >= n for i in s):
                problems.append(f"split {scheme}/{name} has indices outside [0, {n})")
            if s & seen:
                problems.append(f"split {scheme}/{name} overlaps another split of {scheme}")
            if s & skipped:
                problems.append(f"split {scheme}/{name} contains skipped samples")
            seen |= s
    default = attrs.get("splits", {}).get(attrs.get("default_split"), {})
    planned = attrs.get("planned_splits", {}).get(attrs.get("default_split"), {})
    if "train" in planned and not default.get("train"):  # (an empty val split is legal for tiny stores)
        problems.append(f"split {attrs['default_split']}/train is empty; training cannot use this store")
    for key in ("scale", "mean", "std"):
        if key not in attrs:
            problems.append(f"attribute {key} missing")
    if attrs.get("scale", 1) is not None and not attrs.get("scale", 1) > 0:
        problems.append(f"scale {attrs.get('scale')} is not positive")
    recorded = attrs.get("source_sha256", {})
    if attrs["kind"] == "events":
        digests = _array(path, "source_sha256")[:]
        for i in np.flatnonzero(flags == WRITTEN):
            src = attrs["sources"][i]
            if recorded.get(src) != bytes(digests[i]).hex():
                line = f"sample {int(i)} ({src}): per-sample checksum differs from the recorded one"
                finding("checksum", line)
    if raw_dir is not None:
        raw = Path(raw_dir)
        from evrobust.preprocess.sources import read_source_bytes, split_zip_source

        for src, digest in recorded.items():
            file = raw / src
            if split_zip_source(src) is not None:  # a member of a per-class zip, hashed through the archive
                try:
                    actual = hashlib.sha256(read_source_bytes(raw, src)).hexdigest()
                except UserInputError as exc:
                    finding("unreadable source", f"source {src}: {exc}")
                    continue
                if actual != digest:
                    finding("changed source", f"source {src}: sha256 differs from the recorded one (zip)")
            elif not file.is_file():
                finding("missing source", f"source {src} is missing under {raw}")
            elif sha256_file(file) != digest:
                finding("changed source", f"source {src}: sha256 differs from the recorded one")
    if deep:
        for i in np.flatnonzero(flags == WRITTEN):
            try:
                frames[int(i)]
            except Exception as exc:  # noqa: BLE001 - a corrupt chunk is a finding, not a crash
                message = " ".join(str(exc).split())[:160]
                line = f"sample {int(i)}: chunk unreadable ({type(exc).__name__}: {message})"
                finding("unreadable chunk", line)
    for kind, lines in grouped.items():
        problems.append(lines[0] if len(lines) == 1 else f"{len(lines)} x {kind}, first: {lines[0]}")
    return problems
