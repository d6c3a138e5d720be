"""Evidence for ``evrobust.evaluate``: a spikingjelly and a snntorch network trained with each library's own
training loop on the embedded digits, then evaluated with the paper protocol and the reliable suite.

Each model is trained here (Adam, cross-entropy, the library's own state reset between batches, fixed seed),
saved as safetensors beside the results, and evaluated on the digits test split (359 images) with
``evrobust.evaluate(model, x, y, suite="reliable")``: the paper protocol's attacks, the reliable cascade on
their survivors, the convergence certificate and the indicators, in one call. The overestimate (paper
protocol minus reliable) comes with its own Clopper–Pearson interval. Writes ``<out>/<library>.safetensors``,
``<out>/<library>-attack.json`` and ``.md``, and ``<out>/summary.md``::

    .venv/bin/python scripts/evaluate_library_snns.py --out runs/library-snns
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

import evrobust
from evrobust.datasets import load_split, resolve_data
from evrobust.stats import format_interval

logger = logging.getLogger("evaluate_library_snns")
T = 4


def spikingjelly_csnn() -> nn.Module:
    """Conv(1->16) IF pool Conv(16->32) IF pool Linear; multi-step, the image repeated over T = 4 steps,
    logits = the mean of the last layer over T (spikingjelly's own surrogate: ATan, its default alpha 2)."""
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    class CSNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(
                layer.Conv2d(1, 16, 3, padding=1), layer.BatchNorm2d(16),
                neuron.IFNode(surrogate_function=surrogate.ATan()), layer.MaxPool2d(2),
                layer.Conv2d(16, 32, 3, padding=1), layer.BatchNorm2d(32),
                neuron.IFNode(surrogate_function=surrogate.ATan()), layer.MaxPool2d(2),
                layer.Flatten(), layer.Linear(32 * 2 * 2, 10),
            )
            functional.set_step_mode(self, "m")

        def forward(self, x: Tensor) -> Tensor:
            return self.net(x.unsqueeze(0).repeat(T, 1, 1, 1, 1)).mean(0)

    return CSNN()


def snntorch_net() -> nn.Module:
    """Linear(64->128) Leaky Linear(128->10) Leaky (beta 0.9, init_hidden, snntorch's default atan surrogate);
    logits = the output membrane averaged over T = 4 steps."""
    import snntorch as snn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(64, 128), nn.Linear(128, 10)
            self.lif1 = snn.Leaky(beta=0.9, init_hidden=True)
            self.lif2 = snn.Leaky(beta=0.9, init_hidden=True, output=True)

        def forward(self, x: Tensor) -> Tensor:
            out = []
            for _ in range(T):
                _, mem = self.lif2(self.fc2(self.lif1(self.fc1(x.flatten(1)))))
                out.append(mem)
            return torch.stack(out).mean(0)

    return Net()


def reset(library: str, model: nn.Module) -> None:
    """The library's own reset between batches (what its tutorials do)."""
    if library == "spikingjelly":
        from spikingjelly.activation_based import functional

        functional.reset_net(model)
    else:
        from snntorch import utils

        utils.reset(model)


def train(library: str, x: Tensor, y: Tensor, epochs: int, seed: int) -> nn.Module:
    """Adam (lr 1e-2 for ``epochs``, batch 64, shuffled with ``seed``); returns the model in eval mode."""
    torch.manual_seed(seed)
    model = spikingjelly_csnn() if library == "spikingjelly" else snntorch_net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(x.shape[0], generator=generator)
        correct = 0
        for start in range(0, x.shape[0], 64):
            rows = order[start:start + 64]
            reset(library, model)
            logits = model(x[rows])
            loss = nn.functional.cross_entropy(logits, y[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
            correct += int((logits.argmax(1) == y[rows]).sum())
        logger.info("%s epoch %d: train accuracy %.1f %%", library, epoch + 1, 100 * correct / x.shape[0])
    reset(library, model)
    return model.eval()


def summary_row(library: str, document: dict, seconds: float) -> str:
    over = document["overestimate"]
    clean = next(a for a in document["attacks"] if a["name"] == "clean")
    reliable = document["reliable"]
    return (
        f"| {library} | {document['samples']} | {format_interval(clean['accuracy'], clean['ci95'])} | "
        f"{format_interval(over['paper'], over['paper_ci95'])} ({over['paper_attack']}) | "
        f"{format_interval(over['reliable'], over['reliable_ci95'])} | "
        f"{format_interval(over['difference'], over['difference_ci95'])} | {reliable.get('converged')} | "
        f"{', '.join(document['members'])} | {seconds:.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/library-snns"))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--eps", default="8/255")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--libraries", default="spikingjelly,snntorch")
    parser.add_argument("--max-doublings", type=int, default=None, help="the certificate's (default 3)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    store = resolve_data("digits", args.data_dir)
    x_train, y_train = load_split(store, "train+val")
    x_test, y_test = load_split(store, "test")
    rows = []
    for library in args.libraries.split(","):
        model = train(library, x_train, y_train, args.epochs, args.seed)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                  str(args.out / f"{library}.safetensors"))
        start = time.perf_counter()
        result = evrobust.evaluate(model, x_test, y_test, suite="reliable", eps=args.eps, ensemble="paper",
                                   batch_size=128, seed=args.seed, name=library, dataset="digits",
                                   defense="vanilla", max_doublings=args.max_doublings)
        seconds = time.perf_counter() - start
        result.to_json(args.out / f"{library}-attack.json")
        (args.out / f"{library}-attack.md").write_text(result.to_markdown())
        rows.append(summary_row(library, result.document, seconds))
        logger.info("%s", rows[-1])
    header = (
        f"eps {args.eps}, white box, digits test split, seed {args.seed}; accuracies in % with 95 % "
        "Clopper–Pearson intervals\n\n"
        "| Library | n | Clean | Paper protocol (worst attack) | Reliable | Overestimate | Converged | "
        "Ensemble members applied | Seconds |\n|---|---|---|---|---|---|---|---|---|\n"
    )
    (args.out / "summary.md").write_text(header + "\n".join(rows) + "\n")
    (args.out / "summary.json").write_text(json.dumps({"rows": rows, "args": vars(args)}, default=str))


if __name__ == "__main__":
    main()
