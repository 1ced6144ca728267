"""`kanban run`: batches submitted atomically, run to the end, reported, with an exit code."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import KANBAN, kanban
from support.gitrepo import make_repo
from support.waiting import wait_for

from board import connection, runs, tasks

PY = sys.executable


def command(code: str) -> str:
    return json.dumps(shlex.join([PY, "-c", code]))


BATCH = """
name = "nightly"

[defaults]
repo = "repo"
runtime = "command"
max_attempts = 1

[tasks.lint]
title = "Lint"
command = {lint}

[tasks.test]
title = "Test"
command = {test}

[tasks.package]
title = "Package"
command = {package}
after = ["lint", "test"]
"""


def write_batch(tmp_path: Path, *, failing: bool) -> Path:
    make_repo(tmp_path / "repo", {})
    batch = tmp_path / "nightly.toml"
    batch.write_text(
        BATCH.format(
            lint=command("print('lint clean')"),
            test=command(
                "import sys; print('2 tests failed'); sys.exit(1)"
                if failing
                else "print('all tests pass')"
            ),
            package=command("open('dist.txt', 'w').write('pkg'); print('packaged')"),
        )
    )
    return batch


def test_a_batch_that_succeeds_exits_0_with_a_report(tmp_path):
    batch = write_batch(tmp_path, failing=False)
    report_file = tmp_path / "report.md"
    result = kanban(
        "run", str(batch), "--json", "--report", str(report_file), check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert {t["key"]: t["status"] for t in report["tasks"]} == {
        "lint": "done",
        "test": "done",
        "package": "done",
    }
    package = next(t for t in report["tasks"] if t["key"] == "package")
    assert package["summary"] == "packaged"
    assert re.fullmatch(r"kanban/[0-9a-f]{8}/t_3", package["branch"])
    assert package["attempts"] == 1 and package["duration_s"] is not None
    markdown = report_file.read_text()
    assert "all tasks done" in markdown and "| t_3 Package | package | done |" in markdown


def test_a_batch_with_a_failing_task_exits_1_and_reports_it(tmp_path):
    batch = write_batch(tmp_path, failing=True)
    result = kanban("run", str(batch), "--json", check=False, timeout=120)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    by_key = {t["key"]: t for t in report["tasks"]}
    assert by_key["test"]["status"] == "failed"
    assert "exit code 1" in by_key["test"]["reason"]
    # Its dependent can never run; the run ends anyway and says so.
    assert by_key["package"]["status"] == "todo"
    assert by_key["lint"]["status"] == "done"
    # A second submission, printed for people.
    human = kanban("run", str(batch), check=False, timeout=120)
    assert human.returncode == 1
    assert "NOT all tasks done" in human.stdout


def test_resubmitting_with_the_same_idempotency_key_creates_nothing(tmp_path, db_path):
    batch = write_batch(tmp_path, failing=False)
    first = kanban(
        "run", str(batch), "--idempotency-key", "nightly-2026-11-24", "-q", check=False, timeout=120
    )
    assert first.returncode == 0, first.stderr
    second = kanban(
        "run", str(batch), "--idempotency-key", "nightly-2026-11-24", check=False, timeout=120
    )
    assert second.returncode == 0
    assert "already submitted" in second.stderr
    db = connection.connect(db_path)
    assert len(tasks.list_tasks(db)) == 3
    assert db.conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 3


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ('[tasks.a]\ntitle = "A"\ncommand = "true"\n[tasks.b\n', 4, "not valid TOML"),
        (
            '[tasks.a]\ntitle = "A"\ncommand = "true"\n\n[tasks.b]\ntitle = "B"\n'
            'command = "true"\nafter = ["zz"]\n',
            8,
            "which is not a task of this batch",
        ),
        ('[tasks.a]\ntitle = "A"\ncolour = "blue"\n', 3, "unknown key(s) colour"),
        ('[tasks.a]\ntitle = "A"\nruntime = "command"\n', 3, "needs `command`"),
        (
            '[tasks.a]\ntitle = "A"\ncommand = "true"\nafter = ["b"]\n'
            '[tasks.b]\ntitle = "B"\ncommand = "true"\nafter = ["a"]\n',
            None,
            "cycle",
        ),
        ('[tasks.a]\ntitle = "A"\nrepo = "nowhere"\n', 3, "nowhere"),
        ('name = "x"\n', None, "no tasks"),
    ],
)
def test_a_malformed_batch_is_refused_before_anything_is_created(
    tmp_path, db_path, text, line, reason
):
    batch = tmp_path / "bad.toml"
    batch.write_text(text)
    result = kanban("run", str(batch), check=False, timeout=120)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.stderr
    assert reason in result.stderr
    if line is not None:
        assert f"bad.toml:{line}:" in result.stderr
    assert "nothing was submitted" in result.stderr
    assert tasks.list_tasks(connection.connect(db_path)) == []


def test_no_dispatch_waits_for_a_dispatcher_already_running(tmp_path):
    batch = write_batch(tmp_path, failing=False)
    dispatcher = subprocess.Popen(
        [KANBAN, "dispatch", "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        result = kanban("run", str(batch), "--no-dispatch", "--json", check=False, timeout=120)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["ok"] is True
    finally:
        dispatcher.terminate()
        assert dispatcher.wait(timeout=30) == 0


def test_run_starts_only_its_own_batch_and_leaves_other_ready_tasks_alone(tmp_path, db_path):
    batch = write_batch(tmp_path, failing=False)
    marker = tmp_path / "outsider-ran"
    outsider = kanban(
        "create", "Not in the batch", "--command", shlex.join(["touch", str(marker)])
    ).stdout.strip()

    result = kanban("run", str(batch), "--json", check=False, timeout=120)

    assert result.returncode == 0, result.stderr
    assert {t["key"] for t in json.loads(result.stdout)["tasks"]} == {"lint", "test", "package"}
    db = connection.connect(db_path)
    try:
        task = tasks.get(db, int(outsider.removeprefix("t_")))
        assert (task.status, task.attempts) == ("ready", 0)
        assert runs.for_task(db, task.id) == []
    finally:
        db.conn.close()
    assert not marker.exists()


def test_a_first_ctrl_c_is_acknowledged_and_a_second_stops_the_workers_with_exit_130(
    tmp_path, db_path
):
    batch = tmp_path / "nap.toml"
    batch.write_text('[tasks.nap]\ntitle = "Nap"\ncommand = "sleep 300"\nmax_attempts = 1\n')
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen([KANBAN, "run", str(batch)], stdout=stdout, stderr=stderr)
    try:
        wait_for(db_path.exists, "the batch to be submitted", timeout=60)
        db = connection.connect(db_path)
        try:
            wait_for(
                lambda: any(r.pid for r in runs.unended(db)),
                "the sleep command to start",
                timeout=60,
            )
        finally:
            db.conn.close()

        process.send_signal(signal.SIGINT)
        wait_for(
            lambda: "starting no new workers" in err.read_text(), "the acknowledgement", timeout=60
        )
        assert "send it again to stop them" in err.read_text()
        assert process.poll() is None, "the first Ctrl-C waits for the running worker"

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 130
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    messages = err.read_text()
    assert "stopping the running workers" in messages
    assert "interrupted: the unfinished tasks of batch b_1 stay on the board" in messages
    assert "Traceback" not in messages
    assert "NOT all tasks done" in out.read_text()
