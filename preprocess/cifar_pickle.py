"""A bounded, allow-list unpickler for the official CIFAR-10/100 python pickles (no torch).

The official files are protocol-2 pickles of a dict: ``data`` (a uint8 numpy array ``[N, 3072]``), label
lists, file names and a batch label. Only the globals those files use resolve (numpy's array
reconstruction, ``numpy.ndarray`` as a *type argument*, ``numpy.dtype`` and ``_codecs.encode``), and the
whole load is bounded by :class:`PickleLimits`, derived from what the CIFAR layout really holds
(``rows`` images of 3,072 bytes):

* input size: the file is read whole only if it is at most ``max_file_bytes``;
* calls: the bytes made by ``_codecs.encode`` and ``_reconstruct`` over the whole file are budgeted (a
  tiny pickle could otherwise call them again and again on one memoised argument);
* ``numpy.ndarray`` cannot be *called* (a direct call takes a buffer, an offset and strides: zero strides
  over a 1-byte buffer make an array of any claimed size, which later copies materialise);
* the result is walked before anyone converts it: container depth, items (a shared reference counts
  every time it is reached, so a list nested 40 deep with shared children counts 2^40 and stops at the
  limit), logical array bytes and text bytes.

The pure-Python unpickler is used on purpose: its memo is a dict, whereas the C unpickler grows a memo
*array* to any index a ``LONG_BINPUT`` names (a 12-byte file can ask for gigabytes).
"""

from __future__ import annotations

import io
import math
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evrobust.errors import UserInputError
from evrobust.safeio import check_regular, open_read

CIFAR_ROW_BYTES = 3072  # 3 x 32 x 32 uint8
CIFAR10_BATCH_ROWS = 10_000  # each data_batch_k and test_batch of CIFAR-10; CIFAR-100's test
CIFAR100_TRAIN_ROWS = 50_000  # CIFAR-100's single train file
MAX_PICKLE_DEPTH = 8  # the official files nest dict -> list -> bytes (depth 2)

# Globals the official CIFAR pickles need: Python 2 wrote numpy.core.multiarray; numpy 2 writes numpy._core.
CIFAR_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }
)
_LATIN1 = {"latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1"}


@dataclass(frozen=True)
class PickleLimits:
    """Bounds on one CIFAR pickle; :meth:`for_rows` derives them from the number of images it may hold.

    Attributes:
        max_file_bytes: size of the file on disk.
        max_depth: nesting of containers (dict/list/tuple) in the result.
        max_items: objects reached when walking the result (shared references count each time).
        max_array_bytes: logical bytes of all numpy arrays reached (``nbytes``, each time reached).
        max_text_bytes: logical length of all bytes/str objects reached.
    """

    max_file_bytes: int
    max_depth: int
    max_items: int
    max_array_bytes: int
    max_text_bytes: int

    @classmethod
    def for_rows(cls, rows: int) -> PickleLimits:
        """Limits for a file of at most ``rows`` images (0: a meta file of class names).

        Arrays: the images plus room for three int64 label arrays. Text: file names (~30 bytes each in the
        official files; 256 allowed) plus 1 MiB. Items: three label lists and one name list per row. The
        file may hold each array byte twice (Python 3 protocol-2 pickles store bytes as UTF-8 latin-1 text).
        """
        arrays = rows * (CIFAR_ROW_BYTES + 3 * 8) + (64 << 10)
        text = rows * 256 + (1 << 20)
        return cls(
            max_file_bytes=2 * arrays + text + rows * 32 + (1 << 20),
            max_depth=MAX_PICKLE_DEPTH,
            max_items=4 * rows + 4096,
            max_array_bytes=arrays,
            max_text_bytes=text,
        )


class _NdarrayType:
    """``numpy.ndarray`` inside a CIFAR pickle: usable as ``_reconstruct``'s type, never callable."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise pickle.UnpicklingError(
            "numpy.ndarray(...) called directly (buffer/offset/strides) is not allowed in a CIFAR file"
        )

    def __reduce__(self) -> Any:  # never re-pickled
        raise pickle.PicklingError("not picklable")


_NDARRAY = _NdarrayType()


def _checked_dtype(*args: Any) -> np.dtype:
    """``numpy.dtype`` as the unpickler may call it: plain numeric and bytes dtypes only, never ``object``.

    An object-dtype array would unpickle its elements as further pickled objects; refusing the dtype closes
    that door before any element is read.
    """
    dtype = np.dtype(*args)
    if dtype.hasobject or dtype.kind not in "biufcSU":
        raise pickle.UnpicklingError(f"dtype {dtype} is not allowed in a CIFAR file (numeric arrays only)")
    return dtype


class _BoundedUnpickler(pickle._Unpickler):  # noqa: SLF001 - the pure-Python one, see the module docstring
    """Resolves only :data:`CIFAR_GLOBALS`, to checked stand-ins that charge a byte budget for what they make.

    ``persistent_load`` is left undefined, so a persistent id fails too.
    """

    def __init__(self, file: io.BytesIO, limits: PickleLimits) -> None:
        super().__init__(file, encoding="bytes")
        self._budget = limits.max_array_bytes + limits.max_text_bytes

    def _charge(self, nbytes: int, what: str) -> None:
        self._budget -= nbytes
        if self._budget < 0:
            raise pickle.UnpicklingError(f"{what} makes more bytes than a CIFAR file of this size holds")

    def _encode(self, obj: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
        # Python 3 protocol-2 pickles spell bytes as _codecs.encode(<latin-1 text>, "latin1").
        if not isinstance(obj, str) or not isinstance(encoding, str) or encoding.lower() not in _LATIN1:
            raise pickle.UnpicklingError("_codecs.encode may only turn text into latin-1 bytes here")
        self._charge(len(obj), "_codecs.encode")
        import _codecs

        return _codecs.encode(obj, "latin1")

    def _reconstruct(self, subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
        # numpy's _reconstruct allocates the (empty) array before the data arrive: bound it first.
        from numpy._core.multiarray import _reconstruct  # numpy 2 provides it for both pickled module names

        if subtype is not _NDARRAY:
            raise pickle.UnpicklingError("only plain numpy.ndarray objects are allowed in a CIFAR file")
        dims = shape if isinstance(shape, tuple) else (shape,)
        if not all(type(d) is int and 0 <= d <= 1 << 40 for d in dims) or len(dims) > 32:
            raise pickle.UnpicklingError(f"array shape {shape!r} is not plausible for a CIFAR file")
        checked = _checked_dtype(dtype)
        self._charge(math.prod(dims) * checked.itemsize, "numpy _reconstruct")
        return _reconstruct(np.ndarray, dims, checked)

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in CIFAR_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR file")
        return {
            "_reconstruct": self._reconstruct,
            "dtype": _checked_dtype,
            "ndarray": _NDARRAY,
            "encode": self._encode,
        }[name]


def check_bounds(obj: Any, limits: PickleLimits) -> None:
    """Walk an unpickled object iteratively and refuse it past ``limits`` (depth, items, array/text bytes).

    Shared references are counted every time they are reached: that is the size any later conversion
    (``np.asarray``, ``list(...)``) would really produce. The walk itself stops at the first excess, so it
    costs at most ``max_items`` steps.

    Raises:
        pickle.UnpicklingError: a bound is exceeded, an array has a zero stride over a dimension longer
            than 1, or an object of a type the CIFAR layout never holds is found.
    """
    stack: list[tuple[Any, int]] = [(obj, 0)]
    items = array_bytes = text_bytes = 0
    too_many = f"more than {limits.max_items} objects, more than a CIFAR file holds"
    while stack:
        o, depth = stack.pop()
        items += 1
        if items > limits.max_items:
            raise pickle.UnpicklingError(too_many)
        if isinstance(o, (dict, list, tuple)):
            if depth >= limits.max_depth:
                raise pickle.UnpicklingError(f"containers nested deeper than {limits.max_depth}")
            children = [x for kv in o.items() for x in kv] if isinstance(o, dict) else o
            if items + len(stack) + len(children) > limits.max_items:
                raise pickle.UnpicklingError(too_many)
            stack.extend((c, depth + 1) for c in children)
        elif isinstance(o, np.ndarray):
            if o.dtype.hasobject or o.dtype.kind not in "biufcSU":
                raise pickle.UnpicklingError(f"an array of dtype {o.dtype} is not allowed in a CIFAR file")
            if any(s == 0 for s, n in zip(o.strides, o.shape, strict=True) if n > 1):
                raise pickle.UnpicklingError("an array with a zero stride is not allowed in a CIFAR file")
            array_bytes += o.nbytes
            if array_bytes > limits.max_array_bytes:
                raise pickle.UnpicklingError(
                    f"arrays of more than {limits.max_array_bytes} bytes, more than a CIFAR file holds"
                )
        elif isinstance(o, (bytes, str)):
            text_bytes += len(o)
            if text_bytes > limits.max_text_bytes:
                raise pickle.UnpicklingError(f"more than {limits.max_text_bytes} bytes of text")
        elif o is None or isinstance(o, (bool, int, float, np.generic, np.dtype)):
            pass
        else:
            raise pickle.UnpicklingError(f"a {type(o).__name__} object is not part of a CIFAR file")


def load_cifar_pickle(path: str | Path, limits: PickleLimits | None = None) -> dict[bytes, Any]:
    """Load one CIFAR pickle (a dict with bytes keys) with the bounded allow-list unpickler.

    Args:
        path: the pickle file.
        limits: bounds; default ``PickleLimits.for_rows(CIFAR100_TRAIN_ROWS)``, the largest official file.

    The file is read whole (at most ``limits.max_file_bytes``) and unpickled from memory: an opcode that
    claims a 10^12-byte string then fails as truncated instead of asking the file for that many bytes.

    Raises:
        UserInputError: the file is missing, too large, not a pickle, uses a disallowed global or a direct
            ``numpy.ndarray`` call, holds an object array, exceeds a bound, or is not a dict.
    """
    limits = limits or PickleLimits.for_rows(CIFAR100_TRAIN_ROWS)
    path = Path(path)
    if not os.path.lexists(path):
        raise UserInputError(f"CIFAR file {path} is missing; expected the official python-pickle layout")
    size = check_regular(path, "raw_member").st_size  # a link, FIFO or directory is refused by name
    if size > limits.max_file_bytes:
        raise UserInputError(
            f"{path} is {size} bytes, more than the {limits.max_file_bytes} a CIFAR file of this kind can "
            "be; not a CIFAR pickle"
        )
    try:
        with open_read(path, "raw_member") as fh:  # read(n) reserves n bytes: ask for what stat saw, plus one
            data = fh.read(size + 1)
        if len(data) > size:  # grew since stat
            raise pickle.UnpicklingError("the file is larger than a CIFAR file of this kind")
        obj = _BoundedUnpickler(io.BytesIO(data), limits).load()
        del data
        check_bounds(obj, limits)
    except Exception as exc:  # noqa: BLE001 - hostile bytes can raise nearly anything; all mean "unreadable"
        message = " ".join(str(exc).split())[:200]
        raise UserInputError(
            f"{path} is not a readable CIFAR pickle ({type(exc).__name__}: {message})"
        ) from None
    if not isinstance(obj, dict):
        raise UserInputError(f"{path} holds a {type(obj).__name__}, not the CIFAR dict")
    return obj
