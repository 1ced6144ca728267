"""`kanban logs` (rendered by the task's runtime, `--raw`, `--follow`) and what `kanban watch`
shows of running tasks: their usage and last activity, under the board."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import sqlite_utils
from rich.console import Console
from support import board_kit
from support.cli import KANBAN, kanban
from support.waiting import wait_for
from support.world import Kanban

from board import records, runs, spending, tasks
from board.states import Outcome
from orchestrator import render
from orchestrator.cli import dispatch
from worker.runtimes import base

# What `codex exec --json` wrote (both streams, as in a run's log), captured from codex 0.169
# run against the scripted model: one shell command, then a message.
CODEX_LOG = """\
WARNING: proceeding, even though we could not create PATH aliases: Refusing to create helper \
binaries under temporary dir "/tmp" (codex_home: AbsolutePathBuf("/tmp/cap/home"))
Reading additional input from stdin...
{"type":"thread.started","thread_id":"01a25028-9382-74f1-8bf8-45abfb1f2938"}
{"type":"item.completed","item":{"id":"item_0","type":"error","message":"Model metadata for \
`scripted` not found. Defaulting to fallback metadata; this can degrade performance and cause \
issues."}}
{"type":"turn.started"}
{"type":"item.started","item":{"id":"item_1","type":"command_execution","command":"/bin/bash \
-lc \\"printf 'hello from the agent\\\\\\\\n' > greeting.txt\\"","aggregated_output":"",\
"exit_code":null,"status":"in_progress"}}
{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":"/bin/bash \
-lc \\"printf 'hello from the agent\\\\\\\\n' > greeting.txt\\"","aggregated_output":"pyenv: \
cannot rehash: /root/.pyenv/shims isn't writable\\n","exit_code":0,"status":"completed"}}
{"type":"item.completed","item":{"id":"item_2","type":"agent_message","text":"Wrote \
greeting.txt."}}
{"type":"turn.completed","usage":{"input_tokens":2400,"cached_input_tokens":400,\
"cache_write_input_tokens":0,"output_tokens":160,"reasoning_output_tokens":0}}
"""

RUNS_OFF_THE_END = "import sys; sys.stdout.write('no line break at the end')"


def _run(kb: Kanban, task_id: int):
    (run,) = runs.for_task(kb.db, task_id)
    return run


def test_logs_show_a_command_tasks_output_and_raw_shows_the_file(kb: Kanban) -> None:
    code = (
        "import sys; print('first line'); print('\\x1b[31mred\\x1b[0m and\\tmore'); "
        "print('with CRLF', end='\\r\\n'); sys.stdout.write('no line break at the end')"
    )
    task = kb.create("talk", code)
    assert kb.dispatch("--until-idle").wait() == 0, kb.logs()
    assert kb.status(task) == "done"
    log = Path(_run(kb, task).log_path or "").read_bytes()

    raw = subprocess.run(
        [KANBAN, "logs", f"t_{task}", "--raw"], env=kb.env, capture_output=True, check=True
    )
    assert raw.stdout == log
    assert b"\x1b[31m" in raw.stdout and b"\r\n" in raw.stdout

    shown = kb.run("logs", f"t_{task}").stdout
    # The `command` runtime renders lines as they are; escapes and controls never reach the
    # terminal, and a last line without its line break is shown all the same.
    assert shown.endswith("first line\nred and more\nwith CRLF\nno line break at the end\n"), shown
    assert "\x1b" not in shown and "\r" not in shown


def test_logs_follow_prints_lines_as_they_come_and_stops_when_the_run_ends(
    kb: Kanban, tmp_path: Path
) -> None:
    go, more = tmp_path / "go", tmp_path / "more"
    code = (
        "import os, sys, time\n"
        "def wait(path):\n"
        "    while not os.path.exists(path): time.sleep(0.02)\n"
        "print('first', flush=True)\n"
        "wait(sys.argv[1])\n"
        "sys.stdout.write('par'); sys.stdout.flush()\n"
        "wait(sys.argv[2])\n"
        "sys.stdout.write('tial\\nthe end'); sys.stdout.flush()\n"
    )
    task = kb.create("follow me", code, go, more)
    kb.dispatch("--until-idle")
    log = Path(wait_for(lambda: _run_log(kb, task), "the run's log"))
    wait_for(lambda: log.exists() and "first" in log.read_text(), "the first line")
    shown = tmp_path / "shown.txt"
    with open(shown, "wb") as out:
        follower = subprocess.Popen(
            [KANBAN, "logs", f"t_{task}", "--follow"],
            env=kb.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: "first\n" in shown.read_text(), "the first line from --follow")
        go.touch()
        wait_for(lambda: "par" in log.read_text(), "half a line in the log")
        more.touch()
        assert follower.wait(timeout=30) == 0
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    # Half a line waits for its end: never "par" and "tial" on lines of their own.
    assert shown.read_text().endswith("first\npartial\nthe end\n"), shown.read_text()


def _run_log(kb: Kanban, task_id: int) -> str | None:
    found = runs.for_task(kb.db, task_id)
    return found[-1].log_path if found else None


def _codex_task(db: sqlite_utils.Database, log: Path, text: str = CODEX_LOG) -> tuple[int, int]:
    """A codex task claimed by a run whose log is `text` (as a dispatcher would record it)."""
    task = board_kit.new(db, "greet the reader", runtime="codex")
    claimed = board_kit.claim(db, task)
    log.write_text(text)
    runs.prepare(db, claimed.run_id, log_path=str(log), worktree=None, branch=None)
    return task, claimed.run_id


def test_logs_of_a_codex_run_are_rendered_from_its_json_events(
    db: sqlite_utils.Database, tmp_path: Path
) -> None:
    # Codex's `render` (worker/runtimes/codex.py) is its runtime's: this checks that `logs`
    # uses it, with what it renders today.
    task, _ = _codex_task(db, tmp_path / "run-1.log")

    raw = kanban("logs", f"t_{task}", "--raw").stdout
    shown = kanban("logs", f"t_{task}").stdout

    assert raw == CODEX_LOG
    assert shown != raw
    assert not [line for line in shown.splitlines() if line.startswith("{")], shown
    assert "agent: Wrote greeting.txt." in shown.splitlines()
    assert "printf 'hello from the agent" in shown
    assert len(shown.splitlines()) < len(raw.splitlines())  # item.started, turn.started: noise


def test_watch_follows_the_last_activity_of_running_tasks(
    db: sqlite_utils.Database, tmp_path: Path
) -> None:
    log = tmp_path / "run-1.log"
    # More than the tail `watch` first reads: the activity comes from the end of the log.
    filler = "".join(f"Reading additional input from stdin... {i}\n" for i in range(3000))
    task, run_id = _codex_task(db, log, filler + CODEX_LOG)
    assert log.stat().st_size > dispatch.ACTIVITY_TAIL
    activities = dispatch.Activities(db, base.Settings(codex_home=str(tmp_path / "codex")))
    label = f"t_{task}"

    running = [tasks.get(db, task)]
    assert activities.of(running) == {label: "agent: Wrote greeting.txt."}
    with open(log, "a") as out:  # the log grows: the next frame reads only what it gained
        out.write(
            '{"type":"item.started","item":{"id":"item_3","type":"command_execution",'
            '"command":"/bin/bash -lc \\"pytest -q\\"","aggregated_output":"",'
            '"exit_code":null,"status":"in_progress"}}\n'
        )
    activity = activities.of(running)[label]
    assert activity is not None and "pytest -q" in activity
    runs.settle(db, run_id, Outcome.CANCELLED, reason="stopped")
    assert activities.of(running) == {label: None}


def test_log_lines_wait_for_the_rest_of_a_line() -> None:
    lines = dispatch.LogLines()
    assert lines.split(b"one\ntw") == ["one"]
    assert lines.split("o \u00e9".encode()[:-1]) == []  # half a UTF-8 character
    assert lines.split("o \u00e9".encode()[-1:] + b"\r\nthree") == ["two \u00e9"]
    assert lines.split(b"", final=True) == ["three"]
    entered_mid_line = dispatch.LogLines(skip_first=True)
    assert entered_mid_line.split(b"gment\nwhole\npart") == ["whole"]
    assert entered_mid_line.split(b"ial\n") == ["partial"]


def _drawn(renderable, width: int = 100) -> str:
    console = Console(width=width, record=True, file=open(os.devnull, "w"))
    console.print(renderable)
    text = console.export_text()
    console.file.close()
    return text


def _task(task_id: str, status: str, used: dict | None = None, **more) -> dict:
    return {
        "id": task_id,
        "title": f"task {task_id}",
        "status": status,
        "parent": None,
        "updated_at": None,
        "usage": used,
        **more,
    }


USED = {
    "tokens": 12_345,
    "input_tokens": 12_000,
    "cached_input_tokens": 2_000,
    "output_tokens": 345,
    "cost_usd": 0.0412,
}


def test_the_board_shows_usage_a_notice_and_each_running_tasks_activity() -> None:
    board = [
        _task("t_1", "running", USED),
        _task("t_2", "running"),
        _task("t_3", "done", {**USED, "tokens": 900, "cost_usd": None}),
        _task("t_4", "ready"),
    ]
    activity = {"t_1": "$ pytest -q tests/test_a_very_long_name.py " + "x" * 200, "t_2": None}

    drawn = _drawn(
        render.board(board, notice="starting nothing new: daily budget", activity=activity), 80
    )

    lines = drawn.splitlines()
    assert lines[0] == "starting nothing new: daily budget"
    # On the cards, in one piece (no-break spaces: never "12.3k tok" and "$0.04" apart).
    wide = _drawn(render.board(board, activity=activity), 200)
    assert "12.3k\u00a0tok\u00a0$0.04" in wide and "900\u00a0tok" in wide
    assert "t_1  12.3k tok $0.04  $ pytest" in drawn  # and beside its activity
    t1 = next(line for line in lines if line.startswith("t_1"))
    assert "$ pytest -q tests/test_a_very_long_name.py" in t1 and t1.endswith("…")
    assert len(t1) <= 80
    assert any(line.startswith("t_2") and "no activity yet" in line for line in lines)
    assert not any(line.startswith(("t_3", "t_4")) for line in lines)  # only running ones


def test_the_board_without_usage_or_extras_draws_as_before() -> None:
    board = [_task("t_1", "running"), _task("t_2", "ready")]
    del board[1]["usage"]  # a task object without the key
    drawn = _drawn(render.board(board), 200)
    assert "tok" not in drawn and "no activity yet" not in drawn
    assert "running (1)" in drawn and "t_2 task t_2" in drawn


@pytest.mark.parametrize(
    ("used", "shown"),
    [
        (None, ""),
        ({"tokens": 999, "cost_usd": None}, "999 tok"),
        ({"tokens": 12_345, "cost_usd": 0.0412}, "12.3k tok $0.04"),
        ({"tokens": 2_500_000, "cost_usd": 1.5}, "2.5M tok $1.50"),
        ({"tokens": 10, "cost_usd": 0.001}, "10 tok <$0.01"),
    ],
)
def test_usage_is_a_few_characters(used: dict | None, shown: str) -> None:
    assert render.usage_text(used) == shown


def test_watch_shows_a_running_tasks_activity_usage_and_the_daily_notice(
    db: sqlite_utils.Database, tmp_path: Path
) -> None:
    task, run_id = _codex_task(db, tmp_path / "run-1.log")
    # What a dispatcher records: the run's usage, over the board's daily budget.
    tasks.store_limits(db, tasks.Limits(daily_tokens=1000))
    spending.record(db, run_id, records.Usage(input_tokens=1500), cost_source=None)
    shown = tmp_path / "watch.txt"
    # A terminal as far as rich can tell, so that it draws frames as they come.
    environ = {**os.environ, "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1"}
    with open(shown, "wb") as out:
        watcher = subprocess.Popen(
            [KANBAN, "watch", "--interval", "0.1"],
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: "agent: Wrote greeting.txt." in shown.read_text(errors="replace"),
            "the running task's activity",
            on_fail=lambda: shown.read_text(errors="replace"),
        )
        drawn = shown.read_text(errors="replace")
        assert f"t_{task}" in drawn and "1.5k tok" in drawn
        assert "the board's daily budget is spent (used 1,500 of 1,000 tokens today)" in drawn
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(timeout=20) == 0
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
