"""Merging branches into a task's worktree: a resumed parent's subtasks, in order.

The merge runs inside the task's own worktree, on its own branch and index, so it needs no
lock. Git itself is run by `git`. A branch of a remote repository may be in two refs of the
clone (the local branch and the pushed one, `remotes.tips`): both are merged, as one branch.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from orchestrator import git
from worker import pause

_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


class MergeStatus(enum.StrEnum):
    MERGED = "merged"
    UP_TO_DATE = "up_to_date"
    CONFLICTED = "conflicted"


@dataclasses.dataclass(frozen=True)
class MergeOutcome:
    branch: str
    status: MergeStatus
    sha: str | None = None  # the merge commit; None when the branch was already merged
    conflicts: tuple[str, ...] = ()  # files committed with conflict markers


def is_commit(name: str) -> bool:
    """Is `name` a commit's full sha (merged as it is), not a branch?"""
    return _SHA.match(name) is not None


def merge_branches(
    path: Path | str,
    branches: Sequence[str],
    message_for: Callable[[str], str],
    *,
    refs: Mapping[str, Sequence[str]] | None = None,
) -> list[MergeOutcome]:
    """Merge each branch, in order, into the worktree's branch with ``--no-ff``.

    `refs` gives, for a branch, the refs that hold its work (a remote repository's local and
    pushed branch, `remotes.tips`): each is merged in turn, and the branch's outcome is theirs
    together. A branch named in `refs` with none is missing; one not named is its local
    branch (``refs/heads/...``).

    The worktree must be clean (``worktrees.commit_all`` first). A branch already contained
    in HEAD is `up_to_date`. On a conflict the merge is committed anyway: every file is staged
    with its conflict markers and the merge commit records both parents; the outcome lists the
    conflicted files. We do this because the agent that integrates runs in a sandbox that
    cannot write the repository's git metadata, so it could neither finish nor abort a
    pending merge; it can only edit files, and its prompt tells it which ones hold markers.
    The next branch is then merged on top. Commit hooks are skipped, as in ``commit_all``.
    """
    cwd = git.existing_dir(path)
    named = [b for b in branches if not _SHA.match(b)]  # the rest are commits (a catch-up)
    for branch in named:
        git.check_branch(branch)
    if not branches:
        return []
    state = git.status(cwd)
    git.refuse_detached(cwd, state)
    if state.entries:
        raise git.WorktreeDirty(cwd, state.entries)
    given = refs or {}
    local = [b for b in named if b not in given]
    missing = sorted(set(local) - git.branch_states(cwd, local).keys())
    missing += sorted(b for b in named if b in given and not given[b])
    if missing:
        raise git.GitError(f"cannot merge into {cwd}: no branch named {', '.join(missing)}")
    identity = git.identity_args(cwd)
    outcomes = []
    for branch in branches:
        if branch in given:
            sources = [git.check_rev(ref) for ref in given[branch]]
        else:
            sources = [branch if _SHA.match(branch) else f"refs/heads/{branch}"]
        each = [_merge_one(cwd, identity, branch, ref, message_for(branch)) for ref in sources]
        outcomes.append(_together(branch, each))
    return outcomes


def _merge_one(cwd: Path, identity: list[str], branch: str, ref: str, message: str) -> MergeOutcome:
    if git.run(cwd, "merge-base", "--is-ancestor", ref, "HEAD", ok=(0, 1)).status == 0:
        return MergeOutcome(branch, MergeStatus.UP_TO_DATE)
    merge_args = ["merge", "--no-ff", "--no-verify", "--no-edit", "-m", message, ref]
    merge = git.run(cwd, *identity, *merge_args, ok=(0, 1))
    if merge.status == 0:
        outcome = MergeOutcome(branch, MergeStatus.MERGED, git.head(cwd))
        pause.point("dispatcher.merging")
        return outcome
    conflicts = tuple(
        name
        for name in git.run(cwd, "diff", "--name-only", "-z", "--diff-filter=U").out.split("\0")
        if name
    )
    if not conflicts:
        git.run(cwd, "merge", "--abort", ok=git.ANY_STATUS)
        raise git.GitError(f"merging {branch} into {cwd} failed: {merge.message()}")
    for name in conflicts:
        _mark(cwd / name, branch)
    git.run(cwd, "add", "-A")
    listing = "".join(f"\n\t{name}" for name in conflicts)
    note = f"\n\nCommitted with conflict markers, to be resolved in this worktree:{listing}"
    git.run(cwd, *identity, "commit", "--no-verify", "-q", "-m", message + note)
    return MergeOutcome(branch, MergeStatus.CONFLICTED, git.head(cwd), conflicts)


def _together(branch: str, outcomes: Sequence[MergeOutcome]) -> MergeOutcome:
    """One branch's outcome from its refs' merges: conflicted if any was, merged if any was."""
    conflicts = tuple(dict.fromkeys(name for o in outcomes for name in o.conflicts))
    shas = [o.sha for o in outcomes if o.sha is not None]
    if conflicts:
        return MergeOutcome(branch, MergeStatus.CONFLICTED, shas[-1], conflicts)
    if shas:
        return MergeOutcome(branch, MergeStatus.MERGED, shas[-1])
    return MergeOutcome(branch, MergeStatus.UP_TO_DATE)


def fast_forward(path: Path | str, commit: str) -> bool:
    """Move the worktree's branch forward to `commit` when it holds everything the branch
    has (``git merge --ff-only``); False, changing nothing, when the two diverged."""
    cwd = git.existing_dir(path)
    result = git.run(cwd, "merge", "-q", "--ff-only", git.check_rev(commit), ok=git.ANY_STATUS)
    return result.status == 0


def _mark(path: Path, branch: str) -> None:
    """Give a conflict that left no markers (a file changed on one side and deleted on the
    other) markers of its own, so that resolving it is an edit the agent must make, and
    kanban can tell (`worker.conflicts`). Binary files are left as git left them."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return
    if any(line.startswith(("<<<<<<< ", ">>>>>>> ")) for line in text.splitlines()):
        return
    path.write_text(
        f"<<<<<<< kanban: changed on one side and deleted on the other (merging {branch})\n"
        "=======\n"
        ">>>>>>> keep this file (remove these three lines) or delete it\n" + text,
        encoding="utf-8",
    )
