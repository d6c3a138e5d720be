"""Gradient-masking sanity checks for a robustness report (DESIGN §6; Athalye et al. 2018).

A high robust accuracy is only credible if the attack that measured it works. Each check compares numbers
that a working gradient attack must order in a known way and returns a :class:`CheckResult`
``(name, passed, detail, subject)``; ``subject`` names the number the failure puts in doubt, so a report can
print the failure beside it. Accuracies are fractions in [0,1]; ``tol`` is the slack allowed for sampling
noise (in the same units).

- robust accuracy is non-increasing in eps;
- a large eps (e.g. 64/255 for PGD, or 1.0) drives it to about 0;
- white-box <= black-box (an attacker with the gradients does at least as well as a transferred one);
- adversarial <= random noise of the same size;
- few samples have an all-zero input gradient (an attack cannot move from a point with no gradient);
- the gradient-free Square Attack must not beat the white-box attacks (AutoAttack's ``checks.py``): when it
  breaks samples that every gradient attack left standing, the gradients are misleading;
- the reliable evaluation must not report more than the paper protocol (reliable <= paper).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from evrobust.attacks.base import eval_mode, input_gradient, spec_context

__all__ = [
    "CheckResult",
    "ZeroGradientStats",
    "check_adversarial_below_noise",
    "check_large_eps",
    "check_monotone_in_eps",
    "check_reliable_below_paper",
    "check_whitebox_below_blackbox",
    "check_whitebox_below_square",
    "check_zero_gradients",
    "zero_gradient_stats",
]


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one masking check.

    Attributes:
        name: check name (``monotone_eps``, ``large_eps``, ``whitebox_le_blackbox``, ``adv_le_noise``,
            ``zero_gradients``, ``whitebox_le_square``, ``reliable_le_paper``).
        passed: False when the numbers are ordered the way gradient masking would order them.
        detail: one line with the numbers compared.
        subject: the attack / number the check is about (where a report prints a failure).
    """

    name: str
    passed: bool
    detail: str
    subject: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail, "subject": self.subject}


def _pct(value: float) -> str:
    return f"{100.0 * value:.2f}%"


def check_monotone_in_eps(
    acc_by_eps: Mapping[float, float], tol: float = 0.01, subject: str = "", samples: int | None = None
) -> CheckResult:
    """Robust accuracy must not rise with eps by more than ``tol`` (a rise means the attack got weaker).

    ``samples``: give it for a curve of random draws (uniform noise) on that many samples. Each point is then
    a binomial estimate, and a rise from ``a0`` to ``a1`` passes while it stays within two standard errors of
    their difference, ``2 sqrt((a0 (1 - a0) + a1 (1 - a1)) / samples)`` (about 95 %), or ``tol`` if larger.
    Adversarial curves keep ``tol``: an attack that gets weaker with more budget is the masking sign.
    """
    points = sorted((float(e), float(a)) for e, a in acc_by_eps.items())

    def allowed(a0: float, a1: float) -> float:
        if not samples:
            return tol
        return max(tol, 2.0 * math.sqrt((a0 * (1 - a0) + a1 * (1 - a1)) / samples))

    rises = [
        (e0, a0, e1, a1)
        for (e0, a0), (e1, a1) in zip(points, points[1:], strict=False)
        if a1 > a0 + allowed(a0, a1)
    ]
    curve = ", ".join(f"{e * 255:.3g}/255: {_pct(a)}" for e, a in points)
    about = f"; random draws on {samples} samples: binomial tolerance" if samples else ""
    if rises:
        e0, a0, e1, a1 = rises[0]
        detail = (
            f"accuracy rises from {_pct(a0)} at eps {e0 * 255:.3g}/255 to {_pct(a1)} at {e1 * 255:.3g}/255 "
            f"by more than {_pct(allowed(a0, a1))} ({curve}{about})"
        )
        return CheckResult("monotone_eps", False, detail, subject)
    return CheckResult("monotone_eps", True, f"non-increasing in eps ({curve}{about})", subject)


def check_large_eps(
    accuracy: float, eps: float, max_accuracy: float = 0.05, subject: str = ""
) -> CheckResult:
    """Under a large eps a working attack leaves (almost) nothing: accuracy must be <= ``max_accuracy``."""
    passed = accuracy <= max_accuracy
    verdict = "<=" if passed else ">"
    detail = f"accuracy {_pct(accuracy)} at eps {eps * 255:.3g}/255 {verdict} {_pct(max_accuracy)}"
    return CheckResult("large_eps", passed, detail, subject)


def check_whitebox_below_blackbox(
    whitebox: float, blackbox: float, tol: float = 0.01, subject: str = ""
) -> CheckResult:
    """White-box accuracy must not exceed black-box accuracy by more than ``tol``."""
    passed = whitebox <= blackbox + tol
    verdict = "<=" if passed else ">"
    detail = f"white-box {_pct(whitebox)} {verdict} black-box {_pct(blackbox)} (tol {_pct(tol)})"
    return CheckResult("whitebox_le_blackbox", passed, detail, subject)


def check_adversarial_below_noise(
    adversarial: float, noise: float, tol: float = 0.01, subject: str = ""
) -> CheckResult:
    """Adversarial accuracy must not exceed accuracy under uniform noise of the same eps (+ ``tol``)."""
    passed = adversarial <= noise + tol
    verdict = "<=" if passed else ">"
    detail = f"adversarial {_pct(adversarial)} {verdict} random noise {_pct(noise)} (tol {_pct(tol)})"
    return CheckResult("adv_le_noise", passed, detail, subject)


def check_whitebox_below_square(
    whitebox: float, square: float, tol: float = 0.002, subject: str = ""
) -> CheckResult:
    """The white-box attacks' accuracy must not exceed the gradient-free Square Attack's by more than ``tol``.

    ``whitebox`` is the robust accuracy after the gradient attacks, ``square`` after Square as well (or
    Square alone). A drop of more than ``tol`` (AutoAttack warns above 0.2 points) means Square found
    adversarial examples that the gradients could not: the gradients are masked or obfuscated.
    """
    passed = whitebox <= square + tol
    verdict = "<=" if passed else ">"
    detail = f"white-box {_pct(whitebox)} {verdict} Square {_pct(square)} (tol {_pct(tol)})"
    if not passed:
        detail += "; Square broke samples the gradient attacks missed: suspect gradient masking"
    return CheckResult("whitebox_le_square", passed, detail, subject)


def check_reliable_below_paper(
    reliable: float, paper: float, tol: float = 0.01, subject: str = ""
) -> CheckResult:
    """The reliable evaluation's accuracy must not exceed the paper protocol's lowest accuracy (+ ``tol``).

    A stronger evaluation that reports more robustness than the weaker one is itself failing.
    """
    passed = reliable <= paper + tol
    verdict = "<=" if passed else ">"
    detail = f"reliable {_pct(reliable)} {verdict} paper protocol {_pct(paper)} (tol {_pct(tol)})"
    return CheckResult("reliable_le_paper", passed, detail, subject)


@dataclass(frozen=True)
class ZeroGradientStats:
    """Input-gradient zeros over a set of samples.

    Attributes:
        samples: number of samples measured.
        sample_share: fraction of samples whose whole input gradient is zero (an attack is blind there).
        element_share: fraction of input elements with a zero gradient (sparsity; expected to be high for
            SR-trained SNNs and not by itself a masking symptom).
    """

    samples: int
    sample_share: float
    element_share: float

    def merge(self, other: ZeroGradientStats) -> ZeroGradientStats:
        """Combine stats of two disjoint sample sets (weighted by sample count)."""
        n = self.samples + other.samples
        if n == 0:
            return self
        w0, w1 = self.samples / n, other.samples / n
        return ZeroGradientStats(
            samples=n,
            sample_share=w0 * self.sample_share + w1 * other.sample_share,
            element_share=w0 * self.element_share + w1 * other.element_share,
        )


def zero_gradient_stats(
    model: nn.Module, x: Tensor, y: Tensor, spec: Any = None, atol: float = 0.0
) -> ZeroGradientStats:
    """Measure zeros of ``grad_x CE(f(x), y)`` on a batch (model in eval mode, optional gradient spec).

    ``x`` ``[N, ...]`` in [0,1], ``y`` ``[N]``. An element counts as zero when ``|g| <= atol``.
    """
    with eval_mode(model), spec_context(model, spec):
        _, _, grad = input_gradient(model, x, y.to(x.device))
    zero = grad.flatten(1).abs() <= atol
    return ZeroGradientStats(
        samples=int(x.shape[0]),
        sample_share=float(zero.all(1).float().mean()),
        element_share=float(zero.float().mean()),
    )


def check_zero_gradients(stats: ZeroGradientStats, max_share: float = 0.1, subject: str = "") -> CheckResult:
    """At most ``max_share`` of the samples may have an all-zero input gradient."""
    passed = stats.sample_share <= max_share
    verdict = "<=" if passed else ">"
    detail = (
        f"{_pct(stats.sample_share)} of {stats.samples} samples have an all-zero input gradient {verdict} "
        f"{_pct(max_share)}; zero elements: {_pct(stats.element_share)}"
    )
    return CheckResult("zero_gradients", passed, detail, subject)

