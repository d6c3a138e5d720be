"""Parsers for option values shared by the pipelines (train, attack, ...): perturbation sizes as fractions,
and the documented upper bounds of the attack's budgets.

Perturbation sizes are in input units (pixels and event frames both live in [0, 1]), and people write them
as ``8/255``; :func:`parse_eps` accepts that form as well as decimals.

The attack's budgets (``--steps``, ``--queries``, ``--max-doublings``, ``--limit``, ``--batch-size``,
``--seed``) have upper bounds, named here once (:data:`ATTACK_BOUNDS`): the CLI states them in its help and
refuses a value beyond them before parsing anything else, and :func:`check_attack_bounds` refuses them in
the importable :func:`~evrobust.pipelines.attack.pipeline.run_attack` before any file is touched. A value
above a bound is a typo or a request no machine evrobust runs on could serve (a million SA-PGD steps per
sample, doubled eight times), so it is one error line instead of a run that never ends. Torch-free.
"""

from __future__ import annotations

import math
import re

from evrobust.errors import UserInputError

__all__ = [
    "ATTACK_BOUNDS",
    "MAX_BATCH_SIZE",
    "MAX_DOUBLINGS",
    "MAX_EVENT_BUDGET",
    "MAX_LIMIT",
    "MAX_QUERIES",
    "MAX_SEED",
    "MAX_STEPS",
    "check_attack_bounds",
    "check_int_option",
    "parse_eps",
    "parse_fraction",
]

MAX_STEPS = 100_000
"""``--steps``: iterations of APGD-DLR, APGD-T, SA-PGD and every gradient stage of a cascade (default 100;
the certificate multiplies it by up to 2**MAX_DOUBLINGS)."""
MAX_QUERIES = 1_000_000
"""``--queries``: Square's (per draw) and RayS's queries (default 5,000)."""
MAX_DOUBLINGS = 8
"""``--max-doublings``: doublings of the convergence certificate (x256 the budget, already days of compute at
the scales evrobust runs; default 3)."""
MAX_LIMIT = 1_000_000
"""``--limit``: test samples attacked. One flag character per sample and attack: beyond a million, a flag
string would pass the JSON reader's 1 MiB string limit and the result could not be read back."""
MAX_BATCH_SIZE = 100_000
"""``--batch-size``: samples per batch (also the resume granularity)."""
MAX_SEED = 2**63 - 1
"""``--seed``: from 0 to the largest seed a torch generator takes on every platform."""
MAX_EVENT_BUDGET = 10**9
"""``--max-events``, ``--max-shift``, ``--max-moved``: event budgets (events, bins); beyond any recording."""

ATTACK_BOUNDS: dict[str, tuple[int, int]] = {
    "steps": (1, MAX_STEPS),
    "queries": (1, MAX_QUERIES),
    "max_doublings": (0, MAX_DOUBLINGS),
    "limit": (1, MAX_LIMIT),
    "batch_size": (1, MAX_BATCH_SIZE),
    "seed": (0, MAX_SEED),
    "max_events": (0, MAX_EVENT_BUDGET),
    "max_shift": (0, MAX_EVENT_BUDGET),
    "max_moved": (0, MAX_EVENT_BUDGET),
}
"""Option (``run_attack``'s keyword) -> inclusive ``(low, high)`` bounds."""


def check_int_option(value: object, option: str, low: int, high: int) -> int:
    """``value`` as an int in ``[low, high]``; a one-line UserInputError naming ``--option`` otherwise."""
    flag = "--" + option.replace("_", "-")
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise UserInputError(f"{flag} must be an integer from {low:,} to {high:,}, got {shown}")
    return value


def check_attack_bounds(**options: object) -> None:
    """Refuse any of the attack's budget options (``steps=...``, ``limit=...``) outside :data:`ATTACK_BOUNDS`;
    None means the option was not given.

    Raises:
        UserInputError: one line naming the option, its bounds and the value.
    """
    for option, value in options.items():
        if value is not None:
            check_int_option(value, option, *ATTACK_BOUNDS[option])


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
