"""The kanban MCP server, driven over real stdio by the MCP SDK's own client."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from support import REPO_ROOT

from board import actors, runs, tasks
from board.states import Outcome
from worker import env
from worker.mcp_server import identity, specs, tools

TOOLS = {
    "kanban_show",
    "kanban_list",
    "kanban_complete",
    "kanban_block",
    "kanban_comment",
    "kanban_heartbeat",
    "kanban_create",
    "kanban_unblock",
    "kanban_link",
}


def server_env(db_path: Path, claim: runs.Claim | None = None, **extra: str) -> dict[str, str]:
    values = {env.DB: str(db_path), **extra}
    if claim is not None:
        values |= {
            env.TASK: f"t_{claim.task.id}",
            env.RUN_ID: str(claim.run_id),
            env.TOKEN: claim.token,
        }
    return values


@contextlib.asynccontextmanager
async def session(
    tmp_path: Path, environment: dict[str, str], args: list[str] | None = None
) -> AsyncIterator[ClientSession]:
    """A client session with a fresh server process (environment as scrubbed as Codex's)."""
    params = StdioServerParameters(
        command=sys.executable,
        args=args or ["-m", "worker.mcp_server"],
        env=environment,
        cwd=str(REPO_ROOT),
    )
    with (tmp_path / "server-stderr.log").open("a") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write) as client:
                await client.initialize()
                yield client


def run(test: Callable[[], Awaitable[None]]) -> None:
    anyio.run(test)


async def ok(client: ClientSession, name: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(name, arguments)
    assert not result.is_error, f"{name} failed: {text(result)}"
    assert result.content and text(result), "a short text rendering comes with every result"
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def fails(client: ClientSession, name: str, arguments: Any = None) -> str:
    result = await client.call_tool(name, arguments)
    assert result.is_error, f"{name} unexpectedly succeeded: {text(result)}"
    return text(result)


def text(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


def claim_new(db, title: str = "Fix the login bug") -> runs.Claim:
    task_id = tasks.create(db, tasks.NewTask(title))
    (claim,) = runs.claim(db, task_id=task_id)
    return claim


def test_lists_nine_tools_with_schemas_and_annotations(tmp_path: Path, db_path: Path) -> None:
    async def scenario() -> None:
        async with session(tmp_path, server_env(db_path)) as client:
            listed = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(listed) == TOOLS
        for tool in listed.values():
            assert tool.input_schema["type"] == "object"
            assert tool.description and len(tool.description) > 60
            assert tool.annotations is not None
            read_only = tool.name in ("kanban_show", "kanban_list")
            assert tool.annotations.read_only_hint is read_only
            if not read_only:
                assert tool.annotations.destructive_hint is False
        assert listed["kanban_show"].input_schema["required"] == ["task_id"]
        assert set(listed["kanban_complete"].input_schema["required"]) == {"summary", "task_id"}
        assert {"repo", "parent"} <= set(listed["kanban_create"].input_schema["properties"])
        assert listed["kanban_link"].annotations.idempotent_hint is True

    run(scenario)


def test_worker_mode_defaults_to_its_own_task(tmp_path: Path, db, db_path: Path) -> None:
    claim = claim_new(db)

    async def scenario() -> None:
        async with session(tmp_path, server_env(db_path, claim)) as client:
            listed = {tool.name: tool for tool in (await client.list_tools()).tools}
            shown = await ok(client, "kanban_show")
        assert listed["kanban_show"].input_schema["required"] == []
        assert listed["kanban_complete"].input_schema["required"] == ["summary"]
        # One set of arguments in both modes: the board's policy decides, not the schema.
        assert {"repo", "parent", "command"} <= set(
            listed["kanban_create"].input_schema["properties"]
        )
        assert shown["id"] == f"t_{claim.task.id}" and shown["status"] == "running"

    run(scenario)


def test_every_tool_works_in_orchestrator_mode(tmp_path: Path, db, db_path: Path) -> None:
    repo = str(tmp_path.resolve())

    async def scenario() -> None:
        async with session(tmp_path, server_env(db_path)) as client:
            first = (
                await ok(
                    client,
                    "kanban_create",
                    title="Write the parser",
                    body="Parse the config file",
                    priority=5,
                )
            )["task"]
            assert first["status"] == "ready" and first["priority"] == 5
            second = (
                await ok(
                    client,
                    "kanban_create",
                    title="Use the parser",
                    after=[first["id"]],
                    repo=str(tmp_path),
                )
            )["task"]
            assert second["status"] == "todo" and second["blockers"] == [first["id"]]
            assert second["repo"] == repo
            child = (await ok(client, "kanban_create", title="Parser tests", parent=first["id"]))[
                "task"
            ]
            assert child["parent"] == first["id"]

            listed = await ok(client, "kanban_list", status=["todo"])
            assert [t["id"] for t in listed["tasks"]] == [second["id"]]
            assert listed["more"] is False
            subtasks = await ok(client, "kanban_list", parent=first["id"])
            assert [t["id"] for t in subtasks["tasks"]] == [child["id"]]
            limited = await ok(client, "kanban_list", limit=1)
            assert len(limited["tasks"]) == 1 and limited["more"] is True

            linked = await ok(client, "kanban_link", blocker=child["id"], blocked=second["id"])
            assert linked["added"] is True
            assert linked["task"]["blockers"] == sorted([first["id"], child["id"]])
            again = await ok(client, "kanban_link", blocker=child["id"], blocked=second["id"])
            assert again["added"] is False

            comment = await ok(client, "kanban_comment", task_id=first["id"], body="Use tomllib")
            assert comment["task"] == first["id"]
            blocked = (
                await ok(
                    client, "kanban_block", task_id=second["id"], reason="Which config format?"
                )
            )["task"]
            assert blocked["status"] == "blocked"
            unblocked = (await ok(client, "kanban_unblock", task_id=second["id"], comment="TOML"))[
                "task"
            ]
            assert unblocked["status"] == "todo"  # its blockers are not done yet

            done = (
                await ok(client, "kanban_complete", task_id=child["id"], summary="Tests written")
            )["task"]
            assert done["status"] == "done"

            shown = await ok(client, "kanban_show", task_id=first["id"])
            assert [c["body"] for c in shown["comments"]] == ["Use tomllib"]
            assert [s["id"] for s in shown["subtasks"]] == [child["id"]]
            assert shown["events_omitted"] == 0 and shown["runs"] == []
            shown_second = await ok(client, "kanban_show", task_id=second["id"])
            assert [c["body"] for c in shown_second["comments"]] == ["TOML"]

            message = await fails(client, "kanban_heartbeat", {"note": "hi"})
            assert "for workers" in message

    run(scenario)


def test_worker_reports_through_its_run(tmp_path: Path, db, db_path: Path) -> None:
    claim = claim_new(db)
    own = f"t_{claim.task.id}"

    async def scenario() -> None:
        async with session(tmp_path, server_env(db_path, claim)) as client:
            beat = await ok(client, "kanban_heartbeat", note="running the tests")
            assert beat["task"] == own and beat["run"] == claim.run_id
            assert beat["note"] == "running the tests"
            assert (await ok(client, "kanban_heartbeat"))["note"] == "running the tests"
            await ok(client, "kanban_comment", body="Found the bug in session.py")

            first = (await ok(client, "kanban_create", title="Fix the cookie flags"))["task"]
            second = (
                await ok(
                    client,
                    "kanban_create",
                    title="Add a regression test",
                    body="Cover the expired-cookie case",
                )
            )["task"]
            assert first["parent"] == own and second["parent"] == own
            linked = await ok(client, "kanban_link", blocker=first["id"], blocked=second["id"])
            assert linked["task"]["status"] == "todo"

            tasks.block(db, int(second["id"][2:]), "needs a decision on the test framework")
            unblocked = await ok(
                client, "kanban_unblock", task_id=second["id"], comment="Use pytest"
            )
            assert unblocked["task"]["status"] == "todo"

            shown = await ok(client, "kanban_show")
            assert [s["id"] for s in shown["subtasks"]] == [first["id"], second["id"]]
            assert shown["comments"][0]["author"] == f"run {claim.run_id}"

            completed = await ok(client, "kanban_complete", summary="Split into two fixes")
            # Reported: the task moves on when the run ends and its work is committed.
            assert completed["task"]["status"] == "running"

    run(scenario)
    assert runs.get(db, claim.run_id).outcome == Outcome.COMPLETED
    runs.settle(db, claim.run_id, Outcome.EXITED_WITHOUT_REPORT)  # its dispatcher, on exit
    assert tasks.get(db, claim.task.id).status == "waiting"
    assert runs.get(db, claim.run_id).note == "running the tests"


def test_worker_is_refused_on_another_task(tmp_path: Path, db, db_path: Path) -> None:
    claim = claim_new(db)
    other = tasks.create(db, tasks.NewTask("Someone else's work"))

    async def scenario() -> None:
        async with session(tmp_path, server_env(db_path, claim)) as client:
            for name, arguments in (
                ("kanban_complete", {"task_id": f"t_{other}", "summary": "done"}),
                ("kanban_comment", {"task_id": f"t_{other}", "body": "hello"}),
                ("kanban_block", {"task_id": f"t_{other}", "reason": "no"}),
            ):
                message = await fails(client, name, arguments)
                assert f"t_{other} is not yours" in message
                assert f"your task is t_{claim.task.id}" in message
            mine = (await ok(client, "kanban_create", title="A subtask"))["task"]
            message = await fails(
                client, "kanban_link", {"blocker": f"t_{other}", "blocked": mine["id"]}
            )
            assert "is not yours" in message
            # Reading other tasks is allowed: the board is shared knowledge.
            assert (await ok(client, "kanban_show", task_id=f"t_{other}"))["id"] == f"t_{other}"

    run(scenario)
    assert tasks.get(db, other).status == "ready"


def test_a_stale_token_cannot_complete(tmp_path: Path, db, db_path: Path) -> None:
    old = claim_new(db)
    runs.settle(db, old.run_id, Outcome.STALLED, reason="no heartbeat", retry_at=0)
    (new,) = runs.claim(db, task_id=old.task.id)

    async def scenario() -> None:
        async with session(tmp_path, server_env(db_path, old)) as client:
            message = await fails(client, "kanban_complete", {"summary": "I am back"})
            assert f"run {old.run_id} no longer holds task t_{old.task.id}" in message
            assert "must stop" in message
            await fails(client, "kanban_heartbeat")
        assert tasks.get(db, old.task.id).status == "running"
        async with session(tmp_path, server_env(db_path, new)) as client:
            done = await ok(client, "kanban_complete", summary="Fixed, with a test")
            assert done["task"]["status"] == "running"

    run(scenario)
    runs.settle(db, new.run_id, Outcome.EXITED_WITHOUT_REPORT)  # its dispatcher, on exit
    task = tasks.get(db, old.task.id)
    assert (task.status, task.summary) == ("done", "Fixed, with a test")


def test_missing_run_identity_refuses_writes_but_serves_reads(
    tmp_path: Path, db, db_path: Path
) -> None:
    claim = claim_new(db)
    only_task = {env.DB: str(db_path), env.TASK: f"t_{claim.task.id}"}

    async def scenario() -> None:
        async with session(tmp_path, only_task) as client:
            assert (await ok(client, "kanban_show"))["id"] == f"t_{claim.task.id}"
            for name, arguments in (
                ("kanban_complete", {"summary": "done"}),
                ("kanban_heartbeat", {}),
                ("kanban_create", {"title": "a subtask"}),
            ):
                message = await fails(client, name, arguments)
                assert env.RUN_ID in message and env.TOKEN in message
                assert "env_vars" in message and "no kanban tool can record" in message

    run(scenario)
    assert tasks.get(db, claim.task.id).status == "running"


def test_invalid_arguments_are_error_results(tmp_path: Path, db, db_path: Path) -> None:
    task_id = tasks.create(db, tasks.NewTask("Something"))

    async def scenario() -> None:
        async with session(tmp_path, server_env(db_path)) as client:
            cases = [
                ("kanban_complete", {"task_id": f"t_{task_id}"}, "needs the argument 'summary'"),
                ("kanban_create", {"title": "x", "priority": "high"}, "whole number"),
                ("kanban_create", {"title": 42}, "must be a string"),
                ("kanban_create", {"title": "   "}, "non-empty title"),
                ("kanban_create", {"title": "x", "after": ["t_999"]}, "t_999 does not exist"),
                ("kanban_show", {"task_id": "t_999"}, "t_999 does not exist"),
                ("kanban_show", {"task_id": "banana"}, "not a task id"),
                ("kanban_show", {"task_id": ""}, "not a task id"),
                ("kanban_list", {"status": ["sleeping"]}, "must be one of"),
                ("kanban_list", {"limit": 0}, "between 1 and"),
                ("kanban_comment", {"task_id": f"t_{task_id}", "body": ""}, "empty"),
                ("kanban_comment", {"task_id": f"t_{task_id}", "text": "hi"}, "no argument"),
                ("kanban_unblock", {"task_id": f"t_{task_id}"}, "only blocked tasks"),
                (
                    "kanban_link",
                    {"blocker": f"t_{task_id}", "blocked": f"t_{task_id}"},
                    "cannot block itself",
                ),
                ("kanban_teleport", {}, "unknown tool"),
            ]
            for name, arguments, expected in cases:
                assert expected in await fails(client, name, arguments), (name, arguments)
            # Still answering, and nothing was changed by the refused calls.
            listed = await ok(client, "kanban_list")
            assert [t["id"] for t in listed["tasks"]] == [f"t_{task_id}"]
            assert listed["tasks"][0]["status"] == "ready"

    run(scenario)


def test_an_unopenable_board_is_a_tool_error_not_a_dead_server(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    bad = tmp_path / "not-a-dir" / "board.db"

    async def scenario() -> None:
        async with session(tmp_path, {env.DB: str(bad)}) as client:
            assert len((await client.list_tools()).tools) == 9
            message = await fails(client, "kanban_list", {})
            assert "not-a-dir" in message

    run(scenario)


def test_kanban_mcp_command_serves_the_same_tools(tmp_path: Path, db, db_path: Path) -> None:
    task_id = tasks.create(db, tasks.NewTask("Through the CLI"))
    script = (
        "import sys; from orchestrator.cli import main, mcp; main.cli.add_command(mcp.mcp);"
        " main.cli.main(sys.argv[1:], prog_name='kanban')"
    )

    async def scenario() -> None:
        # The board path comes from `kanban --db`, not from the environment.
        args = ["-c", script, "--db", str(db_path), "mcp"]
        async with session(tmp_path, {}, args) as client:
            shown = await ok(client, "kanban_show", task_id=f"t_{task_id}")
            assert shown["title"] == "Through the CLI"

    run(scenario)


def _read_line(proc: subprocess.Popen, deadline: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(max(0.0, deadline - time.monotonic())):
            raise AssertionError("the server did not answer in time")
    return proc.stdout.readline()


def test_stdout_carries_only_protocol(db_path: Path) -> None:
    messages = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "kanban_create", "arguments": {"title": "Raw"}},
        },
        {
            "jsonrpc": "2.0",
            "id": 4,
            "method": "tools/call",
            "params": {"name": "kanban_show", "arguments": {"task_id": 12345}},
        },
        {
            "jsonrpc": "2.0",
            "id": 5,
            "method": "tools/call",
            "params": {"name": "kanban_list", "arguments": "not an object"},
        },
        {
            "jsonrpc": "2.0",
            "id": 6,
            "method": "tools/call",
            "params": {"name": "kanban_list", "arguments": {}},
        },
    ]
    environment = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], env.DB: str(db_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker.mcp_server"],
        cwd=REPO_ROOT,
        env=environment,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    answers: dict[Any, dict] = {}
    try:
        deadline = time.monotonic() + 30
        for message in messages:
            proc.stdin.write(json.dumps(message) + "\n")
            proc.stdin.flush()
            if "id" in message:
                answer = json.loads(_read_line(proc, deadline))
                answers[answer.get("id")] = answer
        proc.stdin.write("this is not json\n")
        proc.stdin.close()
        rest = proc.stdout.read()
        assert proc.wait(timeout=30) == 0
        stderr = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    lines = [line for line in rest.splitlines() if line.strip()]
    for line in lines:  # whatever came after the last answer is protocol too
        assert json.loads(line)["jsonrpc"] == "2.0", line
    assert all(a["jsonrpc"] == "2.0" for a in answers.values())
    assert answers[1]["result"]["serverInfo"]["name"] == "kanban"
    assert len(answers[2]["result"]["tools"]) == 9
    assert answers[3]["result"]["isError"] is False
    assert answers[4]["result"]["isError"] is True
    assert "t_12345 does not exist" in answers[4]["result"]["content"][0]["text"]
    assert "error" in answers[5] or answers[5]["result"]["isError"] is True
    assert answers[6]["result"]["structuredContent"]["tasks"][0]["title"] == "Raw"
    assert "Traceback" not in stderr


def test_importing_the_server_module_is_cheap_and_silent() -> None:
    probe = (
        "import sys, worker.mcp_server.__main__, worker.mcp_server.tools;"
        "from worker.mcp_server import identity, specs;"
        "specs.tool_specs(identity.from_env({}));"
        "heavy = ('mcp', 'sqlite_utils', 'click', 'rich', 'orchestrator', 'anyio');"
        "print(sorted({n.split('.')[0] for n in sys.modules} & set(heavy)), file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout == ""
    assert done.stderr.strip() == "[]"


def test_serving_imports_print_nothing_and_pull_in_no_cli() -> None:
    # Everything the server imports when it serves and on its first tool call. (The MCP SDK
    # itself imports click through uvicorn; only our own CLI layer and rich must stay out.)
    probe = (
        "import sys, worker.mcp_server.server, worker.mcp_server.tools;"
        "import mcp.server.lowlevel, mcp.server.stdio, anyio.to_thread;"
        "import board.connection, board.tasks, board.views, board.runs, board.deps;"
        "print(sorted({n.split('.')[0] for n in sys.modules} & {'rich', 'orchestrator'}),"
        " file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout == ""
    assert done.stderr.strip() == "[]"


def test_show_is_bounded_to_the_latest_events(tmp_path: Path, db, db_path: Path) -> None:
    claim = claim_new(db)
    worker = actors.Worker(claim.task.id, claim.run_id, claim.token)
    for step in range(30):
        runs.heartbeat(db, worker, f"step {step}")

    async def scenario() -> None:
        async with session(tmp_path, server_env(db_path, claim)) as client:
            shown = await ok(client, "kanban_show")
        assert len(shown["events"]) == specs.SHOW_EVENTS
        assert shown["events_omitted"] >= 30 - specs.SHOW_EVENTS
        assert shown["events"][-1]["data"] == {"note": "step 29"}

    run(scenario)


def test_concurrent_calls_are_all_answered(tmp_path: Path, db, db_path: Path) -> None:
    claim = claim_new(db)
    answers: list[dict] = []

    async def comment(client: ClientSession, n: int) -> None:
        answers.append(await ok(client, "kanban_comment", body=f"note {n}"))

    async def scenario() -> None:
        async with session(tmp_path, server_env(db_path, claim)) as client:
            async with anyio.create_task_group() as group:
                for n in range(20):
                    group.start_soon(comment, client, n)
                group.start_soon(ok, client, "kanban_heartbeat")

    run(scenario)
    assert len({a["id"] for a in answers}) == 20


class _BrokenBoard(tools.Board):
    def get(self):
        raise RuntimeError("disk on fire")


def test_an_unexpected_failure_is_an_error_result_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ident = identity.from_env({})
    listed = {s.name: s for s in specs.tool_specs(ident)}
    reply = tools.call_tool(_BrokenBoard(None), ident, listed, "kanban_list", {})
    assert not reply.ok and "RuntimeError: disk on fire" in reply.text
    assert "kanban_list failed" in caplog.text


def call(db_path: Path, claim: runs.Claim, name: str, **arguments: Any) -> tools.Reply:
    """One tool call in worker mode, through the server's own dispatch (no stdio)."""
    ident = identity.from_env(server_env(db_path, claim))
    listed = {s.name: s for s in specs.tool_specs(ident)}
    board = tools.Board(str(db_path))
    try:
        return tools.call_tool(board, ident, listed, name, arguments)
    finally:
        board.close()


def test_a_sandboxed_worker_cannot_create_more_privileged_subtasks(db, db_path: Path) -> None:
    claim = claim_new(db)  # on hermes, the default runtime

    for arguments in (
        {"runtime": "command", "command": ["curl", "example.com"]},
        {"command": ["ls"]},
        {"runtime": "claude"},
    ):
        reply = call(db_path, claim, "kanban_create", title="x", **arguments)
        assert not reply.ok
        assert "would run with more privilege than yours" in reply.text
        assert "leave the runtime and any command out to use hermes" in reply.text
    created = call(db_path, claim, "kanban_create", title="y", runtime="codex")
    assert created.ok and created.structured is not None
    assert created.structured["task"]["runtime"] == "codex"
    assert [t.title for t in tasks.list_tasks(db, parent=claim.task.id)] == ["y"]


def test_a_command_worker_creates_command_subtasks(db, db_path: Path) -> None:
    parent = tasks.create(
        db, tasks.NewTask("nightly", runtime="command", runtime_options={"argv": ["make"]})
    )
    (claim,) = runs.claim(db, task_id=parent)

    reply = call(db_path, claim, "kanban_create", title="docs", command=["make", "docs"])
    assert reply.ok, reply.text
    assert reply.structured is not None
    assert reply.structured["task"]["runtime_options"] == {"argv": ["make", "docs"]}


def test_a_worker_cannot_create_a_subtask_in_another_repository(
    tmp_path: Path, db, db_path: Path
) -> None:
    mine, other = tmp_path / "app", tmp_path / "other"
    mine.mkdir()
    other.mkdir()
    task_id = tasks.create(db, tasks.NewTask("fix it", repo=str(mine.resolve())))
    (claim,) = runs.claim(db, task_id=task_id)

    reply = call(db_path, claim, "kanban_create", title="x", repo=str(other))
    assert not reply.ok
    assert "a subtask works in its parent's repository" in reply.text
    assert "Leave the repository out" in reply.text
    same = call(db_path, claim, "kanban_create", title="y", repo=str(mine))
    assert same.ok, same.text


def test_orchestrator_creates_command_tasks(tmp_path: Path, db, db_path: Path) -> None:
    async def scenario() -> None:
        async with session(tmp_path, server_env(db_path)) as client:
            task = (
                await ok(
                    client,
                    "kanban_create",
                    title="Nightly",
                    command=["make", "check"],
                    max_attempts=1,
                    timeout=60,
                )
            )["task"]
            assert task["runtime"] == "command"
            assert task["runtime_options"] == {"argv": ["make", "check"]}
            assert task["max_attempts"] == 1 and task["timeout"] == 60
            message = await fails(client, "kanban_create", {"title": "x", "runtime": "command"})
            assert "needs `command`" in message

    run(scenario)


def test_a_worker_whose_board_is_missing_gets_an_error_and_no_empty_board(
    tmp_path: Path, db, db_path: Path
) -> None:
    claim = claim_new(db)
    missing = tmp_path / "elsewhere" / "board.db"

    async def scenario() -> None:
        async with session(tmp_path, server_env(missing, claim)) as client:
            message = await fails(client, "kanban_show")
            assert str(missing) in message

    run(scenario)
    assert not missing.exists()


def test_complete_is_refused_while_conflict_markers_remain(tmp_path: Path, db, db_path: Path):
    claim = claim_new(db)
    worktree = tmp_path / "worktree"
    worktree.mkdir()
    conflicted = worktree / "app.py"
    conflicted.write_text("<<<<<<< HEAD\nmine\n=======\ntheirs\n>>>>>>> kanban/b/t_2\n")
    tasks.set_placement(db, claim.task.id, branch="kanban/b/t_1", worktree=str(worktree))
    tasks.set_conflicts(db, claim.task.id, ["app.py"])

    async def scenario() -> None:
        async with session(tmp_path, server_env(db_path, claim)) as client:
            message = await fails(client, "kanban_complete", {"summary": "done"})
            assert f"t_{claim.task.id} still has merge conflicts in app.py" in message
            conflicted.write_text("mine and theirs\n")
            done = await ok(client, "kanban_complete", summary="Resolved and done")
            assert done["task"]["status"] == "running"

    run(scenario)
