"""`kanban migrate-board`: a SQLite board moved to PostgreSQL, nothing lost, nothing renamed."""

from __future__ import annotations

import json
import subprocess
import urllib.parse
from pathlib import Path

import psutil
from support.board_kit import claim
from support.cli import KANBAN
from support.waiting import wait_for
from support.world import Kanban

from board import connection, identity, pg_schema, records, spending, tasks


def shown(kb: Kanban, task: str, **env: str) -> dict:
    obj = json.loads(kb.run("show", task, "--json", **env).stdout)
    # When a run's events were read is the same; nothing else may differ.
    return obj


def test_a_board_moved_to_postgresql_keeps_every_task_run_event_and_id(
    kb: Kanban, repo: Path, pg_url: str, tmp_path: Path
) -> None:
    first = kb.create("first", "open('a.txt', 'w').write('a')", repo=repo)
    second = kb.create("second", "print('second')", after=[first])
    kb.run("comment", f"t_{first}", "a remark")
    tasks.create(kb.db, tasks.NewTask("sub", parent=second, budget=records.Budget(usd=2.0)))
    batch = tmp_path / "b.toml"
    batch.write_text('budget = "1M"\n[tasks.x]\ntitle = "batched"\ncommand = "true"\n')
    kb.run("run", str(batch))
    kb.dispatch("--until-idle").wait()
    run = kb.runs(first)[0]
    with connection.transaction(kb.db) as tx:  # as if its agent had reported usage
        tx.execute("UPDATE runs SET input_tokens = 1200, model = 'm' WHERE id = ?", (run.id,))
    board_id = kb.board_id
    before = {t.label: shown(kb, t.label) for t in tasks.list_tasks(kb.db)}
    usage_before = json.loads(kb.run("usage", "--json", "--by", "model").stdout)

    moved = kb.run("migrate-board", "--from", str(kb.db_path), "--json", KANBAN_DB=pg_url)
    counts = json.loads(moved.stdout)["counts"]
    assert counts["tasks"] == len(before) and counts["events"] > 10 and counts["runs"] >= 3
    assert json.loads(moved.stdout)["board_id"] == board_id

    on_pg = {"KANBAN_DB": pg_url}
    assert {t: shown(kb, t, **on_pg) for t in before} == before
    assert json.loads(kb.run("usage", "--json", "--by", "model", **on_pg).stdout) == usage_before
    pg = connection.connect(pg_url)
    try:
        assert identity.board_id(pg) == board_id  # its branches and worktrees keep their names
        # New ids go on after the copied ones, and the board works: a new task runs to done.
        created = tasks.create(
            pg,
            tasks.NewTask("after the move", runtime="command", runtime_options={"argv": ["true"]}),
        )
        assert created == max(int(t[2:]) for t in before) + 1
        assert kb.dispatch("--until-idle", **on_pg).wait() == 0
        assert tasks.get(pg, created).status == "done"
        assert spending.of_task(pg, first).input_tokens == 1200
    finally:
        pg.conn.close()


def test_a_board_with_a_live_run_or_a_target_with_tasks_is_refused(kb: Kanban, pg_url: str) -> None:
    task_id = kb.create("live", "print(1)")
    claimed = claim(kb.db, task_id)
    refused = kb.run("migrate-board", "--from", str(kb.db_path), "--to", pg_url, check=False)
    assert refused.returncode == 1
    assert f"has live runs (run {claimed.run_id} of t_{task_id})" in refused.stderr
    assert pg_url not in refused.stderr  # a URL may hold a password: never repeated

    kb.db.conn.close()
    kb.db = connection.connect(kb.db_path)
    from board import runs
    from board.states import Outcome

    runs.settle(kb.db, claimed.run_id, Outcome.CANCELLED)
    pg = connection.connect(pg_url)
    tasks.create(pg, tasks.NewTask("already here"))
    pg.conn.close()
    refused = kb.run("migrate-board", "--from", str(kb.db_path), "--to", pg_url, check=False)
    assert refused.returncode == 1 and "already holds tasks" in refused.stderr
    not_a_url = kb.run("migrate-board", "--from", str(kb.db_path), "--to", "/tmp/x.db", check=False)
    assert not_a_url.returncode == 1 and "--to must be a postgresql:// URL" in not_a_url.stderr


def board_check(kb: Kanban, url: str) -> dict:
    found = json.loads(kb.run("doctor", "--json", check=False, KANBAN_DB=url).stdout)
    (check,) = [c for c in found if c["name"] == "board"]
    return check


def test_doctor_checks_a_postgresql_board_its_server_and_schema(kb: Kanban, pg_url: str) -> None:
    fresh = board_check(kb, pg_url)
    assert fresh["ok"] and "has no board yet" in fresh["detail"]
    connection.connect(pg_url).conn.close()
    made = board_check(kb, pg_url)
    assert made["ok"] and "PostgreSQL 15" in made["detail"]
    assert f"schema {pg_schema.latest()}" in made["detail"]
    password = urllib.parse.urlsplit(pg_url).password
    assert password and password not in json.dumps(made)  # a URL's password is never shown
    host, _, rest = pg_url.rpartition(":")
    down = board_check(kb, f"{host}:1/{rest.split('/', 1)[1]}")  # nothing listens on port 1
    assert not down["ok"] and "cannot reach the board" in down["detail"]
    assert "start the server" in down["fix"]


def test_a_postgresql_boards_password_is_in_no_output_and_no_command_line(
    kb: Kanban, pg_url: str
) -> None:
    password = urllib.parse.urlsplit(pg_url).password
    assert password
    on_pg = {"KANBAN_DB": pg_url}
    kb.run("create", "quick", "--command", "true", **on_pg)
    dispatcher = kb.dispatch("--until-idle", **on_pg)
    assert dispatcher.wait() == 0
    assert ":***@" in dispatcher.output() and password not in dispatcher.output()

    serve = subprocess.Popen(
        [KANBAN, "serve", "--port", "0", "--dispatch"],
        env={**kb.env, **on_pg},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert serve.stdout is not None
        first = serve.stdout.readline()
        assert first.startswith("kanban serve: http://127.0.0.1:") and password not in first
        children = wait_for(
            lambda: psutil.Process(serve.pid).children(), "the web board's dispatcher"
        )
        for child in children:
            assert not [arg for arg in child.cmdline() if password in arg or "postgresql" in arg]
    finally:
        serve.terminate()
        serve.communicate(timeout=20)
