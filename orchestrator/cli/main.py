"""The `kanban` command: one click group; each command group lives in its own module.

Exit codes are a contract: 0 success, 1 an expected failure (``Error: ...`` on stderr, saying
what to do next, never a traceback), 2 usage, 130 interrupted. An unexpected exception is a
bug: its traceback goes to a crash log (``~/.kanban/logs/crash-*.log``) and the user gets one
``Error: unexpected ...`` line naming that log, and exit 1.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import click

from board import connection, errors


class KanbanGroup(click.Group):
    """Turns every failure of a command into one line on stderr and an exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise  # click's own: usage errors (exit 2) and explicit exits
        except BrokenPipeError:
            raise  # the reader of our output has gone (`kanban list | head`): click exits quietly
        except (Exception, KeyboardInterrupt, BaseExceptionGroup) as exc:
            ctx.exit(_fail(ctx, exc))


def _fail(ctx: click.Context, exc: BaseException) -> int:
    """Report `exc` (or every error in a task group's exception group); returns the exit code.

    Expected failures (`errors.KanbanError`, and SQLite errors from a read, which the board
    describes) are ``Error: <message>``; anything else is a crash (`_crash`).
    """
    leaves = list(_leaves(exc))
    if any(isinstance(leaf, KeyboardInterrupt) for leaf in leaves):
        click.echo("Interrupted.", err=True)
        return 130
    messages = []
    for leaf in leaves:
        if isinstance(leaf, errors.KanbanError):
            messages.append(str(leaf))
        elif isinstance(leaf, sqlite3.Error):
            messages.append(str(connection.failure(_board_path(ctx), leaf)))
        else:
            return _crash(exc, leaf)
    for message in dict.fromkeys(messages):
        click.echo(f"Error: {message}", err=True)
    return 1


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _board_path(ctx: click.Context) -> str:
    db = ctx.find_root().meta.get("db")
    return connection.path_of(db) if db is not None else "the board"


def _crash(exc: BaseException, leaf: BaseException) -> int:
    """A bug: the traceback to a crash log, one line naming it to the user; exit 1."""
    from orchestrator import render

    try:
        where = f"the full traceback is in {_write_crash_log(exc)}"
    except OSError as err:
        where = f"its traceback could not be written ({err.strerror or err})"
    message = render.plain(" ".join(str(leaf).split()))
    if len(message) > 300:
        message = message[:297] + "..."
    what = f"{type(leaf).__name__}: {message}" if message else type(leaf).__name__
    click.echo(f"Error: unexpected {what}; {where}", err=True)
    return 1


def _write_crash_log(exc: BaseException) -> Path:
    """``~/.kanban/logs/crash-<time>-<pid>.log`` (else in the temporary directory)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    text = (
        f"kanban {_version()} crashed at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n"
        f"command: {shlex.join(sys.argv)}\n"
        f"python: {sys.version.split()[0]} ({sys.executable})\n\n"
        + "".join(traceback.format_exception(exc))
    )
    failure: OSError | None = None
    for directory in (Path.home() / ".kanban" / "logs", Path(tempfile.gettempdir())):
        path = directory / f"crash-{stamp}-{os.getpid()}.log"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            # Private: a traceback may quote task text.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as out:
                out.write(text)
            return path
        except OSError as err:
            failure = err
    assert failure is not None
    raise failure


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("kanban")
    except metadata.PackageNotFoundError:
        return "(unknown version)"


@click.group(cls=KanbanGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    "db_path",
    envvar="KANBAN_DB",
    type=click.Path(dir_okay=False),
    default=None,
    help="Board file, or a postgresql:// URL. Default: $KANBAN_DB, else ~/.kanban/board.db.",
)
@click.version_option(package_name="kanban")
@click.pass_context
def cli(ctx: click.Context, db_path: str | None) -> None:
    """Run coding agents in parallel, each in its own git worktree, on a shared board.

    \b
    Example:
      kanban create "Add a --verbose flag" --repo ~/src/app
      kanban dispatch --until-idle
    """
    ctx.obj = {"db_path": db_path}


def _register() -> None:
    # Command modules register themselves here; imported lazily by the entry point only.
    from orchestrator.cli import commands

    commands.register(cli)


def main() -> None:
    try:
        _register()
        cli.main(prog_name="kanban")
    except KeyboardInterrupt:  # pragma: no cover - raised outside a command
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as exc:  # outside any command: still one line and a log
        sys.exit(_crash(exc, exc))
