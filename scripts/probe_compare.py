"""Compare a Square-alone probe with a run's reliable verdict, sample by sample, on the first N test images.

Both files are ``attack-whitebox.json`` documents of the same checkpoint and test images: the probe from
``evrobust attack --attacks clean,square --queries Q``, the other from ``evrobust attack --suite reliable``.
Prints the clean, paper-protocol (per-sample worst case over FGSM, PGD-10/30/50 and APGD-CE 100), reliable,
Square-alone and combined accuracies in % with 95 % Clopper-Pearson intervals, and how many samples each one
broke that the other missed. Usage::

    python scripts/probe_compare.py PROBE.json RELIABLE.json N
"""

from __future__ import annotations

import argparse
from pathlib import Path

from evrobust.pipelines.common.paired import load_attack_file, robust_flags
from evrobust.stats import ci95

PAPER = ("fgsm", "pgd10", "pgd30", "pgd50", "apgd100")


def flags(document: dict, attack: str, n: int) -> list[bool]:
    """The first ``n`` per-sample 'still correct' flags of ``attack``."""
    return robust_flags(document, attack)[:n]


def percent(k: int, n: int) -> str:
    low, high = ci95(k, n)
    return f"{100 * k / n:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("probe", type=Path)
    parser.add_argument("reliable", type=Path)
    parser.add_argument("n", type=int)
    args = parser.parse_args()
    probe, full = (load_attack_file(p) for p in (args.probe, args.reliable))
    n = args.n
    if flags(probe, "clean", n) != flags(full, "clean", n):
        raise SystemExit("the files disagree on the clean predictions: not the same checkpoint and images")
    square, reliable = flags(probe, "square", n), flags(full, "reliable", n)
    paper = [all(flags(full, a, n)[i] for a in PAPER) for i in range(n)]
    pairs = list(zip(square, reliable, strict=True))
    clean = sum(flags(full, "clean", n))
    print(f"n {n}: clean {percent(clean, n)}; paper protocol {percent(sum(paper), n)}; "
          f"reliable {percent(sum(reliable), n)}; Square alone {percent(sum(square), n)}; "
          f"both {percent(sum(s and r for s, r in pairs), n)}")
    print(f"Square broke, reliable missed: {sum(r and not s for s, r in pairs)}; "
          f"reliable broke, Square missed: {sum(s and not r for s, r in pairs)}")


if __name__ == "__main__":
    main()
