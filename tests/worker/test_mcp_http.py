"""The board's MCP tool server over streamable HTTP: a run's token is its only key, and the
rules are the stdio server's worker mode, fencing included."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from board import errors, runs, services, tasks
from board.states import Outcome
from orchestrator import processes, toolserver


@pytest.fixture
def server(db, db_path: Path, tmp_path: Path):
    found = toolserver.ensure(str(db_path), log_dir=tmp_path / "logs", idle_exit=30)
    yield found
    processes.kill_tree(found.pid, found.pid_started_at, grace=1)


@contextlib.asynccontextmanager
async def session(url: str, token: str) -> AsyncIterator[ClientSession]:
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http:
        async with streamable_http_client(url, http_client=http) as (read, write, *_):
            async with ClientSession(read, write) as client:
                await client.initialize()
                yield client


def text(result: Any) -> str:
    return "\n".join(c.text for c in result.content if hasattr(c, "text"))


def claim(db, title: str) -> runs.Claim:
    (claimed,) = runs.claim(db, task_id=tasks.create(db, tasks.NewTask(title)))
    return claimed


def test_a_run_token_reaches_its_own_task_and_nothing_else(db, server) -> None:
    mine, theirs = claim(db, "mine"), claim(db, "theirs")

    async def scenario() -> None:
        async with session(server.url, mine.token) as client:
            listed = {t.name: t for t in (await client.list_tools()).tools}
            assert "kanban_complete" in listed
            # Worker mode only: no orchestrator's view of the board over a port.
            assert listed["kanban_create"].description.startswith(
                f"Create a subtask of your task t_{mine.task.id}"
            )
            result = await client.call_tool("kanban_heartbeat", {"note": "over http"})
            assert not result.is_error, text(result)
            refused = await client.call_tool(
                "kanban_complete", {"summary": "not mine", "task_id": f"t_{theirs.task.id}"}
            )
            assert refused.is_error
            assert f"t_{theirs.task.id}" in text(refused)
            done = await client.call_tool("kanban_complete", {"summary": "done over http"})
            assert not done.is_error, text(done)

    anyio.run(scenario)
    assert runs.get(db, mine.run_id).note == "over http"
    assert tasks.get(db, theirs.task.id).status == "running"  # untouched


def test_a_stale_token_is_refused_by_fencing(db, server) -> None:
    old = claim(db, "retried")
    runs.settle(db, old.run_id, Outcome.STALLED, reason="no heartbeat", retry_at=0)

    async def scenario() -> None:
        async with session(server.url, old.token) as client:
            result = await client.call_tool("kanban_complete", {"summary": "I am back"})
            assert result.is_error
            assert "no longer holds" in text(result) or "already ended" in text(result)

    anyio.run(scenario)
    assert tasks.get(db, old.task.id).status == "ready"


@pytest.mark.parametrize("header", [None, "Bearer forged-token", "Basic abc"])
def test_a_forged_or_missing_token_gets_nothing(db, server, header: str | None) -> None:
    claim(db, "someone's")
    headers = {"Authorization": header} if header else {}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    request = urllib.request.Request(
        server.url,
        data=json.dumps(body).encode(),
        headers={
            **headers,
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401
    assert "kanban" in json.loads(refused.value.read())["error"]


def test_the_token_is_not_in_the_board_and_the_server_says_where_it_listens(
    db, server, db_path: Path
) -> None:
    claimed = claim(db, "secret")
    assert claimed.token.encode() not in db_path.read_bytes()
    recorded = services.tool_server(db)
    assert recorded is not None and recorded.url == server.url
    assert recorded.url.startswith("http://127.0.0.1:")
    with pytest.raises(errors.RunNotFound):
        runs.get(db, 999)


def test_a_dead_server_is_started_again_on_its_port(db, db_path: Path, server, tmp_path) -> None:
    processes.kill_tree(server.pid, server.pid_started_at, grace=1)
    assert not toolserver.alive(server)
    again = toolserver.ensure(str(db_path), log_dir=tmp_path / "logs", idle_exit=30)
    try:
        assert again.pid != server.pid and again.port == server.port
        assert toolserver.alive(again)
    finally:
        processes.kill_tree(again.pid, again.pid_started_at, grace=1)
