"""The board's long-lived MCP tool server, with the real Codex: it outlives a SIGKILLed
dispatcher, comes back on its port when it dies, and a worker's next tool call succeeds."""

from __future__ import annotations

import os
import signal

import pytest
from support.agents import USER_FEATURES, World, board_rows
from support.waiting import wait_for

from board import connection, services
from orchestrator import toolserver


def script(cue: str) -> dict:
    return {
        "scenarios": [
            {
                "match": "E2E-SURVIVE",
                "turns": [
                    [{"tool": "kanban_heartbeat", "args": {"note": "before the crashes"}}],
                    # The model "thinks" until the test says go: meanwhile everything dies.
                    [
                        {"wait_for": cue},
                        {"tool": "kanban_heartbeat", "args": {"note": "after the crashes"}},
                    ],
                    [{"tool": "kanban_complete", "args": {"summary": "Survived both."}}],
                    [{"message": "Done."}],
                ],
            }
        ]
    }


def server_of(world: World) -> services.ToolServer | None:
    db = connection.connect(world.db_path, create=False)
    try:
        return services.tool_server(db)
    finally:
        db.conn.close()


@pytest.mark.e2e
def test_workers_keep_their_tools_when_the_server_and_the_dispatcher_die(world: World) -> None:
    cue = world.root / "go"
    world.start(script(str(cue)), user_config=USER_FEATURES)
    task = world.create("Survive E2E-SURVIVE", runtime="codex")
    first = world.dispatch_in_background()

    def noted(note: str) -> bool:
        rows = board_rows(world.db_path, "SELECT note FROM runs WHERE task_id = 1")
        return bool(rows) and rows[-1]["note"] == note

    wait_for(lambda: noted("before the crashes"), "the first heartbeat", on_fail=world.logs)
    before = server_of(world)
    assert before is not None and toolserver.alive(before)

    # The dispatcher dies; the server and the worker do not.
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert toolserver.alive(before)
    # The server dies too; the next dispatcher adopts the run and starts it again, same port.
    os.kill(before.pid, signal.SIGKILL)
    wait_for(lambda: not toolserver.alive(before), "the server to die")
    second = world.dispatch_in_background()
    wait_for(
        lambda: (s := server_of(world)) is not None and s.pid != before.pid and toolserver.alive(s),
        "the server to be started again",
        on_fail=world.logs,
    )
    after = server_of(world)
    assert after is not None and after.url == before.url  # the worker's URL is still good

    cue.touch()
    assert second.wait(timeout=120) == 0, world.logs()
    shown = world.show(task)
    assert shown["status"] == "done", world.logs()
    (run,) = shown["runs"]  # adopted, never run again
    assert run["outcome"] == "completed" and run["note"] == "after the crashes"
