"""The `kanban` command: one click group; each command group lives in its own module.

Exit codes are a contract: 0 success, 1 an expected failure (``Error: ...`` on stderr, saying
what to do next, never a traceback), 2 usage, 130 interrupted.
"""

from __future__ import annotations

import sys

import click

from board import errors


class KanbanGroup(click.Group):
    """Turns every expected failure into ``Error: ...`` and exit 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except errors.KanbanError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)


@click.group(cls=KanbanGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    "db_path",
    envvar="KANBAN_DB",
    type=click.Path(dir_okay=False),
    default=None,
    help="Board file. Default: $KANBAN_DB, else ~/.kanban/board.db.",
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
    _register()
    try:
        cli.main(prog_name="kanban")
    except KeyboardInterrupt:  # pragma: no cover - raised outside a command
        click.echo("Interrupted.", err=True)
        sys.exit(130)
