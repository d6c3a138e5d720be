"""Gradient specs: how the backward pass estimates dSpike/dU (DESIGN §3).

A :class:`GradSpec` is a small immutable value. Modes:

* ``surrogate``: BPTT with a surrogate derivative (``surrogate`` names an entry of
  :data:`evrobust.neurons.surrogates.SURROGATES`, ``width`` is its gamma; ``ste`` has no width);
* ``rate``: the rate gradient approximation (RGA, Bu et al. CVPR 2023), which ignores surrogate and width;
* ``bptr``: the BPTR crafting forward of SNN-RAT (``RateBp``): IF spikes with a strict threshold, backward
  ``dL/dI[t] = dL/ds[t] * 1[the neuron fired at least once]``;
* ``ann``: the ReLU-ANN crafting forward over the same weights (SNN-RAT ``Act_attack``): the neuron is
  replaced by ``relu(I) / theta``;
* ``assg``: adaptive-sharpness surrogate (Wang et al. CVPR 2026): an atan surrogate whose sharpness per neuron
  and time step follows running statistics of ``|u - theta|`` on the attacked input; ``width`` holds their
  ``A`` (see :mod:`evrobust.neurons.assg`);
* ``pdsg``: potential-dependent surrogate (Lun et al. CVPR 2025): a Gaussian whose width is the per-channel
  standard deviation of the layer's membrane potential on the attacked batch, centred half a width above the
  threshold; no parameter (see :mod:`evrobust.neurons.pdsg`).

``bptr``, ``ann``, ``assg`` and ``pdsg`` are *crafting-only*: they change the forward pass, keep per-attack
state or pool statistics over the attacked batch, so a model never carries them as its own spec; they apply
only inside :func:`evrobust.neurons.gradient_spec` (which an attack enters for its call), and the model is
always judged with its own forward.

The text form round-trips: ``GradSpec.parse(str(spec)) == spec``::

    triangle:1   sigmoid:4   atan:2   triangle:0.3   rate
    rect:0.5   exp:1   expd:2   ste   bptr   ann   assg:0.425   pdsg

torch is imported only through the surrogate registry; this module holds no tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from evrobust.errors import UserInputError
from evrobust.neurons.surrogates import SURROGATES, get_surrogate

__all__ = [
    "ASSG_DEFAULT_A",
    "ASSG_ENSEMBLE",
    "ASSG_GRID",
    "CRAFTING_MODES",
    "DEFAULT_SPEC",
    "GradSpec",
    "MODES",
    "PAPER_ENSEMBLE",
    "WIDE_ENSEMBLE",
    "WIDTH_ENSEMBLE",
]

MODES: tuple[str, ...] = ("surrogate", "rate", "bptr", "ann", "assg", "pdsg")
CRAFTING_MODES: tuple[str, ...] = ("bptr", "ann", "assg", "pdsg")
"""Modes that change the forward pass, keep per-attack state or make one sample's gradient depend on the rest
of the attacked batch (``pdsg``): only inside ``gradient_spec``."""
_WIDTHLESS_MODES: tuple[str, ...] = ("rate", "bptr", "ann", "pdsg")

ASSG_DEFAULT_A = 0.425
"""ASSG's ``A`` when none is given: the value the authors' evaluation script runs ASSG-APGD with."""

ASSG_GRID: tuple[float, ...] = (0.4, 0.425, 0.45)
"""A small grid of ``A`` for a search: inside the authors' search interval [0.35, 0.49], around the values
their ablation grid (0.41 .. 0.45) and their scripts (0.425 .. 0.465) use."""

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
        mode: one of :data:`MODES` (see the module docstring).
        surrogate: surrogate name, one of :func:`evrobust.neurons.list_surrogates` (surrogate mode only).
        width: the surrogate's gamma (> 0, dimensionless; for the triangle, the half-width of its support in
            units of membrane potential relative to the threshold); for ``assg`` the constant ``A`` in
            (0, 0.5).

    Specs without a free parameter (``rate``, ``bptr``, ``ann``, ``pdsg``, ``ste``) are normalised to a fixed
    surrogate and width, so all specs of such a kind compare equal; an ``assg`` spec is normalised to the atan
    shape.
    """

    mode: str = "surrogate"
    surrogate: str = _DEFAULT_SURROGATE
    width: float = _DEFAULT_WIDTH

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UserInputError(f"unknown gradient mode {self.mode!r}; valid choices: {', '.join(MODES)}")
        if self.mode in _WIDTHLESS_MODES:
            # These use no registered surrogate (pdsg's Gaussian takes its width from the data); normalise so
            # that equality and str() round-trips are exact.
            object.__setattr__(self, "surrogate", _DEFAULT_SURROGATE)
            object.__setattr__(self, "width", _DEFAULT_WIDTH)
            return
        if self.mode == "assg":
            object.__setattr__(self, "surrogate", "atan")
            try:
                a = float(self.width)
            except (TypeError, ValueError):
                raise UserInputError(f"ASSG needs A in (0, 0.5), got {self.width!r}") from None
            if not 0.0 < a < 0.5:
                # a = 2 tan(pi A) / pi must be finite and > 0
                raise UserInputError(f"ASSG needs A in (0, 0.5) (e.g. assg:0.425), got {self.width!r}")
            object.__setattr__(self, "width", a)
            return
        surrogate = get_surrogate(self.surrogate)  # raises UserInputError naming the valid surrogates
        if not surrogate.has_width:
            object.__setattr__(self, "width", surrogate.default_width)
            return
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

    @property
    def crafting_only(self) -> bool:
        """True for ``bptr``, ``ann``, ``assg``, ``pdsg``: only inside ``gradient_spec``, never a model's."""
        return self.mode in CRAFTING_MODES

    @property
    def changes_forward(self) -> bool:
        """True when the crafting forward differs from the model's forward (``ann``; ``bptr`` on ties)."""
        return self.mode in ("bptr", "ann")

    @property
    def stateful(self) -> bool:
        """True for ``assg``, whose sharpness depends on statistics gathered during one attack."""
        return self.mode == "assg"

    def __str__(self) -> str:
        if self.mode in _WIDTHLESS_MODES:
            return self.mode
        if self.mode == "assg":
            return f"assg:{_format_width(self.width)}"
        if not SURROGATES[self.surrogate].has_width:
            return self.surrogate
        return f"{self.surrogate}:{_format_width(self.width)}"

    @classmethod
    def parse(cls, text: str | GradSpec) -> GradSpec:
        """Parse ``"rate"``, ``"bptr"``, ``"ann"``, ``"pdsg"``, ``"assg[:<A>]"``, ``"<surrogate>"`` (its
        default width) or ``"<surrogate>:<width>"``.

        A :class:`GradSpec` passes through unchanged. Raises :class:`UserInputError` naming the valid forms.
        """
        if isinstance(text, GradSpec):
            return text
        if not isinstance(text, str):
            raise UserInputError(f"gradient spec must be a string like 'triangle:1' or 'rate', got {text!r}")
        item = text.strip().lower()
        name, sep, width_text = item.partition(":")
        name = name.strip()
        widthless = [n for n, s in SURROGATES.items() if not s.has_width]
        if name in _WIDTHLESS_MODES or name in widthless:
            if sep:
                raise UserInputError(
                    f"gradient spec {name!r} takes no width, got {text!r} (write just {name})"
                )
            if name in _WIDTHLESS_MODES:
                return cls(mode=name)
            return cls(mode="surrogate", surrogate=name)
        if name != "assg" and name not in SURROGATES:
            raise UserInputError(
                f"unknown gradient spec {text!r}; valid forms: "
                f"{', '.join(_WIDTHLESS_MODES + tuple(widthless))}, "
                f"assg[:<A>], or <surrogate>[:<width>] with surrogate in "
                f"{', '.join(n for n in SURROGATES if n not in widthless)} (e.g. triangle:1, rect:0.5, exp:1)"
            )
        if not sep:
            if name == "assg":
                return cls(mode="assg", width=ASSG_DEFAULT_A)
            return cls(mode="surrogate", surrogate=name, width=SURROGATES[name].default_width)
        try:
            width = float(width_text)
        except ValueError:
            raise UserInputError(
                f"bad width in gradient spec {text!r}: {width_text.strip()!r} is not a number (e.g. {name}:1)"
            ) from None
        if name == "assg":
            return cls(mode="assg", width=width)
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

WIDE_ENSEMBLE: tuple[GradSpec, ...] = (
    *PAPER_ENSEMBLE,
    *(GradSpec("surrogate", "triangle", w) for w in (2.0, 3.0, 0.5, 0.25)),
    *(GradSpec("surrogate", "expd", w) for w in (0.5, 1.0, 2.0)),
    *(GradSpec("surrogate", "exp", w) for w in (0.5, 1.0, 2.0)),
    *(GradSpec("surrogate", "rect", w) for w in (0.25, 0.5, 1.0, 2.0, 4.0)),
    GradSpec("surrogate", "ste"),
    GradSpec("bptr"),
    GradSpec("ann"),
    GradSpec("pdsg"),
)
"""The ``wide`` ensemble (23 members): the paper's four members first (so that the first four members and
their random starts are exactly the ``paper`` ensemble's), then the rest of the 19-member set of
Özdenizci & Legenstein (IGITUGraz/RobustSNNConversion, ``attack/ensemble.py``): triangle (their ``PCW``)
1, 2, 3, 0.5, 0.25; ``expd`` 0.5, 1, 2; ``exp`` 0.5, 1, 2; ``rect`` 0.25, 0.5, 1, 2, 4; ``ste``; the BPTR
forward; the ReLU-ANN forward; last PDSG (Lun et al. CVPR 2025), the potential-dependent Gaussian (last, so
that the earlier members keep their positions and random starts)."""

ASSG_ENSEMBLE: tuple[GradSpec, ...] = tuple(GradSpec("assg", width=A) for A in ASSG_GRID)
"""ASSG at every ``A`` of :data:`ASSG_GRID`: as an ensemble, the per-sample worst case over the grid (at least
as strong as the best single ``A``, which the authors pick by a search over whole test sets)."""
