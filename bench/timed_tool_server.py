"""The board's tool server, unchanged, with a log of when each HTTP request came and went.

    python -m bench.timed_tool_server --log REQUESTS.jsonl -- --db BOARD [--port N] [...]

Everything after ``--`` goes to `worker.mcp_server.http` (its own ``main``: the same socket,
uvicorn settings and board record); only its ASGI application is wrapped. One JSON line per
request: ``arrived`` (the request reached the application), ``answered`` (the last byte of
the answer was handed to uvicorn), the HTTP method and status, the JSON-RPC method(s) of the
body, and the first 8 hex digits of the bearer's SHA-256, which tells the workers apart.
For the benchmarks, which compare these times with each Codex's spawn and first model request.

``--nodelay`` also turns Nagle's algorithm off on its sockets: a proposed fix, measured beside
the server as shipped (whose answers, written as headers then body, otherwise wait up to 40 ms
for the client's delayed acknowledgement when requests come back to back).

`start` runs it on a board and waits until it listens; `stop` ends a board's tool server,
whoever started it (a dispatcher starts the real one, detached, on demand).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from board import connection, services
from orchestrator import processes
from worker.mcp_server import http

START_TIMEOUT = 30.0


def token_hash(token: str) -> str:
    """How the log names the worker holding `token`."""
    return hashlib.sha256(token.encode()).hexdigest()[:8]


def _who(scope: dict[str, Any]) -> str | None:
    token = http.bearer(scope.get("headers", []))
    return None if token is None else token_hash(token)


def _methods(body: bytes) -> list[str]:
    try:
        data = json.loads(body) if body else None
    except ValueError:
        return ["?"]
    messages = data if isinstance(data, list) else [data] if data is not None else []
    return [str(m.get("method", "response")) for m in messages if isinstance(m, dict)]


class Timed:
    """ASGI middleware: times every HTTP request of `inner`, appends a line to `log`."""

    def __init__(self, inner: Any, log: str) -> None:
        self.inner = inner
        self.log = open(log, "a", buffering=1)  # open as long as the server

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        row: dict[str, Any] = {
            "arrived": time.time(),
            "http": scope["method"],
            "who": _who(scope),
        }
        body = bytearray()

        async def receiving() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                body.extend(message.get("body", b""))
            return message

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                row["status"] = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                row["answered"] = time.time()

        try:
            await self.inner(scope, receiving, sending)
        finally:
            row["rpc"] = _methods(bytes(body))
            self.log.write(json.dumps(row) + "\n")


def _nodelay(bind: Any) -> Any:
    """`bind` whose listening socket has Nagle's algorithm off: Linux passes TCP_NODELAY on
    to every accepted socket. (asyncio sets it on accepted sockets only when the socket's
    protocol number says TCP, and `http.bind` makes its socket with protocol 0.)"""

    def bound(port: int) -> socket.socket:
        sock = bind(port)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    return bound


def start(
    db_path: Path, log: Path, *, nodelay: bool = False
) -> tuple[subprocess.Popen[bytes], services.ToolServer]:
    """This server on `db_path`, once it listens (its record in the board)."""
    argv = [sys.executable, "-m", "bench.timed_tool_server", "--log", str(log)]
    argv += ["--nodelay"] if nodelay else []
    argv += ["--", "--db", str(db_path), "--port", "0", "--idle-exit", "86400"]
    with open(log.with_suffix(".stderr"), "ab") as err:
        # A session of its own, as the dispatcher starts the real one: `stop` ends its group.
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        db = connection.connect(db_path, create=False)
        try:
            found = services.tool_server(db)
        finally:
            db.conn.close()
        if found is not None and found.pid == proc.pid:
            return proc, found
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"the timed tool server on {db_path} did not start; see {err.name}")


def stop(db_path: Path) -> services.ToolServer | None:
    """End the board's recorded tool server (SIGTERM, then SIGKILL) and wait until it is gone;
    returns what was recorded."""
    db = connection.connect(db_path, create=False)
    try:
        found = services.tool_server(db)
    finally:
        db.conn.close()
    if found is not None:
        processes.kill_tree(found.pid, found.pid_started_at, grace=5.0)
        deadline = time.monotonic() + 10.0
        while processes.alive(found.pid, found.pid_started_at):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the tool server (pid {found.pid}) outlived its SIGKILL")
            time.sleep(0.01)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.timed_tool_server")
    parser.add_argument("--log", required=True, help="append one JSON line per request here")
    parser.add_argument(
        "--nodelay",
        action="store_true",
        help="also set TCP_NODELAY on the listening socket (a proposed fix, for comparison)",
    )
    parser.add_argument("server_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    rest = args.server_args[1:] if args.server_args[:1] == ["--"] else args.server_args
    original = http.app
    if args.nodelay:
        http.bind = _nodelay(http.bind)  # type: ignore[assignment]
    http.app = lambda db_path: Timed(original(db_path), args.log)  # type: ignore[assignment]
    return http.main(rest)


if __name__ == "__main__":
    sys.exit(main())
