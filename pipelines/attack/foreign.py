"""``evrobust attack --model pkg.module:factory --weights FILE --data NAME``: a model trained elsewhere.

The model is built by calling an importable factory with no arguments, then loaded with the weights
(:func:`evrobust.checkpoint.load_weights`: safetensors, or a torch file read with ``weights_only=True``; a
pickle that would run code is refused and never executed). The weights are read and checked *before* the
factory's module is imported, so a refused file costs no user code.

The run directory (``--run``) it evaluates into is an ordinary evrobust run directory that ``report`` and
``compare`` read: ``config.json`` (format ``evrobust-run``) records the data store like ``evrobust train``
does, ``model.name`` is the factory, and a ``foreign`` section holds the factory, the weights' path and
their sha256. evrobust never imports code named only in a file: attacking such a run again needs ``--model``
and ``--weights`` again, and they must match what ``config.json`` records (another factory or other weights
are refused; a resume would mix two models).
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from evrobust.errors import UserInputError

__all__ = ["FOREIGN_KEY", "build_foreign_model", "foreign_config", "parse_factory"]

logger = logging.getLogger(__name__)

FOREIGN_KEY = "foreign"
"""The ``config.json`` section of a run evaluated with ``--model``."""
_FACTORY = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$")


def parse_factory(text: str) -> tuple[str, str]:
    """``"pkg.module:factory"`` -> ``("pkg.module", "factory")``; one error line for anything else."""
    match = _FACTORY.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise UserInputError(
            f"--model must name an importable factory as pkg.module:function (e.g. mynets.csnn:build), "
            f"got {text!r}"
        )
    return match.group(1), match.group(2)


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def _call_factory(text: str) -> nn.Module:
    module_name, attr = parse_factory(text)
    # The working directory first, as `python -m` does: a user's own module beside their data is found.
    cwd = str(Path.cwd())
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise UserInputError(f"--model {text}: cannot import {module_name!r} ({exc})") from None
        except Exception as exc:  # noqa: BLE001 - any error in the user's module is one line, not a traceback
            detail = _one_line(exc)
            raise UserInputError(f"--model {text}: importing {module_name!r} failed ({detail})") from None
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise UserInputError(f"--model {text}: {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise UserInputError(f"--model {text}: {attr!r} is not callable")
    try:
        model = target()
    except Exception as exc:  # noqa: BLE001 - the factory is user code
        raise UserInputError(f"--model {text}: the factory raised {_one_line(exc)}") from None
    if not isinstance(model, nn.Module):
        kind = type(model).__name__
        raise UserInputError(f"--model {text}: the factory returned {kind}, not a torch.nn.Module")
    return model


def _check_keys(model: nn.Module, tensors: dict[str, torch.Tensor], weights: Path) -> None:
    """One line when the weights do not fit the model: missing or unexpected keys, or another shape."""
    own = model.state_dict()
    missing = [k for k in own if k not in tensors]
    extra = [k for k in tensors if k not in own]
    if missing or extra:
        parts = []
        for names, what in ((missing, "missing"), (extra, "unexpected")):
            if names:
                more = ", ..." if len(names) > 3 else ""
                parts.append(f"{len(names)} {what} ({', '.join(names[:3])}{more})")
        raise UserInputError(f"the weights in {weights} do not fit the model: " + "; ".join(parts) + " keys")
    for key, value in own.items():
        if tuple(value.shape) != tuple(tensors[key].shape):
            raise UserInputError(
                f"the weights in {weights} do not fit the model: {key!r} has shape "
                f"{tuple(tensors[key].shape)}, the model expects {tuple(value.shape)}"
            )


def build_foreign_model(factory: str, weights: Path, device: torch.device) -> nn.Module:
    """The model of ``factory()`` with ``weights`` loaded, in eval mode on ``device``.

    The weights are read and checked first; only then is the factory's module imported.

    Raises:
        UserInputError: a malformed factory, a module that cannot be imported or fails, a factory that
            raises or returns no module, unreadable or refused weights, missing/extra keys, other shapes.
    """
    from evrobust.checkpoint import load_weights

    parse_factory(factory)
    tensors = load_weights(weights, device="cpu")
    model = _call_factory(factory)
    _check_keys(model, tensors, weights)
    model.load_state_dict(tensors, strict=True)
    return model.to(device).eval()


def foreign_config(
    factory: str, weights: Path, digest: str, store: Path, data: str, defense: str | None
) -> dict[str, Any]:
    """The ``config.json`` of a run directory that evaluates ``factory`` with ``weights`` (sha256 ``digest``)
    on ``store``."""
    from evrobust.datasets.stores import store_info
    from evrobust.pipelines.train.run_dir import (
        RUN_FORMAT,
        RUN_FORMAT_VERSION,
        data_section,
        now_iso,
        versions,
    )

    info = store_info(store)
    return {
        "format": RUN_FORMAT,
        "format_version": RUN_FORMAT_VERSION,
        "created": now_iso(),
        "model": {"name": factory},
        "defense": {"name": defense or "?"},
        "data": data_section(info, data, store),
        FOREIGN_KEY: {
            "factory": factory,
            "weights": str(Path(weights).resolve()),
            "weights_sha256": digest,
        },
        "versions": versions(),
    }
