"""The one place kanban runs git: the runner, its environment, its errors, what a checkout is.

Every command goes through `run`, which runs ``git -C <dir> ...`` through GitPython's command
runner with the inherited ``GIT_*`` variables removed: a kanban started from a git hook
inherits ``GIT_DIR``/``GIT_INDEX_FILE``/``GIT_WORK_TREE``, and they would silently point every
command at the wrong repository. We never build a GitPython ``Repo``: its discovery reads those
same variables from ``os.environ`` with no way to turn that off, and it would cost file reads
we do not need.

Above this module: `worktrees` (a task's worktree and branch: naming, creating, committing,
removing) and `merging` (merging branches into a worktree). Everything here is synchronous;
the async dispatcher calls it through ``anyio.to_thread``.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import git

from board import errors

# Used only for the parts of the identity the user has not configured.
FALLBACK_NAME = "kanban"
FALLBACK_EMAIL = "kanban@localhost"
ANY_STATUS = tuple(range(256))

_REPO_HINT = "pass --repo a git checkout or omit it"

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


# --- errors ------------------------------------------------------------------------------


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


# --- environment and the one runner ------------------------------------------------------


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
class Result:
    status: int
    out: str
    err: str

    def message(self) -> str:
        text = (self.err or self.out).strip()
        return text.replace("\n", " / ") if text else f"exit status {self.status}"


def run(
    cwd: Path,
    *args: str,
    ok: Sequence[int] = (0,),
    environ: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> Result:
    """``git -C cwd args...``; a status outside `ok` raises `GitError` with git's message.

    `environ` adds to (or overrides in) git's environment; `timeout` kills a git that takes
    longer (one talking to a remote that does not answer).
    """
    # `-C` rather than a working directory: GitPython silently falls back to the process's
    # own cwd when the directory is missing, which could be some other repository.
    command = [_Git.GIT_PYTHON_GIT_EXECUTABLE, "-C", os.fspath(cwd), *args]
    try:
        code, out, err = _GIT.execute(
            command,
            with_extended_output=True,
            with_exceptions=False,
            env=environ,
            kill_after_timeout=timeout,
        )
    except git.exc.GitCommandNotFound as exc:
        raise GitError("git was not found; install git and make sure it is on PATH") from exc
    result = Result(code, out, err)
    if code not in ok:
        raise GitError(f"git {' '.join(args)} failed in {cwd}: {result.message()}")
    return result


def identity_args(cwd: Path) -> list[str]:
    """``-c user.name=... -c user.email=...`` for what the user has not configured, if any."""
    # The user's identity when configured; the fixed one only for what is missing, so a
    # dispatcher on a fresh machine (or a CI box) can still commit.
    out = run(cwd, "config", "--get-regexp", r"^user\.(name|email)$", ok=(0, 1)).out
    configured = {line.split(" ", 1)[0].lower() for line in out.splitlines()}
    args = []
    if "user.name" not in configured:
        args += ["-c", f"user.name={FALLBACK_NAME}"]
    if "user.email" not in configured:
        args += ["-c", f"user.email={FALLBACK_EMAIL}"]
    return args


# --- names git accepts -------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _git_accepts_branch(branch: str) -> bool:
    # A pure function of the name, so retries of the same task skip the process.
    # `-C /`: the check needs no repository, and the process's cwd may be gone.
    return run(Path(os.sep), "check-ref-format", f"refs/heads/{branch}", ok=(0, 1)).status == 0


def check_branch(branch: str) -> str:
    """Return `branch` if ``git check-ref-format`` accepts it as a branch name."""
    if not isinstance(branch, str) or not branch or branch.startswith("-"):
        raise InvalidName("branch name", str(branch), "it must not be empty or start with '-'")
    if not _git_accepts_branch(branch):
        raise InvalidName("branch name", branch, "git check-ref-format refuses it")
    return branch


def check_rev(rev: str, kind: str = "ref") -> str:
    """Return `rev` if it can be handed to git as a revision (never read as an option)."""
    # Anything starting with '-' would be read by git as an option.
    if not isinstance(rev, str) or not rev or rev.startswith("-") or any(c in rev for c in "\0\n"):
        raise InvalidName(kind, str(rev), "it must be a branch, tag or commit")
    return rev


# --- repositories ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Repository:
    """A validated checkout: its top-level directory, git dirs, and current commit."""

    path: Path
    git_dir: Path
    common_dir: Path
    head: str
    branch: str | None  # None when HEAD is detached


@dataclasses.dataclass(frozen=True)
class Inspection:
    top: Path
    git_dir: Path
    common_dir: Path
    sha: str | None  # the requested rev, resolved to a commit


def inspect(repo_path: Path | str, rev: str | None = "HEAD") -> Inspection:
    """Validate a checkout and resolve `rev` (None: resolve nothing), with one git process."""
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
        args += ["--verify", "-q", f"{check_rev(rev)}^{{commit}}"]
    result = run(path, *args, ok=ANY_STATUS)
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
    return Inspection(top, Path(lines[3]), Path(lines[2]), sha)


def open_repo(path: Path | str) -> Repository:
    """Validate that `path` is (inside) a non-bare checkout with at least one commit."""
    info = inspect(path)
    assert info.sha is not None
    branch = run(info.top, "symbolic-ref", "-q", "--short", "HEAD", ok=(0, 1)).out or None
    return Repository(info.top, info.git_dir, info.common_dir, info.sha, branch)


def resolve_base(repo_path: Path | str, ref: str | None = None) -> str:
    """The commit sha of `ref` (default: the current HEAD), to pin a task's base."""
    sha = inspect(repo_path, ref if ref is not None else "HEAD").sha
    assert sha is not None
    return sha


def base_branch(repo_path: Path | str, ref: str | None = None) -> str | None:
    """The branch a task based on `ref` lands into: `ref` itself when it names a local
    branch, else (no `ref`) the branch checked out at `repo_path`; None for a detached HEAD,
    a tag or a commit (such a task lands only with ``kanban land --into BRANCH``)."""
    repo_path = Path(repo_path)
    if ref is None:
        found = run(repo_path, "symbolic-ref", "-q", "--short", "HEAD", ok=(0, 1)).out.strip()
        return found or None
    name = ref.removeprefix("refs/heads/")
    exists = run(repo_path, "show-ref", "--verify", "-q", f"refs/heads/{name}", ok=(0, 1))
    return name if exists.status == 0 else None


# --- the state of a checkout -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BranchState:
    sha: str
    worktree: Path | None  # where it is checked out, if anywhere


def branch_states(top: Path, branches: Iterable[str]) -> dict[str, BranchState]:
    """{branch: its tip and worktree} for those of `branches` that exist, with one process."""
    refs = [f"refs/heads/{branch}" for branch in branches]
    if not refs:
        return {}
    result = run(
        top, "for-each-ref", "--format=%(refname)%00%(objectname)%00%(worktreepath)", *refs
    )
    states = {}
    for line in result.out.splitlines():
        refname, sha, where = line.split("\0", 2)
        worktree = Path(os.path.realpath(where)) if where else None
        states[refname.removeprefix("refs/heads/")] = BranchState(sha, worktree)
    return states


def head(path: Path | str) -> str:
    """The commit checked out in a worktree."""
    return run(existing_dir(path), "rev-parse", "--verify", "HEAD").out


def existing_dir(path: Path | str) -> Path:
    """`path`, resolved, if it is a directory (a worktree kanban is about to work in)."""
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_dir():
        raise GitError(f"worktree {resolved} does not exist")
    return resolved


@dataclasses.dataclass(frozen=True)
class Status:
    detached: bool
    entries: tuple[str, ...]  # changed and untracked (not ignored) paths


def status(path: Path) -> Status:
    """Whether the worktree's HEAD is detached, and every path with uncommitted changes."""
    out = run(path, "status", "--porcelain=v2", "--branch", "--untracked-files=normal").out
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
    return Status(detached, tuple(entries))


def refuse_detached(path: Path, state: Status) -> None:
    """Raise unless the worktree is on a branch: commits on a detached HEAD may be lost."""
    if state.detached:
        raise GitError(
            f"worktree {path} is on a detached HEAD, so its commits may be on no branch; "
            "check its branch out again, or pass --force"
        )
