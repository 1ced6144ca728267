"""What the web board does, through the board functions the CLI calls, with the same errors.

Each action takes the board and the request's fields (from a form: strings; from the API:
JSON values) and returns JSON-ready data; a refusal is the `errors.KanbanError` the CLI
would print. The server acts as an operator, as the CLI does outside a worker. Synchronous:
the server calls these in a worker thread.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

import sqlite_utils

from board import connection, errors, ids, records, runs, spending, tasks, views
from worker.runtimes import command as command_runtime

MAX_DIFF = 1_000_000  # bytes of a patch shown


def task_id(label: object) -> int:
    if not isinstance(label, str | int) or isinstance(label, bool):
        raise errors.InvalidInput(f"{label!r} is not a task id; task ids look like t_12")
    return ids.parse(label)


def _text(fields: Mapping[str, Any], name: str) -> str | None:
    """A text field; an empty form field is no value."""
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise errors.InvalidInput(f"{name} must be text")
    return value if value.strip() else None


def _number(fields: Mapping[str, Any], name: str, kind: type, default: Any) -> Any:
    value = fields.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    if isinstance(value, bool):
        raise errors.InvalidInput(f"{name} must be a number")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise errors.InvalidInput(f"{name}: {value!r} is not a valid {kind.__name__}") from None


def _ids(value: object) -> list[int]:
    """Task ids from a list, or from text separated by spaces or commas (``t_1 t_2``)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [part for part in re.split(r"[\s,]+", value) if part]
    if not isinstance(value, list):
        raise errors.InvalidInput("after: a list of task ids, like t_1 t_2")
    return [task_id(item) for item in value]


def _budget(fields: Mapping[str, Any]) -> records.Budget | None:
    """``--budget``'s reading: tokens ("200k"), dollars ("$5"), both, or "none"."""
    text = _text(fields, "budget")
    if text is None:
        return None
    if text.strip().lower() == "none":
        return tasks.NO_BUDGET
    return spending.parse_budget(text)


def create(db: sqlite_utils.Database, fields: Mapping[str, Any]) -> dict[str, Any]:
    """``kanban create``: a task from a title and the create form's other fields; its
    repository a checkout's path or a remote's URL, as ``--repo`` takes them."""
    from orchestrator import remotes

    title = fields.get("title")
    if not isinstance(title, str):
        raise errors.InvalidInput("a task needs a non-empty title")
    runtime = _text(fields, "runtime")
    command = fields.get("command")
    if isinstance(command, str) and not command.strip():
        command = None
    runtime, options = command_runtime.task_runtime(runtime, command, option="command")
    repo, base = _text(fields, "repo"), _text(fields, "base")
    parent = fields.get("parent")
    if isinstance(parent, str) and not parent.strip():
        parent = None
    base_ref = base_branch = None
    if repo is not None:
        # A subtask branches from its parent's branch, so only a top-level task pins a base.
        found = remotes.resolve(repo.strip(), base, pin=parent is None)
        repo, base_ref, base_branch = found.repo, found.base_ref, found.base_branch
    elif base is not None:
        raise errors.InvalidInput("--base needs --repo")
    budget = _budget(fields)
    spec = tasks.NewTask(
        title=title,
        body=_text(fields, "body") or "",
        priority=_number(fields, "priority", int, 0),
        repo=repo,
        base_ref=base_ref,
        base_branch=base_branch,
        runtime=runtime,
        runtime_options=options,
        max_attempts=_number(fields, "max_attempts", int, 3),
        timeout=_number(fields, "timeout", float, None),
        after=_ids(fields.get("after")),
        parent=task_id(parent) if parent is not None else None,
        budget=tasks.NO_BUDGET if budget is None else budget,
    )
    return views.task_object(db, tasks.create(db, spec))


def comment(db: sqlite_utils.Database, label: object, fields: Mapping[str, Any]) -> dict:
    text = fields.get("text")
    if not isinstance(text, str):
        raise errors.InvalidInput("the comment is empty")
    number = tasks.comment(db, task_id(label), text)
    return {"task": ids.format(task_id(label)), "comment": number}


def unblock(db: sqlite_utils.Database, label: object, fields: Mapping[str, Any]) -> dict:
    status = tasks.unblock(
        db, task_id(label), comment=_text(fields, "comment"), budget=_budget(fields)
    )
    return {"task": ids.format(task_id(label)), "status": str(status)}


def retry(db: sqlite_utils.Database, label: object, fields: Mapping[str, Any]) -> dict:
    status = tasks.retry(db, task_id(label), budget=_budget(fields))
    return {"task": ids.format(task_id(label)), "status": str(status)}


def cancel(db: sqlite_utils.Database, label: object, fields: Mapping[str, Any]) -> dict:
    changed = tasks.cancel(db, task_id(label))
    return {"task": ids.format(task_id(label)), "cancelled": [ids.format(t) for t in changed]}


def reopen(db: sqlite_utils.Database, label: object, fields: Mapping[str, Any]) -> dict:
    text = fields.get("comment")
    if not isinstance(text, str):
        raise errors.InvalidInput("say what to change: the comment must not be empty")
    status = tasks.reopen(db, task_id(label), text)
    return {"task": ids.format(task_id(label)), "status": str(status)}


def land(db_path: str, label: object, fields: Mapping[str, Any]) -> dict:
    """``kanban land TASK``: the merge queue for one task, on a connection of its own (it runs
    git and the repository's check, for minutes maybe)."""
    from orchestrator import config, landing

    strategy = _text(fields, "strategy") or "merge"
    if strategy not in tuple(landing.Strategy):
        raise errors.InvalidInput(f"strategy: {strategy!r}; use merge, squash or rebase")
    check = fields.get("check", True)
    if isinstance(check, str):
        check = check.lower() not in ("", "0", "false", "off", "no")
    options = landing.Options(
        strategy=landing.Strategy(strategy),
        check=bool(check),
        reopen=not bool(fields.get("no_reopen")),
        into=_text(fields, "into"),
    )
    settings = config.load()
    number = task_id(label)
    db = connection.connect(db_path, create=False)
    try:
        lines: list[str] = []
        results = landing.land(
            db, [number], options=options, worktree_root=settings.worktree_root, say=lines.append
        )
    finally:
        db.conn.close()
    return {
        "ok": all(r.ok for r in results),
        "tasks": [r.to_json() for r in results],
        "lines": lines,
    }


def diff(db: sqlite_utils.Database, label: object, *, into: str | None = None) -> dict:
    """``kanban diff TASK --patch``: its branch against its base branch as it is now."""
    from orchestrator import git, landing
    from orchestrator.cli import land as land_cli

    found = land_cli._task_with_branch(db, ids.format(task_id(label)))
    # As `kanban diff` compares it: for a remote, in this host's clone, fetched first.
    compared = landing.compared(found, into=into)
    spec = f"{compared.base}...{compared.branch}"
    stat = git.run(compared.repo, "diff", "--color=never", "--stat", spec, "--").out
    patch = git.run(compared.repo, "diff", "--color=never", spec, "--").out
    truncated = len(patch) > MAX_DIFF
    return {
        "task": found.label,
        "base": compared.base_name,
        "branch": found.branch,
        "stat": stat,
        "patch": patch[:MAX_DIFF],
        "truncated": truncated,
    }


def run_for(db: sqlite_utils.Database, label: object, run: object = None) -> records.Run | None:
    """The run whose log to show: `run` (a number), else the latest (None: never ran)."""
    number = task_id(label)
    tasks.get(db, number)  # TaskNotFound
    history = runs.for_task(db, number)
    if run not in (None, ""):
        wanted = ids.parse_run(run if isinstance(run, str | int) else str(run))
        chosen = [r for r in history if r.id == wanted]
        if not chosen:
            raise errors.InvalidInput(f"run {wanted} is not a run of {ids.format(number)}")
        return chosen[0]
    return history[-1] if history else None


def read_log(path: str | None, *, limit: int = 1_000_000) -> str:
    """The end of a run's log (its last `limit` bytes), as text."""
    if not path:
        return ""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def run_times(db: sqlite_utils.Database, task: int) -> dict[int, tuple[float, float | None]]:
    return {r.id: (r.started_at, r.ended_at) for r in runs.for_task(db, task)}


def board_notice(db: sqlite_utils.Database) -> str | None:
    return spending.daily_notice(db, time.time())
