"""Why a model is (not) robust: per-sample robustness flags, masking checks, gradient sparsity, random vs
adversarial vulnerability curves and the measured Theorem 1 check (DESIGN §6–7)."""

from evrobust.analysis.evaluate import AttackFlags, evaluate_batch, flags_from_text, flags_to_text, worst_case
from evrobust.analysis.masking import (
    CheckResult,
    ZeroGradientStats,
    check_adversarial_below_noise,
    check_large_eps,
    check_monotone_in_eps,
    check_reliable_below_paper,
    check_whitebox_below_blackbox,
    check_whitebox_below_square,
    check_zero_gradients,
    zero_gradient_stats,
)
from evrobust.analysis.sparsity import (
    DEFAULT_REL_TOL,
    DEFAULT_TOL,
    TARGETS,
    gradient_norms,
    input_gradient,
    model_spec,
    norms_of,
    target_values,
)
from evrobust.analysis.theorem import summarize_theorem, theorem_check
from evrobust.analysis.vulnerability import (
    DEFAULT_ATTACKS,
    DEFAULT_EPS_GRID,
    accuracy_counts,
    check_eps_grid,
    vulnerability_curves,
)

__all__ = [
    "DEFAULT_ATTACKS",
    "DEFAULT_EPS_GRID",
    "DEFAULT_REL_TOL",
    "DEFAULT_TOL",
    "TARGETS",
    "AttackFlags",
    "CheckResult",
    "ZeroGradientStats",
    "accuracy_counts",
    "check_adversarial_below_noise",
    "check_eps_grid",
    "check_large_eps",
    "check_monotone_in_eps",
    "check_reliable_below_paper",
    "check_whitebox_below_blackbox",
    "check_whitebox_below_square",
    "check_zero_gradients",
    "evaluate_batch",
    "flags_from_text",
    "flags_to_text",
    "gradient_norms",
    "input_gradient",
    "model_spec",
    "norms_of",
    "summarize_theorem",
    "target_values",
    "theorem_check",
    "vulnerability_curves",
    "worst_case",
    "zero_gradient_stats",
]
