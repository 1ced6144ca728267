"""The worker's prompt, rendered from ``templates/prompt.md``.

Everything a worker must know goes here: on Hermes' Codex runtime, Hermes' own system prompt
does not reach the model, so the task, the protocol (heartbeat, complete, block, create), the
comments, why the previous attempt ended, the blockers' results and, on a resume, the subtasks'
outcomes and merges are all in this one text.

The template file has sections (``<!-- section: NAME -->``), each a `string.Template`; optional
sections are included only when they have something to say.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import string
from collections.abc import Sequence
from pathlib import Path

import sqlite_utils

from board import records, runs, tasks, views
from worker import conflicts

TEMPLATE = Path(__file__).parent / "templates" / "prompt.md"
# Agents get the prompt as one command-line argument, and Linux refuses any one argument over
# MAX_ARG_STRLEN (131072 bytes); the board keeps a task's body well below this.
MAX_BYTES = 120_000
_SECTION = re.compile(r"^<!-- section: (\w+) -->\n", re.MULTILINE)


@dataclasses.dataclass(frozen=True)
class Merge:
    branch: str
    status: str  # merged | up_to_date | conflicted | missing
    conflicted_files: Sequence[str] = ()
    # Whose branch: a "subtask"'s (a resume), a "blocker"'s, the task's "base" branch (a
    # landing that conflicted), or the task's own as another host "pushed" it (the two
    # diverged).
    source: str = "subtask"


@dataclasses.dataclass(frozen=True)
class Continued:
    """The run starts from its branch as another host last pushed it, not from this host's."""

    sha: str  # the last pushed commit of the task's branch
    host: str  # the host whose run made it


@functools.cache
def _sections(path: Path = TEMPLATE) -> dict[str, string.Template]:
    parts = _SECTION.split(path.read_text(encoding="utf-8"))
    return {
        name: string.Template(text) for name, text in zip(parts[1::2], parts[2::2], strict=True)
    }


# How a merge's status reads to the agent ("up_to_date": merged by an earlier attempt).
_MERGE_WORDS = {"up_to_date": "already in your branch"}


def _merge_line(merge: Merge) -> str:
    line = f"{merge.branch}: {_MERGE_WORDS.get(merge.status, merge.status)}"
    if merge.conflicted_files:
        line += (
            "; CONFLICTS left for you to resolve (the files contain conflict "
            "markers <<<<<<< ======= >>>>>>>): " + ", ".join(merge.conflicted_files)
        )
    return line


def _bullets(lines: list[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


def render(
    db: sqlite_utils.Database,
    task: records.Task,
    *,
    attempt: int,
    kind: str,
    workspace: str,
    branch: str | None,
    merges: Sequence[Merge] = (),
    ports: Sequence[int] = (),
    gate: str | None = None,
    continued: Continued | None = None,
) -> str:
    """The prompt of a task's run. `ports` are those the run holds; `gate` is the check
    command that decides whether the task is done (a repository's gated check), if any;
    `continued`, where the run starts from the work another host pushed.
    """
    sections = _sections()
    extra: list[str] = []
    last = runs.last_ended(db, task.id)
    if attempt > 1 or (last is not None and kind != "resume"):
        if last is not None:
            what = str(last.outcome) + (f" ({last.reason})" if last.reason else "")
            if last.exit_code is not None:
                what += f", exit code {last.exit_code}"
            elif last.signal is not None:
                what += f", killed by signal {last.signal}"
        else:
            what = "unknown"
        extra.append(
            sections["attempt"].substitute(
                attempt=attempt, max_attempts=task.max_attempts, last_outcome=what
            )
        )
    if continued is not None:
        extra.append(sections["continued"].substitute(sha=continued.sha, host=continued.host))
    if last is not None and last.check_result is not None and not last.check_result.passed:
        check = last.check_result
        extra.append(
            sections["check_failed"].substitute(
                command=check.command,
                detail=check.detail,
                # A fence in the output would end the block it is quoted in.
                output=check.output.replace("```", "` ` `") or "(no output)",
            )
        )
    blocker_lines = [_merge_line(m) for m in merges if m.source in ("blocker", "base", "pushed")]
    if blocker_lines:
        extra.append(sections["blocker_merges"].substitute(merges=_bullets(blocker_lines)))
    left = conflicts.unresolved(workspace, tasks.get(db, task.id).conflicts)
    if left:
        extra.append(
            sections["conflicts"].substitute(
                files=", ".join(left),
                hunks=conflicts.hunks(workspace, left).replace("```", "` ` `") or "(not shown)",
            )
        )
    if gate:
        extra.append(sections["gate"].substitute(command=gate))
    if ports:
        extra.append(sections["ports"].substitute(ports=", ".join(map(str, ports)), first=ports[0]))
    comments = views.recent_comments(db, task.id)
    if comments:
        text = _bullets([f"{views.when(c.at)} {c.author}: {c.body}" for c in comments])
        extra.append(sections["comments"].substitute(comments=text))
    blockers = views.blockers_of(db, task.id)
    if blockers:
        text = _bullets(
            [
                f'{b.label} "{b.title}" ({b.status}'
                f"{', branch ' + b.branch if b.branch else ''}): "
                f"{b.summary or 'no summary'}"
                for b in blockers
            ]
        )
        extra.append(sections["blockers"].substitute(blockers=text))
    if kind == "resume":
        children = views.children(db, task.id)
        text = (
            _bullets(
                [
                    f'{c.label} "{c.title}": {c.status}'
                    + (f": {c.summary}" if c.summary else "")
                    + (f" ({c.failure_reason})" if c.failure_reason else "")
                    + (f" (blocked: {c.block_reason})" if c.status == "blocked" else "")
                    for c in children
                ]
            )
            or "- (none)"
        )
        merge_lines = [_merge_line(m) for m in merges if m.source == "subtask"]
        extra.append(
            sections["resume"].substitute(
                children=text, merges=_bullets(merge_lines) or "- (no branches to merge)"
            )
        )

    def main(extra_text: str) -> str:
        return (
            sections["main"]
            .substitute(
                task_id=task.label,
                title=task.title,
                body=task.body or "(no further description: the title says it all)",
                workspace=workspace,
                branch_text=f" on branch {branch}" if branch else "",
                sections=extra_text,
            )
            .rstrip()
            + "\n"
        )

    text = main("\n".join(extra))
    if len(text.encode("utf-8")) <= MAX_BYTES:
        return text
    # Many long comments and results add up: the agent gets the first of them, and where the
    # rest is. Its title and body always fit (the board limits them below this).
    room = MAX_BYTES - len(main("").encode("utf-8")) - 200
    note = (
        f"\n[... cut to fit on a command line: `kanban show {task.label}` "
        "(or kanban_show) has all of it]\n"
    )
    clipped = "\n".join(extra).encode("utf-8")[: max(room, 0)].decode("utf-8", "ignore")
    return main(clipped + note)
