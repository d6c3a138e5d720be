"""Checkpoints as safetensors files with JSON metadata: atomic writes, no pickle on load.

A checkpoint is one ``.safetensors`` file: a flat ``{name: tensor}`` mapping plus one JSON document stored
in the safetensors header (under the key ``"evrobust"``). Loading never unpickles anything, so a checkpoint
from an untrusted source cannot run code.

Nested training state (optimizer, scheduler and RNG states) is not flat: :func:`flatten_state` splits any
nested structure of dicts, lists, tuples, numbers, strings and tensors into a flat tensor mapping plus a
JSON tree that names each tensor, and :func:`unflatten_state` reverses it exactly (tuples stay tuples,
integer dictionary keys stay integers, floats round-trip bit for bit through their ``repr``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as _safetensors_bytes

from evrobust.errors import UserInputError
from evrobust.safeio import open_read, parse_json, write_bytes_atomic

log = logging.getLogger(__name__)

METADATA_KEY = "evrobust"
FORMAT_VERSION = 1

# Markers used by flatten_state's JSON tree; a dictionary whose keys start with "__" is stored as an item
# list so that a user key can never be mistaken for a marker.
_TENSOR = "__tensor__"
_TUPLE = "__tuple__"
_ITEMS = "__items__"
_NDARRAY = "__ndarray__"


def save_checkpoint(
    path: str | os.PathLike[str], tensors: Mapping[str, torch.Tensor], metadata: Mapping
) -> Path:
    """Write ``tensors`` and JSON ``metadata`` to ``path`` atomically.

    The file is written to a temporary file in the same directory, flushed and fsynced, then moved over
    ``path`` with :func:`os.replace`; a crash leaves either the old file or the new one, never a torn one.
    Tensors are saved from CPU copies (any device and dtype that safetensors supports); tensors that share
    storage (tied weights) are saved as independent copies.

    Args:
        path: destination file (conventionally ``*.safetensors``); its directory is created if missing.
        tensors: flat mapping name -> tensor.
        metadata: JSON-serialisable mapping (numbers, strings, bools, None, lists, dicts with string keys).

    Returns:
        The destination path.
    """
    path = Path(path)
    flat: dict[str, torch.Tensor] = {}
    seen_storage: set[tuple[int, str]] = set()
    for name, tensor in tensors.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise TypeError(f"checkpoint entries must be str -> Tensor, got {type(name)} -> {type(tensor)}")
        t = tensor.detach().to("cpu").contiguous()
        # safetensors refuses tensors that share memory (tied weights, views of one buffer): copy those.
        key = (t.untyped_storage().data_ptr(), str(t.device)) if t.numel() else (id(t), "empty")
        if key in seen_storage or t.untyped_storage().nbytes() != t.numel() * t.element_size():
            t = t.clone()
        seen_storage.add(key)
        flat[name] = t
    try:
        header = json.dumps({"format_version": FORMAT_VERSION, "metadata": metadata}, allow_nan=True)
    except TypeError as exc:
        raise TypeError(f"checkpoint metadata is not JSON-serialisable: {exc}") from exc
    payload = _safetensors_bytes(flat, metadata={METADATA_KEY: header})

    # Atomic: a crash leaves the previous checkpoint or the new one. An OSError (ENOSPC, EFBIG, EACCES, ...)
    # propagates as is; the training pipeline turns it into one user-facing line.
    write_bytes_atomic(path, payload)
    log.debug("saved checkpoint %s (%d tensors, %d bytes)", path, len(flat), len(payload))
    return path


def load_checkpoint(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint` without unpickling anything.

    Args:
        path: the ``.safetensors`` file.
        device: where the tensors are placed.

    Returns:
        ``(tensors, metadata)``: the flat tensor mapping and the JSON metadata.

    Raises:
        UserInputError: the file is missing, is not a safetensors file, was not written by evrobust, or holds
            a non-finite value (NaN or infinity) in any floating-point tensor.
    """
    path = Path(path)
    if not os.path.lexists(path):
        raise UserInputError(f"checkpoint not found: {path} (expected an evrobust .safetensors file)")
    tensors, header = _read_safetensors(path, device)
    if header is None:
        raise UserInputError(f"checkpoint {path} has no evrobust metadata; it was not written by evrobust")
    try:
        document = parse_json(header, "the metadata")
    except UserInputError as exc:
        raise UserInputError(f"checkpoint {path} has damaged evrobust metadata ({exc})") from None
    check_finite(tensors, f"checkpoint {path}")
    if not isinstance(document, dict) or not isinstance(document.get("metadata"), dict):
        raise UserInputError(f"checkpoint {path} has malformed evrobust metadata (not a JSON object)")
    version = document.get("format_version")
    if version != FORMAT_VERSION:
        raise UserInputError(
            f"checkpoint {path} has format version {version}; this evrobust reads version {FORMAT_VERSION}"
        )
    return tensors, document["metadata"]


def _read_safetensors(path: Path, device: str | torch.device) -> tuple[dict[str, torch.Tensor], str | None]:
    """``(tensors, evrobust metadata text or None)`` of a safetensors file, read without unpickling.

    Raises:
        UserInputError: the file is a torch pickle, a link or FIFO, over the cap, or not safetensors.
    """
    try:
        # Opened once through evrobust.safeio (a regular file, not a link or FIFO, within the cap);
        # safetensors then maps that very descriptor's file (/proc/self/fd): nothing can be swapped in.
        with open_read(path, "checkpoint") as raw:
            if _looks_like_torch_pickle(raw.read(9)):
                raise UserInputError(
                    f"cannot read checkpoint {path}: it is a torch pickle checkpoint, which can run code "
                    "when loaded; evrobust reads safetensors only (convert it with "
                    "load_torch_checkpoint(path, trust=True) if you trust it)"
                )
            with safe_open(_descriptor_path(raw, path), framework="pt", device=str(device)) as fh:
                header = (fh.metadata() or {}).get(METADATA_KEY)
                tensors = {name: fh.get_tensor(name) for name in fh.keys()}
    except UserInputError:
        raise
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError, MemoryError) as exc:
        # safetensors bounds the header (100 MB) and checks every tensor's offsets against the file size, so a
        # header that claims huge tensors fails here without allocating them.
        message = " ".join(str(exc).split())
        raise UserInputError(f"cannot read checkpoint {path}: {message}; is it a safetensors file?") from None
    return tensors, header


def load_weights(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The ``{name: tensor}`` weights of a model trained elsewhere: a safetensors file (any writer), or a
    ``torch.save`` file read with torch's ``weights_only`` unpickler only (tensors, plain containers and
    numbers: a pickle that would run code is refused, never executed).

    Raises:
        UserInputError: missing, unreadable, a link or FIFO, over the cap, a pickle needing code, no tensors,
            or a non-finite value.
    """
    path = Path(path)
    if not os.path.lexists(path):
        raise UserInputError(f"weights file not found: {path}")
    with open_read(path, "checkpoint") as raw:
        head = raw.read(9)
    if _looks_like_torch_pickle(head):
        try:
            return load_torch_checkpoint(path, trust=True, device=device)
        except UserInputError as exc:
            text = str(exc)
            if "Weights only load failed" in text or "UnpicklingError" in text:
                raise UserInputError(
                    f"refused {path}: it is a torch pickle that needs code to load, and evrobust reads torch "
                    "files with weights_only=True only; save the model's state_dict() of tensors, or "
                    "safetensors"
                ) from None
            raise
    tensors, _ = _read_safetensors(path, device)
    if not tensors:
        raise UserInputError(f"{path} holds no tensors")
    check_finite(tensors, f"weights file {path}")
    return tensors


# Magic numbers of torch.save outputs: a zip archive (torch >= 1.6) or a raw pickle (protocol 2+ opcode).
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = b"\x80"
TORCH_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".tar")


def _descriptor_path(raw: Any, path: Path) -> str:
    """A path naming the file open as ``raw``: ``/proc/self/fd/N`` on Linux, else ``path`` itself."""
    fd_path = f"/proc/self/fd/{raw.fileno()}"
    return fd_path if os.path.exists(fd_path) else str(path)


def check_finite(tensors: Mapping[str, torch.Tensor], what: str) -> None:
    """Refuse ``tensors`` when a floating-point one holds NaN or an infinity (one line naming it).

    Weights like that make every prediction NaN: an attack would report nonsense and an export would carry
    it on, so every command refuses them on load (checkpoints and NIR graphs alike).

    Raises:
        UserInputError: naming the first tensor at fault and how many of its values are not finite.
    """
    for name, tensor in tensors.items():
        if tensor.is_floating_point() or tensor.is_complex():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise UserInputError(
                    f"{what} holds {bad} non-finite values (NaN or infinity) in {name!r}; these weights "
                    "cannot be evaluated: retrain or use another checkpoint"
                )


def _looks_like_torch_pickle(head: bytes) -> bool:
    """Whether a file starting with ``head`` (9 bytes) is a ``torch.save`` file rather than safetensors."""
    if head[8:9] == b"{":  # safetensors: an 8-byte header length, then the JSON header
        return False
    return head.startswith(_ZIP_MAGIC) or head[:1] == _PICKLE_MAGIC


def load_torch_checkpoint(
    path: str | os.PathLike[str], trust: bool = False, device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """Read the tensors of a ``torch.save`` checkpoint (``.pt``/``.pth``), only when the caller trusts it.

    A torch checkpoint is a pickle: loading one from an untrusted source can run arbitrary code. evrobust
    never does so implicitly: with ``trust=False`` (the default) this raises. With ``trust=True`` it still
    uses torch's restricted ``weights_only`` unpickler (tensors, plain containers and numbers only), so
    trusting is a second line of defence, not a switch to full pickle. A nested ``{"state_dict": ...}`` or
    ``{"model": ...}`` wrapper is unwrapped; the result is a flat ``{name: tensor}`` mapping that
    :func:`save_checkpoint` can write as safetensors.

    Raises:
        UserInputError: ``trust`` is False, the file is missing or unreadable, or it holds no tensor mapping.
    """
    path = Path(path)
    if not trust:
        raise UserInputError(
            f"refusing to load {path}: torch pickle checkpoints can run code when loaded; "
            "pass trust=True (CLI: --trust-pickle) only for files from a source you trust"
        )
    if not os.path.lexists(path):
        raise UserInputError(f"checkpoint not found: {path}")
    try:
        with open_read(path, "checkpoint") as raw:
            obj = torch.load(raw, map_location=device, weights_only=True)
    except UserInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, EOFError, ...
        message = " ".join(str(exc).split())[:300]
        raise UserInputError(
            f"cannot load torch checkpoint {path} ({type(exc).__name__}: {message})"
        ) from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj:
        raise UserInputError(f"{path} does not hold a mapping of tensors (found {type(obj).__name__})")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise UserInputError(f"{path} holds no tensors")
    check_finite(tensors, f"torch checkpoint {path}")
    return tensors


def flatten_state(obj: Any, prefix: str) -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nested state (e.g. ``optimizer.state_dict()``) into flat tensors and a JSON tree.

    Every tensor is replaced by ``{"__tensor__": name}`` with ``name = prefix + "." + path``; tuples,
    dictionaries with non-string keys and numpy arrays get their own markers so that
    :func:`unflatten_state` restores them with their exact types.

    Args:
        obj: nested dicts/lists/tuples of tensors, numpy arrays, numbers, strings, bools and None.
        prefix: name prefix for the tensors (e.g. ``"optimizer"``).

    Returns:
        ``(tensors, tree)`` where ``tree`` is JSON-serialisable.
    """
    tensors: dict[str, torch.Tensor] = {}

    def encode(value: Any, where: str) -> Any:
        if isinstance(value, torch.Tensor):
            tensors[where] = value
            return {_TENSOR: where}
        if isinstance(value, np.ndarray):
            return {_NDARRAY: value.tolist(), "dtype": value.dtype.str}
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, bool | int | float | str) or value is None:
            return value
        if isinstance(value, tuple):
            return {_TUPLE: [encode(v, f"{where}.{i}") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [encode(v, f"{where}.{i}") for i, v in enumerate(value)]
        if isinstance(value, Mapping):
            if all(isinstance(k, str) and not k.startswith("__") for k in value):
                return {k: encode(v, f"{where}.{k}") for k, v in value.items()}
            return {
                _ITEMS: [
                    [encode(k, f"{where}.k{i}"), encode(v, f"{where}.{k}")]
                    for i, (k, v) in enumerate(value.items())
                ]
            }
        raise TypeError(f"cannot store {type(value).__name__} at {where} in a checkpoint")

    tree = encode(obj, prefix)
    return tensors, tree


def unflatten_state(tree: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state`: rebuild the nested state from its JSON tree and tensors."""

    def decode(value: Any) -> Any:
        if isinstance(value, list):
            return [decode(v) for v in value]
        if isinstance(value, dict):
            if _TENSOR in value:
                return tensors[value[_TENSOR]]
            if _TUPLE in value:
                return tuple(decode(v) for v in value[_TUPLE])
            if _ITEMS in value:
                return {_hashable(decode(k)): decode(v) for k, v in value[_ITEMS]}
            if _NDARRAY in value:
                return np.asarray(value[_NDARRAY], dtype=np.dtype(value["dtype"]))
            return {k: decode(v) for k, v in value.items()}
        return value

    return decode(tree)


def _hashable(key: Any) -> Any:
    """Dictionary keys decoded from JSON lists become tuples again (lists are not hashable)."""
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key
