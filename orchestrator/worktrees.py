"""Git for kanban: one worktree and branch per task, committing what workers leave, merging.

This is the only module that runs git. Every command goes through `_git`, which runs
``git -C <dir> ...`` through GitPython's command runner with the inherited ``GIT_*`` variables
removed: a kanban started from a git hook inherits ``GIT_DIR``/``GIT_INDEX_FILE``/
``GIT_WORK_TREE``, and they would silently point every command at the wrong repository. We
never build a GitPython ``Repo``: its discovery reads those same variables from ``os.environ``
with no way to turn that off, and it would cost file reads we do not need.

Worktree creation, removal and branch deletion are serialized per repository, across threads
and processes, by an ``flock`` on ``<git-common-dir>/kanban-worktrees.lock`` (several
dispatchers may share one repository). Commits and merges run inside one task's worktree, on
its own branch and index, and need no lock.

Everything here is synchronous; the async dispatcher calls it through ``anyio.to_thread``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import fcntl
import functools
import hashlib
import itertools
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import git

from board import errors
from worker import pause

DEFAULT_ROOT = Path("~/.kanban/worktrees")
DEFAULT_BRANCH_PREFIX = "kanban/"
LOCK_NAME = "kanban-worktrees.lock"
# Used only for the parts of the identity the user has not configured.
FALLBACK_NAME = "kanban"
FALLBACK_EMAIL = "kanban@localhost"

_REPO_HINT = "pass --repo a git checkout or omit it"
# Our own task ids only (`t_12`): never a title, so never a path trick or a shell surprise.
_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]")

# Transport and auth settings are the user's, not a repository location: keep them so a
# worker can still fetch and push (the same list pre-commit keeps in its `no_git_env`).
_KEPT_GIT_VARS = frozenset(
    {
        "GIT_EXEC_PATH",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_SSL_CAINFO",
        "GIT_SSL_NO_VERIFY",
        "GIT_CONFIG_COUNT",
        "GIT_HTTP_PROXY_AUTHMETHOD",
        "GIT_ASKPASS",
        "GIT_TERMINAL_PROMPT",
    }
)
_KEPT_GIT_PREFIXES = ("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_")


class GitError(errors.KanbanError):
    """A git operation failed or was refused; the message says what to do next."""


class NotARepository(GitError):
    """The path is not a usable checkout: missing, not a repository, bare, or no commits."""

    def __init__(self, path: Path, message: str) -> None:
        self.path = path
        super().__init__(message)


class InvalidName(GitError):
    """A task id, branch name or ref that kanban refuses to hand to git."""

    def __init__(self, kind: str, name: str, why: str) -> None:
        self.kind = kind
        self.name = name
        super().__init__(f"invalid {kind} {name!r}: {why}")


class WorktreeDirty(GitError):
    """A worktree holds changes that are on no commit, so removing it would lose them."""

    def __init__(self, path: Path, entries: Sequence[str]) -> None:
        self.path = path
        self.entries = tuple(entries)
        shown = ", ".join(self.entries[:5]) + (", ..." if len(self.entries) > 5 else "")
        super().__init__(
            f"worktree {path} has uncommitted changes ({shown}); commit them, or pass --force "
            "to discard them"
        )


class BranchNotMerged(GitError):
    def __init__(self, branch: str, into: str) -> None:
        self.branch = branch
        self.into = into
        super().__init__(
            f"branch {branch} is not merged into {into}; keep it, merge it, or pass --force"
        )


@dataclasses.dataclass(frozen=True)
class Repository:
    """A validated checkout: its top-level directory, git dirs, and current commit."""

    path: Path
    git_dir: Path
    common_dir: Path
    head: str
    branch: str | None  # None when HEAD is detached


@dataclasses.dataclass(frozen=True)
class Worktree:
    path: Path
    branch: str
    head: str
    created: bool  # False when an existing worktree was reused as it was


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


@dataclasses.dataclass(frozen=True)
class GcReport:
    removed_worktrees: tuple[Path, ...] = ()
    kept_worktrees: tuple[Path, ...] = ()  # dirty, or their removal failed (see problems)
    deleted_branches: tuple[str, ...] = ()
    kept_branches: tuple[str, ...] = ()  # unmerged, or their worktree was kept
    problems: tuple[str, ...] = ()


# --- environment and the one git runner ------------------------------------------------


def _stripped(name: str) -> bool:
    return (
        name.startswith("GIT_")
        and name not in _KEPT_GIT_VARS
        and not name.startswith(_KEPT_GIT_PREFIXES)
    )


def clean_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of `environ` (default ``os.environ``) without the ``GIT_*`` variables that
    redirect git (repository, index, work tree, object store, identity, config injection).
    Transport and auth variables (``GIT_SSH_COMMAND``, ``GIT_ASKPASS``...) are kept."""
    source = os.environ if environ is None else environ
    return {name: value for name, value in source.items() if not _stripped(name)}


class _Git(git.cmd.Git):
    """GitPython's command runner, minus the inherited ``GIT_*`` variables.

    ``Git.execute`` always builds the child's environment from ``os.environ``, and
    ``update_environment`` can add or override a variable but never remove one. So when
    something must go, the command runs as ``env -u NAME ... git ...``: env(1) execs git in
    the same process (same pid, so GitPython's bookkeeping holds), and when nothing leaks (the
    usual case) the command is untouched.
    """

    def execute(self, command, *args, **kwargs):
        leaked = [name for name in os.environ if _stripped(name)]
        if leaked:
            unset = itertools.chain.from_iterable(("-u", name) for name in leaked)
            command = ["env", *unset, *command]
        return super().execute(command, *args, **kwargs)


# Stateless apart from its (empty) extra environment, so one instance serves every thread;
# each command names its directory with `-C`.
_GIT = _Git()


@dataclasses.dataclass(frozen=True)
class _Result:
    status: int
    out: str
    err: str

    def message(self) -> str:
        text = (self.err or self.out).strip()
        return text.replace("\n", " / ") if text else f"exit status {self.status}"


_ANY_STATUS = tuple(range(256))


def _git(cwd: Path, *args: str, ok: Sequence[int] = (0,)) -> _Result:
    # `-C` rather than a working directory: GitPython silently falls back to the process's
    # own cwd when the directory is missing, which could be some other repository.
    command = [_Git.GIT_PYTHON_GIT_EXECUTABLE, "-C", os.fspath(cwd), *args]
    try:
        status, out, err = _GIT.execute(command, with_extended_output=True, with_exceptions=False)
    except git.exc.GitCommandNotFound as exc:
        raise GitError("git was not found; install git and make sure it is on PATH") from exc
    result = _Result(status, out, err)
    if status not in ok:
        raise GitError(f"git {' '.join(args)} failed in {cwd}: {result.message()}")
    return result


# --- names ---------------------------------------------------------------------------------


def check_task_id(task_id: str) -> str:
    """Return `task_id` if it is safe as a directory name and a branch component."""
    if not isinstance(task_id, str) or not _TASK_ID.fullmatch(task_id):
        raise InvalidName(
            "task id",
            str(task_id),
            "use letters, digits, '_', '.' and '-', starting with a letter or digit",
        )
    if ".." in task_id or task_id.endswith((".", ".lock")):
        raise InvalidName("task id", task_id, "no '..', and no trailing '.' or '.lock'")
    return task_id


@functools.lru_cache(maxsize=4096)
def _git_accepts_branch(branch: str) -> bool:
    # A pure function of the name, so retries of the same task skip the process.
    # `-C /`: the check needs no repository, and the process's cwd may be gone.
    return _git(Path(os.sep), "check-ref-format", f"refs/heads/{branch}", ok=(0, 1)).status == 0


def check_branch(branch: str) -> str:
    """Return `branch` if ``git check-ref-format`` accepts it as a branch name."""
    if not isinstance(branch, str) or not branch or branch.startswith("-"):
        raise InvalidName("branch name", str(branch), "it must not be empty or start with '-'")
    if not _git_accepts_branch(branch):
        raise InvalidName("branch name", branch, "git check-ref-format refuses it")
    return branch


def _check_rev(rev: str, kind: str = "ref") -> str:
    # Anything starting with '-' would be read by git as an option.
    if not isinstance(rev, str) or not rev or rev.startswith("-") or any(c in rev for c in "\0\n"):
        raise InvalidName(kind, str(rev), "it must be a branch, tag or commit")
    return rev


def task_branch(task_id: str, prefix: str = DEFAULT_BRANCH_PREFIX) -> str:
    """The branch of a task: ``kanban/t_12`` by default."""
    return check_branch(prefix + check_task_id(task_id))


def worktree_path(repo_root: Path, task_id: str) -> Path:
    """The task's worktree inside `repo_root` (a directory from `worktree_root`)."""
    return Path(repo_root) / check_task_id(task_id)


# --- repositories ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Inspection:
    top: Path
    git_dir: Path
    common_dir: Path
    sha: str | None  # the requested rev, resolved to a commit


def _inspect(repo_path: Path | str, rev: str | None = "HEAD") -> _Inspection:
    """Validate a checkout and resolve `rev`, with one git process."""
    path = Path(repo_path).expanduser().absolute()
    if not path.is_dir():
        why = "no such directory" if not path.exists() else "not a directory"
        raise NotARepository(path, f"{path} is not a git repository ({why}); {_REPO_HINT}")
    args = [
        "rev-parse",
        "--path-format=absolute",
        "--is-bare-repository",
        "--is-inside-work-tree",
        "--git-common-dir",
        "--absolute-git-dir",
        "--show-toplevel",
    ]
    if rev is not None:
        args += ["--verify", "-q", f"{_check_rev(rev)}^{{commit}}"]
    result = _git(path, *args, ok=_ANY_STATUS)
    lines = result.out.splitlines()
    if len(lines) < 4:
        detail = result.message()
        extra = "" if "not a git repository" in detail else f" ({detail})"
        raise NotARepository(path, f"{path} is not a git repository{extra}; {_REPO_HINT}")
    if lines[0] == "true":
        raise NotARepository(
            path,
            f"{path} is a bare repository: kanban needs a checkout with a work tree; {_REPO_HINT}",
        )
    if lines[1] != "true" or len(lines) < 5:
        raise NotARepository(path, f"{path} is inside a .git directory; {_REPO_HINT}")
    top = Path(lines[4])
    sha = None
    if rev is not None:
        if result.status != 0 or len(lines) < 6:
            if rev == "HEAD":
                raise NotARepository(
                    top,
                    f"{top} has no commits yet; commit something first "
                    "(every task branches from a commit)",
                )
            raise GitError(f"unknown ref {rev!r} in {top}; name a branch, tag or commit")
        sha = lines[5]
    return _Inspection(top, Path(lines[3]), Path(lines[2]), sha)


def open_repo(path: Path | str) -> Repository:
    """Validate that `path` is (inside) a non-bare checkout with at least one commit."""
    info = _inspect(path)
    assert info.sha is not None
    branch = _git(info.top, "symbolic-ref", "-q", "--short", "HEAD", ok=(0, 1)).out or None
    return Repository(info.top, info.git_dir, info.common_dir, info.sha, branch)


def resolve_base(repo_path: Path | str, ref: str | None = None) -> str:
    """The commit sha of `ref` (default: the current HEAD), to pin a task's base."""
    sha = _inspect(repo_path, ref if ref is not None else "HEAD").sha
    assert sha is not None
    return sha


def _within(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def worktree_root(repo_path: Path | str, root: Path | str = DEFAULT_ROOT) -> Path:
    """``<root>/<repo-name>-<hash of the repo's path>``: one directory per repository.

    The hash keeps two checkouts with the same name apart. The root must be outside the
    repository's work tree (worktrees nested in it would show up as untracked files).
    """
    top = _inspect(repo_path, rev=None).top.resolve()
    base = Path(root).expanduser().resolve()
    if _within(base, top):
        raise GitError(
            f"worktree root {base} is inside the repository {top}; "
            f"choose a root outside it (default {DEFAULT_ROOT})"
        )
    name = _UNSAFE_NAME_CHARS.sub("-", top.name) or "repo"
    digest = hashlib.sha256(os.fsencode(top)).hexdigest()[:10]
    return base / f"{name}-{digest}"


@contextlib.contextmanager
def _repo_lock(common_dir: Path) -> Iterator[None]:
    # flock, not fcntl record locks: it excludes other open file descriptions in this process
    # too, so it serializes threads as well as processes. os.open's fd is not inherited by
    # the git children, so a hook's stray daemon cannot keep the lock held.
    lock_path = common_dir / LOCK_NAME
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise GitError(f"cannot open the lock file {lock_path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


# --- worktrees -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _BranchState:
    sha: str
    worktree: Path | None  # where it is checked out, if anywhere


def _branch_states(top: Path, branches: Iterable[str]) -> dict[str, _BranchState]:
    refs = [f"refs/heads/{branch}" for branch in branches]
    if not refs:
        return {}
    result = _git(
        top, "for-each-ref", "--format=%(refname)%00%(objectname)%00%(worktreepath)", *refs
    )
    states = {}
    for line in result.out.splitlines():
        refname, sha, where = line.split("\0", 2)
        worktree = Path(os.path.realpath(where)) if where else None
        states[refname.removeprefix("refs/heads/")] = _BranchState(sha, worktree)
    return states


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
    created by this call) and raises `GitError` with git's message.
    """
    check_branch(branch)
    info = _inspect(repo_path, _check_rev(base, "base"))
    assert info.sha is not None
    target = Path(path).expanduser().resolve()
    top = info.top.resolve()
    if _within(target, top):
        raise GitError(
            f"worktree path {target} is inside the repository {top}; use a worktree root outside it"
        )
    with _repo_lock(info.common_dir):
        state = _branch_states(info.top, [branch]).get(branch)
        if state is not None and state.worktree is not None:
            if state.worktree == target and (target / ".git").is_file():
                if not _half_made(target):
                    return Worktree(target, branch, state.sha, created=False)
                twice_forced = ["--force", "--force"]  # git's "initializing" lock needs two
                _git(info.top, "worktree", "remove", *twice_forced, str(target), ok=_ANY_STATUS)
                shutil.rmtree(target, ignore_errors=True)
            elif state.worktree != target and state.worktree.exists():
                raise GitError(
                    f"branch {branch} is already checked out in {state.worktree}; "
                    "remove that worktree first or use it"
                )
            # Its worktree was deleted by hand (or half made): forget it, then make a new one.
            _git(info.top, "worktree", "prune")
        return _add_worktree(info.top, target, branch, info.sha, state)


def _add_worktree(
    top: Path, target: Path, branch: str, base_sha: str, state: _BranchState | None
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
    result = _git(top, *args, ok=_ANY_STATUS)
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
    _git(top, "worktree", "prune", ok=_ANY_STATUS)
    if state is None:
        # Conditional on the sha we created it at, so a branch someone else moved survives.
        _git(top, "update-ref", "-d", f"refs/heads/{branch}", base_sha, ok=_ANY_STATUS)
    raise GitError(f"could not create worktree {target} on {branch}: {result.message()}")


def head(path: Path | str) -> str:
    """The commit checked out in a worktree."""
    return _git(_existing_dir(path), "rev-parse", "--verify", "HEAD").out


def _existing_dir(path: Path | str) -> Path:
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_dir():
        raise GitError(f"worktree {resolved} does not exist")
    return resolved


@dataclasses.dataclass(frozen=True)
class _Status:
    detached: bool
    entries: tuple[str, ...]  # changed and untracked (not ignored) paths


def _status(path: Path) -> _Status:
    out = _git(path, "status", "--porcelain=v2", "--branch", "--untracked-files=normal").out
    detached = False
    entries = []
    for line in out.splitlines():
        if line.startswith("# branch.head "):
            detached = line == "# branch.head (detached)"
        elif line.startswith("? "):
            entries.append(line[2:])
        elif line[:2] in ("1 ", "2 ", "u "):
            # The path is the last of a fixed number of fields (renames add "\t<old path>").
            fields = {"1": 8, "2": 9, "u": 10}[line[0]]
            entries.append(line.split(" ", fields)[fields].split("\t")[0])
    return _Status(detached, tuple(entries))


def _refuse_detached(path: Path, status: _Status) -> None:
    if status.detached:
        raise GitError(
            f"worktree {path} is on a detached HEAD, so its commits may be on no branch; "
            "check its branch out again, or pass --force"
        )


def _identity_args(cwd: Path) -> list[str]:
    # The user's identity when configured; the fixed one only for what is missing, so a
    # dispatcher on a fresh machine (or a CI box) can still commit.
    out = _git(cwd, "config", "--get-regexp", r"^user\.(name|email)$", ok=(0, 1)).out
    configured = {line.split(" ", 1)[0].lower() for line in out.splitlines()}
    args = []
    if "user.name" not in configured:
        args += ["-c", f"user.name={FALLBACK_NAME}"]
    if "user.email" not in configured:
        args += ["-c", f"user.email={FALLBACK_EMAIL}"]
    return args


def commit_all(path: Path | str, message: str) -> str | None:
    """Commit everything the worker left in the worktree to its branch; None if nothing.

    Modified, new (untracked but not ignored) and deleted files are all staged with
    ``git add -A``. Commit hooks are skipped (``--no-verify``): this commit exists so that no
    work is lost, and a failing lint hook must not stand in its way. A merge in progress is
    concluded even with unresolved conflicts: the files are committed with their conflict
    markers (both parents recorded), so nothing is lost and the next run can resolve them.
    """
    if not message.strip():
        raise GitError("a commit message is required")
    cwd = _existing_dir(path)
    git_dir, ref = _git(
        cwd, "rev-parse", "--absolute-git-dir", "--symbolic-full-name", "HEAD"
    ).out.splitlines()
    if ref == "HEAD":
        raise GitError(
            f"worktree {cwd} is on a detached HEAD, so a commit would be on no branch; "
            "check its branch out again (its changes are still in the worktree)"
        )
    identity = _identity_args(cwd)
    _git(cwd, "add", "-A")
    staged = _git(cwd, "diff", "--cached", "--quiet", ok=(0, 1)).status == 1
    if not staged and not (Path(git_dir) / "MERGE_HEAD").exists():
        return None
    _git(cwd, *identity, "commit", "--no-verify", "-q", "-m", message)
    return head(cwd)


def merge_branches(
    path: Path | str, branches: Sequence[str], message_for: Callable[[str], str]
) -> list[MergeOutcome]:
    """Merge each branch, in order, into the worktree's branch with ``--no-ff``.

    The worktree must be clean (call `commit_all` first). A branch already contained in HEAD
    is `up_to_date`. On a conflict the merge is committed anyway: every file is staged with
    its conflict markers and the merge commit records both parents; the outcome lists the
    conflicted files. We do this because the agent that integrates runs in a sandbox that
    cannot write the repository's git metadata, so it could neither finish nor abort a
    pending merge; it can only edit files, and its prompt tells it which ones hold markers.
    The next branch is then merged on top. Commit hooks are skipped, as in `commit_all`.
    """
    cwd = _existing_dir(path)
    for branch in branches:
        check_branch(branch)
    if not branches:
        return []
    status = _status(cwd)
    _refuse_detached(cwd, status)
    if status.entries:
        raise WorktreeDirty(cwd, status.entries)
    missing = sorted(set(branches) - _branch_states(cwd, branches).keys())
    if missing:
        raise GitError(f"cannot merge into {cwd}: no branch named {', '.join(missing)}")
    identity = _identity_args(cwd)
    outcomes = []
    for branch in branches:
        ref = f"refs/heads/{branch}"
        if _git(cwd, "merge-base", "--is-ancestor", ref, "HEAD", ok=(0, 1)).status == 0:
            outcomes.append(MergeOutcome(branch, MergeStatus.UP_TO_DATE))
            continue
        message = message_for(branch)
        merge_args = ["merge", "--no-ff", "--no-verify", "--no-edit", "-m", message, ref]
        merge = _git(cwd, *identity, *merge_args, ok=(0, 1))
        if merge.status == 0:
            outcomes.append(MergeOutcome(branch, MergeStatus.MERGED, head(cwd)))
            pause.point("dispatcher.merging")
            continue
        conflicts = tuple(
            name
            for name in _git(cwd, "diff", "--name-only", "-z", "--diff-filter=U").out.split("\0")
            if name
        )
        if not conflicts:
            _git(cwd, "merge", "--abort", ok=_ANY_STATUS)
            raise GitError(f"merging {branch} into {cwd} failed: {merge.message()}")
        _git(cwd, "add", "-A")
        listing = "".join(f"\n\t{name}" for name in conflicts)
        note = f"\n\nCommitted with conflict markers, to be resolved in this worktree:{listing}"
        _git(cwd, *identity, "commit", "--no-verify", "-q", "-m", message + note)
        outcomes.append(MergeOutcome(branch, MergeStatus.CONFLICTED, head(cwd), conflicts))
    return outcomes


# --- removal and garbage collection ------------------------------------------------------


def _remove(top: Path, target: Path, force: bool) -> bool:
    if not os.path.lexists(target):
        _git(top, "worktree", "prune")
        return False
    if not force and (target / ".git").is_file():
        status = _status(target)
        if status.entries:
            raise WorktreeDirty(target, status.entries)
        _refuse_detached(target, status)
    # git checks cleanliness again itself (no --force), which also covers a race with a
    # worker that wrote after our check. Ignored files go with the worktree, as in git.
    force_args = ["--force"] if force else []
    result = _git(top, "worktree", "remove", *force_args, os.fspath(target), ok=_ANY_STATUS)
    if result.status != 0:
        raise GitError(f"could not remove worktree {target}: {result.message()}")
    return True


def remove_worktree(repo_path: Path | str, path: Path | str, *, force: bool = False) -> bool:
    """Remove a task's worktree (its branch stays). True if removed, False if already gone.

    A worktree with uncommitted changes or untracked files raises `WorktreeDirty`, and one on
    a detached HEAD (whose commits may be on no branch) raises `GitError`, unless `force`
    (which discards them). A worktree locked with ``git worktree lock`` is refused.
    """
    info = _inspect(repo_path, rev=None)
    with _repo_lock(info.common_dir):
        return _remove(info.top, Path(path).expanduser().resolve(), force)


def _into_name(top: Path, merged_into: str | None) -> str:
    if merged_into is not None:
        return merged_into
    return _git(top, "symbolic-ref", "-q", "--short", "HEAD", ok=(0, 1)).out or "HEAD"


def _delete_branch(top: Path, branch: str, force: bool, merged_into: str | None) -> bool:
    check_branch(branch)
    state = _branch_states(top, [branch]).get(branch)
    if state is None:
        return False
    if state.worktree is not None:
        raise GitError(
            f"branch {branch} is checked out in {state.worktree}; remove that worktree first"
        )
    if not force and not _is_ancestor(top, state.sha, merged_into or "HEAD"):
        raise BranchNotMerged(branch, _into_name(top, merged_into))
    # Conditional on the sha we checked, so commits added meanwhile are never deleted.
    _git(top, "update-ref", "-d", f"refs/heads/{branch}", state.sha)
    return True


def _is_ancestor(top: Path, commit: str, into: str) -> bool:
    result = _git(top, "merge-base", "--is-ancestor", commit, _check_rev(into), ok=_ANY_STATUS)
    if result.status not in (0, 1):
        raise GitError(f"cannot tell whether {commit} is merged into {into}: {result.message()}")
    return result.status == 0


def branch_is_merged(repo_path: Path | str, branch: str, into: str | None = None) -> bool:
    """Whether `branch`'s tip is contained in `into` (default: the repository's HEAD)."""
    top = _inspect(repo_path, rev=None).top
    return _is_ancestor(top, f"refs/heads/{check_branch(branch)}", into or "HEAD")


def delete_branch(
    repo_path: Path | str, branch: str, *, force: bool = False, merged_into: str | None = None
) -> bool:
    """Delete `branch` if it is merged into HEAD (or `merged_into`); False if it is absent.

    An unmerged branch raises `BranchNotMerged` unless `force`; a branch checked out in a
    worktree is always refused.
    """
    info = _inspect(repo_path, rev=None)
    with _repo_lock(info.common_dir):
        return _delete_branch(info.top, branch, force, merged_into)


def gc(
    repo_path: Path | str,
    worktrees: Iterable[tuple[Path | str, str]],
    *,
    force: bool = False,
    merged_into: str | None = None,
) -> GcReport:
    """Remove the given (worktree, branch) pairs where nothing can be lost.

    A worktree goes when it is clean (all its content is on its branch); a dirty one is kept
    with its branch. Then its branch goes when merged into HEAD (or `merged_into`). `force`
    removes dirty worktrees and unmerged branches too. Failures of one pair are reported in
    `problems` and do not stop the others. ``git worktree prune`` always runs at the end.
    """
    info = _inspect(repo_path, rev=None)
    removed: list[Path] = []
    kept: list[Path] = []
    deleted: list[str] = []
    kept_branches: list[str] = []
    problems: list[str] = []
    pairs = [(Path(path).expanduser().resolve(), branch) for path, branch in worktrees]
    with _repo_lock(info.common_dir):
        # One look at the refs for all pairs: what an earlier gc already collected (no
        # directory, no branch) costs nothing, however long the board's history grows.
        existing = _branch_states(info.top, {branch for _, branch in pairs})
        for target, branch in pairs:
            if branch not in existing and not os.path.lexists(target):
                continue
            try:
                if os.path.lexists(target) and _remove(info.top, target, force):
                    removed.append(target)
            except GitError as exc:
                kept.append(target)
                kept_branches.append(branch)
                if not isinstance(exc, WorktreeDirty):
                    problems.append(str(exc))
                continue
            if branch not in existing:
                continue
            try:
                if _delete_branch(info.top, branch, force, merged_into):
                    deleted.append(branch)
            except GitError as exc:
                kept_branches.append(branch)
                if not isinstance(exc, BranchNotMerged):
                    problems.append(str(exc))
        _git(info.top, "worktree", "prune")
    return GcReport(
        tuple(removed), tuple(kept), tuple(deleted), tuple(kept_branches), tuple(problems)
    )


# --- reports -----------------------------------------------------------------------------


def diff_stat(repo_path: Path | str, base: str, branch: str) -> str:
    """``git diff --stat`` of what `branch` changed since it left `base`."""
    ref = f"refs/heads/{check_branch(branch)}"
    return _git(Path(repo_path), "diff", "--stat", "--no-color", f"{_check_rev(base)}...{ref}").out


def changed_files(repo_path: Path | str, base: str, branch: str) -> tuple[str, ...]:
    """The files `branch` changed since it left `base`."""
    ref = f"refs/heads/{check_branch(branch)}"
    out = _git(Path(repo_path), "diff", "--name-only", "-z", f"{_check_rev(base)}...{ref}").out
    return tuple(name for name in out.split("\0") if name)
