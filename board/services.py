"""Long-lived processes that serve a board: its MCP tool server (one per board and host).

The server records where it listens when it starts; dispatchers read it to hand workers its
URL, and start (or restart) it when it is gone. Only the board's settings hold it.
"""

from __future__ import annotations

import dataclasses
import json

import sqlite_utils

from board import dispatchers
from board.connection import rows, transaction


def _key() -> str:
    """One server per board and host: workers reach it on 127.0.0.1 (several hosts may share
    a PostgreSQL board, each with its own dispatchers, workers and server)."""
    return f"tool_server@{dispatchers.host()}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ToolServer:
    url: str  # http://127.0.0.1:PORT/mcp
    port: int
    pid: int
    pid_started_at: float | None
    started_at: float


def tool_server(db: sqlite_utils.Database) -> ToolServer | None:
    """Where the board's tool server said it listens (it may have died since)."""
    found = rows(db.conn, "SELECT value FROM settings WHERE key = ?", (_key(),))
    if not found:
        return None
    try:
        return ToolServer(**json.loads(found[0]["value"]))
    except (TypeError, ValueError):
        return None  # written by another version: treated as no server


def record_tool_server(db: sqlite_utils.Database, server: ToolServer) -> None:
    with transaction(db) as tx:
        tx.execute(
            "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
            " updated_at = excluded.updated_at",
            (_key(), json.dumps(dataclasses.asdict(server)), tx.now),
        )
