"""Processes named by pid and start time, as the board records them: ended yet, or ended now."""

from __future__ import annotations

import contextlib
from typing import Any

import psutil


def gone(pid: int, started_at: float) -> bool:
    """The process that had `pid` at `started_at` has ended (a zombie counts as ended)."""
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - started_at) > 0.05:
            return True
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def identities(pids: list[int]) -> list[tuple[int, float]]:
    return [(pid, psutil.Process(pid).create_time()) for pid in pids]


def kill_tree(pid: int | None, started_at: float | None) -> None:
    """Kill the process that had `pid` at `started_at`, and every process below it.

    Workers live in sessions of their own and outlive a killed dispatcher: a test's tear-down
    must not leave them behind. Without a start time the pid may name another process by now,
    so nothing is killed.
    """
    if not pid or started_at is None or gone(pid, started_at):
        return
    with contextlib.suppress(psutil.NoSuchProcess):
        root = psutil.Process(pid)
        for proc in [*root.children(recursive=True), root]:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()


def end_board_processes(db: Any) -> None:
    """Kill every process a test's board knows of: its runs' agents and shims (they live in
    sessions of their own and outlive a killed dispatcher) and its tool server."""
    from board import connection, services

    for run in connection.read(db, "SELECT * FROM runs"):
        kill_tree(run["pid"], run["pid_started_at"])
        kill_tree(run["shim_pid"], run["shim_started_at"])
    server = services.tool_server(db)
    if server is not None:
        kill_tree(server.pid, server.pid_started_at)
