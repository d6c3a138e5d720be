"""Defaults that chain the commands: preprocess -> train -> attack without naming paths.

* :func:`newest_store`: ``evrobust train`` without ``--data`` trains on the most recently built complete store
  in the data directory.
* :func:`newest_run`: ``evrobust attack`` without ``--run`` attacks the most recently trained run in
  ``runs/``.
* :func:`transfer_source`: ``--mode blackbox`` without ``--source`` crafts on an independently trained vanilla
  run of the same data and architecture (another seed); without one, the error names the exact
  ``evrobust train`` command that makes it. There is never a silent white-box fallback.

Stores are read through their attributes and runs through their ``config.json`` (torch-free); only
:func:`train_defaults` loads the training modules.
"""

from __future__ import annotations

import json
import logging
import shlex
from pathlib import Path
from typing import Any

from evrobust.errors import UserInputError

log = logging.getLogger(__name__)

RUNS_DIR = Path("runs")  # where `evrobust train` puts a run without --out
STORE_SUFFIX = ".zarr"
START_HINT = (
    "build one with `evrobust preprocess cifar10dvs --frames 10` (downloads CIFAR10-DVS) "
    "or, offline, `evrobust preprocess digits`"
)
_DATA_KEYS = ("dataset", "kind", "num_classes", "in_channels", "input_size", "frames", "split_sizes")
_RUNTIME_MODEL_KEYS = ("neuron_backend",)  # a run's weights do not depend on it


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return -1


def _check_dir(path: Path, what: str, flag: str) -> None:
    if path.exists() and not path.is_dir():
        raise UserInputError(f"the {what} {path} is a file, not a directory; give {flag} a directory")


def complete_stores(data_dir: Path) -> list[Path]:
    """The complete stores directly in ``data_dir``, newest first (by the time their root attrs were written).

    A store's root ``zarr.json`` is rewritten last, when the build marks it complete, so its modification
    time is the time the store was built.
    """
    from evrobust.preprocess.store import read_attrs

    _check_dir(data_dir, "data directory", "--data-dir")
    if not data_dir.is_dir():
        return []
    stores = []
    for path in data_dir.iterdir():
        if not path.name.endswith(STORE_SUFFIX) or not path.is_dir():
            continue
        try:
            if read_attrs(path).get("complete") is True:
                stores.append(path)
        except UserInputError:
            continue  # not a store, or a damaged one: never a default
    return sorted(stores, key=lambda p: (_mtime(p / "zarr.json"), p.name), reverse=True)


def newest_store(data_dir: Path) -> tuple[Path, int]:
    """The most recently built complete store in ``data_dir`` and how many there are.

    Raises:
        UserInputError: ``data_dir`` is a file, or holds no complete store (the message names the
            preprocess command that builds one).
    """
    stores = complete_stores(data_dir)
    if not stores:
        raise UserInputError(
            f"no preprocessed store in {data_dir}/ to train on; {START_HINT}; or pass --data"
        )
    return stores[0], len(stores)


def read_run_config(run_dir: Path) -> dict[str, Any] | None:
    """The ``config.json`` of a run directory, or None when it is not a readable run.

    Read as a ``run_config`` document (:func:`evrobust.safeio.read_json`): a regular file within its size
    cap, valid JSON, ``format`` ``evrobust-run`` and every field the defaults compare or print of the type
    and range :class:`evrobust.safeio.schemas.run.RunConfig` states. Anything else (a link, a FIFO, a damaged
    or foreign file) is never a default; the reason is logged at debug level.
    """
    from evrobust.safeio import read_json

    path = run_dir / "config.json"
    try:
        document = read_json(path, "run_config")
    except UserInputError as exc:
        log.debug("not a run for the defaults: %s", exc)
        return None
    return document if isinstance(document, dict) else None  # the schema makes it an object; typed for mypy


def runs_with_checkpoint(runs_dir: Path, checkpoint: str = "best") -> list[tuple[Path, dict[str, Any]]]:
    """Runs in ``runs_dir`` that hold ``checkpoint-<checkpoint>``, most recently trained first.

    "Most recently trained" is the newest ``checkpoint-last`` (rewritten after every epoch).
    """
    _check_dir(runs_dir, "runs directory", "--run")
    if not runs_dir.is_dir():
        return []
    runs = []
    for path in runs_dir.iterdir():
        if not path.is_dir() or not (path / f"checkpoint-{checkpoint}.safetensors").is_file():
            continue
        config = read_run_config(path)
        if config is not None:
            runs.append((path, config))
    return sorted(runs, key=lambda r: (_mtime(r[0] / "checkpoint-last.safetensors"), r[0].name), reverse=True)


def newest_run(runs_dir: Path = RUNS_DIR, checkpoint: str = "best") -> tuple[Path, int]:
    """The most recently trained run in ``runs_dir`` and how many runs there are.

    Raises:
        UserInputError: no run with that checkpoint (the message names the command that trains one).
    """
    runs = runs_with_checkpoint(runs_dir, checkpoint)
    if not runs:
        raise UserInputError(
            f"no trained run in {runs_dir}/ to attack; train one with `evrobust train --defense sr_star "
            "--lam 0.002` (after `evrobust preprocess ...`), or pass --run DIR"
        )
    return runs[0][0], len(runs)


def _data_identity(config: dict[str, Any]) -> dict[str, Any]:
    data = config.get("data", {})
    return {k: data.get(k) for k in _DATA_KEYS}


def _architecture(config: dict[str, Any]) -> dict[str, Any]:
    model = config.get("model", {})
    return {k: v for k, v in model.items() if k not in _RUNTIME_MODEL_KEYS and k not in ("mean", "std")}


def _seed(config: dict[str, Any]) -> Any:
    return config.get("train", {}).get("seed")


def transfer_source(target: Path, runs_dir: Path = RUNS_DIR, checkpoint: str = "best") -> Path:
    """An independently trained vanilla run for black-box transfer onto ``target``.

    It must be a ``vanilla`` run on the same data (dataset, kind, classes, input shape, frames, split sizes)
    with the same architecture (model config apart from the neuron backend) and another seed; the most
    recently trained one is chosen.

    Raises:
        UserInputError: no such run; the message holds the exact ``evrobust train`` command that makes one.
    """
    target_config = read_run_config(target)
    if target_config is None:
        raise UserInputError(
            f"--run {target} is not an evrobust run (no readable config.json), so no --source can be chosen "
            "for --mode blackbox"
        )
    resolved = target.resolve()
    for path, config in runs_with_checkpoint(runs_dir, checkpoint):
        if (
            path.resolve() != resolved
            and config.get("train", {}).get("defense") == "vanilla"
            and _data_identity(config) == _data_identity(target_config)
            and _architecture(config) == _architecture(target_config)
            and _seed(config) != _seed(target_config)
        ):
            return path
    raise UserInputError(
        f"--mode blackbox needs --source, and {runs_dir}/ holds no vanilla run on the same data and "
        f"architecture with another seed; train one with `{source_train_command(target_config)}` and rerun, "
        "or pass --source RUN"
    )


def source_train_command(target_config: dict[str, Any]) -> str:
    """The ``evrobust train`` command of a vanilla transfer source for the run described by ``target_config``.

    Same data, model, width, model overrides, T (images), training subset and epochs as the target; defense
    vanilla; the seed after the target's.
    """
    train = target_config.get("train", {})
    data = target_config.get("data", {})
    model = target_config.get("model", {})
    data_arg = train.get("data") or data.get("store")
    args = ["evrobust", "train", "--data", str(data_arg)]
    if train.get("data_dir"):
        args += ["--data-dir", str(train["data_dir"])]
    args += ["--model", str(train.get("model", model.get("name"))), "--width", str(train.get("width", 1.0))]
    if data.get("kind") == "images" and train.get("T") is not None:
        args += ["--T", str(train["T"])]
    for key, value in (train.get("model_options") or {}).items():
        text = value if isinstance(value, str) else json.dumps(value)
        args += ["--model-opt", f"{key}={text}"]
    for key in ("limit_train", "limit_val"):  # a target trained on a subset gets a source on the same subset
        if train.get(key) is not None:
            args += ["--" + key.replace("_", "-"), str(train[key])]
    args += ["--defense", "vanilla", "--epochs", str(train.get("epochs", 200))]
    seed = train.get("seed", 0)
    args += ["--seed", str(seed + 1 if isinstance(seed, int) else 1)]
    return " ".join(shlex.quote(a) for a in args)


def train_defaults(config: Any) -> tuple[dict[str, Any], str]:
    """What ``evrobust train`` will use for the options left to the data: the resolved values and the dataset.

    Args:
        config: the :class:`~evrobust.pipelines.train.config.TrainConfig` built from the command line.

    Returns:
        ``({option name: value}, dataset name)`` with ``T``, ``batch_size``, ``augment``, ``at_method``,
        ``lam``, ``weight_decay`` as the training will resolve them, and ``out`` (the default run directory).
    """
    from evrobust.datasets import resolve_data, store_info
    from evrobust.pipelines.train.config import resolve_config
    from evrobust.pipelines.train.pipeline import default_run_dir

    info = store_info(resolve_data(config.data, config.data_dir))
    # The training resolves the same options again and logs its warnings then; not twice.
    quiet = logging.getLogger("evrobust.pipelines.train.config")
    was_disabled, quiet.disabled = quiet.disabled, True
    try:
        resolved = resolve_config(config, info.name, info.kind, info.frames)
    finally:
        quiet.disabled = was_disabled
    values = {
        name: getattr(resolved, name)
        for name in ("T", "batch_size", "augment", "at_method", "lam", "weight_decay")
    }
    # The training attack's radius, step and iterations depend on the defense (evrobust.defenses.
    # attack_defaults), so the defaults line names the resolved ones; eps in 255ths where it is one.
    from evrobust.pipelines.attack.inputs import eps_text

    if resolved.at_eps is not None:
        values["at_eps"] = eps_text(float(resolved.at_eps))
    for name in ("at_step", "at_steps"):
        if getattr(resolved, name) is not None:
            values[name] = getattr(resolved, name)
    values["out"] = Path(config.out) if config.out else default_run_dir(resolved, info.name)
    return values, info.name
