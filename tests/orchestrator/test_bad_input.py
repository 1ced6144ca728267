"""Bad input never crashes anything and never gets a traceback: an ``Error:`` line, exit 1,
nothing changed. Every test runs the real CLI as a subprocess on a real board in tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support.cli import KANBAN, kanban


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
    env = {**os.environ, "KANBAN_DB": "b/board.db"}
    created = kanban(
        "create",
        "x",
        "--runtime",
        "command",
        "--command",
        "true",
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    # The worker runs in a directory of its own: with a relative path it reported to another
    # board, and the task was retried forever.
    done = kanban("dispatch", "--until-idle", "-q", env=env, cwd=tmp_path, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    shown = kanban("show", "t_1", "--json", env=env, cwd=tmp_path, check=False)
    assert '"status": "done"' in shown.stdout


def test_an_unreachable_postgresql_board_is_an_error_never_a_directory_nor_a_leaked_password(
    tmp_path,
):
    work = tmp_path / "work"
    work.mkdir()
    # Nothing listens on port 1: the server cannot be reached.
    url = "postgresql://kanban:secret@127.0.0.1:1/kanban"
    result = kanban("--db", url, "create", "x", cwd=work, check=False)
    refused(result, "cannot reach the board postgresql://kanban:***@127.0.0.1:1/kanban")
    assert "secret" not in result.stderr
    assert list(work.iterdir()) == []


def test_any_url_given_as_the_board_is_refused(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    result = kanban(
        "create", "x", env={**os.environ, "KANBAN_DB": "sqlite:///board.db"}, cwd=work, check=False
    )
    refused(result, "sqlite://", "a SQLite file or a postgresql:// database")
    assert list(work.iterdir()) == []


def test_a_read_command_on_a_missing_board_says_where_it_looked_and_creates_nothing(tmp_path):
    board = tmp_path / "typo" / "board.db"
    for command in (["list"], ["show", "t_1"], ["board"], ["schedule", "list"], ["logs", "t_1"]):
        result = kanban("--db", str(board), *command, check=False)
        refused(result, f"there is no board at {board}", f"from --db {board}", "kanban create")
    result = kanban("list", "--json", env={**os.environ, "KANBAN_DB": str(board)}, check=False)
    refused(result, f"from KANBAN_DB={board}")
    assert not board.parent.exists()


def test_a_write_command_still_creates_the_board(tmp_path):
    board = tmp_path / "new" / "board.db"
    kanban("--db", str(board), "create", "first")
    assert board.exists()
    kanban("--db", str(board), "list")


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
    kanban("--db", str(board), "create", "first")
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_WRITE_LOCK, str(board)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdin is not None and holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        busy = {**os.environ, "KANBAN_BUSY_TIMEOUT": "0.2"}
        for command in (["create", "second"], ["comment", "t_1", "hello"], ["cancel", "t_1"]):
            result = kanban("--db", str(board), *command, env=busy, timeout=20, check=False)
            refused(result, str(board), "lock")
        # Readers are not blocked by a writer (WAL).
        kanban("--db", str(board), "list", env=busy)
        holder.stdin.close()
    assert holder.returncode == 0
    shown = kanban("--db", str(board), "show", "t_1", "--json", check=False)
    assert '"status": "ready"' in shown.stdout and "hello" not in shown.stdout
    assert '"t_2"' not in kanban("--db", str(board), "list", "--json").stdout


def test_a_busy_timeout_that_is_not_a_number_of_seconds_is_refused(tmp_path):
    for value in ("soon", "inf", "-1"):
        result = kanban(
            "--db",
            str(tmp_path / "b.db"),
            "create",
            "x",
            env={**os.environ, "KANBAN_BUSY_TIMEOUT": value},
            check=False,
        )
        refused(result, "KANBAN_BUSY_TIMEOUT")


# -- ids --------------------------------------------------------------------------------

TOO_LARGE = "t_99999999999999999999999"


def test_an_id_too_large_for_the_board_is_an_error_in_every_command(tmp_path):
    kanban("create", "first")
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
        refused(kanban(*command, check=False), "is not a")
    listed = kanban("list", "--json").stdout
    assert '"t_1"' in listed and '"t_2"' not in listed and "hello" not in listed


def test_a_worker_run_id_too_large_for_the_board_is_an_error(tmp_path):
    kanban("create", "first")
    env = {
        **os.environ,
        "HERMES_KANBAN_TASK": "t_1",
        "HERMES_KANBAN_RUN_ID": "99999999999999999999999",
        "HERMES_KANBAN_TOKEN": "x",
    }
    refused(kanban("heartbeat", env=env, check=False), "HERMES_KANBAN_RUN_ID")


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
    kanban("create", "seed")
    cases = {
        "title": '[tasks.a]\ntitle = "a\\u0000b"\ncommand = "true"\n',
        "body": '[tasks.a]\ntitle = "a"\nbody = "x\\u0000y"\n',
        "runtime option": '[tasks.a]\ntitle = "a"\ncommand = "echo a\\u0000b"\n',
        "repo": '[tasks.a]\ntitle = "a"\nrepo = "r\\u0000"\ncommand = "true"\n',
    }
    for what, text in cases.items():
        batch = tmp_path / f"{what.replace(' ', '-')}.toml"
        batch.write_text(text)
        refused(kanban("run", str(batch), "--no-dispatch", "-q", check=False), what, "NUL byte")
    assert kanban("list", "--json").stdout.count('"id"') == 1


def test_text_that_is_not_utf8_on_the_command_line_is_refused(tmp_path):
    kanban("create", "seed")
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
    from board import actors, connection, errors, runs, tasks

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
    assert [t.id for t in tasks.list_tasks(db)] == [task_id]
    assert tasks.get(db, task_id).status == "ready"
    (claim,) = runs.claim(db, task_id=task_id)
    worker = actors.Worker(task_id, claim.run_id, claim.token)
    try:
        runs.heartbeat(db, worker, note="working\0")
    except errors.InvalidInput as exc:
        assert "NUL byte" in str(exc)
    else:
        raise AssertionError("a NUL byte in a heartbeat note was accepted")
    db.conn.close()


# -- long bodies ------------------------------------------------------------------------


def test_a_body_longer_than_a_command_line_argument_allows_is_refused_at_creation(tmp_path):
    # 60,000 characters, 120,000 bytes: within a character limit, over the byte limit.
    result = kanban("create", "long", "--body", "é" * 60_000, check=False)
    refused(result, "the body is 120000 bytes", "the limit is 100000 bytes", "131072")
    kanban("create", "fits", "--body", "é" * 50_000)
    listed = kanban("list", "--json").stdout
    assert '"fits"' in listed and '"long"' not in listed


# -- a damaged board --------------------------------------------------------------------


def damaged_board(tmp_path: Path) -> Path:
    """A real board whose tasks table is overwritten with garbage (schema and header intact)."""
    import sqlite3

    board = tmp_path / "board.db"
    for n in range(30):
        kanban("--db", str(board), "create", f"task {n}", "--body", "x" * 2000)
    conn = sqlite3.connect(board)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'tasks'").fetchone()[0]
    conn.close()
    assert not Path(f"{board}-wal").exists()  # everything is in the main file
    with open(board, "r+b") as handle:  # no SQLite connection is open in this process
        handle.seek((root - 1) * page_size)
        handle.write(bytes(range(256)) * (page_size // 256))
    return board


def test_a_damaged_board_is_refused_by_dispatch_and_every_command_and_left_as_it_was(tmp_path):
    board = damaged_board(tmp_path)
    before = board.read_bytes()
    for command in (
        ["dispatch", "--until-idle", "-q"],
        ["list"],
        ["list", "--json"],
        ["show", "t_1"],
        ["board"],
        ["create", "one more"],
        ["cancel", "t_1"],
    ):
        refused(
            kanban("--db", str(board), *command, check=False),
            str(board),
            "damaged",
            "kanban doctor",
        )
    assert board.read_bytes() == before


def test_a_file_that_is_not_a_board_is_refused_by_dispatch_and_left_as_it_was(tmp_path):
    notes = tmp_path / "notes.db"
    notes.write_bytes(b"my notes, not a board\n" * 500)
    refused(
        kanban("--db", str(notes), "dispatch", "--until-idle", check=False), "is not a kanban board"
    )
    board = tmp_path / "board.db"
    kanban("--db", str(board), "create", "x", "--body", "y" * 50_000)
    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(board.read_bytes()[: 3 * 4096])
    for path, words in ((notes, "is not a kanban board"), (truncated, "damaged")):
        before = path.read_bytes()
        refused(kanban("--db", str(path), "dispatch", "--until-idle", check=False), words)
        refused(kanban("--db", str(path), "list", check=False), words)
        assert path.read_bytes() == before


# -- terminal control characters --------------------------------------------------------

HOSTILE = "Fix \x1b[2J\x1b]0;pwned\x07it \u202etxt.exe \x9b31m[/] [bold]done"


def test_list_board_and_show_print_titles_and_summaries_without_control_characters(tmp_path):
    kanban("create", HOSTILE, "--body", "line one\n\x1b[31mline two")
    kanban("complete", "t_1", "--summary", "sum \x1b[5mmary\u202e")
    for command in (["list"], ["board", "--all"], ["show", "t_1"]):
        out = kanban(*command).stdout
        for bad in ("\x1b", "\x07", "\x9b", "\u202e"):
            assert bad not in out, (command, bad)
        assert "Fix" in out
        if command != ["board", "--all"]:  # the board cuts titles at 40 characters
            # Markup-looking text is shown as typed, never parsed or dropped.
            assert "[/] [bold]done" in out
    shown = kanban("show", "t_1").stdout
    assert "line one\n" in shown and "mary" in shown
    # --json keeps the text exactly as stored: it is data, not terminal output.
    assert "\\u001b[2J" in kanban("show", "t_1", "--json").stdout


def test_the_shared_sanitiser_drops_controls_and_bidi_overrides_and_keeps_text():
    from orchestrator import render

    assert render.plain("a\x1b[31mb\u202ec\x00d\x7fe\x85f") == "a[31mbcdef"
    assert render.plain("one\ntwo\tthree") == "one two three"
    assert render.plain("one\ntwo\tthree", lines=True) == "one\ntwo\tthree"
    assert render.plain("naïve 日本 😀") == "naïve 日本 😀"
    assert render.plain(None) == ""


# -- numbers ----------------------------------------------------------------------------


def test_non_finite_numbers_are_refused_for_every_float_option(tmp_path):
    for value in ("inf", "nan", "Infinity", "+inf"):
        result = kanban("create", "x", "--timeout", value, "--json", check=False)
        assert result.returncode == 2 and "finite" in result.stderr, result.stderr
        assert "Infinity" not in result.stdout and "NaN" not in result.stdout
        for option in ("--stall-timeout", "--retry-delay"):
            result = kanban("dispatch", "--until-idle", option, value, check=False)
            assert result.returncode == 2 and "finite" in result.stderr, result.stderr
    result = kanban(
        "dispatch", "--until-idle", env={**os.environ, "KANBAN_STALL_TIMEOUT": "inf"}, check=False
    )
    assert result.returncode == 2 and "finite" in result.stderr, result.stderr
    assert not (tmp_path / "home" / ".kanban" / "board.db").exists()


def test_non_finite_numbers_in_the_config_file_are_refused(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[dispatch]\nstall_timeout = inf\n")
    result = kanban(
        "dispatch", "--until-idle", env={**os.environ, "KANBAN_CONFIG": str(config)}, check=False
    )
    refused(result, str(config), "stall_timeout", "finite")


# -- schedules --------------------------------------------------------------------------


def batch_file(tmp_path: Path) -> Path:
    path = tmp_path / "nightly.toml"
    path.write_text('[tasks.check]\ntitle = "Check"\ncommand = "true"\n')
    return path


def test_a_cron_expression_that_never_fires_is_refused_and_not_stored(tmp_path):
    batch = batch_file(tmp_path)
    kanban("create", "seed")
    result = kanban("schedule", "add", "feb30", "--cron", "0 0 30 2 *", str(batch), check=False)
    refused(result, "never fires")
    assert kanban("schedule", "list", "--json").stdout.strip() == "[]"


def test_a_six_field_cron_expression_needs_the_user_to_say_seconds(tmp_path):
    batch = batch_file(tmp_path)
    kanban("create", "seed")
    every_second = ["--cron", "* * * * * *", str(batch)]
    refused(
        kanban("schedule", "add", "fast", *every_second, check=False), "six fields", "--seconds"
    )
    refused(
        kanban("schedule", "add", "odd", "--cron", "* * *", str(batch), check=False), "not a cron"
    )
    five = ["--cron", "*/5 * * * *", str(batch)]
    refused(
        kanban("schedule", "add", "five", "--seconds", *five, check=False),
        "with --seconds give six",
    )
    kanban("schedule", "add", "daily", "--cron", "@daily", str(batch))
    kanban("schedule", "add", "fast", "--seconds", *every_second)
    listed = kanban("schedule", "list", "--json").stdout
    assert '"daily"' in listed and '"fast"' in listed and '"five"' not in listed
    assert '"problem": null' in listed and "never fires" not in listed


def test_a_stored_schedule_that_cannot_fire_breaks_neither_the_list_nor_the_dispatcher(tmp_path):
    import sqlite3

    batch = batch_file(tmp_path)
    board = tmp_path / "home" / ".kanban" / "board.db"
    kanban("schedule", "add", "good", "--cron", "* * * * *", str(batch))
    # What an older kanban stored without checking.
    conn = sqlite3.connect(board)
    with conn:
        for name, cron in (("feb30", "0 0 30 2 *"), ("garbage", "every day at noon")):
            conn.execute(
                "INSERT INTO schedules (name, cron, batch_path, created_at, last_fire_at)"
                " VALUES (?, ?, ?, 0, 0)",
                (name, cron, str(batch)),
            )
    conn.close()
    listed = kanban("schedule", "list", check=False)
    assert listed.returncode == 0, listed.stderr
    assert "feb30" in listed.stdout and "never fires" in listed.stdout
    assert "good" in listed.stdout
    assert '"problem": null' in kanban("schedule", "list", "--json").stdout
    done = kanban("dispatch", "--until-idle", timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "schedule feb30 is skipped" in done.stderr and "never fires" in done.stderr
    assert "schedule garbage is skipped" in done.stderr


# -- the crash handler ------------------------------------------------------------------

FAULTS = """
import os
fault = os.environ.get("KANBAN_TEST_FAULT")
if fault:
    from board import errors, tasks

    def broken(*args, **kwargs):
        if fault == "bug":
            raise ZeroDivisionError("division by zero")
        if fault == "interrupt":
            raise KeyboardInterrupt
        if fault == "group":
            raise ExceptionGroup("task group", [errors.BoardError("the board is gone")])
        raise AssertionError(fault)

    tasks.list_tasks = broken
"""


def faulty(tmp_path: Path, fault: str) -> dict[str, str]:
    """Environment that makes `board.tasks.list_tasks` raise inside the real CLI process."""
    inject = tmp_path / "inject"
    inject.mkdir(exist_ok=True)
    (inject / "sitecustomize.py").write_text(FAULTS)
    path = os.pathsep.join(filter(None, [str(inject), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "KANBAN_TEST_FAULT": fault}


def test_an_unexpected_exception_prints_one_line_naming_its_crash_log(tmp_path):
    kanban("create", "x")
    result = kanban("list", env=faulty(tmp_path, "bug"), check=False)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: unexpected ZeroDivisionError: division by zero; ")
    assert "Traceback" not in result.stderr
    log = Path(line.split("the full traceback is in ")[1])
    assert log.parent == tmp_path / "home" / ".kanban" / "logs"
    text = log.read_text()
    assert "Traceback" in text and "ZeroDivisionError" in text and "kanban list" in text


def test_expected_errors_interrupts_and_usage_errors_keep_their_exit_codes(tmp_path):
    kanban("create", "x")
    interrupted = kanban("list", env=faulty(tmp_path, "interrupt"), check=False)
    assert interrupted.returncode == 130 and interrupted.stderr == "Interrupted.\n"
    grouped = kanban("list", env=faulty(tmp_path, "group"), check=False)
    assert grouped.returncode == 1 and grouped.stderr == "Error: the board is gone\n"
    usage = kanban("list", "--no-such-option", check=False)
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
    refused(kanban("show", "t_9", check=False), "t_9 does not exist")
    assert not (tmp_path / "home" / ".kanban" / "logs").exists()


def test_the_batch_report_prints_titles_without_control_characters_or_markup(tmp_path):
    batch = tmp_path / "hostile.toml"
    batch.write_text(
        '[tasks.a]\ntitle = "Fix \\u001b[2J it [/] \\u202e"\ncommand = "echo \\u001b[31mdone"\n'
    )
    result = kanban("run", str(batch), check=False)
    assert result.returncode == 0, result.stderr
    for bad in ("\x1b", "\u202e"):
        assert bad not in result.stdout
    assert "Fix" in result.stdout and "[/]" in result.stdout
