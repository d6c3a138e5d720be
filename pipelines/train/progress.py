"""A rich progress bar with live fields (loss, accuracy), silent when disabled or not on a terminal."""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class StepProgress:
    """Context manager around :class:`rich.progress.Progress` for per-epoch step loops.

    Args:
        enabled: ``None`` = show only when stderr is a terminal; ``False`` = never (e.g. non-zero ranks).
    """

    def __init__(self, enabled: bool | None = None) -> None:
        console = Console(file=sys.stderr)
        self.enabled = console.is_terminal if enabled is None else enabled
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not self.enabled,
        )
        self._task: int | None = None

    def __enter__(self) -> StepProgress:
        self._progress.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.__exit__(kind, exc, tb)

    def start(self, description: str, total: int) -> None:
        """Begin a new bar (the previous one is removed)."""
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(description, total=total, status="")

    def advance(self, status: str) -> None:
        """One step done; ``status`` is shown beside the bar (e.g. ``loss 1.23 acc 45.6%``)."""
        if self._task is not None:
            self._progress.update(self._task, advance=1, status=status)
