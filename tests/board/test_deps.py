"""Dependencies: `A blocks B` edges, release of dependents, cycle refusal, and their cost."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlite_utils
from support.board_kit import claim, new, status, worker

from board import connection, deps, errors, runs, tasks, views
from board.states import Outcome


def test_a_dependent_is_released_only_when_all_its_blockers_are_done(
    db: sqlite_utils.Database,
) -> None:
    first, second = new(db), new(db)
    dependent = new(db, after=[first, second])

    tasks.complete(db, first, "one")
    assert status(db, dependent) == "todo"
    assert views.task_object(db, dependent)["why_not_runnable"] == (
        "waiting for its blockers: t_2 is ready"
    )

    claimed = claim(db, second)
    tasks.complete(db, second, "two", actor=worker(claimed))
    assert status(db, dependent) == "todo"  # reported, but its work is not committed yet
    runs.settle(db, claimed.run_id, Outcome.COMPLETED)
    assert status(db, dependent) == "ready"
    assert views.task_object(db, dependent)["why_not_runnable"] is None


@pytest.mark.parametrize("ending", ["failed", "cancelled"])
def test_a_blocker_that_ends_without_being_done_leaves_its_dependent_todo_and_says_why(
    db: sqlite_utils.Database, ending: str
) -> None:
    blocker = new(db, max_attempts=1)
    dependent = new(db, after=[blocker])
    if ending == "failed":
        runs.settle(db, claim(db, blocker).run_id, Outcome.CRASHED)
    else:
        tasks.cancel(db, blocker)

    assert status(db, blocker) == ending
    assert status(db, dependent) == "todo"
    why = views.task_object(db, dependent)["why_not_runnable"]
    assert f"t_1 is {ending} and will not finish unless it is retried" in why
    assert "`kanban retry t_1`" in why

    tasks.retry(db, blocker)
    tasks.complete(db, blocker, "fixed")
    assert status(db, dependent) == "ready"


def test_linking_an_unfinished_blocker_sends_a_ready_task_back_to_todo_and_unlinking_releases_it(
    db: sqlite_utils.Database,
) -> None:
    blocker, blocked = new(db), new(db)

    assert deps.link(db, blocker, blocked) is True
    assert status(db, blocked) == "todo"
    assert deps.link(db, blocker, blocked) is False  # the edge already existed

    assert deps.unlink(db, blocker, blocked) is True
    assert status(db, blocked) == "ready"
    with pytest.raises(errors.InvalidInput, match="t_1 does not block t_2; nothing to unlink"):
        deps.unlink(db, blocker, blocked)


def test_linking_a_done_blocker_keeps_the_task_ready(db: sqlite_utils.Database) -> None:
    blocker, blocked = new(db), new(db)
    tasks.complete(db, blocker, "done")

    deps.link(db, blocker, blocked)

    assert status(db, blocked) == "ready"
    assert views.task_object(db, blocked)["blockers"] == ["t_1"]


def test_a_direct_cycle_is_refused_with_its_path(db: sqlite_utils.Database) -> None:
    a = new(db)
    b = new(db, after=[a])

    with pytest.raises(errors.DependencyCycle) as caught:
        deps.link(db, b, a)
    assert caught.value.path == ["t_1", "t_2"]
    assert "t_2 cannot block t_1" in str(caught.value)
    assert "(t_1 -> t_2)" in str(caught.value)
    assert views.task_object(db, a)["blockers"] == []


def test_a_transitive_cycle_is_refused_with_its_path(db: sqlite_utils.Database) -> None:
    a = new(db)
    b = new(db, after=[a])
    c = new(db, after=[b])
    d = new(db, after=[c])

    with pytest.raises(errors.DependencyCycle, match=re.escape("(t_1 -> t_2 -> t_3 -> t_4)")):
        deps.link(db, d, a)
    deps.link(db, a, d)  # the same pair the other way round is no cycle


def test_a_task_cannot_block_itself(db: sqlite_utils.Database) -> None:
    a = new(db)
    with pytest.raises(errors.InvalidInput, match="cannot block itself"):
        deps.link(db, a, a)


def test_a_subtask_cannot_wait_for_its_ancestor(db: sqlite_utils.Database) -> None:
    root = new(db)
    child = new(db, parent=root)
    grandchild = new(db, parent=child)

    for ancestor, descendant in ((root, child), (root, grandchild), (child, grandchild)):
        with pytest.raises(errors.InvalidInput, match=r"is a subtask of .* cannot wait for it"):
            deps.link(db, ancestor, descendant)
    with pytest.raises(errors.InvalidInput, match="cannot wait for it"):
        new(db, parent=root, after=[root])
    deps.link(db, child, root)  # a parent may wait for its subtask
    assert status(db, root) == "todo"


def test_linking_an_unknown_task_is_refused(db: sqlite_utils.Database) -> None:
    a = new(db)
    with pytest.raises(errors.TaskNotFound, match="t_9"):
        deps.link(db, a, 9)


def test_a_retry_of_a_task_given_a_new_blocker_while_running_waits_for_it(
    db: sqlite_utils.Database,
) -> None:
    task_id = new(db)
    claimed = claim(db, task_id)
    blocker = new(db)
    deps.link(db, blocker, task_id)

    runs.settle(db, claimed.run_id, Outcome.CRASHED, retry_at=0.0)

    assert status(db, task_id) == "todo"
    assert runs.claim(db, task_id=task_id) == []
    tasks.complete(db, blocker, "done")
    assert status(db, task_id) == "ready"
    assert claim(db, task_id).kind == "retry"


def test_a_waiting_parent_given_a_new_blocker_resumes_only_when_it_is_done(
    db: sqlite_utils.Database,
) -> None:
    parent = new(db)
    claimed = claim(db, parent)
    child = tasks.create(db, tasks.NewTask("part"), worker(claimed))
    tasks.complete(db, parent, "split", actor=worker(claimed))
    runs.settle(db, claimed.run_id, Outcome.COMPLETED)
    blocker = new(db)
    deps.link(db, blocker, parent)
    assert status(db, parent) == "waiting"

    tasks.complete(db, child, "part done")

    assert status(db, parent) == "todo"
    tasks.complete(db, blocker, "done")
    assert status(db, parent) == "ready"
    assert claim(db, parent).kind == "resume"


def test_a_worker_may_link_only_its_own_subtasks(db: sqlite_utils.Database) -> None:
    own = new(db)
    other = new(db)
    claimed = claim(db, own)
    me = worker(claimed)
    first = tasks.create(db, tasks.NewTask("first"), me)
    second = tasks.create(db, tasks.NewTask("second"), me)

    assert deps.link(db, first, second, actor=me) is True
    assert status(db, second) == "todo"
    assert deps.unlink(db, first, second, actor=me) is True
    for blocker, blocked in ((other, first), (first, other), (first, own)):
        with pytest.raises(errors.NotYourTask):
            deps.link(db, blocker, blocked, actor=me)
    tasks.complete(db, own, "split", actor=me)
    with pytest.raises(errors.StaleRun):
        deps.link(db, first, second, actor=me)


def _statements_while(db: sqlite_utils.Database, action) -> list[str]:
    seen: list[str] = []
    db.conn.set_trace_callback(seen.append)
    try:
        action()
    finally:
        db.conn.set_trace_callback(None)
    return seen


def _chain_board(db: sqlite_utils.Database, unrelated: int) -> tuple[int, int]:
    """A root with two dependents, plus `unrelated` todo tasks waiting on another blocker."""
    other = new(db, "other blocker")
    with connection.transaction(db) as tx:
        for _ in range(unrelated):
            tasks.insert(tx, tasks.NewTask("unrelated", after=[other]))
    root = new(db, "root")
    new(db, "dependent", after=[root])
    new(db, "dependent", after=[root])
    return root, other


def test_completing_a_blocker_touches_only_its_dependents(tmp_path: Path) -> None:
    counts = []
    for unrelated in (5, 500):
        db = connection.connect(tmp_path / f"{unrelated}.db")
        try:
            root, other = _chain_board(db, unrelated)
            seen = _statements_while(db, lambda: tasks.complete(db, root, "done"))  # noqa: B023
            counts.append(len(seen))
            for sql in seen:
                if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
                    continue
                plan = " | ".join(row[3] for row in db.conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
                # Every lookup goes through an index; none reads whole tables.
                assert not re.search(r"\bSCAN (tasks|deps|runs|events)\b", plan), (sql, plan)
            assert len(tasks.list_tasks(db, ["ready"])) == 3  # the two dependents and `other`
            assert status(db, other) == "ready"
        finally:
            db.conn.close()
    assert counts[0] == counts[1]  # the work does not grow with the rest of the board


def test_the_dependents_query_looks_edges_up_by_blocker(sqlite_db: sqlite_utils.Database) -> None:
    db = sqlite_db  # SQLite's planner
    plan = [
        row[3]
        for row in db.conn.execute(
            "EXPLAIN QUERY PLAN SELECT t.id FROM deps d JOIN tasks t ON t.id = d.blocked_id"
            " WHERE d.blocker_id = ? AND t.status = 'todo'",
            (1,),
        )
    ]
    assert any(step.startswith("SEARCH d USING PRIMARY KEY (blocker_id=?)") for step in plan)
    assert any("SEARCH t USING INTEGER PRIMARY KEY" in step for step in plan)


def test_a_link_that_would_make_a_parent_and_its_subtask_wait_for_each_other_is_refused(db):
    parent = tasks.create(db, tasks.NewTask("parent"))
    child = tasks.create(db, tasks.NewTask("child", parent=parent))
    after_parent = tasks.create(db, tasks.NewTask("after the parent", after=[parent]))
    # child -> parent -> after_parent: the child waiting for after_parent would deadlock.
    with pytest.raises(errors.DependencyCycle) as caught:
        deps.link(db, after_parent, child)
    assert f"t_{child} -> t_{parent} -> t_{after_parent}" in str(caught.value)
    assert views.task_object(db, child)["blockers"] == []
