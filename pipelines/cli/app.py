"""The ``evrobust`` command-line tool: one typer app; each command is a thin wrapper in its own file."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from evrobust.pipelines.cli import analyze, preprocess
from evrobust.pipelines.cli.attack import attack_command
from evrobust.pipelines.cli.demo import demo_command
from evrobust.pipelines.cli.errors import OneLineErrorGroup, guard, guard_typer
from evrobust.pipelines.cli.export import export_command
from evrobust.pipelines.cli.info import info_command
from evrobust.pipelines.cli.report import report_command
from evrobust.pipelines.cli.reproduce import reproduce_command
from evrobust.pipelines.cli.train import train_command

app = typer.Typer(
    name="evrobust",
    cls=OneLineErrorGroup,
    help="Train spiking neural networks that resist adversarial attacks; measure that robustness honestly.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages.")] = False,
) -> None:
    """evrobust: gradient-sparsity defenses (SR, SR*) and attacks for IF-neuron SNNs."""
    # Plain lines on stderr (no wrapping, no colour codes): logs must stay greppable and must never split
    # the one-line error that ends a failed command.
    handler = _StderrHandler()
    handler.setFormatter(_LineFormatter())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True)
    # dask.distributed logs cluster start-up and worker chatter at INFO; keep preprocess --workers N readable.
    for noisy in ("distributed", "dask"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (test runners swap it per invocation)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201 - logging's own attribute
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:  # StreamHandler.__init__ assigns it; always follow sys.stderr
        pass


class _LineFormatter(logging.Formatter):
    """INFO lines are the bare message; anything else is prefixed with its level."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno == logging.INFO:
            return message
        return f"{record.levelname.lower()}: {message}"


app.command("info", help="Print versions, the compute device and the available neuron backends.")(
    guard(info_command)
)
app.add_typer(
    guard_typer(preprocess.app),
    name="preprocess",
    help="Turn raw recordings / image batches into zarr stores (Numba kernels, dask-parallel).",
)
app.command("train", help="Train an SNN with a defense (vanilla, sr, at, sr_star, rat).")(
    guard(train_command)
)
app.command("attack", help="Run white-box or black-box attacks on a trained run and write the results.")(
    guard(attack_command)
)
app.add_typer(
    guard_typer(analyze.app),
    name="analyze",
    help="Gradient sparsity, random vs adversarial vulnerability, the Theorem 1 check, gradient plots.",
)
app.command(
    "reproduce", help="Reproduce a paper table or figure (table1..7, fig1/3/4/5, tradeoff) at a scale."
)(guard(reproduce_command))
app.command(
    "report", help="Write report.md (paper-layout tables, masking checks, plots) for runs or reproductions."
)(guard(report_command))
app.command(
    "demo", help="Train and attack SNNs on the embedded digits (images and events); print the summary."
)(guard(demo_command))


app.command("export", help="Export a trained run to NIR (neuromorphic hardware and simulators, e.g. norse).")(
    guard(export_command)
)


def main() -> None:
    """Console-script entry point."""
    app()
