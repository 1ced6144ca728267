"""Several OS processes on one board file: claims are exclusive and nothing is lost or locked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from support import REPO_ROOT

from board import connection, migrations, runs, tasks

# Every script connects, says "ready", waits for "go" on stdin (so all processes start their
# work together without sleeping), works, and prints one JSON line. Any exception exits 1.
CLAIMER = r"""
import json, os, sys
from board import actors, connection, runs, tasks
db = connection.connect(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
claimed = []
while True:
    got = runs.claim(db, dispatcher_id=os.getpid())
    if not got:
        break
    (c,) = got
    me = actors.Worker(c.task.id, c.run_id, c.token)
    runs.heartbeat(db, me)
    tasks.comment(db, c.task.id, f"claimed by {os.getpid()}", actor=me)
    tasks.complete(db, c.task.id, f"done by {os.getpid()}", actor=me)
    runs.settle(db, c.run_id, "completed")
    claimed.append(c.task.id)
print(json.dumps(claimed))
"""

HEARTBEATER = r"""
import json, sys
from board import actors, connection, runs
db = connection.connect(sys.argv[1])
me = actors.Worker(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
print("ready", flush=True)
sys.stdin.readline()
for i in range(int(sys.argv[5])):
    runs.heartbeat(db, me, note=f"beat {i}" if i % 10 == 0 else None)
print(json.dumps(i + 1))
"""

OPENER = r"""
import json, sys
print("ready", flush=True)
sys.stdin.readline()
from board import connection
db = connection.connect(sys.argv[1])
print(json.dumps(db.conn.execute("PRAGMA user_version").fetchone()[0]))
"""


def run_together(script: str, argvs: list[list[str]], timeout: float = 180) -> list[object]:
    """Start one process per argv, release them at once, return what each printed."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, *argv],
            cwd=REPO_ROOT,
            env=env,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for argv in argvs
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line == "ready\n", (line, proc.stderr.read() if proc.stderr else "")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, err
            assert "locked" not in err and "Traceback" not in err, err
            results.append(json.loads(out))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def integrity(path: Path) -> str:
    db = connection.connect(path)
    try:
        return db.conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.conn.close()


def test_six_processes_draining_a_pool_claim_every_task_exactly_once(db_path: Path) -> None:
    db = connection.connect(db_path)
    ids = []
    for n in range(300):
        # Every third task waits for the one before it, so tasks also become ready mid-run.
        after = [ids[-1]] if n % 3 == 2 else []
        ids.append(tasks.create(db, tasks.NewTask(f"task {n}", priority=n % 4, after=after)))

    results = run_together(CLAIMER, [[str(db_path)] for _ in range(6)])

    claimed = Counter(task_id for result in results for task_id in result)  # type: ignore[attr-defined]
    assert set(claimed) == set(ids)
    assert max(claimed.values()) == 1
    assert [t.status for t in tasks.list_tasks(db) if t.status != "done"] == []
    assert runs.unended(db) == []
    per_task = db.conn.execute(
        "SELECT count(*), count(DISTINCT task_id), sum(outcome = 'completed') FROM runs"
    ).fetchone()
    assert per_task == (300, 300, 300)
    comments = db.conn.execute("SELECT count(*) FROM comments").fetchone()[0]
    assert comments == 300
    # A dependent was claimed only after its blocker was done.
    order = db.conn.execute(
        "SELECT d.blocked_id FROM deps d"
        " JOIN events done ON done.task_id = d.blocker_id AND done.to_status = 'done'"
        " JOIN events run ON run.task_id = d.blocked_id AND run.to_status = 'running'"
        " WHERE run.id < done.id"
    ).fetchall()
    assert order == []
    db.conn.close()
    assert integrity(db_path) == "ok"


def test_concurrent_heartbeats_and_claims_never_fail_with_a_locked_database(
    db_path: Path,
) -> None:
    db = connection.connect(db_path)
    beating = []
    for n in range(8):
        task_id = tasks.create(db, tasks.NewTask(f"long task {n}", priority=10))
        (claimed,) = runs.claim(db, task_id=task_id)
        beating.append(claimed)
    pool = [tasks.create(db, tasks.NewTask(f"short task {n}")) for n in range(120)]

    argvs = [["HB", str(db_path), str(c.task.id), str(c.run_id), c.token, "150"] for c in beating]
    heartbeat_count = len(argvs)
    argvs += [["CLAIM", str(db_path)] for _ in range(3)]
    script = (
        "import sys\nkind = sys.argv.pop(1)\n"
        f"exec({HEARTBEATER!r} if kind == 'HB' else {CLAIMER!r})"
    )

    results = run_together(script, argvs)

    assert results[:heartbeat_count] == [150] * heartbeat_count
    claimed = [task_id for result in results[heartbeat_count:] for task_id in result]  # type: ignore[attr-defined]
    assert sorted(claimed) == pool
    for c in beating:
        run = runs.get(db, c.run_id)
        assert (run.outcome, run.note) == (None, "beat 140")
        assert run.heartbeat_at > c.task.updated_at
        assert tasks.get(db, c.task.id).status == "running"
    notes = db.conn.execute("SELECT count(*) FROM events WHERE kind = 'heartbeat'").fetchone()[0]
    assert notes == 15 * heartbeat_count
    db.conn.close()
    assert integrity(db_path) == "ok"


def test_processes_opening_a_new_board_at_once_migrate_it_once(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "board.db"

    results = run_together(OPENER, [[str(path)] for _ in range(6)])

    assert results == [migrations.latest()] * 6
    db = connection.connect(path)
    try:
        names = {row[0] for row in db.conn.execute("SELECT name FROM sqlite_master")}
        assert {"tasks", "runs", "runs_one_unended", "events_no_update"} <= names
    finally:
        db.conn.close()
    assert integrity(path) == "ok"
