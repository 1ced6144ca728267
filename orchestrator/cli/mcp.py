"""`kanban mcp`: serve the kanban tools over MCP (stdio), the same server Codex starts."""

from __future__ import annotations

import click


@click.command()
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Board file (overrides kanban --db). Default: $KANBAN_DB, else ~/.kanban/board.db.",
)
@click.pass_context
def mcp(ctx: click.Context, db_path: str | None) -> None:
    """Serve the kanban tools to an MCP client over stdin/stdout.

    Worker mode when HERMES_KANBAN_TASK is set (writes fenced by the run's id and token, limited
    to that task and its subtasks), orchestrator mode otherwise. Stdout carries only the
    protocol; logs go to stderr. kanban's own workers use the board's long-lived HTTP tool
    server instead (the same tools and rules, worker mode only).

    \b
    Example (an MCP client's server entry):
      command = "kanban", args = ["--db", "/srv/board.db", "mcp"]
    """
    from worker.mcp_server import server

    path = db_path or (ctx.find_root().obj or {}).get("db_path")
    ctx.exit(server.run(path))


COMMANDS = [mcp]
