"""``evrobust demo``: thin wrapper over :func:`evrobust.pipelines.demo.run_demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

RELIABLE = 30
"""Default of ``--reliable-limit``; equals :data:`evrobust.pipelines.demo.RELIABLE_LIMIT` (a test says so),
kept here so that ``--help`` does not import the pipeline (and torch)."""


def _table(rows: list[dict[str, Any]]) -> Any:
    """The summary as a rich table: accuracy (%) clean and under attack, gradient l1, failed checks."""
    from rich.table import Table

    from evrobust.pipelines.demo import _num, _pct

    table = Table(title="evrobust demo: accuracy (%) at eps 8/255 [95 % interval]", title_justify="left")
    for header in (
        "data",
        "defense",
        "clean",
        "FGSM",
        "PGD-10",
        "black-box PGD-10",
        "grad l1",
        "failed checks",
    ):
        table.add_column(
            header, justify="left" if header in ("data", "defense", "failed checks") else "right"
        )
    for r in rows:
        table.add_row(
            r["data"],
            r["defense"],
            *(_pct(r[k], (r.get("ci95") or {}).get(k)) for k in ("clean", "fgsm", "pgd10", "bb_pgd10")),
            _num(r.get("grad_l1")),
            ", ".join(r["failed_checks"]) or "none",
        )
    return table


def _converged_table(rows: list[dict[str, Any]]) -> Any:
    """The converged evaluation as a rich table (None where no run has one)."""
    from rich.table import Table

    from evrobust.pipelines.demo import _pct, reliable_cell

    mine = [r for r in rows if r.get("reliable")]
    if not mine:
        return None
    table = Table(title="evaluated to convergence: robust accuracy (%) at eps 8/255 [95 % interval]",
                  title_justify="left")
    for header in ("data", "defense", "samples", "paper protocol", "reliable, after the certificate"):
        table.add_column(header, justify="left" if header in ("data", "defense") else "right")
    for r in mine:
        rel = r["reliable"]
        table.add_row(r["data"], r["defense"], str(rel["n"]), _pct(rel["paper"], rel["paper_ci95"]),
                      reliable_cell(rel))
    return table


def demo_command(
    out: Annotated[Path, typer.Option(help="Directory for the demo's runs and summary.")] = Path("runs/demo"),
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs per run.")] = 6,
    limit: Annotated[int, typer.Option(min=1, help="Test samples attacked per run.")] = 200,
    reliable_limit: Annotated[int, typer.Option(
        min=0, help="Test samples of each digits-dvs run's converged reliable evaluation (0: none).",
    )] = RELIABLE,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory ($EVROBUST_DATA, ./data).")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
) -> None:
    """Train vanilla / SR / AT / SR* on the embedded digits (images and events), attack, analyse, report."""
    from rich.console import Console

    from evrobust.pipelines.demo import DemoConfig, converged_findings, findings, paired_findings, run_demo

    cfg = DemoConfig(
        out=str(out),
        epochs=epochs,
        limit=limit,
        reliable_limit=reliable_limit,
        data_dir=None if data_dir is None else str(data_dir),
        device=device,
    )
    path, rows = run_demo(cfg)
    console = Console()
    console.print(_table(rows))
    converged = _converged_table(rows)
    if converged is not None:
        console.print(converged)
    for sentence in converged_findings(rows) + findings(rows) + paired_findings(rows):
        console.print(sentence, markup=False, highlight=False, soft_wrap=True)
    typer.echo(f"summary written to {path}")
    typer.echo(f"report written to {path.parent / 'report.md'}")
