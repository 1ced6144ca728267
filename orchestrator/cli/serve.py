"""`kanban serve`: the web board (orchestrator.web)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import click

from board import connection, errors, feed
from orchestrator.cli import context


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="KANBAN_SERVE_HOST",
    help="Address to listen on; anything but loopback needs the board's token.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    envvar="KANBAN_SERVE_PORT",
    help="Port to listen on (0: any free one).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the board in a browser.")
@click.option(
    "--dispatch", is_flag=True, help="Also run a dispatcher (`kanban dispatch`) while serving."
)
@click.option("--new-token", is_flag=True, help="Make a new token (the old one stops working).")
@click.pass_context
def serve(ctx, host, port, open_browser, dispatch, new_token):
    """Serve the board as a web page, live, with the CLI's actions; and a JSON API.

    On 127.0.0.1 (the default) no token is asked for. On any other address every request
    needs the board's token, made (and printed, once) the first time, or with --new-token;
    the board keeps only its hash. It prints the URL, then serves until Ctrl-C.

    \b
    Examples:
      kanban serve --open
      kanban serve --dispatch --port 9000
      kanban serve --host 0.0.0.0          # prints the token once
    """
    from orchestrator.web import app as web_app
    from orchestrator.web import security, server

    worker = context.worker_from_env()
    if worker is not None:
        raise errors.NotForWorkers(
            "serving the web board", f"t_{worker.task_id}", "complete your task instead"
        )
    db = context.open_board(ctx)
    path = context.board_path(ctx)
    where = server.listen(host, port)
    token = None
    if not security.is_loopback(host):
        token = server.ensure_token(db, renew=new_token)
    elif new_token:
        click.echo("Note: on a loopback address no token is used; --new-token ignored", err=True)
    policy = server.policy(db, where)
    feed.record_server(db, where.url, os.getpid())
    application = web_app.create(path, policy=policy)
    child = _dispatcher(path) if dispatch else None

    def ready() -> None:
        click.echo(f"kanban serve: {where.url} (board {connection.shown(path)})")
        if token is not None:
            click.echo(f"token: {token}")
            click.echo("  (shown once: the board keeps only its hash; --new-token replaces it)")
        elif policy.token_hash is not None:
            click.echo("token: the one printed before (--new-token makes a new one)")
        sys.stdout.flush()
        if open_browser:
            import webbrowser

            webbrowser.open(where.url)

    # SIGTERM as Ctrl-C: uvicorn stops serving and passes it on; the dispatcher child is
    # stopped either way (`finally`), and the exit code says interrupted (130).
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        server.run(application, where, on_ready=ready)
    finally:
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)  # it finishes its running work, then exits
            child.wait()


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _dispatcher(path: str) -> subprocess.Popen:
    """`kanban dispatch` on the same board, as a child process of its own (a PostgreSQL
    board's URL in its environment, not on its command line)."""
    db_arg, db_env = connection.handed(path)
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from orchestrator.cli.main import main; main()",
            "--db",
            db_arg,
            "dispatch",
        ],
        stdin=subprocess.DEVNULL,
        env={**os.environ, **db_env},
    )


COMMANDS = [serve]
