"""The ``evrobust`` command-line tool: one typer app; each command is a thin wrapper in its own file.

Commands are loaded lazily: the root lists them from the table :data:`COMMANDS` (name, module, help line), and
a command's module is imported only when that command runs (or its own ``--help`` is shown). ``evrobust
--help`` therefore imports no command module at all, and ``evrobust preprocess ...`` never imports torch,
which only the training, attack and analysis modules need (``tests/cli/test_lazy_cli.py`` checks both).
"""

from __future__ import annotations

import importlib
import logging
import sys
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from evrobust.pipelines.cli.errors import OneLineErrorGroup, guard, guard_typer


@dataclass(frozen=True)
class LazyCommand:
    """One command of the root app, loaded on first use.

    ``attr`` names a command function in ``module`` (a plain command) or a ``typer.Typer`` sub-app
    (``group=True``, e.g. ``preprocess``). ``help`` is the line ``evrobust --help`` shows; it is also the
    command's own help, so listing the commands needs no import.
    """

    module: str
    attr: str
    help: str
    group: bool = False

    def load(self, name: str) -> Any:
        """Import the module and build the click command (errors follow the CLI contract via ``guard``)."""
        target = getattr(importlib.import_module(self.module), self.attr)
        if self.group:
            command = typer.main.get_group(guard_typer(target))
            command.name = name
            command.help = self.help
            return command
        single = typer.Typer(rich_markup_mode="rich", add_completion=False, pretty_exceptions_enable=False)
        single.command(name, help=self.help)(guard(target))
        return typer.main.get_command(single)


_CLI = "evrobust.pipelines.cli"
COMMANDS: dict[str, LazyCommand] = {
    "info": LazyCommand(
        f"{_CLI}.info",
        "info_command",
        "Print versions, the compute device and the available neuron backends.",
    ),
    "preprocess": LazyCommand(
        f"{_CLI}.preprocess",
        "app",
        "Turn raw recordings / image batches into zarr stores (Numba kernels, dask-parallel).",
        group=True,
    ),
    "train": LazyCommand(
        f"{_CLI}.train", "train_command", "Train an SNN with a defense (vanilla, sr, at, sr_star, rat)."
    ),
    "attack": LazyCommand(
        f"{_CLI}.attack",
        "attack_command",
        "Run white-box or black-box attacks on a trained run and write the results.",
    ),
    "analyze": LazyCommand(
        f"{_CLI}.analyze",
        "app",
        "Gradient sparsity, random vs adversarial vulnerability, the Theorem 1 check, gradient plots.",
        group=True,
    ),
    "reproduce": LazyCommand(
        f"{_CLI}.reproduce",
        "reproduce_command",
        "Reproduce a paper table or figure (table1..7, fig1/3/4/5/6, tradeoff) or the masking study at a "
        "scale.",
    ),
    "leaderboard": LazyCommand(
        f"{_CLI}.leaderboard",
        "leaderboard_command",
        "Train every defense, evaluate each with the converged reliable suite, rank what the data separates.",
    ),
    "report": LazyCommand(
        f"{_CLI}.report",
        "report_command",
        "Write report.md (paper-layout tables, masking checks, plots) for runs or reproductions.",
    ),
    "compare": LazyCommand(
        f"{_CLI}.compare",
        "compare_command",
        "Compare two models on the same samples: intervals, paired counts, exact McNemar test.",
    ),
    "export": LazyCommand(
        f"{_CLI}.export",
        "export_command",
        "Export a trained run to NIR (neuromorphic hardware and simulators, e.g. norse).",
    ),
    "demo": LazyCommand(
        f"{_CLI}.demo",
        "demo_command",
        "Train and attack SNNs on the embedded digits (images and events); print the summary.",
    ),
}


class _LazyCommands(dict):
    """The group's ``commands`` mapping: names of :data:`COMMANDS` are present from the start; a command is
    built when it is looked up (``[name]``, ``get``) or when all of them are read (``items``, ``values``).

    Membership, iteration and ``keys`` do not load anything, so listing the names stays free; code that walks
    ``group.commands.items()`` (completion, tests that visit every command) sees every real command.
    """

    def _loaded(self, name: str) -> bool:
        return dict.__contains__(self, name)

    def __missing__(self, name: str) -> Any:
        spec = COMMANDS.get(name)
        if spec is None:
            raise KeyError(name)
        command = spec.load(name)
        self[name] = command
        return command

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        try:
            return self[name]
        except KeyError:
            return default

    def __contains__(self, name: object) -> bool:
        return self._loaded(name) or name in COMMANDS  # type: ignore[arg-type]

    def keys(self) -> list[str]:  # type: ignore[override]
        eager = [n for n in dict.keys(self) if n not in COMMANDS]
        return [*eager, *COMMANDS]

    def __iter__(self):  # noqa: ANN204 - a plain iterator over the names
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def items(self) -> list[tuple[str, Any]]:  # type: ignore[override]
        return [(name, self[name]) for name in self.keys()]

    def values(self) -> list[Any]:  # type: ignore[override]
        return [self[name] for name in self.keys()]


class LazyCommandGroup(OneLineErrorGroup):
    """The root group: commands from :data:`COMMANDS` are built on first lookup, and listed without loading.

    While the root's own help is rendered, a lookup of a command not built yet returns a stub that carries
    only the name and help line; any other lookup (running a command, its ``--help``, completion) builds the
    real command once. Commands registered the ordinary way (``app.command``) are listed first and work as
    usual.
    """

    _listing = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = _LazyCommands(self.commands)

    def list_commands(self, ctx: Any) -> list[str]:
        return self.commands.keys()

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        commands = self.commands
        if self._listing and cmd_name in COMMANDS and not commands._loaded(cmd_name):
            return TyperCommand(cmd_name, help=COMMANDS[cmd_name].help, callback=None)
        return commands.get(cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="evrobust",
    cls=LazyCommandGroup,
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


def main() -> None:
    """Console-script entry point."""
    app()
