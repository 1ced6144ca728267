"""What every command needs: the board, who is acting, and how to print."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click
import sqlite_utils

from board import actors, connection, errors, ids
from worker import env


def open_board(ctx: click.Context) -> sqlite_utils.Database:
    root = ctx.find_root()
    if "db" not in root.meta:
        root.meta["db"] = connection.connect((root.obj or {}).get("db_path"))
    return root.meta["db"]


def board_path(ctx: click.Context) -> str:
    return connection.path_of(open_board(ctx))


def worker_from_env() -> actors.Worker | None:
    """Inside a worker (its run's variables set), commands act as that run, fenced."""
    task = os.environ.get(env.TASK)
    if not task:
        return None
    run, token = os.environ.get(env.RUN_ID), os.environ.get(env.TOKEN)
    if not run or not token or not run.isdigit():
        raise errors.InvalidInput(
            f"{env.TASK} is set but {env.RUN_ID}/{env.TOKEN} are missing or invalid; inside a "
            f"worker all three are set by the dispatcher (unset {env.TASK} to act as an operator)"
        )
    return actors.Worker(ids.parse(task), int(run), token)


def actor() -> actors.Actor:
    return worker_from_env() or actors.OPERATOR


def task_id(value: str) -> int:
    return ids.parse(value)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False))


def console():  # rich is imported only by commands that draw
    from rich.console import Console

    # Piped output is read by scripts and people's pagers: do not wrap it at 80 columns.
    width = None if sys.stdout.isatty() else 200
    return Console(highlight=False, soft_wrap=False, file=sys.stdout, width=width)
