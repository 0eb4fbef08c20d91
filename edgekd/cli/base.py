"""What every `edgekd` command shares: the one Typer app the command modules register on, the consoles, the one
way an error or an interrupt reaches the user, and `main`."""

from __future__ import annotations

import _thread
import functools
import json
import os
import signal
import sys
import threading
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from edgekd import __version__
from edgekd.errors import (
    ENVIRONMENT_ERRNOS,
    EXIT_BAD_INPUT,
    EXIT_BUG,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EdgekdError,
    environment_error,
)

app = typer.Typer(
    help="Distil a large pretrained embedding model into a small one that fits an edge device, and prove it fits.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


# What an interrupted command leaves, and how to go on.
_AFTER_INTERRUPT = {
    "distill": "the run continues from its last finished epoch with --resume",
    "cache_build": "finished cache shards are kept; run it again to compute the rest",
    "tune": "finished trials are kept; run it again to continue",
    "search": "finished trials are kept (study.db and trials/ in the output folder); run it again to continue",
    "export": "the previous export, if any, is as it was; run it again",
    "evaluate": "evaluation.json holds the datasets finished (before the first, the previous evaluation.json, if any, "
                "is as it was); run it again",
}


def report_line(text: str, label: str = "[red]error:[/]") -> None:
    """The one way an error reaches the user: one line on stderr, user text printed as it is (never as markup)."""
    err_console.print(f"{label} {escape(text)}", highlight=False, soft_wrap=True)


def user_errors(command):
    """Bad input is one line on stderr and an exit code, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except EdgekdError as err:
            report_line(str(err))
            raise typer.Exit(err.exit_code) from None
        except typer.Exit:
            raise
        except KeyboardInterrupt:
            return _interrupted(command.__name__)
        except Exception as err:  # a bug, not bad input: one line unless asked for the traceback
            if _signals_received:  # the interrupt, wrapped by a library (the exporter's tracer does)
                return _interrupted(command.__name__)
            if isinstance(err, OSError) and err.errno in ENVIRONMENT_ERRNOS:  # outside edgekd's own writers
                report_line(str(environment_error(err.filename or "a file", err, doing="use")))
                raise typer.Exit(EXIT_BAD_INPUT) from None
            if os.environ.get("EDGEKD_DEBUG"):
                raise
            report_line(f"{type(err).__name__}: {err} (EDGEKD_DEBUG=1 shows the traceback)", "[red]internal error:[/]")
            raise typer.Exit(EXIT_BUG) from None

    return wrapper


def _interrupted(command: str):
    """The interrupt as one line saying what the command leaves and how to go on."""
    _cancel_redeliveries()
    hint = _AFTER_INTERRUPT.get(command, "nothing was finished; run it again")
    report_line(hint, "[yellow]interrupted:[/]")
    raise typer.Exit(EXIT_INTERRUPTED)


def a_folder(path: Path | None) -> Path | None:
    """An --out that names an existing file, not a folder, is refused before any work (a usage error naming it)."""
    if path is not None and path.exists() and not path.is_dir():
        raise typer.BadParameter(f"{path} is a file, not a folder; give a folder's path")
    return path


def progress_bars() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[status]}"), console=err_console, transient=False)


JSON_LISTING = typer.Option(False, "--json", help="print the listing as a JSON list of objects")


def listing_output(title: str, records: list[dict], columns: dict[str, str], as_json: bool, **formats) -> None:
    """A listing as a table, or with --json as the records the table shows."""
    from edgekd.render.tables import listing

    if as_json:
        print(json.dumps(records, indent=1))
    else:
        console.print(listing(title, records, columns, formats))


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="print the version and exit")):
    if version:
        console.print(f"edgekd {__version__}")
        raise typer.Exit()


# typer's usage errors (bad flag, bad choice, missing argument) as one class; typer re-exports only BadParameter
_USAGE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


_signals_received: list[int] = []
_redeliveries: list[threading.Timer] = []
REDELIVERY_SECONDS = 0.05


def _interrupt(signum, frame):
    _signals_received.append(signum)
    raise KeyboardInterrupt


def _unraisable(unraisable) -> None:
    """An interrupt raised where Python cannot raise it (inside a garbage-collection callback, such as the one JAX
    registers) would be printed as "Exception ignored" and lost: it is delivered again a moment later instead, once
    the callback has returned. Anything else is reported as Python reports it."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt) and _signals_received:
        if not any(timer.is_alive() for timer in _redeliveries):
            _redeliveries.append(threading.Timer(REDELIVERY_SECONDS, _thread.interrupt_main, (_signals_received[-1],)))
            _redeliveries[-1].start()
        return
    sys.__unraisablehook__(unraisable)


def _cancel_redeliveries() -> None:
    """Once an interrupt has been answered, none delivered again may reach what runs next."""
    for timer in _redeliveries:
        timer.cancel()
    _redeliveries.clear()


def main() -> None:
    """Usage errors are one line naming the flag (exit 2), like every other error. SIGINT always interrupts (a
    shell starts a script's background jobs with it ignored) and SIGTERM, as a cancelled CI job sends, interrupts
    the same way, so that every command cleans up and exits 130."""
    if len(sys.argv) == 1:
        app()  # no arguments: the help
    _signals_received.clear()
    handlers = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    sys.unraisablehook = _unraisable
    try:
        code = app(standalone_mode=False)
    except _USAGE_ERROR as err:
        command = err.ctx.command_path if err.ctx else "edgekd"
        message = err.format_message().replace("Value error, ", "")  # pydantic's prefix on typer's choice errors
        report_line(f"{message} (see `{command} --help`)")
        code = EXIT_BAD_INPUT
    except typer.Abort:
        code = EXIT_INTERRUPTED
    finally:
        _cancel_redeliveries()
        sys.unraisablehook = sys.__unraisablehook__
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    sys.exit(code or EXIT_OK)


def run() -> None:
    """The `edgekd` executable (and `python -m edgekd`): `main()`, after which an interrupt that arrives while Python
    shuts down (torch and JAX take a while) changes nothing: the finished command's exit code stands, where Python's
    own handlers would have died of the signal (exit 143, or -2) with no line."""
    try:
        main()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
