"""What the nine kanban tools look like: names, descriptions, input schemas, and limits.

The descriptions follow the mode (in worker mode `task_id` defaults to the worker's task, and
the text says so); the schemas are what `arguments.check` checks calls against.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from board import states
from worker import runtimes
from worker.mcp_server import identity

SHOW_EVENTS = 20  # kanban_show returns the most recent events and runs, not the whole history
SHOW_RUNS = 10
LIST_DEFAULT = 50
LIST_MAX = 200
LIST_BODY = 500  # kanban_list cuts task bodies to this many characters
TEXT_BODY = 4000  # the text rendering of kanban_show cuts the body and each comment
TEXT_COMMENT = 2000


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


def tool_specs(ident: identity.Identity) -> list[ToolSpec]:
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
            "merged into your worktree, so you can integrate them. A subtask with `after` "
            "starts with those tasks' branches merged into its own, so it builds on their "
            "code. Your own work reaches the base branch only when a person lands your task "
            "(kanban land: merged, checked, then the base moves), so leave the worktree "
            "whole. A subtask works in your repository and never runs with more privilege "
            "than your task. Returns the new task object (id, status, ...)."
        )
    else:
        create_description = (
            "Create a task on the board. It is dispatched to a coding agent as soon as the "
            "tasks in `after` are done, with their branches merged into its own. Returns the "
            "new task object (id, status, ...)."
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
                "status": _list_prop(
                    "Only tasks in these statuses.", enum=[s.value for s in states.Status]
                ),
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
            "`waiting` and is resumed when they end. Refused while files hold conflict "
            "markers from a merge kanban made (resolve them first); where the repository "
            "gates on a check, the task is done only when it passes. Returns the task object "
            "with its new status.",
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
