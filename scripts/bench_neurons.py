"""Benchmark the IF layer per backend: forward + backward time, best of N, as a markdown table.

    .venv/bin/python scripts/bench_neurons.py                 # CPU, default shapes, T = 8
    .venv/bin/python scripts/bench_neurons.py --device cuda --repeats 20
    .venv/bin/python scripts/bench_neurons.py --device cuda --compile      # adds torch.compile(native)

Each timed call runs ``spikes = IFNeuron(backend, spec)(x)`` and ``spikes.backward(upstream)`` on a float32
input that requires grad. Ratios are to ``native`` (below 1 = faster than native). ``--compile`` adds a
column ``compiled``: ``torch.compile`` of the native IFNeuron (compilation happens in the warm-up calls).
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable, Sequence

import torch

from evrobust.neurons import GradSpec, IFNeuron, get_backend, list_backends

DEFAULT_SHAPES = ("8,64,64,16,16", "8,64,128,8,8", "8,64,4096")
COMPILED = "compiled"  # torch.compile of the native IFNeuron


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _make_case(
    backend: str, spec: GradSpec, shape: Sequence[int], device: torch.device
) -> Callable[[], float] | None:
    """A function timing one forward + backward in seconds; None if the backend cannot run ``spec``."""
    compiled = backend == COMPILED
    if get_backend("native" if compiled else backend).supports(spec, 1.0, 1.0) is not None:
        return None
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(*shape, generator=gen) * 0.7 + 0.4).to(device).requires_grad_()
    upstream = torch.randn(*shape, generator=gen).to(device)
    neuron = IFNeuron(backend="native" if compiled else backend, spec=spec)
    if compiled:
        neuron = torch.compile(neuron)

    def run() -> float:
        x.grad = None
        _sync(device)
        start = time.perf_counter()
        neuron(x).backward(upstream)
        _sync(device)
        return time.perf_counter() - start

    return run


def time_backends(
    backends: Sequence[str],
    spec: GradSpec,
    shape: Sequence[int],
    device: torch.device,
    repeats: int,
    warmup: int,
) -> list[float | None]:
    """Best-of-``repeats`` seconds per backend. Backends take turns within each repeat, so that load from
    other processes on a shared machine hits all of them alike."""
    cases = [_make_case(b, spec, shape, device) for b in backends]
    best = [float("inf")] * len(cases)
    for i in range(warmup + repeats):
        for k, case in enumerate(cases):
            if case is not None:
                seconds = case()
                if i >= warmup:
                    best[k] = min(best[k], seconds)
    return [None if case is None else t for case, t in zip(cases, best, strict=True)]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=list(DEFAULT_SHAPES), help="comma-separated, T first")
    parser.add_argument("--specs", nargs="+", default=["triangle:1", "rate"], help="gradient specs to time")
    parser.add_argument("--backends", nargs="+", default=None, help="default: every installed backend")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--compile", action="store_true", help="add torch.compile(native) as a column")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    backends = args.backends or list_backends()
    if "native" not in backends:
        backends = ["native", *backends]
    if args.compile:
        backends.append(COMPILED)

    print(
        f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}; "
        f"best of {args.repeats} (forward + backward, float32)\n"
    )
    header = ["shape", "spec", *(f"{b} (ms)" for b in backends), *(f"{b}/native" for b in backends[1:])]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for shape_text in args.shapes:
        shape = [int(s) for s in shape_text.split(",")]
        for spec_text in args.specs:
            spec = GradSpec.parse(spec_text)
            times = time_backends(backends, spec, shape, device, args.repeats, args.warmup)
            cells = [f"[{shape_text}]", str(spec)]
            cells += ["n/a" if t is None else f"{t * 1e3:.1f}" for t in times]
            native = times[0]
            cells += ["n/a" if t is None or native is None else f"{t / native:.2f}" for t in times[1:]]
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
