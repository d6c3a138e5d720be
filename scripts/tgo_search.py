"""Smoke-scale search of TGO's unpublished settings (margin delta, weight lambda, warm-up share).

The TGO paper (ICLR 2026, arXiv 2602.20548) publishes no code and no values for delta or the lambda schedule.
This script trains ``vgg_small`` (width 0.5) on the embedded ``digits-dvs`` store with ``--defense tgo`` for
each setting of a small grid (plus vanilla as the reference row), then scores the best checkpoint on the
*validation* split (the test split is never read): clean accuracy and PGD-10 accuracy at eps 8/255 (step
2.55/255, uniform random start, triangle:1 surrogate, crafted in eval mode). It prints one markdown table.

Usage (a few minutes on one CPU thread)::

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python scripts/tgo_search.py --epochs 4 --out /tmp/tgo-search

It is a smoke-scale sanity search, not a tuned result: one seed, few epochs, a few hundred validation samples.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import time
from pathlib import Path

import torch

from evrobust.datasets import load_split, resolve_data
from evrobust.defenses import pgd_examples
from evrobust.pipelines.train.config import TrainConfig
from evrobust.pipelines.train.pipeline import train
from evrobust.pipelines.train.run_dir import load_run

log = logging.getLogger("tgo_search")

EPS = 8 / 255
STEP = 2.55 / 255
STEPS = 10


def evaluate(run: Path, store: Path, limit: int, seed: int) -> tuple[float, float]:
    """(clean %, PGD-10 %) of the run's best checkpoint on the first ``limit`` validation samples."""
    model, _ = load_run(run)
    x, y = load_split(store, "val")
    x, y = x[:limit], y[:limit]
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean().item()
    x_adv = pgd_examples(model, x, y, EPS, STEP, STEPS, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        robust = (model(x_adv).argmax(1) == y).float().mean().item()
    return 100 * clean, 100 * robust


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for the runs (one per setting)")
    parser.add_argument("--data-dir", default=None, help="where digits-dvs.zarr lives [./data]")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--limit-train", type=int, default=512)
    parser.add_argument("--limit-val", type=int, default=200)
    parser.add_argument("--deltas", type=float, nargs="+", default=[0.1, 0.3])
    parser.add_argument("--lams", type=float, nargs="+", default=[0.3, 1.0])
    parser.add_argument("--warmups", type=float, nargs="+", default=[0.5])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    store = resolve_data("digits-dvs", args.data_dir)
    common = dict(
        data="digits-dvs", data_dir=args.data_dir, model="vgg_small", width=0.5, epochs=args.epochs,
        limit_train=args.limit_train, limit_val=args.limit_val, seed=args.seed, device="cpu", progress=False,
    )  # fmt: skip
    settings: list[tuple[str, dict]] = [("vanilla", {"defense": "vanilla"})]
    for delta, lam, warmup in itertools.product(args.deltas, args.lams, args.warmups):
        name = f"tgo-d{delta:g}-l{lam:g}-w{warmup:g}"
        settings.append((name, {"defense": "tgo", "tgo_delta": delta, "tgo_lam": lam, "tgo_warmup": warmup}))
    rows = []
    for name, options in settings:
        run = args.out / name
        started = time.perf_counter()
        if not (run / "checkpoint-best.safetensors").is_file():
            train(TrainConfig(**common, **options, out=str(run)))
        clean, robust = evaluate(run, store, args.limit_val, args.seed)
        rows.append((name, options, clean, robust, time.perf_counter() - started))
        log.info("%s: clean %.1f%%, PGD-10 %.1f%% (%.0fs)", name, clean, robust, rows[-1][-1])
    lines = [
        "| setting | delta | lambda | warm-up | clean val % | PGD-10 val % (eps 8/255) |",
        "|---|---|---|---|---|---|",
    ]
    for name, options, clean, robust, _ in rows:
        d, lam, w = (options.get(k, "-") for k in ("tgo_delta", "tgo_lam", "tgo_warmup"))
        lines.append(f"| {name} | {d} | {lam} | {w} | {clean:.1f} | {robust:.1f} |")
    log.info("\n%s", "\n".join(lines))


if __name__ == "__main__":
    main()
