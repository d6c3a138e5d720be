"""Parsers for option values shared by the pipelines (train, attack, ...): perturbation sizes as fractions.

Perturbation sizes are in input units (pixels and event frames both live in [0, 1]), and people write them
as ``8/255``; :func:`parse_eps` accepts that form as well as decimals.
"""

from __future__ import annotations

import math
import re

from evrobust.errors import UserInputError

_FRACTION = re.compile(
    r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?:/\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?))?\s*$"
)


def parse_fraction(text: str | float, what: str = "value") -> float:
    """``"2/255"`` -> 0.00784..., ``"0.01"`` -> 0.01, ``"1e-3"`` -> 0.001; numbers pass through.

    Raises:
        UserInputError: the text is neither a number nor ``a/b`` with ``b != 0``, or the value is not finite.
    """
    if isinstance(text, bool):
        raise UserInputError(f"{what} must be a number such as 0.01 or 2/255, got {text!r}")
    if isinstance(text, int | float):
        value = float(text)
    else:
        match = _FRACTION.match(str(text))
        if match is None:
            raise UserInputError(f"{what} must be a number such as 0.01 or 2/255, got {text!r}")
        numerator, denominator = match.groups()
        value = float(numerator)
        if denominator is not None:
            if float(denominator) == 0.0:
                raise UserInputError(f"{what} {text!r} divides by zero; write e.g. 2/255")
            value /= float(denominator)
    if not math.isfinite(value):
        raise UserInputError(f"{what} must be finite, got {text!r}")
    return value


def parse_eps(text: str | float, what: str = "eps") -> float:
    """A perturbation size in [0, 1] input units, written ``8/255`` or as a decimal (``0.0314``).

    Raises:
        UserInputError: unparsable, or outside [0, 1] (inputs live in [0, 1], so a larger eps is meaningless;
            ``8`` instead of ``8/255`` is the usual slip, and the message says so).
    """
    value = parse_fraction(text, what)
    if not 0.0 <= value <= 1.0:
        hint = f" (did you mean {text}/255?)" if value > 1.0 else ""
        raise UserInputError(f"{what} must lie in [0, 1] input units, got {text!r}{hint}")
    return value
