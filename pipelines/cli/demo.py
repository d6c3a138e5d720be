"""``evrobust demo``: thin wrapper over :func:`evrobust.pipelines.demo.run_demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def demo_command(
    out: Annotated[Path, typer.Option(help="Directory for the demo's runs and summary.")] = Path("runs/demo"),
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs per run.")] = 6,
    limit: Annotated[int, typer.Option(min=1, help="Test samples attacked per run.")] = 200,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory ($EVROBUST_DATA, ./data).")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
) -> None:
    """Train vanilla / SR / AT / SR* on the embedded digits (images and events), attack, analyse, report."""
    from rich.console import Console
    from rich.markdown import Markdown

    from evrobust.pipelines.demo import DemoConfig, run_demo

    cfg = DemoConfig(
        out=str(out),
        epochs=epochs,
        limit=limit,
        data_dir=None if data_dir is None else str(data_dir),
        device=device,
    )
    path, _ = run_demo(cfg)
    Console().print(Markdown(path.read_text()))
    typer.echo(f"summary written to {path}")
    typer.echo(f"report written to {path.parent / 'report.md'}")
