"""The typer app, its two consoles, and how errors become exit codes.

Exit codes: 0 done; 1 a study (or job) raised; 2 bad input, reported as one red sentence on
stderr with no traceback; 130 interrupted. Commands raise :class:`Fail` (via :func:`fail`) or let
the engine's :class:`~symlab.engine.errors.InputError` through :func:`guard`; :func:`main` turns
both into the red sentence and the exit code.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

try:  # recent typer vendors click
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # pragma: no cover - older typer on top of click
    from click.exceptions import ClickException, UsageError  # type: ignore[no-redef]

app = typer.Typer(
    name="symlab",
    help="symlab: run deep-learning-theory studies and read their results.\n\n"
    "Start with `symlab list`, then `symlab run STUDY` (the quick preset) and "
    "`symlab show runs/STUDY`.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# ``Console()`` resolves sys.stdout at print time, so output capture in tests works.
# markup off: paths and messages may contain [brackets]
out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

DebugOption = Annotated[
    bool,
    typer.Option(
        "--debug", help="Show the full Python traceback of an error that stops the command."
    ),
]


class Fail(Exception):
    """Stop the command with one red sentence on stderr and an exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Stop the command: ``message`` (one sentence) in red on stderr, exit with ``code``."""
    raise Fail(message, code)


@contextmanager
def guard(debug: bool) -> Iterator[None]:
    """Turn engine errors into exit codes: InputError -> 2 (bad input), anything else -> 1."""
    from symlab.engine.errors import InputError

    try:
        yield
    except (Fail, typer.Exit, KeyboardInterrupt):
        raise
    except InputError as error:
        raise Fail(str(error), EXIT_USAGE) from error
    except Exception as error:
        if debug or os.environ.get("SYMLAB_DEBUG"):
            err.print(traceback.format_exc(), markup=False)
        hint = "" if debug else " (run with --debug for the traceback)"
        raise Fail(f"error: {type(error).__name__}: {error}{hint}", EXIT_FAILED) from error


def print_outputs(result: Any, extra: str | None = None) -> None:
    """Where a run's table, figures and report went, then its verdict."""
    out.print(f"table:   {result.paths['summary']}")
    out.print(f"figures: {result.paths['figures']} ({len(result.figures)} files)")
    out.print(f"report:  {result.paths['report']}")
    if extra:
        out.print(extra)
    if result.summary is not None:
        out.print()
        out.print(Text(result.summary.verdict.strip()))


def check_run_dir(path: Path) -> Path:
    """``path`` if it is a run directory (holds a store), else fail with exit code 2."""
    from symlab.engine.store import STORE_NAME

    if not path.is_dir():
        fail(f"DIR: '{path}' is not a directory.")
    if not (path / STORE_NAME).is_file():
        fail(f"DIR: '{path}' is not a symlab run directory (no {STORE_NAME}).")
    return path


def _usage_message(error: ClickException, argv: list[str]) -> str:
    """A usage error as one sentence pointing at the help of the command that was typed."""
    message = error.format_message().rstrip(".")
    if not message:  # `symlab` alone: the help was printed
        return ""
    context = getattr(error, "ctx", None) if isinstance(error, UsageError) else None
    if context is not None:
        command = context.command_path
    else:  # some parser errors carry no context: the first word that names a command
        names = {
            c.name or getattr(c.callback, "__name__", "").replace("_", "-")
            for c in app.registered_commands
        }
        typed = next((word for word in argv if not word.startswith("-")), None)
        command = f"symlab {typed}" if typed in names else "symlab"
    return f"{message} (see {command} --help)."


def main(argv: list[str] | None = None) -> NoReturn:
    """The ``symlab`` entry point: run the typer app and exit with its code."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="symlab", standalone_mode=False)
    except Fail as failure:
        err.print(Text(str(failure), style="red"))
        code = failure.code
    except ClickException as error:  # usage errors: unknown option, bad int, missing argument
        message = _usage_message(error, sys.argv[1:] if argv is None else argv)
        if message:
            err.print(Text(message, style="red"))
        code = error.exit_code
    except typer.Abort:
        code = EXIT_FAILED
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    sys.exit(code if isinstance(code, int) else 0)
