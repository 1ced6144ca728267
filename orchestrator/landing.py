"""Landing: done tasks' branches into their base branch, through a verified merge queue.

`land` takes done tasks in dependency order. For each, it merges the task's branch onto the
base branch as it is now (`merge` and `squash` with ``git merge-tree``, touching no checkout;
`rebase` in a scratch worktree of kanban's, detached so it holds no branch), runs the
repository's check on the result in that scratch worktree when one is configured, and only
when that passes moves the base branch: a compare-and-swap
on the ref (``git update-ref NEW OLD``), so an update made meanwhile by the user or another
lander is never lost; the step is then merged again on the new base. A conflict or a failed
check moves nothing: the task is reopened with the conflict or the check's output in its next
prompt (or left done with `reopen=False`), and the queue goes on with the tasks that do not
depend on it.

The user's checkout is never disturbed: a base branch checked out in a worktree is moved
only there, by a fast-forward (``git merge --ff-only``) in that worktree, and only when it has
no local changes to tracked files; otherwise nothing moves and the result says what to do.
No ref's history is ever rewritten.

A task whose repository is a remote (`remotes`) lands from this host's clone of it: fetched
first (and again after every race), its branch taken where its work is newest (pushed by
whichever host ran it), merged onto the remote's base branch as fetched, and the result
pushed there with a compare-and-swap (``--force-with-lease=<base>:<the sha it was merged
onto>``): a base someone pushed to meanwhile is fetched and merged again, never overwritten.

Blocking throughout (git and the check): call it from a thread or a command.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import sqlite_utils

from board import errors, identity, records, tasks, views
from orchestrator import (
    checking,
    config,
    git,
    ports,
    preparing,
    processes,
    remotes,
    workspace,
    worktrees,
)
from worker import env, pause

MAX_RACES = 5  # the base moved under a step this many times in a row: give up on it


class Strategy(enum.StrEnum):
    MERGE = "merge"
    SQUASH = "squash"
    REBASE = "rebase"


class Status(enum.StrEnum):
    LANDED = "landed"
    ALREADY = "already_landed"
    CONFLICT = "conflict"
    CHECK_FAILED = "check_failed"
    SKIPPED = "skipped"  # not landable (not done, no branch...), or a blocker did not land
    REFUSED = "refused"  # landing would disturb the user's checkout, or the base kept moving


@dataclasses.dataclass(frozen=True)
class Result:
    task: str
    status: Status
    detail: str
    sha: str | None = None  # the base branch's new tip
    into: str | None = None  # the branch it landed into (or was to)
    reopened: bool = False
    check: records.CheckResult | None = None

    @property
    def ok(self) -> bool:
        return self.status in (Status.LANDED, Status.ALREADY)

    def to_json(self) -> dict[str, object]:
        data = dataclasses.asdict(self)
        data["status"] = str(self.status)
        return data


@dataclasses.dataclass(frozen=True)
class Options:
    strategy: Strategy = Strategy.MERGE
    check: bool = True  # run the repository's check on the merged result, if it has one
    reopen: bool = True  # a conflict or a failed check sends the task back to its agent
    into: str | None = None  # the branch to land into, instead of each task's base branch


class _Race(Exception):
    """The base branch moved between reading it and moving it."""


@dataclasses.dataclass(frozen=True)
class _Repo:
    """Where a task lands from: its checkout, or this host's clone of its remote."""

    path: Path
    url: str | None = None  # the remote, when the task's repository is one

    def fetch(self) -> None:
        if self.url is not None:
            remotes.fetch(self.path)

    def tip(self, branch: str) -> str | None:
        """A task's branch: its commit here, or, for a remote, where its work is newest
        (this host's branch or the one pushed)."""
        if self.url is None:
            state = git.branch_states(self.path, [branch]).get(branch)
            return None if state is None else state.sha
        return remotes.freshest(self.path, branch)

    def base(self, branch: str) -> str | None:
        """The branch a task lands into: here, or the remote's as last fetched."""
        if self.url is None:
            return self.tip(branch)
        return remotes.pushed(self.path, branch)


def _repo_of(task: records.Task, clones_root: Path | None) -> _Repo:
    assert task.repo
    url = remotes.url_of(task.repo)
    if url is None:
        return _Repo(Path(task.repo))
    # Read only for a remote: a board of local checkouts lands as it did, whatever the file.
    root = config.load().clones_root if clones_root is None else clones_root
    return _Repo(remotes.ensure_clone(url, root), url)


@dataclasses.dataclass(frozen=True)
class Compared:
    """What `kanban diff` shows: in `repo`, the changes of `branch` since it forked from `base`
    (both revisions there)."""

    repo: Path
    base: str
    branch: str
    base_name: str  # the base as the user knows it: a branch's name, or a commit


def compared(
    task: records.Task, *, into: str | None = None, clones_root: Path | None = None
) -> Compared:
    """What `task` would land: its branch against `into`, else its base branch, else the
    commit it started from, as they are now.

    For a remote, in this host's clone of it (cloned if this host has none), fetched first:
    the task's branch where its work is newest (pushed, or only on this host: what `land`
    would take) against the remote's base branch.
    """
    assert task.repo and task.branch
    base = into or task.base_branch or task.base_ref
    if base is None:
        raise errors.InvalidInput(f"{task.label} has no base to compare with: use --into BRANCH")
    git.check_rev(base)
    repo = _repo_of(task, clones_root)
    if repo.url is None:
        return Compared(git.open_repo(repo.path).path, base, task.branch, base)
    repo.fetch()
    branch = repo.tip(task.branch)
    if branch is None:
        raise errors.InvalidInput(
            f"{task.label}: its branch {task.branch} is neither on {repo.url} nor in this "
            f"host's clone: it never ran, or the host that ran it could not push it (`kanban "
            f"show {task.label}` says why)"
        )
    named = into or task.base_branch
    if named is None:
        return Compared(repo.path, base, branch, base)
    start = repo.base(named)
    if start is None:
        raise errors.InvalidInput(
            f"{repo.url} has no branch {named} to compare with: name another with --into BRANCH"
        )
    return Compared(repo.path, start, branch, named)


def push_branch(task: records.Task, *, clones_root: Path | None = None) -> Path:
    """A remote task's branch on its remote (for a pull request): this host's clone of it
    (cloned if this host has none), fetched, after pushing this host's branch when it holds
    work the remote lacks; returns the clone. Raises `errors.KanbanError` when the branch is
    on neither, when the two diverged, or when the push fails."""
    assert task.repo and task.branch
    repo = _repo_of(task, clones_root)
    assert repo.url is not None
    repo.fetch()
    refs = remotes.tips(repo.path, [task.branch]).get(task.branch)
    if not refs:
        raise errors.InvalidInput(
            f"its branch {task.branch} is neither on {repo.url} nor in this host's clone"
        )
    if len(refs) > 1:
        raise errors.InvalidInput(
            f"its branch {task.branch} here and the one on {repo.url} have diverged (a push "
            "that failed, then a run on another host): `kanban reopen` it, and its next run "
            "merges the two"
        )
    if remotes.pushed(repo.path, task.branch) != repo.tip(task.branch):
        remotes.push(repo.path, task.branch)  # this host holds work the remote lacks
    return repo.path


def order(db: sqlite_utils.Database, task_ids: Sequence[int]) -> list[records.Task]:
    """The tasks, each after those of them it depends on (then by id)."""
    chosen = {task_id: tasks.get(db, task_id) for task_id in dict.fromkeys(task_ids)}
    edges = [
        {"blocker_id": blocker.id, "blocked_id": task_id}
        for task_id in chosen
        for blocker in views.blockers_of(db, task_id)
    ]
    return views.in_dependency_order(list(chosen.values()), edges)


def land(
    db: sqlite_utils.Database,
    task_ids: Sequence[int],
    *,
    options: Options,
    worktree_root: Path,
    say: Callable[[str], None] = lambda _: None,
    clones_root: Path | None = None,
) -> list[Result]:
    """Land the done tasks `task_ids` in dependency order; one result per task.

    `clones_root`: where this host keeps its clones of remote repositories (default: the
    settings' `clones_root`).
    """
    results: list[Result] = []
    failed: set[int] = set()
    scratches: dict[Path, Path] = {}  # a repository's landing worktree, made or found once
    for task in order(db, task_ids):
        try:
            result = _land_one(
                db,
                task,
                options=options,
                failed=failed,
                worktree_root=worktree_root,
                clones_root=clones_root,
                cache=scratches,
            )
        except errors.KanbanError as exc:  # a broken repository, a full disk: this task only
            result = Result(task.label, Status.REFUSED, str(exc))
        if not result.ok:
            failed.add(task.id)
        results.append(result)
        say(f"{result.task}: {result.status}: {result.detail}")
    return results


def _land_one(
    db: sqlite_utils.Database,
    task: records.Task,
    *,
    options: Options,
    failed: set[int],
    worktree_root: Path,
    clones_root: Path | None,
    cache: dict[Path, Path],
) -> Result:
    label = task.label
    if task.landed_sha:
        return Result(label, Status.ALREADY, f"landed in {task.landed_sha[:12]}", task.landed_sha)
    into = options.into or task.base_branch
    problem = _not_landable(db, task, into, failed)
    if problem:
        return Result(label, Status.SKIPPED, problem)
    assert task.repo and task.branch and into
    repo = _repo_of(task, clones_root)
    scratch = _scratch(repo.path, worktree_root, identity.board_id(db), cache)
    # One lander at a time in a scratch worktree (another `kanban land` waits its turn).
    with processes.exclusive(scratch.with_name(f"{scratch.name}.lock")):
        return _queue_step(db, task, into, repo=repo, scratch=scratch, options=options)


def _queue_step(
    db: sqlite_utils.Database,
    task: records.Task,
    into: str,
    *,
    repo: _Repo,
    scratch: Path,
    options: Options,
) -> Result:
    """Land `task` on `into`, merging again while the base moves under it."""
    label = task.label
    task = tasks.get(db, task.id)  # as it is now that this lander has the scratch worktree
    if task.landed_sha:
        return Result(label, Status.ALREADY, f"landed in {task.landed_sha[:12]}", task.landed_sha)
    if task.status != "done":
        return Result(label, Status.SKIPPED, f"it is {task.status}: only done tasks land")
    for _ in range(MAX_RACES):
        repo.fetch()
        base = repo.base(into)
        if base is None:
            return Result(
                label,
                Status.SKIPPED,
                f"there is no branch {into} to land into (deleted, or a typo in --into)",
            )
        try:
            return _attempt(db, task, into, base, repo=repo, scratch=scratch, options=options)
        except _Race:
            continue
        except CheckoutBusy as exc:
            return Result(label, Status.REFUSED, str(exc))
    return Result(
        label,
        Status.REFUSED,
        f"{into} moved {MAX_RACES} times while landing {label}: run kanban land again",
    )


def _not_landable(
    db: sqlite_utils.Database, task: records.Task, into: str | None, failed: set[int]
) -> str | None:
    if task.status != "done":
        return f"it is {task.status}: only done tasks land"
    if not task.repo or not task.branch:
        return "it has no repository or branch: nothing to land"
    if task.parent_id is not None and task.base_branch is None:
        parent = tasks.get(db, task.parent_id)
        return f"it is a subtask: its work lands with its parent {parent.label}"
    if into is None:
        return "its base is not a branch (a commit, a tag or a detached HEAD): use --into BRANCH"
    for blocker in views.blockers_of(db, task.id):
        if blocker.repo != task.repo:
            continue
        if blocker.id in failed:
            return f"its blocker {blocker.label} did not land"
        if blocker.status == "cancelled":
            return (
                f"its blocker {blocker.label} is cancelled, and only done tasks land: unlink it "
                f"(kanban unlink {blocker.label} {task.label}) if this work stands without it"
            )
        if not blocker.landed_sha:
            return f"its blocker {blocker.label} has not landed: land it first (or with it)"
    return None


def _attempt(
    db: sqlite_utils.Database,
    task: records.Task,
    into: str,
    base_sha: str,
    *,
    repo: _Repo,
    scratch: Path,
    options: Options,
) -> Result:
    """One try at landing `task` on `into` at `base_sha`; raises _Race if `into` moved."""
    label = task.label
    assert task.repo and task.branch
    branch_sha = repo.tip(task.branch)
    if branch_sha is None:
        return Result(
            label,
            Status.SKIPPED,
            f"its branch {task.branch} is gone (deleted by `kanban gc --force`?): nothing to land",
        )
    if _is_ancestor(repo.path, branch_sha, base_sha):
        tasks.record_landed(db, task.id, sha=base_sha, source=branch_sha, data={"into": into})
        _land_subtasks(db, task, base_sha, repo)
        return Result(label, Status.ALREADY, f"its work is already in {into}", base_sha, into)
    landed = [
        b.landed_from
        for b in views.blockers_of(db, task.id)
        if b.repo == task.repo and b.landed_from
    ]
    merged = _merge(scratch, task, into, branch_sha, options.strategy, base=base_sha, landed=landed)
    if isinstance(merged, list):  # conflicted files
        detail = f"conflicts with {into} in {', '.join(merged)}"
        reopened = options.reopen and _reopen(
            db,
            task,
            f"Landing into {into} conflicted in {', '.join(merged)}: {into} has changed since "
            f"this task started. kanban has merged {into} into your branch; resolve the "
            "conflicts (keep both sides' intent), then complete.",
            catch_up=base_sha,
        )
        return Result(label, Status.CONFLICT, detail, into=into, reopened=reopened)
    check = None
    if options.check:
        found = checking.config_for(str(repo.path), base_sha, task.workspace)
        if found.check is not None:
            try:
                git.run(scratch, "checkout", "-q", "--detach", "--force", merged)
                check = _run_check(found, scratch, task, repo.path)
                git.run(scratch, "clean", "-q", "-fd")  # what the check left (not ignored)
            except (preparing.SetupFailed, ports.NoFreePorts) as exc:
                return Result(
                    label,
                    Status.REFUSED,
                    f"kanban's landing worktree {scratch} could not be prepared for the check "
                    f"({exc}); fix the repository's setup, or land with --no-check",
                    into=into,
                )
            if not check.passed:
                detail = f"the check {check.command} {check.detail} on the merged result"
                reopened = options.reopen and _reopen(
                    db,
                    task,
                    f"Landing into {into}: {detail}. Its output ended with:\n{check.output}\n"
                    "Make it pass.",
                    catch_up=base_sha,
                )
                return Result(
                    label, Status.CHECK_FAILED, detail, into=into, reopened=reopened, check=check
                )
    pause.point("land.merged")
    now = tasks.get(db, task.id)
    if now.status != "done":  # reopened (or cancelled) while it was merged and checked
        return Result(label, Status.SKIPPED, f"it became {now.status} while it was being landed")
    if repo.url is not None:
        if not remotes.push_onto(repo.path, into, new=merged, expected=base_sha):
            raise _Race
    else:
        _move(repo.path, into, old=base_sha, new=merged)
    tasks.record_landed(
        db,
        task.id,
        sha=merged,
        source=branch_sha,
        data={"into": into, "strategy": options.strategy},
    )
    _land_subtasks(db, task, merged, repo)
    return Result(label, Status.LANDED, f"{into} is now {merged[:12]}", merged, into, check=check)


def _land_subtasks(db: sqlite_utils.Database, task: records.Task, sha: str, repo: _Repo) -> None:
    """Its done subtasks' work landed with it (their branches were merged into its own)."""
    mine = repo.tip(task.branch) if task.branch else None
    if mine is None:
        return
    for child in views.children(db, task.id):
        if child.status != "done" or child.landed_sha or not child.branch:
            continue
        theirs = repo.tip(child.branch)
        if theirs is not None and _is_ancestor(repo.path, theirs, mine):
            tasks.record_landed(
                db, child.id, sha=sha, source=theirs, data={"with_parent": task.label}
            )
            _land_subtasks(db, child, sha, repo)


def _merge(
    scratch: Path,
    task: records.Task,
    into: str,
    branch_sha: str,
    strategy: Strategy,
    *,
    base: str,
    landed: Sequence[str],
) -> str | list[str]:
    """Put the task's branch onto `base`; the new commit (not yet on any branch), or the
    conflicting files.

    `landed`: what its blockers' branches were when they landed. A blocker landed squashed or
    rebased left its own commits out of the base, though the task's branch holds them: git
    would merge them again and conflict with their squashed copy. So the merge is computed on
    top of a stand-in commit that has them as parents with the base's tree: only the task's
    own changes are merged. The commit that lands has the base as its first parent (and, for
    `merge`, the task's branch as its second), never the stand-in.

    `merge` and `squash` are computed by ``git merge-tree`` without touching any worktree;
    `rebase` replays commits in the scratch worktree.
    """
    who = git.identity_args(scratch)
    stand_in = base
    missing = [sha for sha in landed if not _is_ancestor(scratch, sha, base)]
    if missing:
        parents = [arg for sha in (base, *missing) for arg in ("-p", sha)]
        stand_in = git.run(
            scratch, *who, "commit-tree", f"{base}^{{tree}}", *parents, "-m", "kanban: landed"
        ).out.strip()
    if strategy is Strategy.REBASE:
        git.run(scratch, "checkout", "-q", "--detach", "--force", stand_in)
        replayed = _rebase(scratch, who, stand_in, branch_sha, onto=base)
        if not isinstance(replayed, list) or not _has_merges(scratch, stand_in, branch_sha):
            return replayed
        # Its branch merged the base (a landing conflict its agent resolved): replaying its
        # commits would meet the same conflict again. Its merged result lands as one commit.
        strategy = Strategy.SQUASH
    result = git.run(
        scratch,
        "merge-tree",
        "--write-tree",
        "--name-only",
        "--no-messages",
        stand_in,
        branch_sha,
        ok=git.ANY_STATUS,
    )
    lines = result.out.splitlines()
    if result.status == 1 and lines:
        return sorted(dict.fromkeys(line for line in lines[1:] if line))
    if result.status != 0 or not lines:
        raise git.GitError(f"merging {task.branch} into {into} failed: {result.message()}")
    parents = ["-p", base] + (["-p", branch_sha] if strategy is Strategy.MERGE else [])
    message = _message(task, into)
    return git.run(scratch, *who, "commit-tree", lines[0], *parents, "-m", message).out.strip()


def _rebase(
    scratch: Path, who: list[str], upstream: str, branch_sha: str, *, onto: str
) -> str | list[str]:
    """The task's own commits (those not in `upstream`) replayed on `onto`; merges dropped."""
    git.run(scratch, "checkout", "-q", "--detach", branch_sha)
    result = git.run(
        scratch, *who, "rebase", "-q", "--no-verify", "--onto", onto, upstream, ok=git.ANY_STATUS
    )
    if result.status == 0:
        return git.head(scratch)
    files = _conflicted(scratch)
    git.run(scratch, "rebase", "--abort", ok=git.ANY_STATUS)
    if not files:
        raise git.GitError(f"rebasing onto {onto} failed: {result.message()}")
    return files


def _has_merges(scratch: Path, upstream: str, branch_sha: str) -> bool:
    return bool(git.run(scratch, "rev-list", "--merges", f"{upstream}..{branch_sha}").out.strip())


def _message(task: records.Task, into: str) -> str:
    subject = " ".join(task.title.split())
    if len(subject) > 72:
        subject = subject[:69] + "..."
    body = (task.summary or "").strip()
    trailer = f"Kanban-Task: {task.label}\nKanban-Landed-Into: {into}"
    return f"{subject}\n\n{body}\n\n{trailer}" if body else f"{subject}\n\n{trailer}"


def _conflicted(scratch: Path) -> list[str]:
    out = git.run(scratch, "diff", "--name-only", "-z", "--diff-filter=U", ok=git.ANY_STATUS).out
    return sorted(name for name in out.split("\0") if name)


def _run_check(
    config: workspace.RepoConfig, scratch: Path, task: records.Task, checkout: Path
) -> records.CheckResult:
    """The check on the merged result, in the scratch worktree, set up once like a task's,
    with ports of its own when the repository asks for them."""
    assert config.check is not None and task.repo
    environ = env.for_check(dict(os.environ), task=task.label, workspace=str(scratch), branch=None)
    environ.update(config.workspace.env)
    hold = ports.reserve(config.workspace.ports) if config.workspace.ports else ports.NONE
    try:
        environ.update(hold.env)
        return _prepared_check(config, scratch, task, environ, checkout)
    finally:
        hold.release()


def _prepared_check(
    config: workspace.RepoConfig,
    scratch: Path,
    task: records.Task,
    environ: dict[str, str],
    checkout: Path,
) -> records.CheckResult:
    assert config.check is not None and task.repo
    state = scratch.with_name(f"{scratch.name}.state")
    state.mkdir(exist_ok=True)
    log = state / "check.log"
    log.write_bytes(b"")
    if preparing.needed(state, created=False):
        preparing.prepare(
            config.workspace,
            checkout=checkout,
            worktree=scratch,
            environ=environ,
            log_path=log,
            private_dir=state,
            scope_path=None,
        )
    return checking.run(config.check, worktree=scratch, environ=environ, log_path=log)


def _reopen(db: sqlite_utils.Database, task: records.Task, comment: str, *, catch_up: str) -> bool:
    tasks.reopen(db, task.id, comment, kind="landing failed", catch_up=catch_up)
    return True


def _is_ancestor(repo: Path, commit: str, of: str) -> bool:
    return git.run(repo, "merge-base", "--is-ancestor", commit, of, ok=(0, 1)).status == 0


def _move(repo: Path, branch: str, *, old: str, new: str) -> None:
    """Move `branch` from `old` to `new` (a descendant), or raise _Race if it is not at `old`.

    Where the branch is checked out, the checkout moves with it (a fast-forward there), and
    only if it has no local changes to tracked files.
    """
    state = git.branch_states(repo, [branch]).get(branch)
    if state is None or state.sha != old:
        raise _Race
    if state.worktree is None:
        result = git.run(
            repo,
            "update-ref",
            "-m",
            "kanban land",
            f"refs/heads/{branch}",
            new,
            old,
            ok=(0, 1, 128),
        )
        if result.status != 0:
            raise _Race
        return
    checkout = state.worktree
    changed = git.run(checkout, "status", "--porcelain", "--untracked-files=no").out
    if changed.strip():
        raise CheckoutBusy(branch, checkout, changed)
    result = git.run(checkout, "merge", "-q", "--ff-only", new, ok=git.ANY_STATUS)
    if result.status != 0:
        if git.head(checkout) != old:
            raise _Race
        raise CheckoutBusy(branch, checkout, result.message())


class CheckoutBusy(errors.KanbanError):
    """The base branch is checked out with local changes: moving it could lose them."""

    def __init__(self, branch: str, checkout: Path, detail: str) -> None:
        self.branch = branch
        super().__init__(
            f"{branch} is checked out in {checkout} with local changes, and landing moves "
            f"that checkout: commit or stash them there, then run kanban land again (nothing "
            f"was changed). Git said: {' '.join(detail.split())[:300]}"
        )


def _scratch(repo: Path, root: Path, board_id: str, cache: dict[Path, Path]) -> Path:
    """A detached worktree of `repo` for landing (one per board and repository), made once."""
    if repo not in cache:
        cache[repo] = worktrees.ensure_detached(repo, root=root, board_id=board_id, name="land")
    return cache[repo]
