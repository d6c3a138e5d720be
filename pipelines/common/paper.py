"""The paper's published numbers (ICML 2024 version, ``paper/001``), keyed like the reproduction tables.

``PUBLISHED[table][row labels][column header]`` -> the number printed in the paper (accuracy in %, or
seconds per epoch for Table 7). Row labels and headers are those of :mod:`.experiments` (white-box columns are
prefixed ``W``, black-box ``B``). The report prints these beside our numbers where a cell matches.
"""

from __future__ import annotations

# The paper's names for datasets and defenses (row labels of its tables), one map for the
# reproduction specs and the report's figures.
PAPER_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "cifar10dvs": "CIFAR10-DVS"}
DEFENSE_NAMES = {"vanilla": "Vanilla", "sr": "SR", "at": "AT", "sr_star": "SR*", "rat": "RAT"}
TABLE3_ABLATION = {"vanilla": ("×", "×"), "at": ("×", "✓"), "sr": ("✓", "×"), "sr_star": ("✓", "✓")}
"""Table 3's (SR, AT) marks per defense, in the paper's row order."""

# The paper's "APGD" column: APGD-CE with torchattacks 3.2.7's default of 100 iterations (as the authors ran).
_T1_HEADERS = ("Clean", "W PGD10", "W PGD30", "W PGD50", "W APGD100", "B PGD10", "B PGD30", "B PGD50",
               "B APGD100")
_T1 = {
    ("CIFAR-10", "VGG-11", "RAT"): (90.44, 11.53, 7.08, 6.41, 3.26, 43.29, 40.17, 40.16, 47.50),
    ("CIFAR-10", "VGG-11", "AT"): (89.97, 18.18, 14.79, 14.63, 10.36, 44.02, 43.38, 43.40, 52.90),
    ("CIFAR-10", "VGG-11", "SR*"): (85.91, 30.54, 28.06, 27.66, 21.91, 51.21, 50.85, 51.06, 59.87),
    ("CIFAR-10", "WRN-16", "RAT"): (92.70, 10.52, 5.14, 4.33, 2.19, 38.35, 31.04, 30.40, 36.42),
    ("CIFAR-10", "WRN-16", "AT"): (90.97, 17.88, 14.89, 14.62, 9.13, 43.99, 42.09, 41.55, 52.10),
    ("CIFAR-10", "WRN-16", "SR*"): (85.63, 39.18, 37.04, 36.74, 29.03, 50.84, 50.23, 49.97, 57.93),
    ("CIFAR-100", "WRN-16", "RAT"): (69.10, 5.72, 3.58, 3.26, 2.08, 22.61, 18.77, 18.26, 25.23),
    ("CIFAR-100", "WRN-16", "AT"): (67.37, 10.07, 8.12, 7.86, 4.88, 25.17, 23.76, 23.50, 35.96),
    ("CIFAR-100", "WRN-16", "SR*"): (60.37, 19.76, 18.39, 18.11, 13.32, 28.38, 28.01, 27.94, 36.69),
}

_T2_HEADERS = ("Clean", "W FGSM", "W PGD50", "B FGSM", "B PGD50")
_T2 = {
    ("Vanilla",): (78.80, 22.20, 4.40, 34.00, 20.70),
    ("AT",): (76.80, 60.00, 51.60, 71.50, 65.50),
    ("SR",): (77.40, 37.30, 27.90, 44.60, 37.70),
    ("SR*",): (75.60, 64.60, 61.20, 72.60, 68.90),
}

_T3_HEADERS = ("Clean", "FGSM", "RFGSM", "PGD30", "PGD50", "APGD100")
_T3 = {
    ("CIFAR-10", "×", "×"): (93.89, 5.23, 3.43, 0.00, 0.00, 0.00),
    ("CIFAR-10", "×", "✓"): (90.97, 33.49, 58.19, 14.89, 14.62, 9.13),
    ("CIFAR-10", "✓", "×"): (86.57, 34.79, 55.96, 12.27, 11.70, 8.25),
    ("CIFAR-10", "✓", "✓"): (85.63, 48.47, 64.65, 37.04, 36.74, 29.03),
    ("CIFAR-100", "×", "×"): (74.59, 3.51, 1.37, 0.00, 0.00, 0.00),
    ("CIFAR-100", "×", "✓"): (67.37, 19.07, 33.19, 8.12, 7.68, 4.88),
    ("CIFAR-100", "✓", "×"): (67.67, 11.15, 18.18, 0.87, 0.84, 0.47),
    ("CIFAR-100", "✓", "✓"): (60.37, 25.76, 36.93, 18.39, 18.11, 13.32),
}

_T4_HEADERS = ("Vanilla", "SR", "SR*")
_T4 = {
    ("CIFAR-10",): (67.467, 86.327, 81.885),
    ("CIFAR-100",): (26.270, 49.900, 48.678),
}

_T6_HEADERS = ("RAT", "AT", "SR*")
_T6 = {
    ("PGD10 (w/o ensemble)",): (16.16, 21.32, 33.67),
    ("PGD10 (w/ ensemble)",): (11.53, 18.18, 30.54),
    ("PGD10 (γ ∈ [0.1, 3.0])",): (11.87, 16.16, 27.06),
}

_T7_HEADERS = ("Vanilla", "PGD5-AT", "RAT", "SR", "SR*")
_T7 = {(): (65.0, 459.0, 134.0, 193.0, 583.0)}


def _table(headers: tuple[str, ...], rows: dict[tuple[str, ...], tuple[float, ...]]
           ) -> dict[tuple[str, ...], dict[str, float]]:
    for values in rows.values():
        if len(values) != len(headers):  # a transcription error in this file
            raise AssertionError(f"{len(values)} values for {len(headers)} headers")
    return {labels: dict(zip(headers, values, strict=True)) for labels, values in rows.items()}


PUBLISHED: dict[str, dict[tuple[str, ...], dict[str, float]]] = {
    "table1": _table(_T1_HEADERS, _T1),
    "table2": _table(_T2_HEADERS, _T2),
    "table3": _table(_T3_HEADERS, _T3),
    "table4": _table(_T4_HEADERS, _T4),
    "table6": _table(_T6_HEADERS, _T6),
    "table7": _table(_T7_HEADERS, _T7),
}

CLAIMS: dict[str, str] = {
    "table1": "SR* beats RAT and AT under every white-box and black-box attack (10-20 points under PGD).",
    "table2": "On CIFAR10-DVS the vanilla SNN collapses under PGD50 (4.4%); SR* keeps 61.2% (white box).",
    "table3": "Vanilla falls to 0% under PGD; SR alone raises robust accuracy; SR+AT is best.",
    "table4": "Uniform noise hurts far less than adversarial noise; SR and SR* raise noise accuracy.",
    "table6": "A surrogate-width ensemble is about as strong as the shape ensemble; SR* stays ahead.",
    "table7": "SR costs ~3x a vanilla epoch, under half of PGD5-AT; SR* costs the most.",
    "fig1": "Adversarial vulnerability exceeds random vulnerability by a factor bounded by 3*l1^2/l2^2 "
    "(Theorem 1), inside [3, 3*l0].",
    "fig3": "Growing lambda lowers clean accuracy, raises PGD10 accuracy, and lowers the l1/l2 gradient "
    "norms.",
    "fig4": "SR* gradients concentrate around zero more than vanilla / AT gradients.",
    "fig6": "On CIFAR-100 too (Appendix F), growing lambda lowers clean accuracy, raises PGD accuracy and "
    "lowers the l1/l2 gradient norms.",
    "fig5": "SR gradient heatmaps are sparser than vanilla ones.",
    "tradeoff": "Without a regulariser, settings that make the input gradient sparser buy robustness with "
    "clean accuracy (follow-up paper).",
}
"""The claim each pipeline checks, in one line, printed in the report beside the measured numbers."""


def published(table: str, labels: tuple[str, ...] | None, header: str) -> float | None:
    """The paper's number for one cell, or None when the paper has none."""
    if labels is None:
        return None
    return PUBLISHED.get(table, {}).get(tuple(labels), {}).get(header)
