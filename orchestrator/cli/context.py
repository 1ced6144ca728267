"""What every command needs: the board, who is acting, and how to print."""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any

import click
import sqlite_utils

from board import actors, connection, errors, ids
from worker import env


def open_board(ctx: click.Context, *, create: bool = True) -> sqlite_utils.Database:
    """The board of this invocation, opened once.

    Commands that only read (or act on tasks that must already exist) pass ``create=False``:
    a board missing at a mistyped path is reported, not created empty there.
    """
    root = ctx.find_root()
    if "db" not in root.meta:
        given = (root.obj or {}).get("db_path")
        try:
            root.meta["db"] = connection.connect(given, create=create)
        except errors.BoardNotFound as exc:
            raise errors.BoardNotFound(exc.path, _origin(root, given)) from None
    return root.meta["db"]


def existing_board(ctx: click.Context) -> sqlite_utils.Database:
    """The board, which must exist: for commands that read or change existing tasks."""
    return open_board(ctx, create=False)


def _origin(root: click.Context, given: str | None) -> str:
    if given is None:
        return "the default; set KANBAN_DB or pass --db for another board"
    if root.get_parameter_source("db_path") is click.core.ParameterSource.ENVIRONMENT:
        return f"from KANBAN_DB={given}"
    return f"from --db {given}"


def board_path(ctx: click.Context) -> str:
    return connection.path_of(open_board(ctx))


def worker_from_env() -> actors.Worker | None:
    """Inside a worker (its run's variables set), commands act as that run, fenced."""
    task = os.environ.get(env.TASK)
    if not task:
        return None
    run, token = os.environ.get(env.RUN_ID), os.environ.get(env.TOKEN)
    try:
        run_id: int | None = ids.parse_run(run or "")
    except errors.InvalidInput:
        run_id = None
    if run_id is None or not token:
        raise errors.InvalidInput(
            f"{env.TASK} is set but {env.RUN_ID}/{env.TOKEN} are missing or invalid; inside a "
            f"worker all three are set by the dispatcher (unset {env.TASK} to act as an operator)"
        )
    return actors.Worker(ids.parse(task), run_id, token)


def actor() -> actors.Actor:
    return worker_from_env() or actors.OPERATOR


def task_id(value: str) -> int:
    return ids.parse(value)


class Finite(click.FloatRange):
    """A float option that refuses ``inf`` and ``nan`` (no limit means leaving it out; and
    ``--json`` could not print them: JSON has no such numbers).

    Example: ``@click.option("--timeout", type=context.Finite(min=0, min_open=True))``.
    """

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False))


def console():  # rich is imported only by commands that draw
    from rich.console import Console

    # Piped output is read by scripts and people's pagers: do not wrap it at 80 columns.
    width = None if sys.stdout.isatty() else 200
    return Console(highlight=False, soft_wrap=False, file=sys.stdout, width=width)
