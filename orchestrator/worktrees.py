"""A task's worktree and branch: naming them, creating or reusing them, committing, removing.

`placement` is the one place a task's branch and worktree get their names. Creation, removal
and branch deletion are serialized per repository, across threads and processes, by an
``flock`` on ``<git-common-dir>/kanban-worktrees.lock`` (several dispatchers may share one
repository), and so are the fetches and pushes of a remote's clone (`remotes`). A commit
runs inside one task's worktree, on its own branch and index, and needs no lock. Git itself
is run by `git` only; merging branches into a worktree is `merging`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from board import errors
from orchestrator import git

LOCK_NAME = "kanban-worktrees.lock"

# Our own ids only (`t_12`, a board's hex id): never a title, so never a path trick or a
# shell surprise.
_NAME_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]")


class BranchNotMerged(git.GitError):
    def __init__(self, branch: str, into: str) -> None:
        self.branch = branch
        self.into = into
        super().__init__(
            f"branch {branch} is not merged into {into}; keep it, merge it, or pass --force"
        )


class NotPushed(git.GitError):
    """A clone's worktree or branch holds a commit that is on no branch of its remote: this
    host's disk is the only place its work is (a push that failed), so gc keeps it."""

    def __init__(self, what: str, commit: str, push: str) -> None:
        self.commit = commit
        super().__init__(
            f"{what} kept: its commit {commit[:12]} is on no branch of the remote, so this "
            f"host holds the only copy of its work; push it ({push}) or pass --force"
        )


# Whether a commit's work is kept somewhere gc does not touch (a remote's branches, a landed
# task's base): for a clone of a remote, what gc asks in place of "merged into HEAD".
KeptElsewhere = Callable[[str], bool]


@dataclasses.dataclass(frozen=True)
class Worktree:
    path: Path
    branch: str
    head: str
    created: bool  # False when an existing worktree was reused as it was


# What must run in a worktree before gc removes it (its repository's teardown), given the
# worktree and its branch; says whether anything ran. It raises errors.KanbanError when what
# it ran failed (or could not be found out): a problem, and the worktree is kept unless forced.
Teardown = Callable[[Path, str], bool]


class TeardownRefused(errors.KanbanError):
    """A worktree's teardown failed, so gc keeps it (and its branch)."""


@dataclasses.dataclass(frozen=True)
class GcReport:
    removed_worktrees: tuple[Path, ...] = ()
    kept_worktrees: tuple[Path, ...] = ()  # dirty, or their removal failed (see problems)
    deleted_branches: tuple[str, ...] = ()
    kept_branches: tuple[str, ...] = ()  # unmerged, or their worktree was kept
    problems: tuple[str, ...] = ()


# --- names -------------------------------------------------------------------------------


def _check_part(kind: str, name: str) -> str:
    """Return `name` if it is safe as a directory name and a branch component."""
    if not isinstance(name, str) or not _NAME_PART.fullmatch(name):
        raise git.InvalidName(
            kind,
            str(name),
            "use letters, digits, '_', '.' and '-', starting with a letter or digit",
        )
    if ".." in name or name.endswith((".", ".lock")):
        raise git.InvalidName(kind, name, "no '..', and no trailing '.' or '.lock'")
    return name


def placement(
    repo: Path | str, *, root: Path | str, prefix: str, board_id: str, task_id: str
) -> tuple[str, Path]:
    """The branch and the worktree of a task: ``<prefix><board>/<task>`` and
    ``<root>/<repo-name>-<hash>/<board>/<task>``.

    The board's id is in both because task ids restart at 1 on every board: two boards (or
    one recreated after deletion) must never share a branch or a worktree.
    """
    board_id = _check_part("board id", board_id)
    task_id = _check_part("task id", task_id)
    branch = git.check_branch(f"{prefix}{board_id}/{task_id}")
    return branch, _worktree_root(repo, root) / board_id / task_id


def _within(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def _worktree_root(repo_path: Path | str, root: Path | str) -> Path:
    """``<root>/<repo-name>-<hash of the repo's path>``: one directory per repository.

    The hash keeps two checkouts with the same name apart. The root must be outside the
    repository's work tree (worktrees nested in it would show up as untracked files).
    """
    top = git.inspect(repo_path, rev=None).top.resolve()
    base = Path(root).expanduser().resolve()
    if _within(base, top):
        raise git.GitError(
            f"worktree root {base} is inside the repository {top}; choose a root outside it "
            "(`worktree_root` in the config, or $KANBAN_WORKTREE_ROOT)"
        )
    name = _UNSAFE_NAME_CHARS.sub("-", top.name) or "repo"
    digest = hashlib.sha256(os.fsencode(top)).hexdigest()[:10]
    return base / f"{name}-{digest}"


@contextlib.contextmanager
def repo_lock(common_dir: Path) -> Iterator[None]:
    """Hold the repository's lock: what changes its worktrees or its refs in bulk (creating a
    worktree, a fetch, a push) waits its turn. Not reentrant: never nest two."""
    # flock, not fcntl record locks: it excludes other open file descriptions in this process
    # too, so it serializes threads as well as processes. os.open's fd is not inherited by
    # the git children, so a hook's stray daemon cannot keep the lock held.
    lock_path = common_dir / LOCK_NAME
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise git.GitError(f"cannot open the lock file {lock_path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


# --- creating or reusing -----------------------------------------------------------------


def _half_made(path: Path) -> bool:
    """True when `git worktree add` never finished here (e.g. the dispatcher was killed).

    git locks a worktree with the reason "initializing" while it creates it and unlocks it at
    the end; no worker ever ran in a worktree still so locked.
    """
    try:
        pointer = (path / ".git").read_text().strip()
        admin = path / pointer.removeprefix("gitdir:").strip()  # may be relative (git 2.48+)
        return (admin / "locked").read_text().startswith("initializing")
    except OSError:
        return False


def ensure_worktree(repo_path: Path | str, path: Path | str, branch: str, base: str) -> Worktree:
    """A worktree at `path` on `branch`, creating what is missing.

    - The branch does not exist: it is created at `base` (a ref or sha, resolved now).
    - The branch exists without a worktree (e.g. after gc): a worktree is made for it as it
      is; it is never reset to `base`.
    - The worktree already exists for this branch (a retry, a resume): it is reused as it is
      (``created=False``).
    A creation that fails halfway is undone (the directory, git's record of it, and a branch
    created by this call) and raises `git.GitError` with git's message.
    """
    git.check_branch(branch)
    info = git.inspect(repo_path, git.check_rev(base, "base"))
    assert info.sha is not None
    target = Path(path).expanduser().resolve()
    top = info.top.resolve()
    if _within(target, top):
        raise git.GitError(
            f"worktree path {target} is inside the repository {top}; use a worktree root outside it"
        )
    with repo_lock(info.common_dir):
        state = git.branch_states(info.top, [branch]).get(branch)
        if state is not None and state.worktree is not None:
            if state.worktree == target and (target / ".git").is_file():
                if not _half_made(target):
                    return Worktree(target, branch, state.sha, created=False)
                twice_forced = ["--force", "--force"]  # git's "initializing" lock needs two
                git.run(
                    info.top, "worktree", "remove", *twice_forced, str(target), ok=git.ANY_STATUS
                )
                shutil.rmtree(target, ignore_errors=True)
            elif state.worktree != target and state.worktree.exists():
                raise git.GitError(
                    f"branch {branch} is already checked out in {state.worktree}; "
                    "remove that worktree first or use it"
                )
            # Its worktree was deleted by hand (or half made): forget it, then make a new one.
            git.run(info.top, "worktree", "prune")
        return _add_worktree(info.top, target, branch, info.sha, state)


def _add_worktree(
    top: Path, target: Path, branch: str, base_sha: str, state: git.BranchState | None
) -> Worktree:
    existed = os.path.lexists(target)
    was_empty_dir = existed and target.is_dir() and not any(target.iterdir())
    if state is None:
        # A sha, never a branch name, as the start point: no upstream tracking is set up.
        args = ["worktree", "add", "-b", branch, os.fspath(target), base_sha]
        head_sha = base_sha
    else:
        args = ["worktree", "add", os.fspath(target), branch]
        head_sha = state.sha
    result = git.run(top, *args, ok=git.ANY_STATUS)
    if result.status == 0:
        return Worktree(target, branch, head_sha, created=True)
    # git leaves a branch made by `-b` behind on failure, and a worktree behind when only a
    # hook failed; undo both, but never touch what was at `target` before.
    if not existed:
        shutil.rmtree(target, ignore_errors=True)
    elif was_empty_dir:
        for child in target.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
    git.run(top, "worktree", "prune", ok=git.ANY_STATUS)
    if state is None:
        # Conditional on the sha we created it at, so a branch someone else moved survives.
        git.run(top, "update-ref", "-d", f"refs/heads/{branch}", base_sha, ok=git.ANY_STATUS)
    raise git.GitError(f"could not create worktree {target} on {branch}: {result.message()}")


# --- committing --------------------------------------------------------------------------


def commit_all(path: Path | str, message: str) -> str | None:
    """Commit everything the worker left in the worktree to its branch; None if nothing.

    Modified, new (untracked but not ignored) and deleted files are all staged with
    ``git add -A``. Commit hooks are skipped (``--no-verify``): this commit exists so that no
    work is lost, and a failing lint hook must not stand in its way. A merge in progress is
    concluded even with unresolved conflicts: the files are committed with their conflict
    markers (both parents recorded), so nothing is lost and the next run can resolve them.
    """
    if not message.strip():
        raise git.GitError("a commit message is required")
    cwd = git.existing_dir(path)
    git_dir, ref = git.run(
        cwd, "rev-parse", "--absolute-git-dir", "--symbolic-full-name", "HEAD"
    ).out.splitlines()
    if ref == "HEAD":
        raise git.GitError(
            f"worktree {cwd} is on a detached HEAD, so a commit would be on no branch; "
            "check its branch out again (its changes are still in the worktree)"
        )
    identity = git.identity_args(cwd)
    git.run(cwd, "add", "-A")
    staged = git.run(cwd, "diff", "--cached", "--quiet", ok=(0, 1)).status == 1
    if not staged and not (Path(git_dir) / "MERGE_HEAD").exists():
        return None
    git.run(cwd, *identity, "commit", "--no-verify", "-q", "-m", message)
    return git.head(cwd)


def delete_landed(repo_path: Path | str, landed: dict[str, str]) -> list[str]:
    """Delete the branches of landed tasks ({branch: its tip when it landed}) that still point
    there and are checked out nowhere: their work is in the base branch (a squash or a rebase
    leaves them unmerged in git's eyes). A branch that moved since is kept."""
    top = git.inspect(repo_path, rev=None).top
    states = git.branch_states(top, landed)
    deleted = []
    for branch, sha in landed.items():
        state = states.get(branch)
        if state is None or state.worktree is not None or state.sha != sha:
            continue
        git.check_branch(branch)
        git.run(top, "update-ref", "-d", f"refs/heads/{branch}", sha)
        deleted.append(branch)
    return deleted


def ensure_detached(repo_path: Path | str, *, root: Path | str, board_id: str, name: str) -> Path:
    """A worktree of kanban's own at ``<root>/<repo>-<hash>/<board id>/<name>``, on a detached
    HEAD (it holds no branch), created once and reused (landing merges in one)."""
    top = git.inspect(repo_path, rev=None)
    path = _worktree_root(repo_path, root) / _check_part("board id", board_id) / name
    if (path / ".git").is_file():
        return path
    with repo_lock(top.common_dir):
        if (path / ".git").is_file():  # made meanwhile by another process
            return path
        if os.path.lexists(path):  # half made (a process killed mid-add): made again
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        git.run(top.top, "worktree", "prune")
        path.parent.mkdir(parents=True, exist_ok=True)
        git.run(top.top, "worktree", "add", "-q", "--detach", os.fspath(path), "HEAD")
    return path


# --- removal and garbage collection ------------------------------------------------------


def _remove(
    top: Path,
    target: Path,
    force: bool,
    before: Callable[[], bool] | None = None,
    kept_elsewhere: KeptElsewhere | None = None,
) -> bool:
    if not os.path.lexists(target):
        git.run(top, "worktree", "prune")
        return False
    is_worktree = (target / ".git").is_file()
    if not force and is_worktree:
        state = git.status(target)
        if state.entries:
            raise git.WorktreeDirty(target, state.entries)
        git.refuse_detached(target, state)
        if kept_elsewhere is not None:
            head = git.head(target)
            if not kept_elsewhere(head):
                push = f"git -C {target} push origin HEAD"
                raise NotPushed(f"worktree {target} (and its branch)", head, push)
    # Only now, once the worktree is known to go, does its teardown run. It was clean before
    # it (or forced): what the teardown leaves there (its logs, caches, even edits) is no
    # one's work, so it goes with the worktree instead of keeping it as dirty. The repository
    # lock, held since our check, keeps dispatchers from reusing the worktree meanwhile.
    if before is not None and is_worktree and before():
        force = True
    # git checks cleanliness again itself (no --force), which also covers a race with a
    # worker that wrote after our check. Ignored files go with the worktree, as in git.
    force_args = ["--force"] if force else []
    result = git.run(top, "worktree", "remove", *force_args, os.fspath(target), ok=git.ANY_STATUS)
    if result.status != 0:
        raise git.GitError(f"could not remove worktree {target}: {result.message()}")
    return True


def _tear_down(
    teardown: Teardown, target: Path, branch: str, *, force: bool, problems: list[str]
) -> bool:
    """Run `teardown`; its failure keeps the worktree, or is a problem only when forced."""
    try:
        return teardown(target, branch)
    except (errors.KanbanError, OSError) as exc:
        if not force:
            raise TeardownRefused(
                f"{exc}; worktree {target} kept with its branch (--force removes it anyway)"
            ) from exc
        problems.append(f"{exc}; worktree {target} removed anyway (--force)")
        return True


def _delete_branch(
    top: Path, branch: str, force: bool, kept_elsewhere: KeptElsewhere | None = None
) -> bool:
    git.check_branch(branch)
    state = git.branch_states(top, [branch]).get(branch)
    if state is None:
        return False
    if state.worktree is not None:
        raise git.GitError(
            f"branch {branch} is checked out in {state.worktree}; remove that worktree first"
        )
    if not force and kept_elsewhere is not None:
        if not kept_elsewhere(state.sha):
            push = f"git -C {top} push origin refs/heads/{branch}"
            raise NotPushed(f"branch {branch} of {top}", state.sha, push)
    elif not force and not _merged_into_head(top, state.sha):
        into = git.run(top, "symbolic-ref", "-q", "--short", "HEAD", ok=(0, 1)).out or "HEAD"
        raise BranchNotMerged(branch, into)
    # Conditional on the sha we checked, so commits added meanwhile are never deleted.
    git.run(top, "update-ref", "-d", f"refs/heads/{branch}", state.sha)
    return True


def _merged_into_head(top: Path, commit: str) -> bool:
    result = git.run(top, "merge-base", "--is-ancestor", commit, "HEAD", ok=git.ANY_STATUS)
    if result.status not in (0, 1):
        raise git.GitError(f"cannot tell whether {commit} is merged into HEAD: {result.message()}")
    return result.status == 0


def gc(
    repo_path: Path | str,
    worktrees: Iterable[tuple[Path | str, str]],
    *,
    force: bool = False,
    teardown: Teardown | None = None,
    kept_elsewhere: KeptElsewhere | None = None,
) -> GcReport:
    """Remove the given (worktree, branch) pairs where nothing can be lost.

    A worktree goes when it is clean (all its content is on its branch); a dirty one, or one
    on a detached HEAD, is kept with its branch. Then its branch goes when merged into the
    repository's HEAD. `force` removes dirty worktrees and unmerged branches too; a branch
    checked out in another worktree is never deleted. Failures of one pair are reported in
    `problems` and do not stop the others. ``git worktree prune`` always runs at the end.

    `kept_elsewhere` is for this host's clone of a remote, whose branches are only a local
    copy of work that belongs on the remote (and whose HEAD is nobody's branch): a worktree
    goes only when its HEAD is kept elsewhere too, and a branch when its tip is, in place of
    being merged into HEAD. What is not (a push that failed) is kept, and is a problem: this
    host has the only copy of that work.

    `teardown` runs in each worktree that is going, just before it goes (never in one kept
    or already gone), under the repository's lock: no dispatcher reuses the worktree
    meanwhile. What it leaves in the worktree goes too. When it fails, the worktree and its
    branch are kept and the failure is a problem; with `force`, it is a problem and the
    worktree goes anyway.
    """
    info = git.inspect(repo_path, rev=None)
    removed: list[Path] = []
    kept: list[Path] = []
    deleted: list[str] = []
    kept_branches: list[str] = []
    problems: list[str] = []
    pairs = [(Path(path).expanduser().resolve(), branch) for path, branch in worktrees]
    with repo_lock(info.common_dir):
        # One look at the refs for all pairs: what an earlier gc already collected (no
        # directory, no branch) costs nothing, however long the board's history grows.
        existing = git.branch_states(info.top, {branch for _, branch in pairs})
        for target, branch in pairs:
            if branch not in existing and not os.path.lexists(target):
                continue
            before = None
            if teardown is not None:
                before = functools.partial(
                    _tear_down, teardown, target, branch, force=force, problems=problems
                )
            try:
                if os.path.lexists(target) and _remove(
                    info.top, target, force, before, kept_elsewhere
                ):
                    removed.append(target)
            except (git.GitError, TeardownRefused) as exc:
                kept.append(target)
                kept_branches.append(branch)
                if not isinstance(exc, git.WorktreeDirty):
                    problems.append(str(exc))
                continue
            if branch not in existing:
                continue
            try:
                if _delete_branch(info.top, branch, force, kept_elsewhere):
                    deleted.append(branch)
            except git.GitError as exc:
                kept_branches.append(branch)
                if not isinstance(exc, BranchNotMerged):
                    problems.append(str(exc))
        git.run(info.top, "worktree", "prune")
    return GcReport(
        tuple(removed), tuple(kept), tuple(deleted), tuple(kept_branches), tuple(problems)
    )
