"""Verification of a store: :func:`verify_store` (the findings of ``evrobust preprocess verify``),
:func:`check_is_store` (is the path a store at all) and :func:`sha256_file`.

The store schema and the write protocol it checks are in :mod:`evrobust.preprocess.store`.
"""

from __future__ import annotations

import hashlib
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
    missing_chunks,
    read_attrs,
)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
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
        head = meta.read_bytes()[: 1 << 20] if meta.is_file() else b""
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
