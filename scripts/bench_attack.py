"""Benchmark: PGD-10 throughput of evrobust vs torchattacks on the same SNN and batch, and ensemble cost.

Prints a markdown table: examples/s of our PGD-10 and of ``torchattacks.PGD`` (same eps, step, steps, model,
batch; runs interleaved, best of ``--repeats``: the minimum is the least disturbed by other load on a
shared machine), their ratio (goal: ours >= 1.0x), and the cost of the
``paper`` ensemble (4 gradient specs, full members, no skipping) relative to one PGD-10. Usage::

    .venv/bin/python scripts/bench_attack.py --model vgg_small --input-size 16 --batch 64 --T 4

With ``--run <run dir>`` it instead times ``evrobust attack --suite paper`` against ``--suite reliable`` on
that trained (defended) run, on a copy of it, over the first ``--limit`` test samples, without the masking
checks, and prints the seconds per sample of each and their ratio (goal: reliable <= 5x paper, thanks to the
cascade attacking only the samples that survive the paper protocol)::

    .venv/bin/python scripts/bench_attack.py --run runs/dvs/sr_star --limit 100

With ``--square`` (and ``--run``) it measures the ceiling of a query attack instead: the model's best
batched forward throughput (inference mode, batch = the survivors, 3x them and 256), against the queries per
second of the reliable cascade's Square (three draws, ties accepted) on the correctly classified samples among
the first ``--limit`` (goal: >= 0.7 of the best forward throughput)::

    .venv/bin/python scripts/bench_attack.py --run runs/demo/digits-dvs/sr_star --square --limit 50
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

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
    parser.add_argument("--run", default=None, help="time --suite paper vs reliable on this trained run")
    parser.add_argument("--limit", type=int, default=100, help="test samples for --run")
    parser.add_argument("--ensemble", default="paper", help="ensemble for --run")
    parser.add_argument("--square", action="store_true", help="with --run: Square queries/s vs forward/s")
    parser.add_argument("--queries", type=int, default=500, help="Square queries per draw for --square")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.run is not None and args.square:
        bench_square(Path(args.run), args.limit, args.queries, args.repeats)
        return
    if args.run is not None:
        bench_suites(Path(args.run), args.limit, args.batch, args.ensemble, args.device)
        return

    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
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


def bench_suites(run: Path, limit: int, batch: int, ensemble: str, device: str) -> None:
    """Seconds per sample of ``--suite paper`` vs ``--suite reliable`` on a copy of ``run``."""
    from evrobust.pipelines.attack.pipeline import run_attack

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for suite in ("paper", "reliable"):
            copy = Path(tmp) / suite
            shutil.copytree(run, copy, ignore=shutil.ignore_patterns("attack-*"))
            start = time.perf_counter()
            result = run_attack(
                copy, suite=suite, ensemble=ensemble, limit=limit, batch_size=batch, device=device,
                checks=False,
            )
            wall = time.perf_counter() - start
            rows.append((suite, wall, result))
    paper_wall = rows[0][1]
    print(f"## Attack suites on `{run}`: {rows[0][2]['samples']} test samples, ensemble {ensemble}\n")
    print("| suite | wall s | s / sample | ratio | robust accuracy |")
    print("|---|---|---|---|---|")
    for suite, wall, result in rows:
        n = result["samples"]
        over = result.get("overestimate")
        acc = (
            f"paper {100 * over['paper']:.1f} %, reliable {100 * over['reliable']:.1f} %"
            if over
            else f"lowest {100 * min(a['accuracy'] for a in result['attacks'] if a['in_table']):.1f} %"
        )
        print(f"| {suite} | {wall:.1f} | {wall / n:.3f} | {wall / paper_wall:.2f}x | {acc} |")
    cascade = rows[1][2].get("cascade")
    if cascade:
        parts = ", ".join(
            f"{a['name']} {a['seconds']:.1f} s" for a in rows[1][2]["attacks"] if a["name"] == "reliable"
        )
        print(f"\ncascade: {cascade['entering']} samples entered it ({parts})")


def bench_square(run: Path, limit: int, queries: int, repeats: int) -> None:
    """Square's queries per second against the model's best batched forward throughput, on CPU."""
    from evrobust.attacks import Square
    from evrobust.attacks.cascade import RELIABLE_SQUARE_P_INITS
    from evrobust.pipelines.attack.inputs import (
        iter_test_batches,
        load_evaluated_run,
        open_test_split,
        run_test_store,
    )

    device = torch.device("cpu")
    model, config = load_evaluated_run(run, "best", device, "target")
    dataset, n = open_test_split(run_test_store(config, None), limit)
    _, x, y = next(iter_test_batches(dataset, n, n, 0))
    with torch.inference_mode():
        ok = model(x).argmax(1) == y
    x, y = x[ok], y[ok]
    m = x.shape[0]
    counted = {"rows": 0}

    class Counting(torch.nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            counted["rows"] += z.shape[0]
            return model(z)

    counter = Counting().eval()
    forward: dict[int, float] = {}
    for size in (m, len(RELIABLE_SQUARE_P_INITS) * m, 256):
        xb = x.repeat(-(-size // m), *[1] * (x.dim() - 1))[:size]
        with torch.inference_mode():
            model(xb)
            forward[size] = max(size / _time(lambda xb=xb: model(xb), device) for _ in range(repeats))
    best_forward = max(forward.values())
    square = Square(8 / 255, n_queries=queries, p_init=RELIABLE_SQUARE_P_INITS, accept_ties=True)
    rates = []
    for _ in range(repeats):
        counted["rows"] = 0
        seconds = _time(lambda: square(counter, x, y), device)
        rates.append(counted["rows"] / seconds)
    print(f"## Square vs forward throughput on `{run}`: {m} correctly classified samples, "
          f"{torch.get_num_threads()} threads, best of {repeats}\n")
    print("| measurement | samples (queries) / s | ratio to the best forward |")
    print("|---|---|---|")
    for size, rate in forward.items():
        print(f"| forward, batch {size} (inference mode) | {rate:.0f} | {rate / best_forward:.2f} |")
    best = max(rates)
    print(f"| Square, {len(RELIABLE_SQUARE_P_INITS)} draws x {queries} queries, ties accepted | {best:.0f} | "
          f"{best / best_forward:.2f} (goal >= 0.7) |")


if __name__ == "__main__":
    main()
