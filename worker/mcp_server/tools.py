"""What the kanban tools do: thin handlers over `board` functions, and the one dispatch.

Each handler returns the structured result (`board.views` shapes) and a short text rendering;
`call_tool` turns every failure into an error reply whose text a model can act on. The board
modules are imported inside the handlers: the first call pays for the SQLite layer, not the
server's start-up.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from board import actors, errors, ids
from worker import env
from worker.mcp_server import arguments, identity, specs

LOG = logging.getLogger("kanban.mcp")


class Board:
    """The server's one board connection, opened on first use and closed with the server.

    Opening imports the SQLite layer, so it happens on the first tool call rather than before
    the handshake; a board that cannot be opened becomes that call's error (and the next call
    tries again) instead of a server that fails to start and takes its tools with it. Calls
    are serialized by the caller (one connection, one transaction at a time).
    """

    def __init__(self, path: str | None, *, create: bool = True) -> None:
        self.path = path
        # A worker's board was made by its dispatcher: a missing one is a wrong path, and an
        # empty board made there would only answer that the worker's run does not exist.
        self.create = create
        self._db: Any = None

    def get(self) -> Any:
        if self._db is None:
            from board import connection

            self._db = connection.connect(self.path, create=self.create)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.conn.close()
            self._db = None


Result = tuple[dict[str, Any], str]  # structured content, short text rendering


def _task_arg(ident: identity.Identity, args: Mapping[str, Any], key: str = "task_id") -> int:
    if args.get(key) is not None:
        return ids.parse(args[key])
    if ident.task_id is not None:
        return ident.task_id
    raise errors.InvalidInput(f"say which task: {key!r} is required (no task of your own)")


def _one_line(obj: Mapping[str, Any]) -> str:
    line = f"{obj['id']} [{obj['status']}] {obj['title']}"
    return line + (f" (subtask of {obj['parent']})" if obj.get("parent") else "")


def _cut(text: str | None, limit: int) -> str:
    text = text or ""
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more chars]"


def _show(board: Board, ident: identity.Identity, args: dict[str, Any]) -> Result:
    from board import views

    obj = views.show(board.get(), _task_arg(ident, args))
    for key, keep in (("events", specs.SHOW_EVENTS), ("runs", specs.SHOW_RUNS)):
        items = obj[key]
        obj[f"{key}_omitted"] = max(0, len(items) - keep)
        obj[key] = items[-keep:]
    lines = [_one_line(obj)]
    facts = [f"{k}: {', '.join(obj[k])}" for k in ("blockers", "dependents") if obj[k]]
    if obj["branch"]:
        facts.append(f"branch: {obj['branch']}")
    lines += [" · ".join(facts)] if facts else []
    for key in ("why_not_runnable", "summary", "block_reason", "failure_reason"):
        if obj[key]:
            lines.append(f"{key.replace('_', ' ')}: {obj[key]}")
    if obj["body"]:
        lines += ["", _cut(obj["body"], specs.TEXT_BODY)]
    if obj["subtasks"]:
        lines += ["", "subtasks:"]
        lines += [
            f"{'  ' * s['level']}{s['id']} [{s['status']}] {s['title']}"
            + (f": {_cut(s['summary'], 300)}" if s["summary"] else "")
            for s in obj["subtasks"]
        ]
    if obj["comments"]:
        lines += ["", f"comments ({len(obj['comments'])}):"]
        lines += [
            f"  {c['at']} {c['author']}: {_cut(c['body'], specs.TEXT_COMMENT)}"
            for c in obj["comments"]
        ]
    if obj["runs"]:
        last = obj["runs"][-1]
        lines += [
            "",
            f"last run: {last['id']} (attempt {last['attempt']}, "
            f"{last['outcome'] or 'live'}{': ' + last['reason'] if last['reason'] else ''})",
        ]
    return obj, "\n".join(lines)


def _list(board: Board, ident: identity.Identity, args: dict[str, Any]) -> Result:
    from board import tasks, views

    db = board.get()
    limit = args.get("limit", specs.LIST_DEFAULT)
    parent = ids.parse(args["parent"]) if "parent" in args else None
    found = tasks.list_tasks(db, args.get("status", ()), parent=parent, limit=limit + 1)
    more = len(found) > limit
    objects = views.task_objects(db, found[:limit])
    for obj in objects:
        if len(obj["body"]) > specs.LIST_BODY:
            obj["body"] = _cut(obj["body"], specs.LIST_BODY) + f" (kanban_show {obj['id']} has all)"
    lines = [
        _one_line(o) + (f": {_cut(o['summary'], 200)}" if o["summary"] else "") for o in objects
    ] or ["no tasks match"]
    if more:
        lines.append(f"... more tasks match; raise `limit` (at most {specs.LIST_MAX}) or filter")
    return {"tasks": objects, "more": more}, "\n".join(lines)


def _complete(board: Board, ident: identity.Identity, args: dict[str, Any]) -> Result:
    from board import views
    from worker import conflicts

    db, task_id = board.get(), _task_arg(ident, args)
    status = conflicts.complete(db, task_id, args["summary"], actor=ident.actor())
    obj = views.task_object(db, task_id)
    if status == "running":  # your own report: done once your work is committed
        text = (
            f"{obj['id']} is reported complete: when you exit, kanban commits your work to "
            "its branch and the task becomes done (or waits for its open subtasks)."
        )
    elif status == "waiting":
        text = (
            f"{obj['id']} is waiting: {obj['why_not_runnable']}. It is dispatched again with "
            "their results when they have all ended."
        )
    else:
        text = f"{obj['id']} is done."
    if ident.worker_mode and task_id == ident.task_id:
        text += " Your report is recorded; stop working now."
    return {"task": obj}, text


def _block(board: Board, ident: identity.Identity, args: dict[str, Any]) -> Result:
    from board import tasks, views

    db, task_id = board.get(), _task_arg(ident, args)
    tasks.block(db, task_id, args["reason"], actor=ident.actor())
    obj = views.task_object(db, task_id)
    text = f"{obj['id']} is blocked: {obj['block_reason']}."
    if ident.worker_mode and task_id == ident.task_id:
        text += " Stop working now; it is dispatched again once someone unblocks it."
    return {"task": obj}, text


def _comment(board: Board, ident: identity.Identity, args: dict[str, Any]) -> Result:
    from board import tasks

    task_id = _task_arg(ident, args)
    comment_id = tasks.comment(board.get(), task_id, args["body"], actor=ident.actor())
    label = ids.format(task_id)
    return {"id": comment_id, "task": label}, f"Comment added to {label}."


def _heartbeat(board: Board, ident: identity.Identity, args: dict[str, Any]) -> Result:
    from board import runs, views

    actor = ident.actor()
    if not isinstance(actor, actors.Worker):
        raise errors.InvalidInput(
            "kanban_heartbeat is for workers: this MCP server has no task of its own "
            f"({env.TASK} is not set), so there is no run to keep alive"
        )
    db = board.get()
    runs.heartbeat(db, actor, args.get("note"))
    run = runs.get(db, actor.run_id)
    result = {
        "task": ids.format(actor.task_id),
        "run": actor.run_id,
        "heartbeat_at": views.when(run.heartbeat_at),
        "lease_expires_at": views.when(run.lease_expires_at),
        "note": run.note,
    }
    return result, f"Heartbeat recorded for {result['task']} (run {actor.run_id})."


def _create(board: Board, ident: identity.Identity, args: dict[str, Any]) -> Result:
    from board import tasks, views
    from worker.runtimes import command as command_runtime

    repo = args.get("repo")
    if repo is not None:
        repo = os.path.expanduser(repo)
        if not os.path.isabs(repo) or not os.path.isdir(repo):
            raise errors.InvalidInput(f"repo must be the absolute path of a directory: {repo!r}")
        repo = os.path.realpath(repo)
    runtime, options = command_runtime.task_runtime(
        args.get("runtime"), args.get("command"), option="`command`"
    )
    given = {k: args[k] for k in ("body", "priority", "max_attempts", "timeout") if k in args}
    spec = tasks.NewTask(
        title=args["title"],
        repo=repo,
        runtime=runtime,
        runtime_options=options,
        after=[ids.parse(a) for a in args.get("after", ())],
        parent=ids.parse(args["parent"]) if "parent" in args else None,
        **given,
    )
    db = board.get()
    obj = views.task_object(db, tasks.create(db, spec, ident.actor()))
    text = f"Created {_one_line(obj)}"
    return {"task": obj}, text + (f"; {obj['why_not_runnable']}" if obj["why_not_runnable"] else "")


def _unblock(board: Board, ident: identity.Identity, args: dict[str, Any]) -> Result:
    from board import tasks, views

    db, task_id = board.get(), ids.parse(args["task_id"])
    tasks.unblock(db, task_id, ident.actor(), comment=args.get("comment"))
    obj = views.task_object(db, task_id)
    return {"task": obj}, f"{obj['id']} is {obj['status']} again."


def _link(board: Board, ident: identity.Identity, args: dict[str, Any]) -> Result:
    from board import deps, views

    db = board.get()
    blocker, blocked = ids.parse(args["blocker"]), ids.parse(args["blocked"])
    added = deps.link(db, blocker, blocked, actor=ident.actor())
    obj = views.task_object(db, blocked)
    verb = "now waits" if added else "already waited"
    return (
        {"added": added, "task": obj},
        f"{obj['id']} {verb} for {ids.format(blocker)} ({obj['id']} is {obj['status']}).",
    )


HANDLERS: dict[str, Callable[[Board, identity.Identity, dict[str, Any]], Result]] = {
    "kanban_show": _show,
    "kanban_list": _list,
    "kanban_complete": _complete,
    "kanban_block": _block,
    "kanban_comment": _comment,
    "kanban_heartbeat": _heartbeat,
    "kanban_create": _create,
    "kanban_unblock": _unblock,
    "kanban_link": _link,
}


@dataclasses.dataclass(frozen=True)
class Reply:
    ok: bool
    text: str
    structured: dict[str, Any] | None = None


def call_tool(
    board: Board,
    ident: identity.Identity,
    listed: Mapping[str, specs.ToolSpec],
    name: str,
    given: Mapping[str, Any] | None,
) -> Reply:
    """Run one tool call (synchronously: the board is). Never raises."""
    spec = listed.get(name)
    if spec is None:
        return Reply(False, f"unknown tool {name!r}; the kanban tools are: {', '.join(listed)}")
    try:
        structured, text = HANDLERS[name](board, ident, arguments.check(spec, given))
    except errors.TaskNotFound as exc:
        return Reply(False, f"task {exc.task_id} does not exist; kanban_list shows the tasks")
    except errors.KanbanError as exc:
        return Reply(False, str(exc))
    except Exception as exc:
        LOG.exception("%s failed", name)
        return Reply(
            False,
            f"{name} failed unexpectedly ({type(exc).__name__}: {exc}); "
            "the kanban MCP server's log (stderr) has the details",
        )
    return Reply(True, text, structured)
