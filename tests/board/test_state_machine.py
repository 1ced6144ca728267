"""Random sequences of everything people, workers and dispatchers do, against a real board file.

After every step the board must still satisfy its invariants, and no stale or forged run may
ever have changed anything.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, event, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from board import actors, connection, deps, errors, runs, states, tasks
from board.states import Outcome, Status

NOW = 1_800_000_000.0
LIMITS = tasks.Limits(max_depth=2, max_children=3)
OPEN = {str(s) for s in states.OPEN}


class BoardMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # A fresh file per example: hypothesis reuses function-scoped fixtures across examples.
        # On tmpfs when there is one: each example creates and deletes a board, and on disk
        # those fsyncs would dominate the run time.
        shm = Path("/dev/shm")
        where = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
        self.directory = tempfile.mkdtemp(prefix="kanban-state-machine-", dir=where)
        self.db = connection.connect(Path(self.directory) / "board.db")
        self.task_ids: list[int] = []
        self.claims: list[actors.Worker] = []  # every run ever claimed, live or not
        self.clock = NOW

    def teardown(self) -> None:
        self.db.conn.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    # Helpers

    def draw_task(self, data: st.DataObject, open_first: bool = False) -> int:
        """A task, drawn status first so that rare states (running, waiting) get their share.

        With `open_first`, mostly a task that has not ended, where changes matter.
        """
        by_status: dict[str, list[int]] = {}
        for task_id, status in self.db.conn.execute("SELECT id, status FROM tasks ORDER BY id"):
            by_status.setdefault(status, []).append(task_id)
        choices = sorted(by_status)
        if open_first and set(choices) & OPEN and data.draw(st.integers(0, 3)):
            choices = sorted(set(choices) & OPEN)
        status = data.draw(st.sampled_from(choices))
        return data.draw(st.sampled_from(by_status[status]))

    def draw_worker(self, data: st.DataObject) -> actors.Worker:
        """A claimed run's credentials, sometimes forged (a wrong token, another run's id).

        Mostly a live run (so that work actually progresses), sometimes any run ever claimed.
        """
        live = [w for w in self.claims if self.is_live(w)]
        pool = live if live and data.draw(st.integers(0, 3)) else self.claims
        worker = data.draw(st.sampled_from(pool))
        how = data.draw(st.sampled_from(["as claimed"] * 4 + ["wrong token", "other run"]))
        if how == "wrong token":
            return actors.Worker(worker.task_id, worker.run_id, "forged" + worker.token[6:])
        if how == "other run":
            other = data.draw(st.sampled_from(self.claims))
            return actors.Worker(worker.task_id, other.run_id, other.token)
        return worker

    def draw_target(self, data: st.DataObject, worker: actors.Worker) -> int:
        own = data.draw(st.integers(0, 2))
        return worker.task_id if own else self.draw_task(data)

    def is_live(self, worker: actors.Worker) -> bool:
        """What fencing must allow: the run is its task's current run and has no outcome."""
        row = self.db.conn.execute(
            "SELECT 1 FROM runs r JOIN tasks t ON t.id = r.task_id"
            " WHERE r.id = ? AND r.task_id = ? AND r.token_hash = ? AND r.outcome IS NULL"
            " AND t.current_run_id = r.id AND t.status = 'running'",
            (worker.run_id, worker.task_id, hashlib.sha256(worker.token.encode()).hexdigest()),
        ).fetchone()
        return row is not None

    def as_worker(self, worker: actors.Worker, action: Callable[[], Any]) -> Any:
        """Run a worker's write; a stale or forged run must be refused before anything else."""
        live = self.is_live(worker)
        before = self.fingerprint()
        try:
            result = action()
        except errors.StaleRun:
            assert not live, "the live run was refused as stale"
            assert self.fingerprint() == before
            return None
        except errors.KanbanError:
            assert live, "a stale run got past fencing"
            assert self.fingerprint() == before
            return None
        assert live, "a stale or forged run changed the board"
        return result

    def as_operator(self, action: Callable[[], Any]) -> Any:
        before = self.fingerprint()
        try:
            return action()
        except errors.KanbanError:
            assert self.fingerprint() == before, "a refused change left a trace"
            return None

    def fingerprint(self) -> tuple[int, ...]:
        return self.db.conn.execute(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM comments),"
            " (SELECT count(*) FROM tasks), (SELECT count(*) FROM runs),"
            " (SELECT count(*) FROM deps), (SELECT total(updated_at) FROM tasks)"
        ).fetchone()

    # Creating and linking

    @initialize(data=st.data(), count=st.integers(2, 6))
    def seed_the_board(self, data: st.DataObject, count: int) -> None:
        for _ in range(count):
            after = (
                data.draw(st.lists(st.sampled_from(self.task_ids), max_size=2))
                if (self.task_ids)
                else []
            )
            spec = tasks.NewTask("seed", priority=data.draw(st.integers(0, 3)), after=after)
            self.task_ids.append(tasks.create(self.db, spec))

    @rule(data=st.data(), priority=st.integers(0, 3), max_attempts=st.integers(1, 3))
    def create(self, data: st.DataObject, priority: int, max_attempts: int) -> None:
        after: list[int] = []
        parent = None
        by_worker = bool(self.claims) and data.draw(st.booleans())
        if self.task_ids:
            # A worker's subtask mostly has no blockers: it may only wait for its own subtasks.
            many = 1 if by_worker and data.draw(st.integers(0, 3)) else 3
            after = data.draw(st.lists(st.sampled_from(self.task_ids), max_size=many))
            parent = data.draw(st.one_of(st.none(), st.sampled_from(self.task_ids)))
        if by_worker and data.draw(st.integers(0, 3)):
            parent = None  # the worker's own task
        spec = tasks.NewTask(
            "task", priority=priority, max_attempts=max_attempts, after=after, parent=parent
        )
        if by_worker:
            worker = self.draw_worker(data)
            created = self.as_worker(
                worker, lambda: tasks.create(self.db, spec, worker, limits=LIMITS)
            )
        else:
            created = self.as_operator(lambda: tasks.create(self.db, spec, limits=LIMITS))
        if created is not None:
            self.task_ids.append(created)

    @precondition(lambda self: len(self.task_ids) >= 2)
    @rule(data=st.data())
    def operator_links(self, data: st.DataObject) -> None:
        blocker, blocked = self.draw_task(data, open_first=True), self.draw_task(data, True)
        self.as_operator(lambda: deps.link(self.db, blocker, blocked))

    @precondition(lambda self: self.claims and len(self.task_ids) >= 2)
    @rule(data=st.data(), unlink=st.booleans())
    def worker_links(self, data: st.DataObject, unlink: bool) -> None:
        worker = self.draw_worker(data)
        blocker, blocked = self.draw_task(data, open_first=True), self.draw_task(data, True)
        change = deps.unlink if unlink else deps.link
        self.as_worker(worker, lambda: change(self.db, blocker, blocked, actor=worker))

    @precondition(lambda self: self.db.conn.execute("SELECT 1 FROM deps").fetchone())
    @rule(data=st.data())
    def operator_unlinks(self, data: st.DataObject) -> None:
        edges = self.db.conn.execute("SELECT blocker_id, blocked_id FROM deps").fetchall()
        blocker, blocked = data.draw(st.sampled_from(sorted(edges)))
        self.as_operator(lambda: deps.unlink(self.db, blocker, blocked))

    # The dispatcher

    @rule(limit=st.integers(1, 2))
    def claim(self, limit: int) -> None:
        for claimed in runs.claim(self.db, limit=limit, now=self.clock):
            self.claims.append(actors.Worker(claimed.task.id, claimed.run_id, claimed.token))

    @precondition(lambda self: self.claims)
    @rule(
        data=st.data(),
        outcome=st.sampled_from(Outcome),
        retry=st.sampled_from([None, "due", "later"]),
        refund=st.booleans(),
    )
    def settle(
        self, data: st.DataObject, outcome: Outcome, retry: str | None, refund: bool
    ) -> None:
        unended = [w for w in self.claims if runs.get(self.db, w.run_id).ended_at is None]
        pool = unended if unended and data.draw(st.integers(0, 3)) else self.claims
        worker = data.draw(st.sampled_from(pool))
        retry_at = {None: None, "due": self.clock, "later": self.clock + 50}[retry]
        before = runs.get(self.db, worker.run_id)
        final = runs.settle(
            self.db,
            worker.run_id,
            outcome,
            reason="settled",
            retry_at=retry_at,
            refund=refund,
            now=self.clock,
        )
        after = runs.get(self.db, worker.run_id)
        assert final == (before.outcome or outcome)
        assert after.ended_at is not None
        if before.ended_at is not None:
            assert after == before

    @rule()
    def time_passes(self) -> None:
        self.clock += 60

    # Workers

    @precondition(lambda self: self.claims)
    @rule(data=st.data(), note=st.sampled_from([None, "working"]))
    def heartbeat(self, data: st.DataObject, note: str | None) -> None:
        worker = self.draw_worker(data)
        self.as_worker(worker, lambda: runs.heartbeat(self.db, worker, note, now=self.clock))

    @precondition(lambda self: self.claims)
    @rule(
        data=st.data(),
        action=st.sampled_from(["complete", "block", "comment", "unblock", "cancel", "retry"]),
    )
    def worker_writes(self, data: st.DataObject, action: str) -> None:
        worker = self.draw_worker(data)
        target = self.draw_target(data, worker)
        calls: dict[str, Callable[[], Any]] = {
            "complete": lambda: tasks.complete(self.db, target, "finished", actor=worker),
            "block": lambda: tasks.block(self.db, target, "stuck", actor=worker),
            "comment": lambda: tasks.comment(self.db, target, "progress", actor=worker),
            "unblock": lambda: tasks.unblock(self.db, target, worker),
            "cancel": lambda: tasks.cancel(self.db, target, worker),
            "retry": lambda: tasks.retry(self.db, target, worker),
        }
        self.as_worker(worker, calls[action])

    @precondition(lambda self: any(self.is_live(w) for w in self.claims))
    @rule(data=st.data(), children=st.integers(1, 2), complete=st.booleans())
    def worker_splits_its_task(self, data: st.DataObject, children: int, complete: bool) -> None:
        """The orchestrator pattern: a live worker creates subtasks, then reports completion."""
        worker = data.draw(st.sampled_from([w for w in self.claims if self.is_live(w)]))
        spec = tasks.NewTask("subtask", max_attempts=2)
        for _ in range(children):
            created = self.as_worker(
                worker, lambda: tasks.create(self.db, spec, worker, limits=LIMITS)
            )
            if created is not None:
                self.task_ids.append(created)
        if complete:
            self.as_worker(
                worker, lambda: tasks.complete(self.db, worker.task_id, "split", actor=worker)
            )

    # People

    @precondition(lambda self: self.task_ids)
    @rule(
        data=st.data(),
        action=st.sampled_from(["complete", "block", "unblock", "cancel", "retry", "comment"]),
    )
    def operator_writes(self, data: st.DataObject, action: str) -> None:
        target = self.draw_task(data, open_first=True)
        calls: dict[str, Callable[[], Any]] = {
            "complete": lambda: tasks.complete(self.db, target, "done by hand"),
            "block": lambda: tasks.block(self.db, target, "on hold"),
            "unblock": lambda: tasks.unblock(self.db, target, comment="go ahead"),
            "cancel": lambda: tasks.cancel(self.db, target),
            "retry": lambda: tasks.retry(self.db, target),
            "comment": lambda: tasks.comment(self.db, target, "a note"),
        }
        self.as_operator(calls[action])

    # Invariants

    @invariant()
    def board_is_consistent(self) -> None:
        conn = self.db.conn
        assert not conn.in_transaction
        board = {t["id"]: t for t in connection.rows(conn, "SELECT * FROM tasks")}
        all_runs = connection.rows(conn, "SELECT * FROM runs ORDER BY id")
        edges = conn.execute("SELECT blocker_id, blocked_id FROM deps").fetchall()
        blockers: dict[int, list[int]] = {task_id: [] for task_id in board}
        for blocker, blocked in edges:
            blockers[blocked].append(blocker)

        for task_id, task in board.items():
            own_runs = [r for r in all_runs if r["task_id"] == task_id]
            assert sum(r["ended_at"] is None for r in own_runs) <= 1
            live = [r for r in own_runs if r["outcome"] is None]
            assert len(live) <= 1
            if task["status"] == Status.RUNNING:
                unended = [r["id"] for r in own_runs if r["ended_at"] is None]
                assert unended == [task["current_run_id"]]
                # Its worker may have reported (an outcome) before the run is settled.
                assert [r["id"] for r in live] in ([], unended)
            else:
                assert task["current_run_id"] is None
                assert live == [], "a run without an outcome outlived its task's running state"
            assert (task["ended_at"] is not None) == (task["status"] in states.ENDED)
            assert task["attempts"] <= task["max_attempts"]

            unfinished = [b for b in blockers[task_id] if board[b]["status"] != Status.DONE]
            if task["status"] == Status.TODO:
                assert unfinished, f"t_{task_id} is todo with every blocker done"
            if task["status"] == Status.READY:
                assert not unfinished, f"t_{task_id} is ready with an unfinished blocker"
            if task["status"] == Status.WAITING:
                assert any(
                    c["parent_id"] == task_id and c["status"] in OPEN for c in board.values()
                ), f"t_{task_id} is waiting without an open subtask"

        self.check_events_replay(board)
        self.check_acyclic(blockers)

    def check_events_replay(self, board: dict[int, dict[str, Any]]) -> None:
        history: dict[int, list[tuple[str, str | None, str]]] = {t: [] for t in board}
        for task_id, kind, from_status, to_status in self.db.conn.execute(
            "SELECT task_id, kind, from_status, to_status FROM events"
            " WHERE kind IN ('created', 'status') ORDER BY id"
        ):
            history[task_id].append((kind, from_status, to_status))
        for task_id, task in board.items():
            (kind, _, current), *changes = history[task_id]
            assert (kind, current) == ("created", Status.TODO)
            for _, from_status, to_status in changes:
                assert from_status == current, f"t_{task_id}: a status change has no event"
                assert Status(to_status) in states.ALLOWED[Status(from_status)]
                current = to_status
            assert current == task["status"]
            event(f"a task reached {task['status']}")

    def check_acyclic(self, blockers: dict[int, list[int]]) -> None:
        done: set[int] = set()
        for start in blockers:
            path: set[int] = set()
            stack: list[tuple[int, bool]] = [(start, False)]
            while stack:
                node, leaving = stack.pop()
                if leaving:
                    path.discard(node)
                    done.add(node)
                    continue
                if node in done:
                    continue
                assert node not in path, f"dependency cycle through t_{node}"
                path.add(node)
                stack.append((node, True))
                stack.extend((b, False) for b in blockers[node])


BoardMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_random_operations_keep_the_board_consistent_and_fenced = BoardMachine.TestCase
