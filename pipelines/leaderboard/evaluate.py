"""One entry's evaluation, cached like ``evrobust reproduce``'s attacks but with the per-sample flags kept.

``evrobust reproduce`` caches an attack as ``<out>/cache/attack-<hash>.json`` without its per-sample flags
(its tables need accuracies only). The leaderboard's ranking needs the flags (paired McNemar tests), so its
evaluations are cached beside them as ``<out>/cache/leaderboard-<hash>.json``: the same mechanism — named by
the options, reused only while the fingerprint's content digests (the run's best checkpoint, the test store;
:class:`~evrobust.pipelines.reproduce.runner.ContentDigests`) still match, otherwise recomputed with one log
line saying why — holding the whole attack document ``evrobust attack`` wrote.

Also here: :func:`test_set_of`, the identity of the samples a table is evaluated on, computed before any
training so that an ``--add`` on other samples is refused before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from evrobust.errors import UserInputError
from evrobust.pipelines.leaderboard.spec import EvalSettings
from evrobust.safeio import read_json, roundtrip

__all__ = ["cached_evaluation", "evaluate_run", "test_set_of"]

log = logging.getLogger(__name__)

CACHE_PREFIX = "leaderboard-"


def _hash(document: Any) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _options(run: Path, settings: EvalSettings) -> dict[str, Any]:
    return {
        "run": str(run.resolve()),
        "mode": "whitebox",
        "suite": settings.suite,
        "eps": settings.eps,
        "ensemble": settings.ensemble,
        "limit": settings.limit,
        # run_attack seeds its draws per batch: another batch size is another evaluation
        "batch_size": settings.batch_size,
        "budget": dict(settings.budget),
    }


def cache_path(root: Path, run: Path, settings: EvalSettings) -> Path:
    """Where the evaluation of ``run`` under ``settings`` is cached."""
    return root / "cache" / f"{CACHE_PREFIX}{_hash(_options(run, settings))}.json"


def cached_evaluation(root: Path, run: Path, settings: EvalSettings, fingerprint: dict[str, Any]
                      ) -> dict[str, Any] | None:
    """The cached attack document of ``run`` if it was computed with ``fingerprint``, else None.

    Read through :mod:`evrobust.safeio` as an ``attack_result`` (size cap, no link followed) and validated
    as one; a file that cannot be used is recomputed, with one warning.
    """
    from evrobust.safeio.schemas import validate

    path = cache_path(root, run, settings)
    if not os.path.lexists(path):
        return None
    try:
        document = read_json(path, "attack_result", validate=False)
        if not isinstance(document, dict) or not isinstance(document.get("fingerprint"), dict):
            raise UserInputError(f"{path} is not a cache entry (no fingerprint)")
        if document["fingerprint"] != roundtrip(fingerprint):
            changed = sorted(k for k in set(document["fingerprint"]) | set(fingerprint)
                             if document["fingerprint"].get(k) != roundtrip(fingerprint).get(k))
            log.warning("re-evaluating %s: %s changed since %s", run.name, ", ".join(changed[:5]), path.name)
            return None
        validate(document.get("result"), "attack_result", str(path))
    except UserInputError as exc:
        log.warning("re-evaluating %s: its cached result cannot be used (%s)", run.name,
                    " ".join(str(exc).split()))
        return None
    return document["result"]


def evaluate_run(run: Path, settings: EvalSettings, root: Path, *, data_dir: str | None, device: str,
                 digests: Any) -> tuple[dict[str, Any], bool]:
    """``(attack document with flags, whether it was computed now)`` of ``run`` under the protocol.

    Args:
        digests: the reproduction's :class:`~evrobust.pipelines.reproduce.runner.ContentDigests`.
    """
    from evrobust.pipelines.attack.pipeline import run_attack
    from evrobust.pipelines.train.run_dir import write_json_atomic

    fingerprint = _options(run, settings) | {
        "checkpoint_sha256": digests.checkpoint(run),
        "store_sha256": digests.store(run),
    }
    result = cached_evaluation(root, run, settings, fingerprint)
    if result is not None:
        log.info("reusing the evaluation of %s", run.name)
        return result, False
    log.info("evaluating %s (suite %s, %s samples)", run.name, settings.suite, settings.limit or "all")
    result = run_attack(run, mode="whitebox", suite=settings.suite, eps=settings.eps_text,
                        ensemble=settings.ensemble, limit=settings.limit, batch_size=settings.batch_size,
                        device=device, data_dir=data_dir, **settings.budget)
    result = roundtrip(result)
    path = cache_path(root, run, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"fingerprint": fingerprint, "result": result})
    return result, True


def test_set_of(data: str, limit: int | None, data_dir: str | None) -> dict[str, Any]:
    """``{"store", "split", "samples", "labels_sha256"}`` of the first ``limit`` test samples of ``data``,
    as ``evrobust attack`` records them (:func:`evrobust.pipelines.attack.inputs.test_set_identity`).

    Raises:
        UserInputError: the data cannot be resolved, or its test split is empty.
    """
    from evrobust.datasets import resolve_data
    from evrobust.pipelines.attack.inputs import open_test_split, test_set_identity

    store = resolve_data(data, data_dir)
    dataset, n = open_test_split(store, limit)
    if n == 0:
        raise UserInputError(f"the test split of {store} is empty")
    return test_set_identity(dataset, store, n)
