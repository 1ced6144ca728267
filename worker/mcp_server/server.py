"""Serving the kanban tools over stdio with the MCP SDK, until the client closes stdin.

The SDK, anyio and the board are imported when serving starts, not when this module is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from worker.mcp_server import identity, specs, tools

SERVER_NAME = "kanban"
WORKER_INSTRUCTIONS = (
    "Kanban board, worker mode: read your task with kanban_show; report progress with "
    "kanban_heartbeat or kanban_comment; split work with kanban_create; finish with exactly one "
    "call to kanban_complete (with a summary) or kanban_block (with what you need)."
)


def instructions(ident: identity.Identity) -> str:
    if not ident.worker_mode:
        return (
            "Kanban board (orchestrator mode): create tasks for coding agents, link their "
            "dependencies, follow and unblock them. Each task runs in its own git worktree."
        )
    if ident.problem:
        return f"Kanban board, worker mode, misconfigured: {ident.problem}"
    return (
        f"Kanban board, worker mode: you are working on task {ident.task_label}. Read it with "
        "kanban_show; report progress with kanban_heartbeat or kanban_comment; split work with "
        "kanban_create; finish with exactly one call to kanban_complete (with a summary) or "
        "kanban_block (with what you need)."
    )


async def serve(db_path: str | None = None, environ: Mapping[str, str] | None = None) -> None:
    """Serve the kanban tools over stdin/stdout until the client closes stdin."""
    import anyio
    import anyio.to_thread
    from mcp import types
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server

    ident = identity.from_env(
        os.environ if environ is None else environ, db_given=db_path is not None
    )
    listed = {s.name: s for s in specs.tool_specs(ident)}
    tool_listing = listing(ident, types)
    # One connection, so one board call at a time; in a thread, because a write may wait up
    # to the board's busy timeout for another process's lock and must not stall the protocol.
    limiter = anyio.CapacityLimiter(1)

    @contextlib.asynccontextmanager
    async def lifespan(_server: Any):
        board = tools.Board(db_path, create=not ident.worker_mode)
        try:
            yield board
        finally:
            board.close()

    async def list_tools(ctx: Any, params: Any) -> Any:
        return tool_listing

    async def call(ctx: Any, params: Any) -> Any:
        outcome = await anyio.to_thread.run_sync(
            tools.call_tool,
            ctx.lifespan_context,
            ident,
            listed,
            params.name,
            params.arguments,
            limiter=limiter,
        )
        return result(outcome, types)

    server = Server(
        SERVER_NAME,
        version=version(),
        instructions=instructions(ident),
        lifespan=lifespan,
        on_list_tools=list_tools,
        on_call_tool=call,
    )
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def listing(ident: identity.Identity, types: Any) -> Any:
    """The tools as MCP lists them for `ident` (`types`: the SDK's, imported by the caller)."""
    return types.ListToolsResult(
        tools=[
            types.Tool(
                name=s.name,
                title=s.title,
                description=s.description,
                input_schema=s.input_schema(),
                annotations=types.ToolAnnotations(
                    title=s.title,
                    read_only_hint=s.read_only,
                    destructive_hint=None if s.read_only else False,
                    idempotent_hint=s.idempotent,
                    open_world_hint=False,
                ),
            )
            for s in specs.tool_specs(ident)
        ]
    )


def result(outcome: tools.Reply, types: Any) -> Any:
    """A tool call's reply as MCP sends it (`types`: the SDK's, imported by the caller)."""
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=outcome.text)],
        structured_content=outcome.structured,
        is_error=not outcome.ok,
    )


def version() -> str:
    from importlib import metadata

    try:
        return metadata.version("kanban")
    except metadata.PackageNotFoundError:
        return ""


def run(db_path: str | None = None) -> int:
    """Serve until stdin closes; the exit code for a command line."""
    import anyio

    if not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("kanban mcp: %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.WARNING)
    try:
        anyio.run(serve, db_path)
    except KeyboardInterrupt:
        return 130
    return 0
