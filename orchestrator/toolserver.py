"""The board's MCP tool server: found, started on demand, restarted when it died.

One long-lived process per board (`worker.mcp_server.http`) serves the kanban tools to every
worker over HTTP on 127.0.0.1. The first dispatcher that needs it starts it; it is not a
child the dispatcher waits for (its own session, no parent-death signal), so it outlives
dispatcher restarts and every worker's Codex keeps its URL for the whole run. The next
dispatcher finds it through the board (`board.services`). One that died is started again on
the port it had, so the URLs that running workers hold stay good.

Blocking: call it from a thread.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import sqlite_utils

from board import connection, errors, services
from orchestrator import processes

START_TIMEOUT = 20.0


class ToolServerError(errors.KanbanError):
    """The tool server could not be started."""


def alive(found: services.ToolServer | None) -> bool:
    """Is the recorded server's process there, and does its port accept a connection?"""
    if found is None or not processes.alive(found.pid, found.pid_started_at):
        return False
    try:
        socket.create_connection(("127.0.0.1", found.port), timeout=1.0).close()
    except OSError:
        return False
    return True


def ensure(db_path: str, *, log_dir: Path, idle_exit: float = 600.0) -> services.ToolServer:
    """The board's running tool server: the recorded one if alive, else a new one.

    With a connection of its own: starting a server takes about a second, during which the
    caller's board connection stays free.
    """
    db = connection.connect(db_path, create=False)
    try:
        found = services.tool_server(db)
        if alive(found):
            assert found is not None
            return found
        log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with processes.exclusive(log_dir / "tool-server.lock"):
            found = services.tool_server(db)  # another dispatcher may have started it
            if alive(found):
                assert found is not None
                return found
            port = found.port if found else 0
            return _start(
                db, db_path, port=port, log=log_dir / "tool-server.log", idle_exit=idle_exit
            )
    finally:
        db.conn.close()


def _start(
    db: sqlite_utils.Database, db_path: str, *, port: int, log: Path, idle_exit: float
) -> services.ToolServer:
    before = services.tool_server(db)
    db_arg, db_env = connection.handed(db_path)
    argv = [
        sys.executable,
        "-P",  # never the working directory's `worker` package
        "-m",
        "worker.mcp_server.http",
        "--db",
        db_arg,
        "--port",
        str(port),
        "--idle-exit",
        str(idle_exit),
        "--detach",
    ]
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,  # not in the dispatcher's process group: it outlives it
            close_fds=True,
            env={**os.environ, **db_env},
            cwd="/",
        )
    deadline = time.monotonic() + START_TIMEOUT
    try:
        # It detaches once listening: its first process exits, the server goes on in a child.
        code = proc.wait(timeout=START_TIMEOUT)
    except subprocess.TimeoutExpired:
        processes.kill_tree(proc.pid, grace=1.0)
        proc.wait()
        code = None
    while code == 0 and time.monotonic() < deadline:
        found = services.tool_server(db)
        if found is not None and found != before and alive(found):
            return found
        time.sleep(0.02)
    raise ToolServerError(f"the kanban tool server did not start (exit {code}); its log is {log}")
