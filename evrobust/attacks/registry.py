"""Attack names -> configured attacks, and the named suites of the evaluation (paper Table 1, DESIGN §6).

Every factory takes ``(eps, seed)``, and the attacks whose entry names a ``budget`` also take ``steps=``
(iterations of every gradient stage) and/or ``queries=`` (Square's and RayS's queries), the
``--steps``/``--queries`` options. The settings are those of the paper's evaluation, which the authors ran
with torchattacks 3.2.7 and its defaults: PGD step 2.55/255 with a random start; ``apgd100`` = APGD-CE with
100 iterations (torchattacks 3.2.7's default, the paper's "APGD" column); FGSM; ``rfgsm`` = torchattacks 3.2.7
``RFGSM(eps=8/255)``, i.e. a random sign step of ``alpha = eps`` and one gradient step of ``alpha`` projected
back to the eps ball; uniform noise in the eps-cube. ``clean`` is the unattacked input. Beyond the paper:
``apgd10`` (10 iterations), ``rfgsm-tramer`` (R+FGSM as Tramèr et al. define it, ``alpha = eps/2``),
APGD-DLR, APGD-T, SA-PGD, Square, and the ``reliable`` and ``exhaustive`` cascades
(:mod:`evrobust.attacks.cascade`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from evrobust.attacks.apgd import APGD, APGDT
from evrobust.attacks.base import Attack
from evrobust.attacks.cascade import Cascade, exhaustive_cascade, reliable_cascade
from evrobust.attacks.fgsm import FGSM, RFGSM
from evrobust.attacks.noise import UniformNoise
from evrobust.attacks.pgd import PGD
from evrobust.attacks.rays import RayS
from evrobust.attacks.sapgd import SAPGD
from evrobust.attacks.square import Square
from evrobust.errors import UserInputError

__all__ = [
    "ATTACKS",
    "PAPER_PROTOCOL",
    "PGD_STEP",
    "SUITES",
    "BUDGETS",
    "AttackEntry",
    "check_budget",
    "create_attack",
    "list_attacks",
    "list_suites",
    "parse_attack_names",
    "suite_attacks",
]

PGD_STEP = 2.55 / 255
"""PGD step size of the paper's evaluation (pixel units)."""


BUDGETS: tuple[str, ...] = ("steps", "queries")
"""Budget keywords an attack factory may accept (see :attr:`AttackEntry.budget`)."""


@dataclass(frozen=True)
class AttackEntry:
    """One registered attack: CLI name, table label, factory, description, and its tunable budget.

    ``factory(eps, seed, **budget) -> Attack | Cascade | None``; ``budget`` names the keywords of
    :data:`BUDGETS` the factory accepts (``steps``: iterations of every gradient stage; ``queries``: Square's
    and RayS's queries). Attacks with the budget in their name (``pgd10``, ``apgd100``) have none.
    """

    name: str
    label: str
    factory: Callable[..., Attack | Cascade | None]
    description: str
    budget: tuple[str, ...] = ()


def _entries() -> dict[str, AttackEntry]:
    items = [
        AttackEntry("clean", "Clean", lambda eps, seed: None, "no perturbation"),
        AttackEntry("fgsm", "FGSM", lambda eps, seed: FGSM(eps, seed=seed), "FGSM, one step of eps"),
        AttackEntry(
            "rfgsm",
            "RFGSM",
            lambda eps, seed: RFGSM(eps, alpha=eps, steps=1, step_size=eps if eps > 0 else None, seed=seed),
            "torchattacks 3.2.7 RFGSM(eps): sign noise of eps, then one sign-gradient step of eps, projected",
        ),
        AttackEntry(
            "rfgsm-tramer",
            "R+FGSM (Tramer)",
            lambda eps, seed: RFGSM(eps, seed=seed),
            "R+FGSM of Tramer et al.: sign noise eps/2, then a gradient step of eps/2",
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
                f"APGD-CE {steps}",
                lambda eps, seed, s=steps: APGD(eps, steps=s, loss="ce", seed=seed),
                f"APGD-CE, {steps} iterations",
            )
        )
    items.append(
        AttackEntry(
            "apgd-dlr",
            "APGD-DLR",
            lambda eps, seed, steps=100: APGD(eps, steps=steps, loss="dlr", seed=seed),
            "APGD-DLR, 100 iterations (needs >= 3 classes)",
            ("steps",),
        )
    )
    items += [
        AttackEntry(
            "apgd-t",
            "APGD-T",
            lambda eps, seed, steps=100: APGDT(eps, steps=steps, n_targets=9, seed=seed),
            "APGD-T: targeted DLR, 9 target classes x 100 iterations (needs >= 4 classes)",
            ("steps",),
        ),
        AttackEntry(
            "sapgd",
            "SA-PGD",
            lambda eps, seed, steps=100: SAPGD(eps, steps=steps, seed=seed),
            "SA-PGD (Wang et al. 2026): moment-normalised steps, step halving, 100 iterations, CE",
            ("steps",),
        ),
        AttackEntry(
            "square",
            "Square",
            lambda eps, seed, queries=5000: Square(eps, n_queries=queries, seed=seed),
            "Square Attack: score-based random search, margin loss, 5000 queries, no gradient",
            ("queries",),
        ),
        AttackEntry(
            "rays",
            "RayS",
            lambda eps, seed, queries=5000: RayS(eps, n_queries=queries, seed=seed),
            "RayS (Chen & Gu 2020): hard-label ray search, 5000 queries, reads only the predicted label",
            ("queries",),
        ),
        AttackEntry(
            "reliable",
            "Reliable",
            lambda eps, seed, steps=100, queries=5000: reliable_cascade(eps, seed, steps=steps,
                                                                       n_queries=queries),
            "cascade on survivors: SA-PGD and APGD-T under ASSG, APGD-CE over the wide ensemble, Square "
            "(3 draws, warm start), RayS",
            ("steps", "queries"),
        ),
        AttackEntry(
            "exhaustive",
            "Exhaustive",
            lambda eps, seed, steps=100, queries=5000: exhaustive_cascade(eps, seed, steps=steps,
                                                                         n_queries=queries),
            "the reliable cascade with APGD-T over the whole wide ensemble too (about 5x its cost per robust "
            "sample)",
            ("steps", "queries"),
        ),
    ]
    return {e.name: e for e in items}


ATTACKS: dict[str, AttackEntry] = _entries()

SUITES: dict[str, tuple[str, ...]] = {
    "quick": ("clean", "fgsm", "pgd10"),
    "paper": ("clean", "fgsm", "pgd10", "pgd30", "pgd50", "apgd100"),
    "strong": (
        "clean", "fgsm", "rfgsm", "pgd10", "pgd30", "pgd50", "pgd100", "apgd10", "apgd100", "apgd-dlr",
    ),
    "reliable": ("clean", "fgsm", "pgd10", "pgd30", "pgd50", "apgd100", "reliable"),
    "exhaustive": ("clean", "fgsm", "pgd10", "pgd30", "pgd50", "apgd100", "exhaustive"),
}
"""``paper`` = the columns of Table 1 (APGD = APGD-CE 100); ``quick`` for CPU; ``strong`` adds RFGSM, PGD100,
APGD-CE 10 and APGD-DLR 100; ``reliable`` = ``paper`` plus the ``reliable`` cascade, run on the samples that
survive every paper attack (its accuracy is the per-sample worst case over all of them); ``exhaustive`` the
same with the ``exhaustive`` cascade."""

PAPER_PROTOCOL: tuple[str, ...] = ("fgsm", "rfgsm", "pgd10", "pgd30", "pgd50", "apgd10", "apgd100")
"""Attacks of the paper's protocol: the ``paper`` overestimate number is the lowest accuracy among these."""


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


def create_attack(
    name: str, eps: float = 8 / 255, seed: int = 0, *, steps: int | None = None, queries: int | None = None
) -> Attack | Cascade | None:
    """A configured attack by name (``None`` for ``clean``).

    ``steps``/``queries`` override the budget of an attack that has one (:attr:`AttackEntry.budget`) and are
    ignored by the others; :func:`check_budget` refuses a budget that no attack of a selection takes.

    Raises:
        UserInputError: an unknown name; ``steps`` or ``queries`` < 1.
    """
    if name not in ATTACKS:
        raise UserInputError(f"unknown attack {name!r}; valid choices: {', '.join(ATTACKS)}")
    entry = ATTACKS[name]
    given = dict(zip(BUDGETS, (steps, queries), strict=True))
    for key, value in given.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise UserInputError(f"--{key} must be an integer >= 1, got {value!r}")
    budget = {k: v for k, v in given.items() if v is not None and k in entry.budget}
    return entry.factory(eps, seed, **budget)


def check_budget(names: tuple[str, ...], *, steps: int | None = None, queries: int | None = None) -> None:
    """Refuse ``--steps``/``--queries`` when none of the attacks ``names`` takes them (one-line error)."""
    for key, value in zip(BUDGETS, (steps, queries), strict=True):
        if value is None:
            continue
        takers = [n for n in names if key in ATTACKS[n].budget]
        if not takers:
            valid = ", ".join(n for n, e in ATTACKS.items() if key in e.budget)
            raise UserInputError(f"--{key} applies to {valid}; none of the selected attacks "
                                 f"({', '.join(names)}) takes it")
