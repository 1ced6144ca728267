"""Creating tasks and everything people and workers do to them.

Every function takes an `actor`. Operators (people, planning agents, the CLI outside a worker)
may act on any task; a `actors.Worker` is fenced (see `fencing`) and limited to its own task
and its subtasks.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import sqlite_utils

from board import (
    actors,
    deps,
    errors,
    fencing,
    ids,
    policy,
    records,
    spending,
    states,
    transitions,
)
from board.connection import Tx, rows, transaction
from board.states import Outcome, Status

RUNTIME_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
MAX_TITLE = 500  # characters
# A task's text reaches an agent on its command line, inside the prompt, and Linux refuses any
# one argument over MAX_ARG_STRLEN (131072 bytes): the limit, in UTF-8 bytes, leaves room for
# the prompt's template. Comments, reasons and summaries reach later prompts the same way.
MAX_TEXT = 100_000
MAX_ARGUMENT = 131_072
MAX_NAME = 4096  # bytes: a repository path, a ref, a batch id


NO_BUDGET = records.Budget()


@dataclasses.dataclass(frozen=True)
class NewTask:
    title: str
    body: str = ""
    priority: int = 0
    repo: str | None = None
    base_ref: str | None = None
    runtime: str | None = None  # None: the parent's runtime, else "hermes"
    runtime_options: Mapping[str, Any] | None = None
    max_attempts: int = 3
    timeout: float | None = None
    after: Sequence[int] = ()
    parent: int | None = None
    batch_id: str | None = None
    # Overrides of the repository's workspace (a batch file's `setup` and `check`), already
    # checked by `orchestrator.workspace.overrides`: commands that run outside any sandbox.
    workspace: Mapping[str, Any] | None = None
    base_branch: str | None = None  # the branch `base_ref` was taken from: where it lands
    budget: records.Budget = NO_BUDGET  # what its runs may use in all


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds that stop a runaway orchestrator agent from flooding the board."""

    max_depth: int = 3  # a subtask of a subtask of a subtask, no deeper
    max_children: int = 20  # subtasks per task
    # The runaway governor: a task that keeps being started, a worker that keeps creating.
    runs_per_hour: int = 20  # runs of one task started in any hour
    max_created_per_run: int = 50  # tasks one run's worker may create
    max_subtree: int = 200  # tasks under one top-level task, itself included
    # The board's budget per day (local time), over every run started that day.
    daily_tokens: int | None = None
    daily_usd: float | None = None


DEFAULT_RUNTIME = "hermes"
_LIMITS_KEY = "limits"


def read_limits(db: sqlite_utils.Database) -> Limits:
    """`stored_limits`, outside a transaction."""
    found = rows(db.conn, "SELECT value FROM settings WHERE key = ?", (_LIMITS_KEY,))
    return _limits(found[0]["value"] if found else None)


def stored_limits(tx: Tx) -> Limits:
    return _limits(tx.value("SELECT value FROM settings WHERE key = ?", (_LIMITS_KEY,)))


def _limits(value: str | None) -> Limits:
    if value is None:
        return Limits()
    known = {f.name for f in dataclasses.fields(Limits)}
    return Limits(**{k: v for k, v in json.loads(value).items() if k in known})


def store_limits(db: sqlite_utils.Database, limits: Limits) -> None:
    """Make `limits` the board's bounds for subtasks (the dispatcher does this at start)."""
    with transaction(db) as tx:
        tx.execute(
            "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
            " updated_at = excluded.updated_at",
            (_LIMITS_KEY, json.dumps(dataclasses.asdict(limits)), tx.now),
        )


def check_text(value: str, what: str, limit: int = MAX_TEXT) -> str:
    """Text from a person or a model, checked once for the CLI and MCP alike.

    No NUL byte (no program takes one in an argument: starting the agent would fail), valid
    UTF-8 (a lone surrogate cannot be stored), and at most `limit` UTF-8 bytes.
    """
    if not isinstance(value, str):
        raise errors.InvalidInput(f"{what} must be text")
    if "\0" in value:
        raise errors.InvalidInput(
            f"{what} contains a NUL byte (\\0), which no program takes in an argument; remove it"
        )
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise errors.InvalidInput(
            f"{what} is not valid UTF-8 text (it has a lone surrogate); fix its encoding"
        ) from None
    if size > limit:
        raise errors.InvalidInput(
            f"{what} is {size} bytes (UTF-8); the limit is {limit} bytes, because agents get it "
            f"on their command line, where one argument may be at most {MAX_ARGUMENT} bytes: "
            "shorten it, or put the details in a file in the repository and refer to that"
        )
    return value


def _plain(value: object, what: str) -> None:
    """Every string in `value` (runtime options: a command's argv, nested) passes `_text`."""
    if isinstance(value, str):
        check_text(value, what)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _plain(key, what)
            _plain(item, what)
    elif isinstance(value, list | tuple):
        for item in value:
            _plain(item, what)


def check_budget(budget: records.Budget) -> None:
    if budget.tokens is not None and not 0 < budget.tokens < 2**62:
        raise errors.InvalidInput("a budget in tokens must be a positive whole number")
    if budget.usd is not None and not 0 < budget.usd < math.inf:
        raise errors.InvalidInput("a budget in dollars must be a positive, finite amount")


def validate(spec: NewTask) -> None:
    title = check_text(spec.title, "the title").strip()
    if not title:
        raise errors.InvalidInput("a task needs a non-empty title")
    if len(title) > MAX_TITLE:
        raise errors.InvalidInput(
            f"the title is longer than {MAX_TITLE} characters; shorten it (details go in the body)"
        )
    check_text(spec.body, "the body")
    for name in ("repo", "base_ref", "base_branch", "runtime", "batch_id"):
        if getattr(spec, name) is not None:
            check_text(getattr(spec, name), f"the {name.replace('_', ' ')}", MAX_NAME)
    _plain(spec.runtime_options, "a runtime option")
    _plain(spec.workspace, "a workspace override")
    if spec.runtime is not None and not RUNTIME_NAME.match(spec.runtime):
        raise errors.InvalidInput(f"{spec.runtime!r} is not a runtime name")
    if not 1 <= spec.max_attempts <= 100:
        raise errors.InvalidInput("max attempts must be between 1 and 100")
    if spec.timeout is not None and not (0 < spec.timeout < math.inf):
        raise errors.InvalidInput("the timeout must be a positive, finite number of seconds")
    check_budget(spec.budget)
    if not -1_000_000 <= spec.priority <= 1_000_000:
        raise errors.InvalidInput("the priority must be between -1000000 and 1000000")


def insert(
    tx: Tx, spec: NewTask, actor: actors.Actor = actors.OPERATOR, *, limits: Limits | None = None
) -> int:
    """Create a task inside the caller's transaction; returns its id.

    `limits` default to the board's own (`stored_limits`), which the dispatcher keeps in step
    with its configuration, so every process that creates subtasks enforces the same bounds.
    Likewise `policy.check_new_task` decides what `actor` may create (runtime, options,
    repository, base) for every interface.
    """
    validate(spec)
    parent_id = spec.parent
    if isinstance(actor, actors.Worker):
        fencing.check(tx, actor)
        if parent_id is not None and parent_id != actor.task_id:
            fencing.check(tx, actor, parent_id)
        parent_id = actor.task_id if parent_id is None else parent_id
        for blocker in spec.after:
            fencing.check(tx, actor, blocker)
    parent = None
    limits = limits or stored_limits(tx)
    if isinstance(actor, actors.Worker):
        root = tx.value(
            "WITH RECURSIVE up(id, parent_id) AS (SELECT id, parent_id FROM tasks WHERE id = ?"
            " UNION ALL SELECT t.id, t.parent_id FROM tasks t JOIN up ON t.id = up.parent_id)"
            " SELECT id FROM up WHERE parent_id IS NULL",
            (actor.task_id,),
        )
        governed = spending.fan_out(
            tx, actor.run_id, root, limits.max_created_per_run, limits.max_subtree
        )
        if governed is not None:
            raise spending.OverBudget(governed)
    if parent_id is not None:
        parent = tx.one("SELECT * FROM tasks WHERE id = ?", (parent_id,))
        if parent is None:
            raise errors.TaskNotFound(ids.format(parent_id))
        if parent["status"] in states.ENDED:
            raise errors.InvalidInput(
                f"task {ids.format(parent_id)} is {parent['status']}; subtasks need an open parent"
            )
        if parent["depth"] + 1 > limits.max_depth:
            raise errors.LimitExceeded(
                f"subtasks may nest at most {limits.max_depth} deep; "
                f"{ids.format(parent_id)} is already at depth {parent['depth']}: do this work "
                "yourself instead of creating another level"
            )
        children = tx.value("SELECT count(*) FROM tasks WHERE parent_id = ?", (parent_id,))
        if children >= limits.max_children:
            raise errors.LimitExceeded(
                f"{ids.format(parent_id)} already has {children} subtasks, the limit is "
                f"{limits.max_children}; group the remaining work into fewer subtasks"
            )
    runtime = spec.runtime or (parent["runtime"] if parent else DEFAULT_RUNTIME)
    options = spec.runtime_options
    if options is None:
        options = (
            json.loads(parent["runtime_options"])
            if parent is not None and parent["runtime"] == runtime
            else {}
        )
    policy.check_new_task(
        tx,
        actor,
        parent=parent,
        repo=spec.repo,
        base_ref=spec.base_ref,
        runtime=runtime,
        options=options,
        workspace=spec.workspace,
    )
    for blocker in spec.after:
        if tx.value("SELECT 1 FROM tasks WHERE id = ?", (blocker,)) is None:
            raise errors.TaskNotFound(ids.format(blocker))
    cursor = tx.execute(
        "INSERT INTO tasks (title, body, status, priority, parent_id, depth, repo, base_ref,"
        " runtime, runtime_options, max_attempts, timeout, batch_id, workspace, base_branch,"
        " budget_tokens, budget_usd, created_by_run, created_at, updated_at)"
        " VALUES (?, ?, 'todo', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            spec.title.strip(),
            spec.body,
            spec.priority,
            parent_id,
            parent["depth"] + 1 if parent else 0,
            spec.repo if spec.repo is not None else (parent["repo"] if parent else None),
            spec.base_ref,
            runtime,
            json.dumps(dict(options)),
            spec.max_attempts,
            spec.timeout,
            spec.batch_id or (parent["batch_id"] if parent else None),
            json.dumps(dict(spec.workspace or {})),
            spec.base_branch if spec.base_ref is not None else None,
            spec.budget.tokens,
            spec.budget.usd,
            actor.run_id if isinstance(actor, actors.Worker) else None,
            tx.now,
            tx.now,
        ),
    )
    task_id = cursor.lastrowid
    assert task_id is not None
    data = {"parent": ids.format(parent_id)} if parent_id else None
    transitions.event(tx, task_id, "created", actor=actor, to_status=Status.TODO, data=data)
    for blocker in dict.fromkeys(spec.after):
        deps.insert_edge(tx, blocker, task_id, actor=actor)
    if not transitions.unfinished_blockers(tx, task_id):
        transitions.apply(tx, task_id, Status.READY, actor=actor, reason="no unfinished blockers")
    tx.wake = True
    return task_id


def create(
    db: sqlite_utils.Database,
    spec: NewTask,
    actor: actors.Actor = actors.OPERATOR,
    *,
    limits: Limits | None = None,
) -> int:
    """Create one task. Example: ``tasks.create(db, tasks.NewTask("Fix the login bug"))``.

    A worker that reached the fan-out governor's bound is refused, and its own task is
    blocked with the reason: a person decides whether the work really needs more tasks.
    """
    try:
        with transaction(db) as tx:
            return insert(tx, spec, actor, limits=limits)
    except spending.OverBudget as exc:
        if isinstance(actor, actors.Worker):
            governor_block(db, actor.task_id, str(exc))
        raise


def governor_block(db: sqlite_utils.Database, task_id: int, reason: str) -> None:
    """Block a running task for a governor's or a budget's `reason` (its worker is stopped)."""
    with transaction(db) as tx:
        task = _require(tx, task_id)
        if task["status"] != Status.RUNNING:
            return
        _end_live_run(tx, task, Outcome.BLOCKED, actor=actors.GOVERNOR, reason=reason)
        transitions.apply(
            tx, task_id, Status.BLOCKED, actor=actors.GOVERNOR, block_reason=reason, reason=reason
        )


def get(db: sqlite_utils.Database, task_id: int) -> records.Task:
    found = rows(db.conn, "SELECT * FROM tasks WHERE id = ?", (task_id,))
    if not found:
        raise errors.TaskNotFound(ids.format(task_id))
    return records.Task.from_row(found[0])


def _require(tx: Tx, task_id: int) -> dict[str, Any]:
    row = tx.one("SELECT * FROM tasks WHERE id = ?", (task_id,))
    if row is None:
        raise errors.TaskNotFound(ids.format(task_id))
    return row


def _end_live_run(
    tx: Tx, task: dict[str, Any], outcome: Outcome, *, actor: actors.Actor, reason: str
) -> None:
    """An operator ends a running task's run; its dispatcher then stops the worker."""
    run_id = task["current_run_id"]
    if run_id is None:
        return
    tx.execute(
        "UPDATE runs SET outcome = ?, settled_by = ?, reason = ?, reported_at = ?"
        " WHERE id = ? AND outcome IS NULL",
        (outcome, actor.label, reason, tx.now, run_id),
    )


def _report(tx: Tx, worker: actors.Worker, outcome: Outcome, **fields: Any) -> None:
    assignments = ", ".join(f"{k} = ?" for k in fields)
    tx.execute(
        f"UPDATE runs SET outcome = ?, settled_by = 'worker', reported_at = ?, {assignments}"
        " WHERE id = ?",
        (outcome, tx.now, *fields.values(), worker.run_id),
    )


def finish_completed(
    tx: Tx, task_id: int, summary: str, *, actor: actors.Actor, run_id: int | None = None
) -> Status:
    """A run completed its task: `done`, or `waiting` while subtasks are open."""
    target = Status.WAITING if transitions.open_children(tx, task_id) else Status.DONE
    transitions.apply(
        tx,
        task_id,
        target,
        actor=actor,
        run_id=run_id,
        summary=summary,
        resume=0,  # a resumed parent has integrated its subtasks: the resume is over
        reason="completed; waiting for subtasks" if target is Status.WAITING else "completed",
    )
    return target


def complete(
    db: sqlite_utils.Database, task_id: int, summary: str, *, actor: actors.Actor = actors.OPERATOR
) -> Status:
    """Report a task complete. Returns the new status (`done`, or `waiting` for subtasks).

    A worker's report is recorded on its run and the task stays `running`: it becomes done
    when the run ends and its dispatcher has committed the work to the branch (`runs.settle`),
    so a task is never done without its work. An operator's completion takes effect at once.
    """
    summary = check_text(summary, "the summary").strip()
    if not summary:
        raise errors.InvalidInput("say what was done: the summary must not be empty")
    with transaction(db) as tx:
        if isinstance(actor, actors.Worker):
            fencing.check(tx, actor, task_id, own_only=True)
            _report(tx, actor, Outcome.COMPLETED, summary=summary)
            transitions.event(
                tx,
                task_id,
                "reported",
                actor=actor,
                run_id=actor.run_id,
                data={"outcome": "completed"},
            )
            tx.wake = True  # its dispatcher lets the worker exit, then commits and settles
            return Status.RUNNING
        task = _require(tx, task_id)
        if task["status"] == Status.RUNNING:
            _end_live_run(
                tx, task, Outcome.CANCELLED, actor=actor, reason="completed by an operator"
            )
            return finish_completed(
                tx, task_id, summary, actor=actor, run_id=task["current_run_id"]
            )
        transitions.apply(
            tx,
            task_id,
            Status.DONE,
            actor=actor,
            summary=summary,
            hint="only open tasks without a live run can be completed",
            reason="completed by an operator",
        )
        return Status.DONE


def block(
    db: sqlite_utils.Database, task_id: int, reason: str, *, actor: actors.Actor = actors.OPERATOR
) -> None:
    """Block a task: it needs a person or another task; `unblock` returns it to ready."""
    reason = check_text(reason, "the reason").strip()
    if not reason:
        raise errors.InvalidInput("say why the task is blocked: the reason must not be empty")
    with transaction(db) as tx:
        if isinstance(actor, actors.Worker):
            fencing.check(tx, actor, task_id, own_only=True)
            _report(tx, actor, Outcome.BLOCKED, reason=reason)
            transitions.apply(
                tx,
                task_id,
                Status.BLOCKED,
                actor=actor,
                run_id=actor.run_id,
                block_reason=reason,
                reason=reason,
            )
            return
        task = _require(tx, task_id)
        if task["status"] == Status.RUNNING:
            _end_live_run(
                tx, task, Outcome.BLOCKED, actor=actor, reason=f"blocked by an operator: {reason}"
            )
        transitions.apply(
            tx,
            task_id,
            Status.BLOCKED,
            actor=actor,
            block_reason=reason,
            reason=reason,
            hint="only todo, ready or running tasks can be blocked",
        )


def unblock(
    db: sqlite_utils.Database,
    task_id: int,
    actor: actors.Actor = actors.OPERATOR,
    *,
    comment: str | None = None,
    budget: records.Budget | None = None,
) -> Status:
    """Return a blocked task to `ready` (or `todo` while a blocker is unfinished).

    `budget` replaces its budget (an unbounded one removes it); a task whose budget is still
    spent is refused, as is a worker changing a budget.
    """
    with transaction(db) as tx:
        if isinstance(actor, actors.Worker):
            fencing.check(tx, actor, task_id)
            if budget is not None:
                raise errors.PolicyError("a worker cannot change a budget; ask a person to")
        _require(tx, task_id)
        _rebudget(tx, task_id, budget, actor=actor)
        if comment:
            add_comment(tx, task_id, comment, actor=actor)
        target = Status.TODO if transitions.unfinished_blockers(tx, task_id) else Status.READY
        transitions.apply(
            tx,
            task_id,
            target,
            actor=actor,
            expect=Status.BLOCKED,
            block_reason=None,
            attempts=0,
            next_attempt_at=None,
            reason="unblocked",
            hint="only blocked tasks can be unblocked",
        )
        return target


def set_budget(
    db: sqlite_utils.Database,
    task_id: int,
    budget: records.Budget,
    actor: actors.Actor = actors.OPERATOR,
) -> None:
    """Give a task a new budget (an unbounded one removes it), whatever its status: the way to
    raise the budget of a parent whose subtasks spent it. People only."""
    if isinstance(actor, actors.Worker):
        raise errors.PolicyError("a worker cannot change a budget; ask a person to")
    with transaction(db) as tx:
        _require(tx, task_id)
        _rebudget(tx, task_id, budget, actor=actor, refuse_spent=False)
        tx.wake = True  # a task held back by it may start now


def _rebudget(
    tx: Tx,
    task_id: int,
    budget: records.Budget | None,
    *,
    actor: actors.Actor,
    refuse_spent: bool = True,
) -> None:
    """Set a new budget (None: keep it); with `refuse_spent`, refuse to let a task whose
    budget (or an ancestor's, or its batch's) is spent go on."""
    if budget is not None:
        check_budget(budget)
        tx.execute(
            "UPDATE tasks SET budget_tokens = ?, budget_usd = ? WHERE id = ?",
            (budget.tokens, budget.usd, task_id),
        )
        transitions.event(
            tx,
            task_id,
            "budget",
            actor=actor,
            data={"tokens": budget.tokens, "usd": budget.usd},
        )
    if not refuse_spent:
        return
    row = tx.one("SELECT * FROM tasks WHERE id = ?", (task_id,))
    assert row is not None
    spent = spending.over_budget(tx, row)
    if spent is not None:
        raise spending.OverBudget(f"{ids.format(task_id)} would stop again at once: {spent}")


def cancel(
    db: sqlite_utils.Database,
    task_id: int,
    actor: actors.Actor = actors.OPERATOR,
    *,
    reason: str = "cancelled by an operator",
) -> list[int]:
    """Cancel a task and its open subtasks; their workers are stopped. Returns what changed."""
    with transaction(db) as tx:
        if isinstance(actor, actors.Worker):
            fencing.check(tx, actor, task_id)
        task = _require(tx, task_id)
        if task["status"] in states.ENDED:
            raise errors.InvalidTransition(
                ids.format(task_id), task["status"], Status.CANCELLED, hint="it has already ended"
            )
        subtree = tx.all(
            "WITH RECURSIVE sub(id) AS (SELECT ?"
            " UNION ALL SELECT t.id FROM tasks t JOIN sub ON t.parent_id = sub.id)"
            f" SELECT t.* FROM tasks t JOIN sub ON t.id = sub.id"
            # Parents first: a waiting parent cancelled before its subtasks is not woken up
            # (resumed) by their ending.
            f" WHERE t.status IN {states.sql_list(states.OPEN)} ORDER BY t.depth, t.id",
            (task_id,),
        )
        for row in subtree:
            if row["status"] == Status.RUNNING:
                _end_live_run(tx, row, Outcome.CANCELLED, actor=actor, reason=reason)
            transitions.apply(
                tx, row["id"], Status.CANCELLED, actor=actor, failure_reason=reason, reason=reason
            )
        return [row["id"] for row in subtree]


def retry(
    db: sqlite_utils.Database,
    task_id: int,
    actor: actors.Actor = actors.OPERATOR,
    *,
    budget: records.Budget | None = None,
) -> Status:
    """Give a failed, cancelled or blocked task a fresh set of attempts (and maybe a new
    `budget`: see `unblock`)."""
    with transaction(db) as tx:
        if isinstance(actor, actors.Worker):
            fencing.check(tx, actor, task_id)
            if budget is not None:
                raise errors.PolicyError("a worker cannot change a budget; ask a person to")
        _require(tx, task_id)
        _rebudget(tx, task_id, budget, actor=actor)
        target = Status.TODO if transitions.unfinished_blockers(tx, task_id) else Status.READY
        transitions.apply(
            tx,
            task_id,
            target,
            actor=actor,
            expect=frozenset({Status.FAILED, Status.CANCELLED, Status.BLOCKED}),
            attempts=0,
            next_attempt_at=None,
            failure_reason=None,
            block_reason=None,
            reason="retried",
            hint="only failed, cancelled or blocked tasks can be retried",
        )
        return target


def reopen(
    db: sqlite_utils.Database,
    task_id: int,
    comment: str,
    *,
    actor: actors.Actor = actors.OPERATOR,
    kind: str = "reopened",
    catch_up: str | None = None,
) -> Status:
    """Send a done task back to its agent, with `comment` (a review, a failed landing's
    conflict or check output) for its next prompt, on the same branch and worktree.

    It gets a fresh set of attempts. Dependents that have not started wait for it again (they
    would start without what it is about to change); a landed task is not reopened: its work
    is in its base branch, so new work is a new task. `catch_up`: a commit of its base
    branch to merge into its branch at its next start (a landing conflicted with it).
    """
    comment = check_text(comment, "the comment").strip()
    if not comment:
        raise errors.InvalidInput("say what to change: the comment must not be empty")
    with transaction(db) as tx:
        if isinstance(actor, actors.Worker):
            raise errors.NotForWorkers(
                "reopening a task",
                ids.format(actor.task_id),
                "comment on it instead (kanban_comment), or create a subtask for the change",
            )
        task = _require(tx, task_id)
        if task["landed_sha"]:
            raise errors.InvalidInput(
                f"{ids.format(task_id)} has landed (in {task['landed_sha'][:12]}): create a new "
                "task for further changes"
            )
        add_comment(tx, task_id, comment, actor=actor)
        if catch_up is not None:
            tx.execute("UPDATE tasks SET catch_up = ? WHERE id = ?", (catch_up, task_id))
        target = Status.TODO if transitions.unfinished_blockers(tx, task_id) else Status.READY
        transitions.apply(
            tx,
            task_id,
            target,
            actor=actor,
            expect=Status.DONE,
            attempts=0,
            next_attempt_at=None,
            reason=kind,
            hint="only done tasks are reopened; use `kanban retry` for failed or blocked ones",
        )
        for row in tx.all(
            "SELECT t.id FROM deps d JOIN tasks t ON t.id = d.blocked_id"
            " WHERE d.blocker_id = ? AND t.status = 'ready'",
            (task_id,),
        ):
            transitions.apply(
                tx,
                row["id"],
                Status.TODO,
                actor=actor,
                reason=f"its blocker {ids.format(task_id)} was reopened",
            )
        return target


def set_conflicts(db: sqlite_utils.Database, task_id: int, files: Sequence[str]) -> None:
    """Record the files a merge kanban made left with conflict markers (empty: none left)."""
    with transaction(db) as tx:
        _require(tx, task_id)
        tx.execute(
            "UPDATE tasks SET conflicts = ?, updated_at = ? WHERE id = ?",
            (json.dumps(sorted(set(files))), tx.now, task_id),
        )


def caught_up(db: sqlite_utils.Database, task_id: int, sha: str) -> None:
    """Its base branch's commit `sha` is merged into its branch: forget the catch-up."""
    with transaction(db) as tx:
        tx.execute("UPDATE tasks SET catch_up = NULL WHERE id = ? AND catch_up = ?", (task_id, sha))


def record_landed(
    db: sqlite_utils.Database,
    task_id: int,
    *,
    sha: str | None,
    source: str | None = None,
    pr_url: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """A done task's work reached its base branch (`sha`), or a pull request (`pr_url`)."""
    with transaction(db) as tx:
        task = _require(tx, task_id)
        if task["status"] != Status.DONE:
            raise errors.InvalidInput(f"{ids.format(task_id)} is {task['status']}, not done")
        tx.execute(
            "UPDATE tasks SET landed_sha = coalesce(?, landed_sha),"
            " landed_at = coalesce(?, landed_at),"
            " landed_from = coalesce(?, landed_from),"
            " pr_url = coalesce(?, pr_url), updated_at = ? WHERE id = ?",
            (sha, tx.now if sha is not None else None, source, pr_url, tx.now, task_id),
        )
        kind = "landed" if sha else "pull_request"
        transitions.event(
            tx,
            task_id,
            kind,
            actor=actors.OPERATOR,
            data={"sha": sha, "pr": pr_url, **(data or {})},
        )
        tx.wake = True


def add_comment(tx: Tx, task_id: int, body: str, *, actor: actors.Actor) -> int:
    body = check_text(body, "the comment").strip()
    if not body:
        raise errors.InvalidInput("the comment is empty")
    run_id = actor.run_id if isinstance(actor, actors.Worker) else None
    cursor = tx.execute(
        "INSERT INTO comments (task_id, run_id, author, body, at) VALUES (?, ?, ?, ?, ?)",
        (task_id, run_id, actor.label, body, tx.now),
    )
    return cursor.lastrowid or 0


def comment(
    db: sqlite_utils.Database, task_id: int, body: str, *, actor: actors.Actor = actors.OPERATOR
) -> int:
    """Add a comment (a note, a question's answer, progress) to a task."""
    with transaction(db) as tx:
        if isinstance(actor, actors.Worker):
            fencing.check(tx, actor, task_id)
        _require(tx, task_id)
        return add_comment(tx, task_id, body, actor=actor)


def list_tasks(
    db: sqlite_utils.Database,
    statuses: Sequence[str] = (),
    *,
    parent: int | None = None,
    batch_id: str | None = None,
    limit: int | None = None,
) -> list[records.Task]:
    """Tasks in board order (priority, then age), optionally filtered."""
    where: list[str] = []
    params: list[object] = []
    for status in statuses:
        if status not in states.Status.__members__.values():
            raise errors.InvalidInput(
                f"unknown status {status!r}; use one of: {', '.join(states.Status)}"
            )
    if statuses:
        where.append(f"status IN ({', '.join('?' * len(statuses))})")
        params.extend(statuses)
    if parent is not None:
        where.append("parent_id = ?")
        params.append(parent)
    if batch_id is not None:
        where.append("batch_id = ?")
        params.append(batch_id)
    sql = "SELECT * FROM tasks"
    if set(statuses) == {Status.READY} and parent is None and batch_id is None:
        # The ready queue is already in board order in its partial index: walk it rather
        # than sort every ready row (without statistics SQLite prefers tasks_status + sort).
        sql += " INDEXED BY tasks_ready"
        where, params = ["status = 'ready'"], []
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY priority DESC, id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [records.Task.from_row(row) for row in rows(db.conn, sql, params)]


def set_placement(
    db: sqlite_utils.Database,
    task_id: int,
    *,
    branch: str | None,
    worktree: str | None,
    base_ref: str | None = None,
) -> None:
    """Record where the dispatcher put a task's work (its branch and worktree)."""
    with transaction(db) as tx:
        tx.execute(
            "UPDATE tasks SET branch = ?, worktree = ?, base_ref = coalesce(base_ref, ?),"
            " updated_at = ? WHERE id = ?",
            (branch, worktree, base_ref, tx.now, task_id),
        )


def record(
    db: sqlite_utils.Database,
    task_id: int,
    kind: str,
    *,
    data: dict[str, Any],
    actor: actors.Actor = actors.DISPATCHER,
) -> None:
    """Append an informational event (a merge, a commit) to a task's history."""
    with transaction(db) as tx:
        _require(tx, task_id)
        transitions.event(tx, task_id, kind, actor=actor, data=data)
