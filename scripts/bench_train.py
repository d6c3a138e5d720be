"""Seconds per training step of vanilla, SR, AT (PGD-5), SR* and RAT on one model and batch, vs vanilla.

Paper Table 7 (VGG-11, CIFAR-10, one epoch): SR 2.97x, AT(PGD5) 7.1x, SR* 9.0x, RAT 2.1x vanilla.
Project goals: SR <= 2.4x, SR* <= 6.5x.

Defenses are timed in interleaved rounds (every round times each defense once) and the median per-step time is
reported, so that load from other processes on a shared machine biases all of them alike. On the CPU the
process CPU time per step is reported beside the wall time: with one thread (``--threads 1``) it does not
count the time spent waiting for a core, so its ratios are the steadier ones on a loaded machine. The load
average is printed with the table. Prints a markdown table.

    python scripts/bench_train.py                                  # vgg_small, 32x32x3, batch 32, T 4, CPU
    python scripts/bench_train.py --model vgg11 --width 0.25 --threads 1 --defenses vanilla sr
    python scripts/bench_train.py --model vgg11 --batch 64 --T 8 --device cuda --amp
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import statistics
import time

import torch

import evrobust.defenses.sr as sr_module
from evrobust.defenses import DEFENSES, DefenseConfig, DefenseObjective, after_optimizer_step
from evrobust.models import create_model

PAPER = {"vanilla": 1.0, "sr": 2.97, "at": 7.1, "sr_star": 9.0, "rat": 2.1}
NO_REUSE = "sr, no term reuse"
GOALS = {"sr": 2.4, "sr_star": 6.5}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="vgg_small")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--size", type=int, default=32, help="input side in pixels")
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--T", type=int, default=4)
    parser.add_argument(
        "--rounds", type=int, default=5, help="timed rounds (each: --steps steps per defense)"
    )
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--defenses", nargs="+", default=list(DEFENSES), choices=list(DEFENSES))
    parser.add_argument(
        "--ablate",
        action="store_true",
        help="add a row 'sr, no term reuse': SR with the IF layers' surrogate-term reuse switched off",
    )
    args = parser.parse_args()
    names = ["vanilla", *(d for d in args.defenses if d != "vanilla")]
    if args.ablate and "sr" in names:
        names.append(NO_REUSE)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    torch.manual_seed(0)
    base = create_model(
        args.model, args.classes, in_channels=args.channels, T=args.T, width=args.width, input_size=args.size
    ).to(device)
    x = torch.rand(args.batch, args.channels, args.size, args.size, device=device)
    y = torch.randint(0, args.classes, (args.batch,), device=device)

    setups = {}
    params = {}
    for name in names:
        model = copy.deepcopy(base).train()
        config = DefenseConfig(name="sr" if name == NO_REUSE else name, lam=0.002)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        setups[name] = (model, DefenseObjective(model, config), config, opt)
        params[name] = list(model.parameters())

    def step(name: str) -> None:
        model, objective, config, opt = setups[name]
        # The ablation swaps SR's reuse context for a no-op during its own steps only.
        no_reuse = name == NO_REUSE
        reuse = sr_module.reuse_backward_terms
        if no_reuse:
            sr_module.reuse_backward_terms = contextlib.nullcontext
        try:
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=args.amp):
                out = objective(x, y)
        finally:
            sr_module.reuse_backward_terms = reuse
        opt.zero_grad(set_to_none=True)
        out["loss"].backward(inputs=params[name])  # parameters only, as the trainer does
        opt.step()
        after_optimizer_step(model, config)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for name in names:  # warm-up (allocator, kernels, autotuning)
        step(name)
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    load = os.getloadavg()[0]
    for _ in range(args.rounds):
        for name in names:
            sync()
            start, cpu_start = time.perf_counter(), time.process_time()
            for _ in range(args.steps):
                step(name)
            sync()
            times[name].append((time.perf_counter() - start) / args.steps)
            cpu[name].append((time.process_time() - cpu_start) / args.steps)
    load = max(load, os.getloadavg()[0])

    median = {name: statistics.median(t) for name, t in times.items()}
    cpu_median = {name: statistics.median(t) for name, t in cpu.items()}
    print(
        f"model {args.model} width {args.width}, input {args.channels}x{args.size}x{args.size}, "
        f"batch {args.batch}, T {args.T}, device {device}{' bf16' if args.amp else ''}, "
        f"threads {torch.get_num_threads()}, median of {args.rounds} rounds x {args.steps} steps, "
        f"{os.cpu_count()} cores, load average up to {load:.1f}\n"
    )
    show_cpu = device.type == "cpu"
    cpu_head = " CPU s/step | CPU x vanilla |" if show_cpu else ""
    steps_per_epoch = -(-50_000 // args.batch)  # a CIFAR-10 training epoch at this batch size
    print(f"| defense | s/step | x vanilla | s per 50k-image epoch |{cpu_head} paper Table 7 | goal |")
    print("|---|---:|---:|---:|" + ("---:|---:|" if show_cpu else "") + "---:|---:|")
    for name in names:
        ratio = median[name] / median["vanilla"]
        goal = f"<= {GOALS[name]}x" if name in GOALS else ""
        paper = f"{PAPER[name]:.2f}x" if name in PAPER else ""
        cpu_cols = ""
        if show_cpu:
            cpu_cols = f" {cpu_median[name]:.4f} | {cpu_median[name] / cpu_median['vanilla']:.2f}x |"
        epoch = median[name] * steps_per_epoch
        print(f"| {name} | {median[name]:.4f} | {ratio:.2f}x | {epoch:.0f} |{cpu_cols} {paper} | {goal} |")


if __name__ == "__main__":
    main()
