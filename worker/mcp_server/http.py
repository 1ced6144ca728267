"""The kanban tools over streamable HTTP: one long-lived server per board, for every worker.

    python -m worker.mcp_server.http --db BOARD [--port N]

A dispatcher starts it when it first needs it (`orchestrator.toolserver`), and it outlives
dispatchers: each worker's Codex keeps its URL for the whole run. It listens on 127.0.0.1
only, on the port it is given (0: any free one; a restart asks for the port it had, so the
workers' URLs stay good), and records where it listens in the board (`board.services`).

Every request must carry ``Authorization: Bearer <a run's token>``: the token identifies the
run (the board keeps only its hash), and the server then applies exactly the worker-mode rules
and fencing of the stdio server (`tools.call_tool`, `board.policy`). A token no run has is
refused before the MCP layer sees the request (401); a stale one (its run ended) gets the
fencing error of each write, as over stdio. There is no orchestrator mode over a port.

Stateless: no session outlives a request, so a restarted server answers the next call of a
Codex that connected to its predecessor. It exits by itself once the board has had no live
run for `--idle-exit` seconds (default 600): the next dispatcher that needs it starts it again.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import sys
import time
from typing import Any

from worker.mcp_server import identity, server, specs, tools

HOST = "127.0.0.1"
PATH = "/mcp"
STATE_KEY = "kanban_identity"


def bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:`port` (0: any free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # No Nagle: each answer goes out at once instead of waiting ~40 ms for a delayed
    # acknowledgement (Linux gives every accepted socket the listening one's setting, and the
    # event loop sets it only on sockets it knows to be TCP).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((HOST, port))
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


def bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


def app(db_path: str) -> Any:
    """The ASGI application: a bearer gate in front of the MCP SDK's streamable HTTP."""
    import anyio
    import anyio.to_thread
    from mcp import types
    from mcp.server.lowlevel import Server
    from mcp.server.streamable_http_manager import (
        StreamableHTTPASGIApp,
        StreamableHTTPSessionManager,
    )
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    board = tools.Board(db_path, create=False)
    # One connection: one board call at a time, in a thread (a write may wait for a lock).
    limiter = anyio.CapacityLimiter(1)

    known: dict[str, identity.Identity] = {}  # a run's token never changes its run

    def identify(token: str) -> identity.Identity | None:
        from board import actors, runs

        run = runs.by_token(board.get(), token)
        if run is None:
            return None
        worker = actors.Worker(run.task_id, run.id, token)
        return identity.Identity(worker_mode=True, task_id=run.task_id, worker=worker)

    def who(ctx: Any) -> identity.Identity:
        return ctx.request.state.kanban_identity  # set by the gate for every request

    async def list_tools(ctx: Any, params: Any) -> Any:
        return server.listing(who(ctx), types)

    async def call(ctx: Any, params: Any) -> Any:
        ident = who(ctx)
        listed = {s.name: s for s in specs.tool_specs(ident)}
        outcome = await anyio.to_thread.run_sync(
            tools.call_tool,
            board,
            ident,
            listed,
            params.name,
            params.arguments,
            limiter=limiter,
        )
        return server.result(outcome, types)

    mcp_server = Server(
        server.SERVER_NAME,
        version=server.version(),
        instructions=server.WORKER_INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call,
    )
    manager = StreamableHTTPSessionManager(
        app=mcp_server,
        stateless=True,
        json_response=True,
        security_settings=TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=[f"{HOST}:*", "localhost:*"],
            allowed_origins=[f"http://{HOST}:*", "http://localhost:*"],
        ),
    )
    mcp_asgi = StreamableHTTPASGIApp(manager)

    class Gate:
        """Only a run's token gets through; its run's identity rides on the request."""

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            token = bearer(scope.get("headers", []))
            found = None if token is None else known.get(token)
            if token is not None and found is None:
                found = await anyio.to_thread.run_sync(identify, token, limiter=limiter)
                if found is not None:
                    if len(known) > 10_000:
                        known.clear()
                    # Whether the run may still write is fencing's to say, at each write.
                    known[token] = found
            if found is None:
                why = "no bearer token" if token is None else "this token belongs to no run"
                response = JSONResponse(
                    {"error": f"{why}: the kanban tool server serves kanban's workers only"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
            scope.setdefault("state", {})[STATE_KEY] = found
            await mcp_asgi(scope, receive, send)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> Any:
        async with manager.run():
            try:
                yield
            finally:
                board.close()

    return Starlette(
        routes=[Route(PATH, endpoint=Gate(), methods=["GET", "POST", "DELETE"])],
        lifespan=lifespan,
    )


def record(db_path: str, port: int) -> None:
    """Say in the board where this server listens (read by every dispatcher)."""
    import psutil

    from board import connection, services

    db = connection.connect(db_path, create=False)
    try:
        services.record_tool_server(
            db,
            services.ToolServer(
                url=f"http://{HOST}:{port}{PATH}",
                port=port,
                pid=os.getpid(),
                pid_started_at=psutil.Process().create_time(),
                started_at=time.time(),
            ),
        )
    finally:
        db.conn.close()


async def _exit_when_idle(served: Any, db_path: str, idle_exit: float) -> None:
    """Stop serving once the board has had no unended run for `idle_exit` seconds."""
    import anyio
    import anyio.to_thread

    from board import connection, errors, runs

    def busy() -> bool | None:
        """Has the board a live run? None when the board is gone: nothing to serve."""
        if not connection.is_postgres(db_path) and not os.path.exists(db_path):
            return None
        try:
            db = connection.connect(db_path, create=False)
        except errors.BoardNotFound:
            return None
        try:
            return bool(runs.unended(db))
        finally:
            db.conn.close()

    idle_since = time.monotonic()
    while True:
        await anyio.sleep(min(idle_exit / 4, 15.0))
        try:
            state = await anyio.to_thread.run_sync(busy)
        except Exception:  # the board is locked or being replaced: judge again later
            continue
        if state is None:
            served.should_exit = True
            return
        if state:
            idle_since = time.monotonic()
        if time.monotonic() - idle_since >= idle_exit:
            served.should_exit = True
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.mcp_server.http")
    parser.add_argument("--db", required=True, help="the board")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument(
        "--idle-exit", type=float, default=600.0, help="exit after this long with no live run"
    )
    parser.add_argument(
        "--detach", action="store_true", help="once listening, go on in a child and exit"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="kanban tools: %(levelname)s %(message)s"
    )
    import uvicorn

    try:
        sock = bind(args.port)
    except OSError as exc:
        if args.port == 0:
            raise
        sys.stderr.write(f"kanban tools: port {args.port} is taken ({exc}); taking another\n")
        sock = bind(0)
    port = sock.getsockname()[1]
    if args.detach and os.fork() > 0:
        # The starter (a dispatcher) reaps this parent at once; the server is nobody's child.
        os._exit(0)
    from board import connection

    args.db = connection.location(args.db)  # a file's absolute path, or the board's URL
    application = app(args.db)
    config = uvicorn.Config(
        application, log_level="warning", access_log=False, lifespan="on", timeout_keep_alive=30
    )
    served = uvicorn.Server(config)

    async def run() -> None:
        # Recorded once listening: a dispatcher that reads the board can connect at once.
        original = served.startup

        async def startup(sockets: Any = None) -> None:
            await original(sockets=sockets)
            record(args.db, port)

        served.startup = startup  # type: ignore[method-assign]
        async with anyio.create_task_group() as group:
            group.start_soon(_exit_when_idle, served, args.db, args.idle_exit)
            await served.serve(sockets=[sock])
            group.cancel_scope.cancel()

    import anyio

    try:
        anyio.run(run)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
