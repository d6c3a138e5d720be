"""Time one training step (forward + backward) of each registered model under each neuron backend.

Usage: ``python scripts/bench_models.py [--threads 1] [--repeats 7]``. Prints a markdown table; the
ratio column is relative to the ``native`` backend measured in the same run (best of ``--repeats``).
"""

from __future__ import annotations

import argparse
import time

import torch

from evrobust.models import create_model

CASES = (
    ("vgg_small", {"in_channels": 1, "input_size": 8, "width": 0.5, "T": 4}, 64),
    ("vgg11", {"in_channels": 3, "input_size": 32, "width": 0.25, "T": 8}, 16),
    ("wrn16", {"in_channels": 3, "input_size": 32, "width": 0.25, "T": 8}, 16),
)
BACKENDS = ("native", "spikingjelly", "norse")


def time_step(name: str, kwargs: dict, batch: int, backend: str, repeats: int) -> float:
    """Best-of-``repeats`` seconds for one forward + backward of ``name`` on a random batch."""
    torch.manual_seed(0)
    model = create_model(name, 10, neuron_backend=backend, **kwargs).train()
    size = kwargs["input_size"]
    x = torch.rand(batch, kwargs["in_channels"], size, size)
    y = torch.randint(0, 10, (batch,))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| model | batch | " + " | ".join(f"{b} ms (ratio)" for b in BACKENDS) + " |")
    print("|---|---|" + "---|" * len(BACKENDS))
    for name, kwargs, batch in CASES:
        times = {b: time_step(name, kwargs, batch, b, args.repeats) for b in BACKENDS}
        cells = [f"{times[b] * 1e3:.1f} ({times[b] / times['native']:.2f}x)" for b in BACKENDS]
        print(f"| {name} | {batch} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
