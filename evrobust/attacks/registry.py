"""Attack names -> configured attacks, and the named suites of the evaluation (paper Table 1, DESIGN §6).

Every factory takes ``(eps, seed)``; the settings are those of the paper's evaluation: PGD step 2.55/255
with a random start, APGD10 = APGD-CE with 10 iterations (the paper authors' torchattacks default), FGSM,
R+FGSM with ``alpha = eps/2`` (Tramèr et al.), uniform noise in the eps-cube. ``clean`` is the unattacked
input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from evrobust.attacks.apgd import APGD
from evrobust.attacks.base import Attack
from evrobust.attacks.fgsm import FGSM, RFGSM
from evrobust.attacks.noise import UniformNoise
from evrobust.attacks.pgd import PGD
from evrobust.errors import UserInputError

__all__ = [
    "ATTACKS",
    "PGD_STEP",
    "SUITES",
    "AttackEntry",
    "create_attack",
    "list_attacks",
    "list_suites",
    "parse_attack_names",
    "suite_attacks",
]

PGD_STEP = 2.55 / 255
"""PGD step size of the paper's evaluation (pixel units)."""


@dataclass(frozen=True)
class AttackEntry:
    """One registered attack: its CLI name, table label, factory ``(eps, seed) -> Attack | None``."""

    name: str
    label: str
    factory: Callable[[float, int], Attack | None]
    description: str


def _entries() -> dict[str, AttackEntry]:
    items = [
        AttackEntry("clean", "Clean", lambda eps, seed: None, "no perturbation"),
        AttackEntry("fgsm", "FGSM", lambda eps, seed: FGSM(eps, seed=seed), "FGSM, one step of eps"),
        AttackEntry(
            "rfgsm", "RFGSM", lambda eps, seed: RFGSM(eps, seed=seed), "R+FGSM: sign noise eps/2, then FGSM"
        ),
        AttackEntry(
            "noise", "Noise", lambda eps, seed: UniformNoise(eps, seed=seed), "uniform noise in the eps-cube"
        ),
    ]
    for steps in (10, 30, 50, 100):
        items.append(
            AttackEntry(
                f"pgd{steps}",
                f"PGD{steps}",
                lambda eps, seed, s=steps: PGD(eps, alpha=PGD_STEP, steps=s, seed=seed),
                f"PGD, {steps} steps of 2.55/255, random start",
            )
        )
    for steps in (10, 100):
        items.append(
            AttackEntry(
                f"apgd{steps}",
                f"APGD{steps}",
                lambda eps, seed, s=steps: APGD(eps, steps=s, loss="ce", seed=seed),
                f"APGD-CE, {steps} iterations",
            )
        )
    items.append(
        AttackEntry(
            "apgd-dlr",
            "APGD-DLR",
            lambda eps, seed: APGD(eps, steps=100, loss="dlr", seed=seed),
            "APGD-DLR, 100 iterations (needs >= 3 classes)",
        )
    )
    return {e.name: e for e in items}


ATTACKS: dict[str, AttackEntry] = _entries()

SUITES: dict[str, tuple[str, ...]] = {
    "quick": ("clean", "fgsm", "pgd10"),
    "paper": ("clean", "fgsm", "pgd10", "pgd30", "pgd50", "apgd10"),
    "strong": (
        "clean", "fgsm", "rfgsm", "pgd10", "pgd30", "pgd50", "pgd100", "apgd10", "apgd100", "apgd-dlr",
    ),
}
"""``paper`` = the columns of Table 1; ``quick`` for CPU; ``strong`` adds R+FGSM, PGD100, APGD-CE/DLR 100."""


def list_attacks() -> list[str]:
    """Registered attack names."""
    return list(ATTACKS)


def list_suites() -> list[str]:
    """Registered suite names."""
    return list(SUITES)


def suite_attacks(name: str) -> tuple[str, ...]:
    """The attack names of a suite; :class:`UserInputError` for an unknown suite."""
    if name not in SUITES:
        raise UserInputError(f"unknown attack suite {name!r}; valid choices: {', '.join(SUITES)}")
    return SUITES[name]


def parse_attack_names(text: str) -> tuple[str, ...]:
    """Parse ``"fgsm,pgd10"`` into known attack names (order kept, duplicates dropped)."""
    names: list[str] = []
    for item in text.split(","):
        name = item.strip().lower()
        if not name:
            continue
        if name not in ATTACKS:
            raise UserInputError(f"unknown attack {item.strip()!r}; valid choices: {', '.join(ATTACKS)}")
        if name not in names:
            names.append(name)
    if not names:
        raise UserInputError(f"no attack named in {text!r}; valid choices: {', '.join(ATTACKS)}")
    return tuple(names)


def create_attack(name: str, eps: float = 8 / 255, seed: int = 0) -> Attack | None:
    """A configured attack by name (``None`` for ``clean``); :class:`UserInputError` for an unknown name."""
    if name not in ATTACKS:
        raise UserInputError(f"unknown attack {name!r}; valid choices: {', '.join(ATTACKS)}")
    return ATTACKS[name].factory(eps, seed)
