"""The CLI's one error contract.

* A user error (:class:`evrobust.errors.UserInputError`, or a usage error typer reports itself) prints one
  line on stderr naming the problem and the fix, and exits with code 2.
* Anything else is an internal error: the traceback goes to a log file, stderr gets one line that points to
  it, and the exit code is 1.
"""

from __future__ import annotations

import datetime as _dt
import functools
import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from typer.core import TyperGroup

from evrobust.errors import UserInputError
from evrobust.safeio import open_new

F = TypeVar("F", bound=Callable[..., Any])

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1


def log_dir() -> Path:
    """Where internal-error tracebacks are written: ``$EVROBUST_LOG_DIR`` or ``~/.cache/evrobust/logs``."""
    env = os.environ.get("EVROBUST_LOG_DIR")
    return Path(env) if env else Path.home() / ".cache" / "evrobust" / "logs"


def _write_crash_log(exc: BaseException) -> Path | None:
    try:
        directory = log_dir()
        directory.mkdir(parents=True, exist_ok=True)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        path = directory / f"crash-{stamp}-{os.getpid()}.log"
        with open_new(path) as fh:  # a fresh file, never through a link
            fh.write("".join(traceback.format_exception(exc)).encode("utf-8", "replace"))
        return path
    except OSError:
        return None


def divert_logging_after_error(exc: BaseException | None = None) -> Path | None:
    """After the error line, send every further log record (and unraisable-exception reports) to a log file.

    Libraries keep talking after a command has failed: zarr's event loop reports each pending read it drops
    at exit ("Task was destroyed but it is pending!", thousands of lines for a damaged store), dask reports
    its workers going away. The contract is one line on stderr, so the handlers that write to stderr are
    replaced by a file in :func:`log_dir` (created only if something is logged; the error itself is recorded
    there with its traceback). Returns that file, or None when the log directory is not writable (then the
    records are dropped).
    """
    root = logging.getLogger()
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    path: Path | None = log_dir() / f"error-{stamp}-{os.getpid()}.log"
    handler: logging.Handler = _AfterErrorLog(path, exc)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    streams = (sys.stderr, sys.__stderr__, sys.stdout, sys.__stdout__)
    for old in list(root.handlers):
        if not isinstance(old, logging.FileHandler) and getattr(old, "stream", None) in streams:
            root.removeHandler(old)
    root.addHandler(handler)

    def unraisable(info: Any) -> None:  # "Exception ignored in ..." at interpreter exit
        logging.getLogger("evrobust.unraisable").debug(
            "%s: %s", info.err_msg or "exception ignored", info.object, exc_info=info.exc_value
        )

    sys.unraisablehook = unraisable
    return path


class _AfterErrorLog(logging.FileHandler):
    """A log file created only when the first record arrives (a clean failure leaves no file), headed by
    the error that ended the command; records are dropped if the log directory cannot be written."""

    def __init__(self, path: Path, exc: BaseException | None) -> None:
        super().__init__(path, delay=True, encoding="utf-8")
        self._exc = exc

    def _open(self):  # noqa: ANN202 - logging's own hook
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        stream = super()._open()
        if self._exc is not None:
            stream.write(f"the command failed: {' '.join(str(self._exc).split())}\n")
            stream.write("".join(traceback.format_exception(self._exc)))
        return stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            super().emit(record)
        except OSError:  # pragma: no cover - an unwritable log directory: drop the noise
            pass

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        pass  # never print logging's own traceback to stderr


def fail(message: str) -> typer.Exit:
    """Print one user-error line on stderr and return the ``typer.Exit`` to raise (code 2)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_USER_ERROR)


def guard(func: F) -> F:
    """Wrap a command callback so it follows the error contract (signature preserved for typer)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except UserInputError as exc:
            # One line: a multi-line message would read as a traceback.
            line = fail(" ".join(str(exc).split()))
            divert_logging_after_error(exc)
            raise line from None
        except RecursionError as exc:
            # Python's json (and other recursive readers) give up on input nested thousands deep: that is
            # a damaged or hostile file, not a bug; the traceback names it in the log.
            line = fail(f"an input file is nested too deeply to read ({exc}); it is damaged or not ours")
            divert_logging_after_error(exc)
            raise line from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except Exception as exc:  # noqa: BLE001 - the contract: every other error is internal
            logging.getLogger("evrobust").debug("internal error", exc_info=exc)
            path = _write_crash_log(exc)
            where = f" (traceback in {path})" if path else ""
            message = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
            typer.echo(f"internal error: {message}{where}", err=True)
            divert_logging_after_error()
            raise typer.Exit(EXIT_INTERNAL_ERROR) from None

    return wrapper  # type: ignore[return-value]


def guard_typer(sub_app: typer.Typer) -> typer.Typer:
    """Apply :func:`guard` to every command registered on a sub-app (e.g. ``evrobust preprocess``)."""
    for info in sub_app.registered_commands:
        if info.callback is not None:
            info.callback = guard(info.callback)
    for group in sub_app.registered_groups:
        if group.typer_instance is not None:
            guard_typer(group.typer_instance)
    return sub_app


class OneLineErrorGroup(TyperGroup):
    """Root command group whose usage errors (unknown option, bad choice, missing argument) are one line.

    typer would draw a multi-line panel; the contract is one line on stderr naming the problem, exit code 2.
    """

    def main(  # type: ignore[override]
        self,
        args: list[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as exc:  # usage errors: unknown option, bad choice, ...
            if not standalone_mode:
                raise
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            message = " ".join(str(exc.format_message()).split()).replace("Value error, ", "")
            typer.echo(f"error: {message}{hint}", err=True)
            sys.exit(getattr(exc, "exit_code", 2))
        except typer.Abort:
            if not standalone_mode:
                raise
            typer.echo("aborted", err=True)
            sys.exit(1)
        if standalone_mode:
            # In non-standalone mode typer returns the exit code of a typer.Exit; commands return None.
            sys.exit(result if isinstance(result, int) else 0)
        return result
