"""Benchmark: PGD-10 throughput of evrobust vs torchattacks on the same SNN and batch, and ensemble cost.

Prints a markdown table: examples/s of our PGD-10 and of ``torchattacks.PGD`` (same eps, step, steps, model,
batch; runs interleaved, best of ``--repeats``: the minimum is the least disturbed by other load on a
shared machine), their ratio (goal: ours >= 1.0x), and the cost of the
``paper`` ensemble (4 gradient specs, full members, no skipping) relative to one PGD-10. Usage::

    .venv/bin/python scripts/bench_attack.py --model vgg_small --input-size 16 --batch 64 --T 4
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torchattacks

from evrobust.attacks import PGD, Ensemble
from evrobust.models import create_model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vgg_small")
    parser.add_argument("--input-size", type=int, default=16)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--T", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave as is)")
    args = parser.parse_args()

    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model(
        args.model, num_classes=10, in_channels=args.channels, T=args.T, input_size=args.input_size
    ).to(device).eval()
    x = torch.rand(args.batch, args.channels, args.input_size, args.input_size, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    eps, alpha, steps = 8 / 255, 2.55 / 255, 10

    ours = PGD(eps, alpha=alpha, steps=steps)
    theirs = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps)
    ensemble = Ensemble(PGD(eps, alpha=alpha, steps=steps), "paper", skip_fooled=False)

    # Warm-up (allocator, kernels), then interleave so drifts in machine load hit both sides alike.
    ours(model, x, y)
    theirs(x, y)
    t_ours, t_theirs, t_ens = [], [], []
    for _ in range(args.repeats):
        t_ours.append(_time(lambda: ours(model, x, y), device))
        t_theirs.append(_time(lambda: theirs(x, y), device))
        t_ens.append(_time(lambda: ensemble(model, x, y), device))
    mo, mt, me = min(t_ours), min(t_theirs), min(t_ens)
    medians = [statistics.median(t) for t in (t_theirs, t_ours, t_ens)]

    shape = f"{args.channels}x{args.input_size}x{args.input_size}"
    print(
        f"## PGD-10 throughput: {args.model}, T={args.T}, {shape}, batch {args.batch}, {device}, "
        f"{torch.get_num_threads()} threads, best of {args.repeats}\n"
    )
    print("| measurement | best s | median s | examples/s | ratio |")
    print("|---|---|---|---|---|")
    print(f"| torchattacks.PGD (10 steps) | {mt:.3f} | {medians[0]:.3f} | {args.batch / mt:.1f} | 1.00x |")
    print(
        f"| evrobust PGD (10 steps) | {mo:.3f} | {medians[1]:.3f} | {args.batch / mo:.1f} | "
        f"{mt / mo:.2f}x (ours vs torchattacks, throughput) |"
    )
    print(
        f"| evrobust paper ensemble (4 specs x PGD-10) | {me:.3f} | {medians[2]:.3f} | "
        f"{args.batch / me:.1f} | {me / mo:.2f}x the time of one PGD-10 |"
    )


if __name__ == "__main__":
    main()
