"""Merge conflicts kanban left in a task's worktree, and whether they are resolved yet.

When kanban merges branches into a task's worktree (its blockers' at every start, its
subtasks' on a resume) and they conflict, it commits the files with their conflict markers
(the agent's sandbox cannot finish a pending merge) and records them on the task
(``tasks.conflicts``). A file is resolved when it holds no conflict marker line any more, or is
gone. Until every one is, completing the task is refused (`refuse_unresolved`: the CLI and
the MCP tool), and a run that ends without resolving them is not ``done``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from board import actors, errors, ids, tasks

# Only the opening and closing markers: a line of "=======" alone is a Markdown heading's rule.
_MARKERS = (b"<<<<<<< ", b">>>>>>> ")
HUNKS_BYTES = 6000  # of conflicting text quoted in a prompt


def unresolved(worktree: str | Path, files: Sequence[str]) -> list[str]:
    """Those of `files` (relative to `worktree`) that still hold a conflict marker line."""
    left = []
    for name in files:
        path = Path(worktree, name)
        try:
            with open(path, "rb") as handle:
                if any(line.startswith(_MARKERS) for line in handle):
                    left.append(name)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            continue  # deleted (or replaced by a directory): resolved one way
        except OSError:
            left.append(name)  # unreadable: not known to be resolved
    return left


def refuse_unresolved(task_id: int, worktree: str | None, files: Sequence[str]) -> None:
    """Raise `errors.InvalidInput` naming the files if any conflict is left unresolved."""
    if not files or not worktree or not os.path.isdir(worktree):
        return
    left = unresolved(worktree, files)
    if left:
        raise errors.InvalidInput(
            f"{ids.format(task_id)} still has merge conflicts in {', '.join(left)}: resolve "
            "them first (keep what both sides meant and remove every <<<<<<< ======= >>>>>>> "
            "marker line), then complete"
        )


def hunks(worktree: str | Path, files: Sequence[str], limit: int = HUNKS_BYTES) -> str:
    """The conflicting regions of `files`, both sides, as text for a prompt (cut at `limit`)."""
    parts: list[str] = []
    size = 0
    for name in files:
        try:
            text = Path(worktree, name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        lines = text.splitlines()
        inside, region = False, []
        for number, line in enumerate(lines, start=1):
            if line.startswith("<<<<<<< "):
                inside, region = True, [f"{name}:{number}:"]
            if inside:
                region.append(line)
            if inside and line.startswith(">>>>>>> "):
                inside = False
                chunk = "\n".join(region)
                if size + len(chunk) > limit:
                    parts.append(f"[... more conflicts: open {name} and the files above]")
                    return "\n\n".join(parts)
                parts.append(chunk)
                size += len(chunk)
    return "\n\n".join(parts)


def complete(db: Any, task_id: int, summary: str, *, actor: actors.Actor) -> str:
    """`tasks.complete`, refused while the task's worktree holds unresolved merge conflicts.

    The one entry for every interface that completes a task (the CLI, the MCP tool).
    """
    task = tasks.get(db, task_id)
    refuse_unresolved(task_id, task.worktree, task.conflicts)
    return tasks.complete(db, task_id, summary, actor=actor)
