"""L-inf attacks on models that map [0,1] inputs to logits, surrogate-gradient ensembles, black-box transfer.

Usage::

    from evrobust.attacks import PGD, Ensemble
    x_adv = PGD(eps=8/255, steps=10)(model, x, y)
    result = Ensemble(PGD(eps=8/255), "paper")(model, x, y)   # result.correct: robust flags [N]
"""

from evrobust.attacks.apgd import APGD, APGDT
from evrobust.attacks.base import Attack, eval_mode, input_gradient, predict, project_linf
from evrobust.attacks.cascade import Cascade, Stage, exhaustive_cascade, reliable_cascade
from evrobust.attacks.ensemble import (
    ENSEMBLES,
    Ensemble,
    EnsembleResult,
    ensemble_specs,
    member_name,
    member_seed,
    parse_members,
)
from evrobust.attacks.fgsm import FGSM, RFGSM
from evrobust.attacks.noise import UniformNoise
from evrobust.attacks.pgd import PGD
from evrobust.attacks.rays import RayS
from evrobust.attacks.registry import (
    ATTACKS,
    SUITES,
    check_budget,
    create_attack,
    list_attacks,
    list_suites,
    parse_attack_names,
    suite_attacks,
)
from evrobust.attacks.sapgd import SAPGD
from evrobust.attacks.square import Square
from evrobust.attacks.transfer import check_compatible, transfer_attack

__all__ = [
    "APGD",
    "APGDT",
    "ATTACKS",
    "Attack",
    "Cascade",
    "ENSEMBLES",
    "Ensemble",
    "EnsembleResult",
    "FGSM",
    "PGD",
    "RFGSM",
    "SAPGD",
    "SUITES",
    "RayS",
    "Square",
    "Stage",
    "UniformNoise",
    "check_budget",
    "check_compatible",
    "create_attack",
    "ensemble_specs",
    "eval_mode",
    "exhaustive_cascade",
    "input_gradient",
    "list_attacks",
    "list_suites",
    "member_name",
    "member_seed",
    "parse_attack_names",
    "parse_members",
    "predict",
    "project_linf",
    "reliable_cascade",
    "suite_attacks",
    "transfer_attack",
]
