"""The kanban MCP server: the board's tools for coding agents, over stdio.

Run as ``python -m worker.mcp_server [--db PATH]`` (what Codex starts, with a scrubbed
environment) or ``kanban mcp``. Two modes, chosen by the environment at start-up:

- **worker mode** (``HERMES_KANBAN_TASK`` set): the server speaks for one run of one task.
  Every write goes through the board as `actors.Worker`, so the board fences it by run id and
  token and limits it to the task and its subtasks; ``task_id`` defaults to the worker's task.
  If the run id or token did not reach us (Codex passes MCP servers only whitelisted
  variables), the server still starts and answers every write with what to fix.
- **orchestrator mode** (no ``HERMES_KANBAN_TASK``): an operator with the whole board.

The tools are thin adapters over `board` functions and return `board.views` shapes. Every
expected failure becomes a tool error result whose text a model can act on; nothing but
protocol ever reaches stdout.

Start-up is what a worker's first model request waits for, so this module imports only cheap
things at the top: the MCP SDK when serving starts, and the board's SQLite layer
(sqlite_utils) on the first tool call, in the thread that runs board calls. See
bench/mcp_startup.py for the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from board import actors, errors, ids
from worker import env, runtimes

LOG = logging.getLogger("kanban.mcp")

SERVER_NAME = "kanban"
SHOW_EVENTS = 20  # kanban_show returns the most recent events and runs, not the whole history
SHOW_RUNS = 10
LIST_DEFAULT = 50
LIST_MAX = 200
LIST_BODY = 500  # kanban_list cuts task bodies to this many characters
TEXT_BODY = 4000  # the text rendering of kanban_show cuts the body and each comment
TEXT_COMMENT = 2000
STATUSES = ("todo", "ready", "running", "waiting", "blocked", "done", "failed", "cancelled")


class WorkerEnvironmentError(errors.KanbanError):
    """Worker mode without the run's identity: writes cannot be fenced, so none are made."""


# --- who is asking --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Identity:
    """The mode and, in worker mode, the run the server speaks for."""

    worker_mode: bool
    task_id: int | None = None  # the worker's own task
    worker: actors.Worker | None = None  # None in orchestrator mode or when misconfigured
    problem: str | None = None  # why a worker-mode server refuses every write

    @property
    def task_label(self) -> str | None:
        return None if self.task_id is None else ids.format(self.task_id)

    def actor(self) -> actors.Actor:
        if not self.worker_mode:
            return actors.OPERATOR
        if self.worker is None:
            raise WorkerEnvironmentError(self.problem or "this worker's identity is unknown")
        return self.worker


def identity_from_env(environ: Mapping[str, str], *, db_given: bool = False) -> Identity:
    raw_task = environ.get(env.TASK, "").strip()
    if not raw_task:
        return Identity(worker_mode=False)
    missing = [name for name in (env.RUN_ID, env.TOKEN) if not environ.get(name, "").strip()]
    if not db_given and not environ.get(env.DB, "").strip():
        missing.append(env.DB)
    try:
        task_id: int | None = ids.parse(raw_task)
    except errors.InvalidInput:
        task_id = None
    problems = []
    if task_id is None:
        problems.append(f"{env.TASK}={raw_task!r} is not a task id (task ids look like t_12)")
    if missing:
        problems.append(f"{', '.join(missing)} did not reach this MCP server")
    run_raw = environ.get(env.RUN_ID, "").strip()
    if run_raw and not run_raw.isdigit():
        problems.append(f"{env.RUN_ID}={run_raw!r} is not a run number")
    if problems:
        label = ids.format(task_id) if task_id is not None else raw_task
        problem = (
            f"this kanban MCP server runs for task {label} but {'; '.join(problems)}. "
            "Codex passes an MCP server only the environment variables its config whitelists: "
            "run `kanban setup codex` so the [mcp_servers.kanban] table lists "
            f"env_vars = [{', '.join(repr(v) for v in env.ALL)}]. Until then no kanban tool "
            "can record anything for this task; reading the board still works. Tell the "
            "user the kanban MCP configuration is incomplete."
        )
        return Identity(worker_mode=True, task_id=task_id, problem=problem)
    worker = actors.Worker(task_id, int(run_raw), environ[env.TOKEN].strip())  # type: ignore[arg-type]
    return Identity(worker_mode=True, task_id=task_id, worker=worker)


# --- tool definitions -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ToolSpec:
    name: str
    title: str
    description: str
    properties: dict[str, dict[str, Any]]
    required: tuple[str, ...] = ()
    read_only: bool = False
    idempotent: bool = False

    def input_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": self.properties,
            "required": list(self.required),
            "additionalProperties": False,
        }


def _prop(kind: str, description: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "description": description, **extra}


def _task_prop(what: str) -> dict[str, Any]:
    return _prop("string", f"{what}; task ids look like t_12.")


def _list_prop(description: str, **items: Any) -> dict[str, Any]:
    return _prop("array", description, items={"type": "string", **items})


def tool_specs(ident: Identity) -> list[ToolSpec]:
    """The nine tools, described for the mode the server runs in."""
    own = ident.task_label if ident.worker_mode else None
    default = f"Defaults to your own task {own}" if own else "Required"
    optional_task = () if ident.worker_mode else ("task_id",)
    mine = f"your task {own}" if own else "your task"
    # One set of arguments in both modes: what a worker may create is the board's policy
    # (board.policy), whose refusals say what to do instead; the descriptions only warn.
    create_props: dict[str, dict[str, Any]] = {
        "title": _prop("string", "One line saying what to do."),
        "body": _prop(
            "string",
            "Everything the worker needs to know: the goal, the files "
            "involved, how to check the result. The worker sees only this.",
        ),
        "after": _list_prop("Tasks that must be done before this one starts (ids like t_12)."),
        "priority": _prop("integer", "Higher runs first. Default 0."),
        "runtime": _prop(
            "string",
            "Which agent runs it (`command`: the program in `command`). Default: the parent's "
            "runtime, else hermes."
            + (
                " A subtask may not run with more privilege than your own task (only a "
                "`command` task may create `command` subtasks): leave it out to use yours."
                if ident.worker_mode
                else ""
            ),
            enum=list(runtimes.NAMES),
        ),
        "max_attempts": _prop(
            "integer",
            "How many times it may be tried, 1 to 100. Default 3.",
            minimum=1,
            maximum=100,
        ),
        "timeout": _prop(
            "number",
            "Wall-clock limit of one attempt, in seconds (more than 0).",
            exclusiveMinimum=0,
        ),
    }
    create_props["repo"] = _prop(
        "string",
        "Absolute path of the git repository to work in. Default: the parent's repository"
        + (
            " (a subtask must work in its parent's repository: leave it out)."
            if ident.worker_mode
            else "."
        ),
    )
    create_props["parent"] = _task_prop(
        "Make the new task a subtask of this task"
        + (f". Default: your task {own}; it may be one of your subtasks" if own else "")
    )
    create_props["command"] = _list_prop(
        "Program and arguments for the `command` runtime"
        + (" (only a `command` task may create one)." if ident.worker_mode else ".")
    )
    if ident.worker_mode:
        create_description = (
            f"Create a subtask of {mine}. Use it to split large work into independent parts "
            "that other workers can do in parallel, each in its own worktree branched from "
            "yours. Subtasks start as soon as their `after` tasks are done; they do not wait "
            "for you. When you call kanban_complete while subtasks are still open, your task "
            "waits for them and is then started again with their summaries and their branches "
            "merged into your worktree, so you can integrate them. A subtask works in your "
            "repository and never runs with more privilege than your task. Returns the new "
            "task object (id, status, ...)."
        )
    else:
        create_description = (
            "Create a task on the board. It is dispatched to a coding agent as soon as the "
            "tasks in `after` are done. Returns the new task object (id, status, ...)."
        )
    return [
        ToolSpec(
            "kanban_show",
            "Show a task",
            "Show one task in full: title, body, status, summary, blockers, subtasks with their "
            f"outcomes, all comments, its runs and its {SHOW_EVENTS} most recent events. Use it to "
            "re-read your instructions, check on subtasks, or read another task's results. "
            "Read-only.",
            {"task_id": _task_prop(f"The task to show. {default}")},
            optional_task,
            read_only=True,
            idempotent=True,
        ),
        ToolSpec(
            "kanban_list",
            "List tasks",
            "List tasks on the board, highest priority first, as task objects (bodies cut to "
            f"{LIST_BODY} characters; kanban_show has all of it). Filter by status and/or parent "
            f"(e.g. parent={own or 't_3'} lists that task's subtasks). Returns {{tasks, more}}; "
            "`more` is true when the limit cut the list. Read-only.",
            {
                "status": _list_prop("Only tasks in these statuses.", enum=list(STATUSES)),
                "parent": _task_prop("Only the direct subtasks of this task"),
                "limit": _prop(
                    "integer",
                    f"At most this many tasks, 1 to {LIST_MAX}. Default {LIST_DEFAULT}.",
                    minimum=1,
                    maximum=LIST_MAX,
                ),
            },
            read_only=True,
            idempotent=True,
        ),
        ToolSpec(
            "kanban_complete",
            "Complete a task",
            f"Report {mine} done, with a summary of what you did (what changed, where, how it "
            "was checked): the summary is what people and the parent task read. Call it once, "
            "as your last action, then stop. If subtasks are still open the task goes to "
            "`waiting` and is resumed when they end. Returns the task object with its new "
            "status.",
            {
                "summary": _prop("string", "What was done, for the record."),
                "task_id": _task_prop(f"The task to complete. {default}"),
            },
            ("summary", *optional_task),
        ),
        ToolSpec(
            "kanban_block",
            "Block a task",
            f"Report that {mine} cannot go on without a person or another task: a missing "
            "credential, an unclear requirement, a decision. Say exactly what is needed. Then "
            "stop; someone unblocks it and it is dispatched again. Returns the task object.",
            {
                "reason": _prop("string", "What is needed, and from whom."),
                "task_id": _task_prop(f"The task to block. {default}"),
            },
            ("reason", *optional_task),
        ),
        ToolSpec(
            "kanban_comment",
            "Comment on a task",
            "Add a comment to a task: progress, a finding, an answer for a subtask. Comments "
            "are shown with the task (kanban_show) and kept with it. Returns the comment's id.",
            {
                "body": _prop("string", "The comment."),
                "task_id": _task_prop(f"The task to comment on. {default}"),
            },
            ("body", *optional_task),
        ),
        ToolSpec(
            "kanban_heartbeat",
            "Report progress",
            "Tell the board you are alive, optionally with what you are doing now. Workers "
            "only. Call it every few minutes during long work (tests, builds): a worker that "
            "is silent for too long is considered stalled and stopped. Returns the run and "
            "when its lease ends.",
            {"note": _prop("string", "What you are doing, in a few words.")},
            idempotent=True,
        ),
        ToolSpec("kanban_create", "Create a task", create_description, create_props, ("title",)),
        ToolSpec(
            "kanban_unblock",
            "Unblock a task",
            "Return a blocked task to the queue (ready, or todo while a task in its `after` list "
            "is unfinished), optionally with a comment that answers what it was waiting for. "
            + ("Only your own subtasks. " if ident.worker_mode else "")
            + "Returns the task object.",
            {
                "task_id": _task_prop("The blocked task"),
                "comment": _prop("string", "The answer or decision it needed."),
            },
            ("task_id",),
        ),
        ToolSpec(
            "kanban_link",
            "Add a dependency",
            "Make `blocked` wait until `blocker` is done. Refused if it would create a cycle. "
            + ("Both must be your own subtasks. " if ident.worker_mode else "")
            + "Returns {added, task} with the blocked task object; `added` is false when the "
            "link already existed.",
            {
                "blocker": _task_prop("The task that must be done first"),
                "blocked": _task_prop("The task that waits"),
            },
            ("blocker", "blocked"),
            idempotent=True,
        ),
    ]


# --- arguments ------------------------------------------------------------------------------


def check_arguments(spec: ToolSpec, arguments: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate `arguments` against `spec`'s schema, with messages a model can act on.

    ``null`` counts as absent; a single string is accepted where a list of strings is expected.
    """
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, Mapping):
        raise errors.InvalidInput(f"{spec.name} takes an object of named arguments")
    args = {k: v for k, v in arguments.items() if v is not None}
    names = ", ".join(spec.properties) or "none"
    for key in args:
        if key not in spec.properties:
            raise errors.InvalidInput(
                f"{spec.name} has no argument {key!r}; its arguments: {names}"
            )
    for key in spec.required:
        if key not in args:
            raise errors.InvalidInput(f"{spec.name} needs the argument {key!r}")
    for key, value in args.items():
        args[key] = _check_value(spec.name, key, spec.properties[key], value, key in TASK_ARGS)
    return args


TASK_ARGS = frozenset({"task_id", "parent", "blocker", "blocked", "after"})


def _check_value(
    tool: str, key: str, schema: Mapping[str, Any], value: Any, task_id: bool = False
) -> Any:
    kind = schema["type"]
    where = f"{tool}: {key!r}"
    if kind == "string":
        if task_id and isinstance(value, int) and not isinstance(value, bool):
            return value  # a bare task number; ids.parse accepts it
        if not isinstance(value, str):
            raise errors.InvalidInput(f"{where} must be a string, not {type(value).__name__}")
        if "enum" in schema and value not in schema["enum"]:
            raise errors.InvalidInput(
                f"{where} must be one of: {', '.join(schema['enum'])} (got {value!r})"
            )
        return value
    if kind == "integer":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise errors.InvalidInput(f"{where} must be a whole number, not {value!r}")
        low, high = schema.get("minimum"), schema.get("maximum")
        if (low is not None and value < low) or (high is not None and value > high):
            raise errors.InvalidInput(f"{where} must be between {low} and {high} (got {value})")
        return value
    if kind == "number":
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise errors.InvalidInput(f"{where} must be a number, not {value!r}")
        if "exclusiveMinimum" in schema and not value > schema["exclusiveMinimum"]:
            raise errors.InvalidInput(f"{where} must be greater than {schema['exclusiveMinimum']}")
        return value
    if kind == "array":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise errors.InvalidInput(f'{where} must be a list of strings, e.g. ["t_12"]')
        return [
            _check_value(tool, f"{key}[{i}]", schema["items"], v, task_id)
            for i, v in enumerate(value)
        ]
    raise AssertionError(f"unsupported schema type {kind}")  # pragma: no cover - our own schemas


# --- the board, opened once per server ------------------------------------------------------


class Board:
    """The server's one board connection, opened on first use and closed with the server.

    Opening imports the SQLite layer, so it happens on the first tool call rather than before
    the handshake; a board that cannot be opened becomes that call's error (and the next call
    tries again) instead of a server that fails to start and takes its tools with it. Calls
    are serialized by the caller (one connection, one transaction at a time).
    """

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._db: Any = None

    def get(self) -> Any:
        if self._db is None:
            from board import connection

            self._db = connection.connect(self.path)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.conn.close()
            self._db = None


# --- the tools ------------------------------------------------------------------------------

Result = tuple[dict[str, Any], str]  # structured content, short text rendering


def _task_arg(ident: Identity, args: Mapping[str, Any], key: str = "task_id") -> int:
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


def _show(board: Board, ident: Identity, args: dict[str, Any]) -> Result:
    from board import views

    obj = views.show(board.get(), _task_arg(ident, args))
    for key, keep in (("events", SHOW_EVENTS), ("runs", SHOW_RUNS)):
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
        lines += ["", _cut(obj["body"], TEXT_BODY)]
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
            f"  {c['at']} {c['author']}: {_cut(c['body'], TEXT_COMMENT)}" for c in obj["comments"]
        ]
    if obj["runs"]:
        last = obj["runs"][-1]
        lines += [
            "",
            f"last run: {last['id']} (attempt {last['attempt']}, "
            f"{last['outcome'] or 'live'}{': ' + last['reason'] if last['reason'] else ''})",
        ]
    return obj, "\n".join(lines)


def _list(board: Board, ident: Identity, args: dict[str, Any]) -> Result:
    from board import tasks, views

    db = board.get()
    limit = args.get("limit", LIST_DEFAULT)
    parent = ids.parse(args["parent"]) if "parent" in args else None
    found = tasks.list_tasks(db, args.get("status", ()), parent=parent, limit=limit + 1)
    more = len(found) > limit
    objects = views.task_objects(db, found[:limit])
    for obj in objects:
        if len(obj["body"]) > LIST_BODY:
            obj["body"] = _cut(obj["body"], LIST_BODY) + f" (kanban_show {obj['id']} has all)"
    lines = [
        _one_line(o) + (f": {_cut(o['summary'], 200)}" if o["summary"] else "") for o in objects
    ] or ["no tasks match"]
    if more:
        lines.append(f"... more tasks match; raise `limit` (at most {LIST_MAX}) or filter")
    return {"tasks": objects, "more": more}, "\n".join(lines)


def _complete(board: Board, ident: Identity, args: dict[str, Any]) -> Result:
    from board import tasks, views

    db, task_id = board.get(), _task_arg(ident, args)
    status = tasks.complete(db, task_id, args["summary"], ident.actor())
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


def _block(board: Board, ident: Identity, args: dict[str, Any]) -> Result:
    from board import tasks, views

    db, task_id = board.get(), _task_arg(ident, args)
    tasks.block(db, task_id, args["reason"], ident.actor())
    obj = views.task_object(db, task_id)
    text = f"{obj['id']} is blocked: {obj['block_reason']}."
    if ident.worker_mode and task_id == ident.task_id:
        text += " Stop working now; it is dispatched again once someone unblocks it."
    return {"task": obj}, text


def _comment(board: Board, ident: Identity, args: dict[str, Any]) -> Result:
    from board import tasks

    task_id = _task_arg(ident, args)
    comment_id = tasks.comment(board.get(), task_id, args["body"], ident.actor())
    label = ids.format(task_id)
    return {"id": comment_id, "task": label}, f"Comment added to {label}."


def _heartbeat(board: Board, ident: Identity, args: dict[str, Any]) -> Result:
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
        "heartbeat_at": views.when(run["heartbeat_at"]),
        "lease_expires_at": views.when(run["lease_expires_at"]),
        "note": run["note"],
    }
    return result, f"Heartbeat recorded for {result['task']} (run {actor.run_id})."


def _create(board: Board, ident: Identity, args: dict[str, Any]) -> Result:
    from board import tasks, views

    repo = args.get("repo")
    if repo is not None:
        repo = os.path.expanduser(repo)
        if not os.path.isabs(repo) or not os.path.isdir(repo):
            raise errors.InvalidInput(f"repo must be the absolute path of a directory: {repo!r}")
        repo = os.path.realpath(repo)
    runtime, options = args.get("runtime"), None
    if "command" in args:
        if runtime not in (None, "command") or not args["command"]:
            raise errors.InvalidInput("`command` is a non-empty argv list for the command runtime")
        runtime, options = "command", {"argv": args["command"]}
    elif runtime == "command":
        raise errors.InvalidInput("the `command` runtime needs `command`: the program and its args")
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


def _unblock(board: Board, ident: Identity, args: dict[str, Any]) -> Result:
    from board import tasks, views

    db, task_id = board.get(), ids.parse(args["task_id"])
    tasks.unblock(db, task_id, ident.actor(), args.get("comment"))
    obj = views.task_object(db, task_id)
    return {"task": obj}, f"{obj['id']} is {obj['status']} again."


def _link(board: Board, ident: Identity, args: dict[str, Any]) -> Result:
    from board import deps, views

    db = board.get()
    blocker, blocked = ids.parse(args["blocker"]), ids.parse(args["blocked"])
    added = deps.link(db, blocker, blocked, ident.actor())
    obj = views.task_object(db, blocked)
    verb = "now waits" if added else "already waited"
    return (
        {"added": added, "task": obj},
        f"{obj['id']} {verb} for {ids.format(blocker)} ({obj['id']} is {obj['status']}).",
    )


HANDLERS: dict[str, Callable[[Board, Identity, dict[str, Any]], Result]] = {
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
    ident: Identity,
    specs: Mapping[str, ToolSpec],
    name: str,
    arguments: Mapping[str, Any] | None,
) -> Reply:
    """Run one tool call (synchronously: the board is). Never raises."""
    spec = specs.get(name)
    if spec is None:
        return Reply(False, f"unknown tool {name!r}; the kanban tools are: {', '.join(specs)}")
    try:
        structured, text = HANDLERS[name](board, ident, check_arguments(spec, arguments))
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


# --- serving --------------------------------------------------------------------------------


def instructions(ident: Identity) -> str:
    if not ident.worker_mode:
        return (
            "Kanban board (orchestrator mode): create tasks for coding agents, link their "
            "dependencies, follow and unblock them. Each task runs in its own git worktree."
        )
    if ident.problem:
        return f"Kanban board, worker mode, misconfigured: {ident.problem}"
    return (
        f"Kanban board, worker mode: you are working on task {ident.task_label}. Read it with "
        "kanban_show; report progress with kanban_heartbeat or kanban_comment; split work with "
        "kanban_create; finish with exactly one call to kanban_complete (with a summary) or "
        "kanban_block (with what you need)."
    )


async def serve(db_path: str | None = None, environ: Mapping[str, str] | None = None) -> None:
    """Serve the kanban tools over stdin/stdout until the client closes stdin."""
    import anyio
    import anyio.to_thread
    from mcp import types
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server

    ident = identity_from_env(
        os.environ if environ is None else environ, db_given=db_path is not None
    )
    specs = {s.name: s for s in tool_specs(ident)}
    listing = types.ListToolsResult(
        tools=[
            types.Tool(
                name=s.name,
                title=s.title,
                description=s.description,
                input_schema=s.input_schema(),
                annotations=types.ToolAnnotations(
                    title=s.title,
                    read_only_hint=s.read_only,
                    destructive_hint=None if s.read_only else False,
                    idempotent_hint=s.idempotent,
                    open_world_hint=False,
                ),
            )
            for s in specs.values()
        ]
    )
    # One connection, so one board call at a time; in a thread, because a write may wait up
    # to the board's busy timeout for another process's lock and must not stall the protocol.
    limiter = anyio.CapacityLimiter(1)

    @contextlib.asynccontextmanager
    async def lifespan(_server: Any):
        board = Board(db_path)
        try:
            yield board
        finally:
            board.close()

    async def list_tools(ctx: Any, params: Any) -> Any:
        return listing

    async def call(ctx: Any, params: Any) -> Any:
        outcome = await anyio.to_thread.run_sync(
            call_tool,
            ctx.lifespan_context,
            ident,
            specs,
            params.name,
            params.arguments,
            limiter=limiter,
        )
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=outcome.text)],
            structured_content=outcome.structured,
            is_error=not outcome.ok,
        )

    server = Server(
        SERVER_NAME,
        version=_version(),
        instructions=instructions(ident),
        lifespan=lifespan,
        on_list_tools=list_tools,
        on_call_tool=call,
    )
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("kanban")
    except metadata.PackageNotFoundError:
        return ""


def run(db_path: str | None = None) -> int:
    """Serve until stdin closes; the exit code for a command line."""
    import anyio

    if not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("kanban mcp: %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.WARNING)
    try:
        anyio.run(serve, db_path)
    except KeyboardInterrupt:
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m worker.mcp_server",
        description="Serve the kanban tools over MCP (stdio). Worker mode when "
        f"{env.TASK} is set, orchestrator mode otherwise.",
    )
    parser.add_argument("--db", help="Board file. Default: $KANBAN_DB, else ~/.kanban/board.db.")
    return run(parser.parse_args(argv).db)


if __name__ == "__main__":
    sys.exit(main())
