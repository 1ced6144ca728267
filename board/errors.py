"""The one exception tree of kanban.

Every error a user or a model can see is a `KanbanError`. Its message says what went wrong
and what to do next; subclasses carry the facts as attributes so callers never parse text.
Foreign errors (sqlite3, git, OS) are wrapped with ``raise ... from``.
"""

from __future__ import annotations


class KanbanError(Exception):
    """Root of every expected failure. The CLI prints it as ``Error: ...`` and exits 1."""


class BoardError(KanbanError):
    """The board file cannot be opened, migrated or written."""


class BoardNotFound(BoardError):
    """A command that only reads found no board file (it does not create one)."""

    def __init__(self, path: str, origin: str = "") -> None:
        self.path = path
        self.origin = origin
        looked = f"{path} ({origin})" if origin else path
        super().__init__(
            f"there is no board at {looked}; `kanban create TITLE` starts one there, or point "
            "--db (or KANBAN_DB) at an existing board"
        )


class TaskNotFound(KanbanError):
    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(
            f"task {task_id} does not exist; `kanban list` shows the tasks on the board"
        )


class RunNotFound(KanbanError):
    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id} does not exist")


class InvalidTransition(KanbanError):
    def __init__(self, task_id: str, from_status: str, to_status: str, *, hint: str = "") -> None:
        self.task_id = task_id
        self.from_status = from_status
        self.to_status = to_status
        message = f"task {task_id} cannot go from {from_status} to {to_status}"
        super().__init__(f"{message}; {hint}" if hint else message)


class DependencyCycle(KanbanError):
    def __init__(self, blocker: str, blocked: str, path: list[str]) -> None:
        self.blocker = blocker
        self.blocked = blocked
        self.path = path
        chain = " -> ".join(path)
        super().__init__(
            f"{blocker} cannot block {blocked}: {blocked} must already end before {blocker} "
            f"can ({chain}), so they would wait for each other forever (a blocker ends before"
            " what it blocks, a subtask before its parent); remove a link with `kanban unlink`"
            " first"
        )


class StaleRun(KanbanError):
    """A worker presented a run that is no longer its task's live run (fencing)."""

    def __init__(self, task_id: str, run_id: int, reason: str) -> None:
        self.task_id = task_id
        self.run_id = run_id
        super().__init__(
            f"run {run_id} no longer holds task {task_id} ({reason}); this worker must stop: "
            "its results will not be recorded"
        )


class NotYourTask(KanbanError):
    """A worker tried to change a task that is neither its own nor one of its subtasks."""

    def __init__(self, task_id: str, own_task_id: str) -> None:
        self.task_id = task_id
        self.own_task_id = own_task_id
        super().__init__(
            f"task {task_id} is not yours; your task is {own_task_id} "
            "(you may change only it and the subtasks you created)"
        )


class PolicyError(KanbanError):
    """`board.policy` refuses to create a task; the message says what to do instead."""


class MorePrivilege(PolicyError):
    """A worker asked for a subtask on a runtime that can reach more than its own."""

    def __init__(
        self,
        task_id: str,
        *,
        own_runtime: str,
        own_what: str,
        runtime: str,
        what: str,
        allowed: list[str],
    ) -> None:
        self.task_id = task_id
        self.own_runtime = own_runtime
        self.runtime = runtime
        self.allowed = allowed
        super().__init__(
            f"your task {task_id} runs on {own_runtime} ({own_what}); a subtask on {runtime} "
            f"({what}) would run with more privilege than yours, which a worker may not "
            f"create. Use {' or '.join(allowed)} (leave the runtime and any command out to use "
            f"{own_runtime}), or, if the work really needs {runtime}, block your task and say "
            "so: a person can create that task"
        )


class RuntimeOptionsRefused(PolicyError):
    """A worker that cannot run any program tried to choose a subtask's runtime options."""

    def __init__(self, task_id: str, own_runtime: str) -> None:
        self.task_id = task_id
        self.own_runtime = own_runtime
        super().__init__(
            f"runtime options choose what a task runs (a command's program and arguments); "
            f"your task {task_id} runs on {own_runtime}, so its subtasks run with its own "
            "options or none. Leave the options out"
        )


class NotIntegrable(PolicyError):
    """A subtask its parent could not merge when it resumes (another repository or base)."""

    def __init__(self, parent: str, field: str, message: str) -> None:
        self.parent = parent
        self.field = field
        super().__init__(message)


class NotForWorkers(PolicyError):
    """Something only people, cron and schedules do (submitting a batch)."""

    def __init__(self, action: str, task_id: str, instead: str) -> None:
        self.action = action
        self.task_id = task_id
        super().__init__(
            f"{action} is for people, cron and schedules, not for a worker (you work on "
            f"{task_id}): {instead}"
        )


class InvalidInput(KanbanError):
    """Bad arguments: an unknown status, an empty title, a limit out of range..."""


class LimitExceeded(KanbanError):
    """A configured bound (subtask depth or breadth, batch size) would be exceeded."""


class BoardBusy(BoardError):
    """A transient board failure: locked past the busy timeout, disk full, an I/O error.

    Nothing was written; the same call may succeed later. The dispatcher waits these out.
    """


class BoardReplaced(BoardError):
    """The board file was removed or replaced under a running process."""

    def __init__(self, path: str, *, removed: bool) -> None:
        self.path = path
        what = "was removed" if removed else "was replaced by another file"
        super().__init__(
            f"the board {path} {what} while this process had it open; stopping so that two "
            "boards are not used at once: put the board back (or point --db at the new one) "
            "and start the dispatcher again"
        )
