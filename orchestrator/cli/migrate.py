"""Moving a board to PostgreSQL: `kanban migrate-board`."""

from __future__ import annotations

import os

import click

from board import connection, errors, migrate, postgres
from orchestrator.cli import context


@click.command(name="migrate-board")
@click.option(
    "--from",
    "source",
    required=True,
    type=click.Path(dir_okay=False),
    help="The SQLite board file to copy.",
)
@click.option(
    "--to",
    "target",
    help="The new PostgreSQL board's URL (default: $KANBAN_DB when it is one).",
)
@click.option("--json", "as_json", is_flag=True)
def migrate_board(source, target, as_json):
    """Copy a SQLite board into a new PostgreSQL database, ids and history included.

    Stop the board's dispatchers first (no live run may be left). The copy is one
    transaction; every table's rows are counted on both sides afterwards. The source is
    left as it was: point KANBAN_DB at the new board once the copy is done.

    Keep a password off the command line: give it in $PGPASSWORD or ~/.pgpass, or give the
    whole URL in $KANBAN_DB and leave out --to.

    \b
    Example:
      PGPASSWORD=... kanban migrate-board --from ~/.kanban/board.db \\
          --to postgresql://kanban@db.internal/kanban
    """
    if target is None:
        target = os.environ.get("KANBAN_DB", "")
        if not postgres.is_url(target):
            raise errors.InvalidInput(
                "give --to the PostgreSQL board's URL (or set KANBAN_DB to it)"
            )
    moved = migrate.move(connection.location(source), target)
    if as_json:
        context.print_json({"board_id": moved.board_id, "counts": moved.counts})
        return
    for table, count in moved.counts.items():
        click.echo(f"{table}: {count}")
    click.echo(
        f"board {moved.board_id} copied to {postgres.redacted(target)}; the counts match. "
        "Point KANBAN_DB (or --db) at it from now on."
    )


COMMANDS = [migrate_board]
