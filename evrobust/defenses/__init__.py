"""Training-time defenses: SR, adversarial training, SR*, RAT, TRADES, DSD, DLIF and TGO."""

from evrobust.defenses.adversarial import (
    AT_METHODS,
    adversarial_examples,
    adversarial_loss,
    fgsm_examples,
    frozen_eval,
    pgd_examples,
)
from evrobust.defenses.dlif import dlif_loss, perturbation_energy
from evrobust.defenses.dsd import deflate_dominant, dominant_singular_deflation
from evrobust.defenses.objectives import (
    DEFENSES,
    DSD_BASES,
    DefenseConfig,
    DefenseObjective,
    after_optimizer_step,
    attack_defaults,
    before_optimizer_step,
    defense_loss,
)
from evrobust.defenses.rat import orthogonality_error, parseval_retraction
from evrobust.defenses.sr import PENALTIES, sr_loss, strongest_other_class, two_class_probability
from evrobust.defenses.tgo import margin_penalty, tgo_lambda, tgo_loss
from evrobust.defenses.trades import trades_examples, trades_kl, trades_loss

__all__ = [
    "AT_METHODS",
    "DEFENSES",
    "DSD_BASES",
    "PENALTIES",
    "DefenseConfig",
    "DefenseObjective",
    "adversarial_examples",
    "adversarial_loss",
    "after_optimizer_step",
    "attack_defaults",
    "before_optimizer_step",
    "defense_loss",
    "deflate_dominant",
    "dlif_loss",
    "dominant_singular_deflation",
    "fgsm_examples",
    "frozen_eval",
    "margin_penalty",
    "orthogonality_error",
    "parseval_retraction",
    "perturbation_energy",
    "pgd_examples",
    "sr_loss",
    "strongest_other_class",
    "tgo_lambda",
    "tgo_loss",
    "trades_examples",
    "trades_kl",
    "trades_loss",
    "two_class_probability",
]
