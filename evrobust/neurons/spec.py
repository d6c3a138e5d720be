"""Gradient specs: how the backward pass estimates dSpike/dU (DESIGN §3).

A :class:`GradSpec` is a small immutable value. ``mode="surrogate"`` means BPTT with a surrogate derivative
(``surrogate`` names an entry of :data:`evrobust.neurons.surrogates.SURROGATES`, ``width`` is its gamma);
``mode="rate"`` means the rate gradient approximation (RGA, Bu et al. CVPR 2023), which ignores surrogate and
width. The text form round-trips: ``GradSpec.parse(str(spec)) == spec``::

    triangle:1   sigmoid:4   atan:2   triangle:0.3   rate

torch is imported only through the surrogate registry; this module holds no tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from evrobust.errors import UserInputError
from evrobust.neurons.surrogates import SURROGATES, get_surrogate

__all__ = ["DEFAULT_SPEC", "GradSpec", "MODES", "PAPER_ENSEMBLE", "WIDTH_ENSEMBLE"]

MODES: tuple[str, ...] = ("surrogate", "rate")

_DEFAULT_SURROGATE = "triangle"
_DEFAULT_WIDTH = 1.0


def _format_width(width: float) -> str:
    """Shortest text that parses back to exactly ``width`` (``1.0`` -> ``"1"``, ``0.1`` -> ``"0.1"``)."""
    text = repr(float(width))
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True)
class GradSpec:
    """How the backward pass estimates dS/dU.

    Attributes:
        mode: ``"surrogate"`` (BPTT with a surrogate derivative) or ``"rate"`` (RGA).
        surrogate: surrogate name, one of :func:`evrobust.neurons.list_surrogates` (surrogate mode only).
        width: the surrogate's gamma (> 0, dimensionless; for the triangle, the half-width of its support in
            units of membrane potential relative to the threshold).

    A rate spec is normalised to the default surrogate and width, so all rate specs compare equal.
    """

    mode: str = "surrogate"
    surrogate: str = _DEFAULT_SURROGATE
    width: float = _DEFAULT_WIDTH

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UserInputError(f"unknown gradient mode {self.mode!r}; valid choices: {', '.join(MODES)}")
        if self.mode == "rate":
            # RGA does not use a surrogate; normalise so that equality and str() round-trips are exact.
            object.__setattr__(self, "surrogate", _DEFAULT_SURROGATE)
            object.__setattr__(self, "width", _DEFAULT_WIDTH)
            return
        get_surrogate(self.surrogate)  # raises UserInputError naming the valid surrogates
        try:
            width = float(self.width)
        except (TypeError, ValueError):
            raise UserInputError(f"surrogate width must be a number > 0, got {self.width!r}") from None
        if not math.isfinite(width) or width <= 0:
            raise UserInputError(f"surrogate width must be a finite number > 0, got {self.width!r}")
        object.__setattr__(self, "width", width)

    @property
    def is_rate(self) -> bool:
        """True for the rate gradient approximation."""
        return self.mode == "rate"

    def __str__(self) -> str:
        if self.is_rate:
            return "rate"
        return f"{self.surrogate}:{_format_width(self.width)}"

    @classmethod
    def parse(cls, text: str | GradSpec) -> GradSpec:
        """Parse ``"rate"``, ``"<surrogate>"`` (its default width) or ``"<surrogate>:<width>"``.

        A :class:`GradSpec` passes through unchanged. Raises :class:`UserInputError` naming the valid forms.
        """
        if isinstance(text, GradSpec):
            return text
        if not isinstance(text, str):
            raise UserInputError(f"gradient spec must be a string like 'triangle:1' or 'rate', got {text!r}")
        item = text.strip().lower()
        if item == "rate":
            return cls(mode="rate")
        name, sep, width_text = item.partition(":")
        name = name.strip()
        if name not in SURROGATES:
            raise UserInputError(
                f"unknown gradient spec {text!r}; valid forms: rate, or <surrogate>[:<width>] with "
                f"surrogate in "
                f"{', '.join(SURROGATES)} (e.g. triangle:1, sigmoid:4, atan:2)"
            )
        if not sep:
            return cls(mode="surrogate", surrogate=name, width=SURROGATES[name].default_width)
        try:
            width = float(width_text)
        except ValueError:
            raise UserInputError(
                f"bad width in gradient spec {text!r}: {width_text.strip()!r} is not a number (e.g. {name}:1)"
            ) from None
        return cls(mode="surrogate", surrogate=name, width=width)


DEFAULT_SPEC = GradSpec()
"""Training default: triangle surrogate with gamma = 1."""

PAPER_ENSEMBLE: tuple[GradSpec, ...] = (
    GradSpec("surrogate", "triangle", 1.0),
    GradSpec("surrogate", "sigmoid", 4.0),
    GradSpec("surrogate", "atan", 2.0),
    GradSpec("rate"),
)
"""White-box ensemble of the paper (§5, Appendix E): STBP with three surrogates, plus RGA."""

# round() so that the widths print as 0.1, 0.2, ..., 3 (k * 0.1 alone gives 0.30000000000000004).
WIDTH_ENSEMBLE: tuple[GradSpec, ...] = tuple(
    GradSpec("surrogate", "triangle", round(k * 0.1, 1)) for k in range(1, 31)
)
"""Width ensemble of Appendix G / Table 6: triangle with gamma in 0.1 .. 3.0, step 0.1 (30 members)."""
