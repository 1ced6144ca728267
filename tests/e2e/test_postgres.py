"""The real agents on a PostgreSQL board: their tools work through the board's tool server,
and the board's URL (which may hold a password) is in no process's argv and not in the
model's shell."""

from __future__ import annotations

import urllib.parse

import psutil
import pytest
from support.agents import USER_FEATURES, USER_TMP_EXCLUSIONS, World, call_output, responses

from board import connection, services

SCRIPT = {
    "scenarios": [
        {
            "match": "E2E-PG",
            "turns": [
                # What the model's shell sees: no board URL.
                [{"shell": "printf 'db=%s\\n' \"${KANBAN_DB-unset}\""}],
                [{"tool": "kanban_heartbeat", "args": {"note": "on postgres"}}],
                [{"tool": "kanban_complete", "args": {"summary": "worked on a PostgreSQL board"}}],
                [{"message": "Done."}],
            ],
        }
    ]
}


@pytest.mark.e2e
@pytest.mark.parametrize("runtime", ["codex", "hermes"])
def test_an_agent_on_a_postgresql_board_reports_and_never_sees_its_url(
    world: World, pg_url: str, runtime: str
) -> None:
    world.env["KANBAN_DB"] = pg_url
    config = USER_FEATURES + ("\n" + USER_TMP_EXCLUSIONS if runtime == "hermes" else "")
    server = world.start(SCRIPT, user_config=config)
    task = world.create("Work on postgres E2E-PG", runtime=runtime)
    world.dispatch()

    shown = world.show(task)
    assert shown["status"] == "done", world.logs()
    assert shown["summary"] == "worked on a PostgreSQL board"
    assert shown["runs"][0]["note"] == "on postgres"
    seen = call_output(responses(server, "E2E-PG")[1], 0)
    assert "db=unset" in seen, seen
    password = urllib.parse.urlsplit(pg_url).password
    assert password and password not in seen
    # The sandbox hides other processes from the model; from outside, the board's tool server
    # (still up) names the board by reference only.
    board = connection.connect(pg_url)
    try:
        found = services.tool_server(board)
    finally:
        board.conn.close()
    assert found is not None
    argv = psutil.Process(found.pid).cmdline()
    assert "env:KANBAN_DB" in argv and not [a for a in argv if "postgresql" in a]
