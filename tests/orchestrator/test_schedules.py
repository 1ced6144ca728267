"""Cron schedules: each fire time fires exactly once, whoever is running and whenever."""

from __future__ import annotations

import datetime as dt
import json
import shlex
import subprocess
import sys
import threading
from pathlib import Path

from support.cli import KANBAN, kanban
from support.waiting import wait_for

from board import connection, schedules
from orchestrator import schedules as firing

T0 = dt.datetime(2026, 11, 24, 0, 0, tzinfo=dt.UTC).timestamp()


def batch_file(tmp_path: Path) -> Path:
    path = tmp_path / "nightly.toml"
    command = json.dumps(shlex.join([sys.executable, "-c", "print('checked')"]))
    path.write_text(f'[tasks.check]\ntitle = "Check"\ncommand = {command}\n')
    return path


def fires_by_time(db) -> dict[float, list]:
    found: dict[float, list] = {}
    for row in schedules.fires(db, "five"):
        found.setdefault(row["fire_at"], []).append(row["batch_id"])
    return found


def test_each_fire_time_fires_once_with_two_dispatchers_and_a_restart(tmp_path, db_path):
    path = str(batch_file(tmp_path))
    schedules.add(connection.connect(db_path), "five", "*/5 * * * *", batch_path=path, now=T0)
    # Two dispatchers (own connections, own threads) look at the same moments of a clock the
    # test controls; halfway through, one of them is restarted.
    clock = [T0 + 60, T0 + 300, T0 + 301, T0 + 599, T0 + 600, T0 + 601, T0 + 900, T0 + 1100]
    barrier = threading.Barrier(2)
    fired: list[tuple] = []
    lock = threading.Lock()

    def dispatcher(name: str) -> None:
        db = connection.connect(db_path)
        for step, now in enumerate(clock):
            if name == "a" and step == 4:  # restart: a new process would open a new connection
                db.conn.close()
                db = connection.connect(db_path)
            barrier.wait(timeout=30)
            result = firing.fire_due(db, now)
            with lock:
                fired.extend((name, *item) for item in result)
        db.conn.close()

    threads = [threading.Thread(target=dispatcher, args=(n,)) for n in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    db = connection.connect(db_path)
    assert sorted(fires_by_time(db)) == [T0 + 300, T0 + 600, T0 + 900]
    assert all(
        len(batches) == 1 and batches[0] is not None for batches in fires_by_time(db).values()
    )
    assert sorted(f[2] for f in fired) == [T0 + 300, T0 + 600, T0 + 900]
    assert db.conn.execute("SELECT count(*) FROM batches").fetchone()[0] == 3
    assert db.conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 3


def test_fire_times_missed_while_no_dispatcher_ran_fire_once_on_start(tmp_path, db_path):
    db = connection.connect(db_path)
    schedules.add(db, "five", "*/5 * * * *", batch_path=str(batch_file(tmp_path)), now=T0)
    # Down for five hours: 60 slots were missed; the one fire is the latest slot.
    now = T0 + 5 * 3600 + 120
    assert [f[1] for f in firing.fire_due(db, now)] == [T0 + 5 * 3600]
    assert firing.fire_due(db, now) == []
    assert firing.fire_due(db, now + 180) == [("five", T0 + 5 * 3600 + 300, "b_2")]


def test_a_schedule_whose_batch_file_is_broken_records_the_error_and_does_not_loop(
    tmp_path, db_path
):
    path = batch_file(tmp_path)
    db = connection.connect(db_path)
    schedules.add(db, "five", "*/5 * * * *", batch_path=str(path), now=T0)
    path.write_text("[tasks.x\n")
    assert firing.fire_due(db, T0 + 300) == [("five", T0 + 300, None)]
    assert firing.fire_due(db, T0 + 301) == []
    assert "not valid TOML" in schedules.fires(db, "five")[0]["error"]


def test_the_running_dispatcher_fires_a_due_schedule(tmp_path, db_path):
    path = batch_file(tmp_path)
    kanban("schedule", "add", "often", "--seconds", "--cron", "* * * * * */2", str(path))
    dispatcher = subprocess.Popen(
        [KANBAN, "dispatch", "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        db = connection.connect(db_path)
        done = "SELECT count(*) FROM tasks WHERE status = 'done'"
        wait_for(
            lambda: db.conn.execute(done).fetchone()[0],
            "the schedule to fire and its task to run",
            timeout=30,
        )
    finally:
        dispatcher.terminate()
        assert dispatcher.wait(timeout=30) == 0
    fires = schedules.fires(db, "often")
    assert len({f["fire_at"] for f in fires}) == len(fires) >= 1


def test_schedule_commands_add_list_run_now_remove_and_refuse_bad_input(tmp_path):
    path = str(batch_file(tmp_path))

    bad = kanban("schedule", "add", "x", "--cron", "every day", path, check=False)
    assert bad.returncode == 1 and "is not a cron expression" in bad.stderr
    kanban("schedule", "add", "nightly", "--cron", "0 3 * * *", path)
    again = kanban("schedule", "add", "nightly", "--cron", "0 4 * * *", path, check=False)
    assert again.returncode == 1 and "exists" in again.stderr
    listed = json.loads(kanban("schedule", "list", "--json").stdout)
    assert [(s["name"], s["cron"], s["last_fire_at"]) for s in listed] == [
        ("nightly", "0 3 * * *", None)
    ]
    assert "submitted batch b_1" in kanban("schedule", "run-now", "nightly").stdout
    kanban("schedule", "remove", "nightly")
    assert kanban("schedule", "remove", "nightly", check=False).returncode == 1
