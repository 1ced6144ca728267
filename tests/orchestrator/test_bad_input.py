"""Bad input never crashes anything and never gets a traceback: an ``Error:`` line, exit 1,
nothing changed. Every test runs the real CLI as a subprocess on a real board in tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

KANBAN = str(Path(sys.executable).with_name("kanban"))


def kanban(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KANBAN, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def refused(result: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit 1 with one clear ``Error:`` line naming `words`, and no traceback."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


# -- where the board is -----------------------------------------------------------------


def test_a_relative_board_path_names_the_same_board_for_the_dispatcher_and_its_workers(
    tmp_path,
):
    env = {"KANBAN_DB": "b/board.db"}
    created = kanban(
        "create", "x", "--runtime", "command", "--command", "true", env=env, cwd=tmp_path
    )
    assert created.returncode == 0, created.stderr
    # The worker runs in a directory of its own: with a relative path it reported to another
    # board, and the task was retried forever.
    done = kanban("dispatch", "--until-idle", "-q", env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    shown = kanban("show", "t_1", "--json", env=env, cwd=tmp_path)
    assert '"status": "done"' in shown.stdout


def test_a_postgresql_url_is_refused_instead_of_becoming_a_directory(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    result = kanban("--db", "postgresql://kanban:secret@db.example/kanban", "create", "x", cwd=work)
    refused(result, "PostgreSQL boards are not supported by this version; pass a file path")
    assert "secret" not in result.stderr
    assert list(work.iterdir()) == []


def test_any_url_given_as_the_board_is_refused(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    result = kanban("create", "x", env={"KANBAN_DB": "sqlite:///board.db"}, cwd=work)
    refused(result, "sqlite://", "pass a file path")
    assert list(work.iterdir()) == []


def test_a_read_command_on_a_missing_board_says_where_it_looked_and_creates_nothing(tmp_path):
    board = tmp_path / "typo" / "board.db"
    for command in (["list"], ["show", "t_1"], ["board"], ["schedule", "list"], ["logs", "t_1"]):
        result = kanban("--db", str(board), *command)
        refused(result, f"there is no board at {board}", f"from --db {board}", "kanban create")
    result = kanban("list", "--json", env={"KANBAN_DB": str(board)})
    refused(result, f"from KANBAN_DB={board}")
    assert not board.parent.exists()


def test_a_write_command_still_creates_the_board(tmp_path):
    board = tmp_path / "new" / "board.db"
    assert kanban("--db", str(board), "create", "first").returncode == 0
    assert board.exists()
    assert kanban("--db", str(board), "list").returncode == 0


# -- a busy board -----------------------------------------------------------------------

HOLD_THE_WRITE_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()  # until the test closes our stdin
conn.execute("ROLLBACK")
"""


def test_a_write_lock_held_by_another_process_gives_a_clear_error_not_a_traceback(tmp_path):
    board = tmp_path / "board.db"
    assert kanban("--db", str(board), "create", "first").returncode == 0
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_WRITE_LOCK, str(board)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdin is not None and holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        busy = {"KANBAN_BUSY_TIMEOUT": "0.2"}
        for command in (["create", "second"], ["comment", "t_1", "hello"], ["cancel", "t_1"]):
            result = kanban("--db", str(board), *command, env=busy, timeout=20)
            refused(result, str(board), "lock")
        # Readers are not blocked by a writer (WAL).
        assert kanban("--db", str(board), "list", env=busy).returncode == 0
        holder.stdin.close()
    assert holder.returncode == 0
    shown = kanban("--db", str(board), "show", "t_1", "--json")
    assert '"status": "ready"' in shown.stdout and "hello" not in shown.stdout
    assert '"t_2"' not in kanban("--db", str(board), "list", "--json").stdout


def test_a_busy_timeout_that_is_not_a_number_of_seconds_is_refused(tmp_path):
    for value in ("soon", "inf", "-1"):
        result = kanban(
            "--db", str(tmp_path / "b.db"), "create", "x", env={"KANBAN_BUSY_TIMEOUT": value}
        )
        refused(result, "KANBAN_BUSY_TIMEOUT")


# -- ids --------------------------------------------------------------------------------

TOO_LARGE = "t_99999999999999999999999"


def test_an_id_too_large_for_the_board_is_an_error_in_every_command(tmp_path):
    assert kanban("create", "first").returncode == 0
    for command in (
        ["show", TOO_LARGE],
        ["comment", TOO_LARGE, "hello"],
        ["link", "t_1", TOO_LARGE],
        ["unlink", TOO_LARGE, "t_1"],
        ["block", TOO_LARGE, "why"],
        ["unblock", TOO_LARGE],
        ["complete", TOO_LARGE, "--summary", "done"],
        ["cancel", TOO_LARGE],
        ["retry", TOO_LARGE],
        ["logs", TOO_LARGE],
        ["logs", "t_1", "--run", "99999999999999999999999"],
        ["create", "second", "--after", TOO_LARGE],
        ["create", "second", "--parent", TOO_LARGE],
        ["show", "t_" + "9" * 5000],
    ):
        refused(kanban(*command), "is not a")
    listed = kanban("list", "--json").stdout
    assert '"t_1"' in listed and '"t_2"' not in listed and "hello" not in listed


def test_a_worker_run_id_too_large_for_the_board_is_an_error(tmp_path):
    assert kanban("create", "first").returncode == 0
    env = {
        "HERMES_KANBAN_TASK": "t_1",
        "HERMES_KANBAN_RUN_ID": "99999999999999999999999",
        "HERMES_KANBAN_TOKEN": "x",
    }
    refused(kanban("heartbeat", env=env), "HERMES_KANBAN_RUN_ID")


def test_ids_parse_up_to_the_largest_sqlite_integer_and_no_further():
    from board import errors, ids

    assert ids.parse(f"t_{ids.MAX}") == ids.MAX
    assert ids.parse_run(str(ids.MAX)) == ids.MAX
    for bad in (f"t_{ids.MAX + 1}", ids.MAX + 1, "t_0", "t_-1", "t_1.5", "t_²", True, 1.0):
        try:
            ids.parse(bad)
        except errors.InvalidInput:
            continue
        raise AssertionError(f"{bad!r} was accepted")


# -- hostile text -----------------------------------------------------------------------


def test_a_nul_byte_in_a_batch_file_is_refused_and_nothing_is_submitted(tmp_path):
    assert kanban("create", "seed").returncode == 0
    cases = {
        "title": '[tasks.a]\ntitle = "a\\u0000b"\ncommand = "true"\n',
        "body": '[tasks.a]\ntitle = "a"\nbody = "x\\u0000y"\n',
        "runtime option": '[tasks.a]\ntitle = "a"\ncommand = "echo a\\u0000b"\n',
    }
    for what, text in cases.items():
        batch = tmp_path / f"{what.replace(' ', '-')}.toml"
        batch.write_text(text)
        refused(kanban("run", str(batch), "--no-dispatch", "-q"), what, "NUL byte")
    assert kanban("list", "--json").stdout.count('"id"') == 1


def test_text_that_is_not_utf8_on_the_command_line_is_refused(tmp_path):
    assert kanban("create", "seed").returncode == 0
    # Python decodes undecodable argv bytes to lone surrogates, which SQLite cannot store.
    for argv in ([b"create", b"caf\xe9"], [b"comment", b"t_1", b"\xff"]):
        result = subprocess.run(
            [KANBAN.encode(), *argv], capture_output=True, text=True, timeout=60
        )
        refused(result, "not valid UTF-8")
    shown = kanban("show", "t_1", "--json").stdout
    assert '"comments": []' in shown
    assert kanban("list", "--json").stdout.count('"id"') == 1


def test_nul_bytes_are_refused_by_the_board_for_every_interface(db_path):
    """The CLI cannot pass a NUL in argv; MCP clients (JSON) and batch files can."""
    from board import connection, errors, tasks

    db = connection.connect(db_path)
    task_id = tasks.create(db, tasks.NewTask("seed"))
    attempts = [
        lambda: tasks.create(db, tasks.NewTask("a\0b")),
        lambda: tasks.create(db, tasks.NewTask("a", body="\0")),
        lambda: tasks.create(db, tasks.NewTask("a", repo="/tmp/a\0b")),
        lambda: tasks.create(db, tasks.NewTask("a", base_ref="main\0")),
        lambda: tasks.create(
            db, tasks.NewTask("a", runtime="command", runtime_options={"argv": ["echo", "\0"]})
        ),
        lambda: tasks.comment(db, task_id, "a\0b"),
        lambda: tasks.block(db, task_id, "why\0"),
        lambda: tasks.complete(db, task_id, "did it\0"),
        lambda: tasks.unblock(db, task_id, comment="answer\0"),
    ]
    for attempt in attempts:
        try:
            attempt()
        except errors.InvalidInput as exc:
            assert "NUL byte" in str(exc)
        else:
            raise AssertionError("a NUL byte was accepted")
    assert [t["id"] for t in tasks.list_tasks(db)] == [task_id]
    assert tasks.get(db, task_id)["status"] == "ready"
    db.conn.close()


# -- long bodies ------------------------------------------------------------------------


def test_a_body_longer_than_a_command_line_argument_allows_is_refused_at_creation(tmp_path):
    # 60,000 characters, 120,000 bytes: within a character limit, over the byte limit.
    result = kanban("create", "long", "--body", "é" * 60_000)
    refused(result, "the body is 120000 bytes", "the limit is 100000 bytes", "131072")
    assert kanban("create", "fits", "--body", "é" * 50_000).returncode == 0
    listed = kanban("list", "--json").stdout
    assert '"fits"' in listed and '"long"' not in listed
