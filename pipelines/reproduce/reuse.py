"""Reuse a completed training run from another output directory (``--runs-from``).

``evrobust reproduce`` and ``evrobust leaderboard`` train every run under ``<out>/runs/<key>-<hash>``. The
same run is often already trained elsewhere: the CIFAR-10 evidence runs of ``evrobust train --out
evidence/cifar10/wrn16-at`` have exactly the options of the masking study's WRN-16 AT run, and one
leaderboard's VGG-11 runs are another table's. Training them again costs hours of CPU and gives a second,
different checkpoint of the same recipe. ``--runs-from DIR`` looks for such a run and copies it in instead.

A candidate is taken only when all of this holds (anything else is passed over, with one logged line when
the candidate looked like the run but differed):

- it is a run directory (``config.json`` of format ``evrobust-run``, read and checked by
  :func:`~evrobust.pipelines.train.run_dir.read_config`);
- its recorded training identity (:meth:`~evrobust.pipelines.train.config.TrainConfig.identity`: every option
  that changes what is computed, the seed included) equals the spec's;
- its test store has the same content digest as the store the spec names
  (:func:`evrobust.preprocess.store_verify.store_digest`), so the model saw the same images;
- it trained every epoch (``metrics.jsonl`` has ``epochs`` records) and has both checkpoints.

The copy goes through :mod:`evrobust.safeio` (regular files only, never through a link, within each kind's
size cap, written atomically) into a directory that does not exist yet, and a ``reused-from.json`` beside
the files records the source path and the sha256 of the best checkpoint, so a reader of ``<out>`` sees where
the run came from. Attacks and analyses are not copied: their cache keys name the run's path in ``<out>``,
and they are recomputed (or reused from ``<out>``'s own cache) as for any other run.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evrobust.errors import UserInputError
from evrobust.pipelines.reproduce.specs import RunSpec
from evrobust.pipelines.train.run_dir import (
    BEST_CHECKPOINT,
    CONFIG_FILE,
    LAST_CHECKPOINT,
    METRICS_FILE,
    read_config,
    read_metrics,
    write_json_atomic,
)
from evrobust.safeio import fsync_directory, read_bytes, sha256_file, write_bytes_atomic

if TYPE_CHECKING:
    from evrobust.pipelines.reproduce.runner import ContentDigests

log = logging.getLogger(__name__)

REUSED_FROM_FILE = "reused-from.json"
"""Written into a copied run directory: where it came from and its best checkpoint's sha256."""

_COPIED: tuple[tuple[str, str], ...] = (
    (CONFIG_FILE, "run_config"),
    (METRICS_FILE, "metrics"),
    (LAST_CHECKPOINT, "checkpoint"),
    (BEST_CHECKPOINT, "checkpoint"),  # last: a directory with a best checkpoint counts as trained
)
"""The files of a run directory that are copied, with the safeio kind each is read as."""


def check_sources(sources: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The ``--runs-from`` directories as paths; a missing one or a file is a UserInputError (one line)."""
    paths = []
    for source in sources:
        path = Path(source)
        if not path.is_dir():
            raise UserInputError(f"--runs-from {source}: no such directory")
        paths.append(path)
    return paths


def _candidates(source: Path) -> Iterator[Path]:
    """Run directories in ``source``: itself, its children, ``runs/``'s children (sorted; links skipped)."""
    if (source / CONFIG_FILE).is_file():
        yield source
        return
    for parent in (source, source / "runs"):
        if not parent.is_dir() or parent.is_symlink():
            continue
        for child in sorted(parent.iterdir()):
            if child.is_dir() and not child.is_symlink() and (child / CONFIG_FILE).is_file():
                yield child


def expected_identity(spec: RunSpec, store: Path) -> dict[str, Any]:
    """The training identity a run of ``spec`` on ``store`` records in its ``config.json``: the spec's
    options with every default resolved for the store's dataset, as ``evrobust train`` resolves them."""
    from evrobust.datasets import store_info
    from evrobust.pipelines.train.config import TrainConfig, resolve_config
    from evrobust.safeio import roundtrip

    info = store_info(store)
    return roundtrip(resolve_config(TrainConfig(**spec.train), info.name, info.kind, info.frames).identity())


def find_reusable_run(spec: RunSpec, sources: Sequence[Path], *, data_dir: str | None,
                      digests: ContentDigests | None = None) -> Path | None:
    """The first completed run in ``sources`` that computes exactly what ``spec`` would, or None.

    Args:
        spec: the run to look for.
        sources: directories given with ``--runs-from`` (see :func:`_candidates` for where it looks).
        data_dir: the data directory the spec's store name is resolved in.
        digests: the caller's content digests (each store is hashed once); a fresh one when None.
    """
    from evrobust.datasets import resolve_data
    from evrobust.pipelines.attack.inputs import run_test_store
    from evrobust.pipelines.reproduce.runner import ContentDigests

    if not sources:
        return None
    digests = digests if digests is not None else ContentDigests(data_dir)
    store_path = resolve_data(str(spec.train["data"]), data_dir)
    identity = expected_identity(spec, store_path)
    wanted_store: str | None = None
    epochs = int(spec.train["epochs"])
    for source in sources:
        for candidate in _candidates(source):
            try:
                config = read_config(candidate)
            except UserInputError as exc:
                log.info("--runs-from: skipping %s (%s)", candidate, exc)
                continue
            if config.get("identity") != identity:
                continue
            try:
                if wanted_store is None:
                    wanted_store = digests.store_at(store_path)
                store = digests.store_at(run_test_store(config, data_dir))
            except (UserInputError, OSError) as exc:
                log.warning("--runs-from: %s has %s's options but its store cannot be checked (%s)",
                            candidate, spec.key, exc)
                continue
            if store != wanted_store:
                log.warning("--runs-from: %s has %s's options but was trained on a different store",
                            candidate, spec.key)
                continue
            done = len(read_metrics(candidate))
            missing = [name for name, _ in _COPIED if not (candidate / name).is_file()]
            if done < epochs or missing:
                log.warning("--runs-from: %s has %s's options but is not complete (%d of %d epochs%s)",
                            candidate, spec.key, done, epochs,
                            f"; missing {', '.join(missing)}" if missing else "")
                continue
            return candidate
    return None


def copy_run(source: Path, target: Path) -> None:
    """Copy the run directory ``source`` into the new directory ``target`` (see the module docstring).

    Raises:
        UserInputError: ``target`` exists, or a source file is a link, not regular or over its size cap.
    """
    if os.path.lexists(target):
        raise UserInputError(f"{target} exists; --runs-from copies a run only into a new directory")
    contents = {name: read_bytes(source / name, kind) for name, kind in _COPIED}
    # Written into a hidden sibling and renamed: a copy cut short never leaves a directory that looks like
    # a completed run (its metrics.jsonl complete, a checkpoint missing).
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.copying-", dir=target.parent))
    try:
        os.chmod(staging, 0o755)  # mkdtemp's 0o700 would make the copy the one private run directory
        for name, _ in _COPIED:
            write_bytes_atomic(staging / name, contents[name])
        write_json_atomic(staging / REUSED_FROM_FILE, {
            "source": str(source.resolve()),
            "best_checkpoint_sha256": sha256_file(staging / BEST_CHECKPOINT, "checkpoint"),
        })
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_directory(target.parent)
