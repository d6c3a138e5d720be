"""Training-time defenses: gradient sparsity regularisation (SR), adversarial training, SR*, RAT."""

from evrobust.defenses.adversarial import (
    AT_METHODS,
    adversarial_examples,
    adversarial_loss,
    fgsm_examples,
    frozen_eval,
    pgd_examples,
)
from evrobust.defenses.objectives import (
    DEFENSES,
    DefenseConfig,
    DefenseObjective,
    after_optimizer_step,
    defense_loss,
)
from evrobust.defenses.rat import orthogonality_error, parseval_retraction
from evrobust.defenses.sr import PENALTIES, sr_loss, strongest_other_class, two_class_probability

__all__ = [
    "AT_METHODS",
    "DEFENSES",
    "PENALTIES",
    "DefenseConfig",
    "DefenseObjective",
    "adversarial_examples",
    "adversarial_loss",
    "after_optimizer_step",
    "defense_loss",
    "fgsm_examples",
    "frozen_eval",
    "orthogonality_error",
    "parseval_retraction",
    "pgd_examples",
    "sr_loss",
    "strongest_other_class",
    "two_class_probability",
]
