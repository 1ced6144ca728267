"""Supervising one run: place it, start it under the shim, watch it, end it, settle it.

`Supervisor.start` handles a fresh claim; `Supervisor.adopt` takes over a run whose
dispatcher is gone. Both end in `_finish`: commit whatever the worker left in its worktree,
judge the outcome (`judge`), and settle the run in the board with the retry policy applied.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from board import (
    actors,
    connection,
    dispatchers,
    errors,
    fencing,
    ids,
    records,
    runs,
    services,
    spending,
    tasks,
    views,
)
from board.states import Outcome, Status
from orchestrator import (
    boardio,
    checking,
    config,
    git,
    merging,
    metering,
    ports,
    preparing,
    processes,
    remotes,
    retry,
    toolserver,
    workspace,
    worktrees,
)
from orchestrator.workspace import RepoConfig
from worker import conflicts as worker_conflicts
from worker import env, pause, prompt, runtimes, scope
from worker.runtimes import base

LOG_TAIL_BYTES = 8192
log = logging.getLogger("kanban.supervisor")


@dataclasses.dataclass(kw_only=True)
class Watched:
    """A run this dispatcher is responsible for, and where every process of it lives."""

    run_id: int
    task_id: int
    token_hash: str  # the run's token as the board keeps it
    repo: str | None  # the checkout its worktree belongs to (this host's clone of a remote)
    started: float
    timeout: float | None
    runtime: base.Runtime | None = None
    workspace: str | None = None
    log_path: str | None = None
    scope: str | None = None  # the run's cgroup, where cgroups are in force
    # Its repository's workspace as read at its start (None for an adopted run: read again).
    repo_config: RepoConfig | None = None
    shim_pid: int | None = None
    shim_started: float | None = None
    kill_cause: Outcome | None = None
    reading: metering.Reading | None = None  # its log, followed for usage and signs of life
    alive: bool = False  # the agent showed a sign of life (output, a model request, usage)
    kill_reason: str | None = None  # why it was stopped, when the cause alone does not say
    poke: anyio.Event = dataclasses.field(default_factory=anyio.Event)
    remote: str | None = None  # its repository's URL, when it is a remote: pushed to

    @property
    def lock_path(self) -> str | None:
        return lock_path(self.log_path)


def lock_path(log_path: str | None) -> str | None:
    """The run's lock file (see `processes.take_run_lock`), beside its log."""
    return None if log_path is None else log_path.removesuffix(".log") + ".lock"


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a run works, and what its repository's ``.kanban.toml`` asks of it."""

    path: str  # the worktree, or a scratch directory
    branch: str | None
    merges: list[prompt.Merge]
    created: bool = False  # a new worktree (not one reused by a retry or a resume)
    repo_config: workspace.RepoConfig = dataclasses.field(default_factory=workspace.RepoConfig)
    checkout: str | None = None  # the repository's checkout here (a remote's: this host's clone)
    continued: prompt.Continued | None = None  # it starts from another host's pushed work


@dataclasses.dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str | None
    summary: str | None = None
    retry_at: float | None = None
    refund: bool = False


def log_tail(path: str | None, limit: int = LOG_TAIL_BYTES) -> str:
    if not path:
        return ""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def judge(
    run: records.Run,
    task: records.Task,
    runtime: base.Runtime | None,
    *,
    kill_cause: Outcome | None,
    tail: str,
    settings: config.Settings,
    now: float,
    tries: int | None = None,
    kill_reason: str | None = None,
) -> Verdict:
    """The outcome of a run whose process is gone, and whether the task gets another go.

    `tries` counts the task's runs so far, refunded ones included: the backoff grows with it,
    so a condition that keeps refunding attempts (a rate limit, a shim that keeps dying) is
    retried ever more slowly instead of hammering.
    """
    tries = task.attempts if tries is None else max(tries, task.attempts)
    if run.outcome is not None:  # reported by the worker, or ended by an operator
        return Verdict(Outcome(run.outcome), run.reason)
    code, sig = run.exit_code, run.signal
    exit_text = (
        f"killed by signal {sig}"
        if sig is not None
        else f"exit code {code}"
        if code is not None
        else "no exit status recorded"
    )
    if (
        kill_cause is Outcome.STALLED
        and runtime is not None
        and runtime.reports
        and runtime.rate_limited(tail)
    ):
        # Stuck waiting out a rate limit (its agent retries with backoff): not its fault.
        delay = retry.backoff(tries, settings.rate_limit_delay, settings.retry_max_delay)
        return Verdict(
            Outcome.RATE_LIMITED, "rate limited (stopped)", retry_at=now + delay, refund=True
        )
    if kill_cause is not None and kill_reason is not None:
        verdict = (kill_cause, kill_reason)
    elif kill_cause is Outcome.STALLED:
        verdict = (Outcome.STALLED, f"no heartbeat and no output for {settings.stall_timeout:g} s")
    elif kill_cause is Outcome.TIMED_OUT:
        verdict = (Outcome.TIMED_OUT, f"ran longer than its timeout of {task.timeout:g} s")
    elif kill_cause is not None:
        verdict = (kill_cause, "stopped by the dispatcher")
    elif run.exited_at is None:
        # The shim records every exit it sees: without one, the shim itself died or never
        # started (a dispatcher or a shim killed). Our failure, not the agent's: refunded.
        delay = retry.backoff(tries, settings.retry_delay, settings.retry_max_delay)
        return Verdict(
            Outcome.LOST,
            "the worker's shim ended without recording how its agent ended",
            retry_at=now + delay,
            refund=True,
        )
    elif run.pid is None and code == 127:
        return Verdict(Outcome.SPAWN_FAILED, _last_line(tail) or "the worker could not start")
    elif runtime is not None and (code != 0 or runtime.reports) and runtime.rate_limited(tail):
        delay = retry.backoff(tries, settings.rate_limit_delay, settings.retry_max_delay)
        return Verdict(
            Outcome.RATE_LIMITED, f"rate limited ({exit_text})", retry_at=now + delay, refund=True
        )
    elif runtime is not None and not runtime.reports:
        if code == 0:
            return Verdict(Outcome.COMPLETED, None, summary=_summary(tail))
        verdict = (Outcome.CRASHED, exit_text)
    elif code == 0:
        verdict = (
            Outcome.EXITED_WITHOUT_REPORT,
            "the agent exited without calling kanban_complete or kanban_block",
        )
    else:
        verdict = (Outcome.CRASHED, exit_text)
    outcome, reason = verdict
    if outcome in retry.RETRYABLE and task.attempts < task.max_attempts:
        delay = retry.backoff(tries, settings.retry_delay, settings.retry_max_delay)
        return Verdict(outcome, reason, retry_at=now + delay)
    if outcome in retry.RETRYABLE:
        reason = f"{reason}; all {task.max_attempts} attempts used"
    return Verdict(outcome, reason)


def _first_line(text: str | None, limit: int = 200) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return (
        (lines[0][:limit] + ("..." if len(lines[0]) > limit or len(lines) > 1 else ""))
        if lines
        else "-"
    )


def _stuck_in_startup(timeout: float, tail: str) -> str:
    """Why an agent that never got going was stopped, with its own error when it left one."""
    from worker import startup

    reason = f"stuck in start-up: no answer from its model in {timeout:g} s"
    error = startup.startup_error(tail)
    return f"{reason}; the agent said: {error}" if error else reason


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][-500:] if lines else ""


def _summary(tail: str) -> str:
    lines = tail.strip().splitlines()[-20:]
    text = "\n".join(lines).strip()
    return text[-2000:] if text else "exited 0 with no output"


class Supervisor:
    def __init__(
        self,
        board: boardio.Board,
        settings: config.Settings,
        *,
        dispatcher_id: int,
        logs_dir: Path,
        on_event: Callable[[str], None] | None = None,
        host: str | None = None,
    ) -> None:
        self.on_event = on_event or (lambda message: None)
        self.board = board
        self.settings = settings
        self.dispatcher_id = dispatcher_id
        self.host = host or dispatchers.host()
        self.logs_dir = logs_dir
        self.watched: dict[int, Watched] = {}
        self.actor = actors.Dispatcher(dispatcher_id)
        self.stopping_workers = False

    # -- fresh claims -------------------------------------------------------------------

    async def start(self, claim: runs.Claim) -> None:
        task, run_id = claim.task, claim.run_id
        url = remotes.url_of(task.repo)
        watched = Watched(
            run_id=run_id,
            task_id=task.id,
            token_hash=fencing.token_hash(claim.token),
            repo=self._checkout(task.repo),
            started=time.time(),
            timeout=task.timeout,
            remote=url,
        )
        self.watched[run_id] = watched
        try:
            try:
                process = await self._launch(claim, watched)
            except Exception as exc:
                # This task cannot start (bad setup, an unusable repository, a NUL byte in its
                # argv, a full disk): it alone fails or waits; the dispatcher goes on.
                await self._spawn_failed(watched, exc)
                return
            # From here a shim lives: no error may settle the run before the shim is gone (one
            # that escapes stops this dispatcher, and the next adopts the run).
            pause.point("dispatcher.spawned")
            watched.shim_pid = process.pid
            watched.shim_started = processes.start_time(process.pid) or time.time()
            await self.board.call(
                runs.attach, run_id, shim_pid=process.pid, shim_started_at=watched.shim_started
            )
            await self._watch(watched, functools.partial(_child_waiter, process))
            await self._finish(watched)
        finally:
            self.watched.pop(run_id, None)

    async def _launch(self, claim: runs.Claim, watched: Watched) -> subprocess.Popen[bytes]:
        """Place the run, record where it lives, and start its shim; returns the shim.

        Raises only before the shim exists: whatever it raises is this task's failure to start.
        """
        task, run_id = claim.task, claim.run_id
        runtime = runtimes.get(task.runtime)
        watched.runtime = runtime
        log_file = self.logs_dir / self.board.id / task.label / f"run-{run_id}.log"
        log_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Truncated: a run's log holds that run only (setup's output, then the agent's).
        log_file.write_bytes(b"")
        watched.log_path = str(log_file)
        if runtime.uses_tool_server:
            # Started (if it must be) while the worktree is made, not after; `tool_server`
            # below then finds it up, or waits on its lock for this start to finish.
            threading.Thread(target=self._prefetch_tool_server, daemon=True).start()
        placed = await self._place(task, claim.kind)
        watched.repo_config = placed.repo_config
        space = placed.repo_config.workspace
        gate = checking.gated(placed.repo_config)
        watched.workspace = placed.path
        # The run's ports are held by lock files whose descriptors its shim inherits: released
        # when the shim is gone, however the run ends (here, if it never starts).
        hold = ports.NONE
        try:
            if space.ports:
                hold = await anyio.to_thread.run_sync(
                    functools.partial(
                        ports.reserve,
                        space.ports,
                        directory=self.settings.ports_dir,
                        span=self.settings.port_range,
                    )
                )
            return await self._spawn(
                claim,
                watched,
                runtime=runtime,
                log_file=log_file,
                placed=placed,
                hold=hold,
                gate=None if gate is None else str(gate.command),
            )
        finally:
            hold.release()

    async def _spawn(
        self,
        claim: runs.Claim,
        watched: Watched,
        *,
        runtime: base.Runtime,
        log_file: Path,
        placed: Placement,
        hold: ports.Hold,
        gate: str | None,
    ) -> subprocess.Popen[bytes]:
        task, run_id = claim.task, claim.run_id
        tid = ids.format(task.id)
        workspace, branch, merges = placed.path, placed.branch, placed.merges
        space = placed.repo_config.workspace
        # Durable before any process of the run exists: an adopter needs no more than this.
        await self.board.call(
            runs.prepare,
            run_id,
            log_path=str(log_file),
            worktree=workspace,
            branch=branch,
            ports=hold.ports,
        )
        text = await self.board.call(
            prompt.render,
            task,
            attempt=claim.attempt,
            kind=claim.kind,
            workspace=workspace,
            branch=branch,
            merges=merges,
            ports=hold.ports,
            gate=gate,
            continued=placed.continued,
        )
        last = await self.board.call(runs.last_ended, task.id)
        tool_url = (await self.tool_server()).url if runtime.uses_tool_server else None
        context = base.Context(
            task=task,
            run_id=run_id,
            token=claim.token,
            attempt=claim.attempt,
            kind=claim.kind,
            workspace=workspace,
            branch=branch,
            db_path=self.board.path,
            prompt=text,
            settings=self.settings.runtimes,
            private_dir=str(log_file.parent),
            tool_url=tool_url,
        )
        launch = runtime.launch(context)
        environ = env.build(
            dict(os.environ),
            task=tid,
            run_id=run_id,
            token=claim.token,
            workspace=workspace,
            branch=branch,
            db_path=self.board.path,
            last_outcome=last.outcome if last else None,
        )
        environ.update(hold.env)
        watched.scope = scope.path_for(self.board.id, run_id)
        await anyio.to_thread.run_sync(scope.create, watched.scope)
        if task.repo and preparing.needed(log_file.parent, created=placed.created):
            # Before the agent, in the run's scope: a setup that fails ends the attempt here.
            await anyio.to_thread.run_sync(
                functools.partial(
                    preparing.prepare,
                    space,
                    checkout=placed.checkout or task.repo,
                    worktree=workspace,
                    environ=environ,
                    log_path=log_file,
                    private_dir=log_file.parent,
                    scope_path=watched.scope,
                )
            )
        environ.update(space.env)
        environ.update(launch.env)
        watched.reading = metering.Reading(
            runtime, base.Metered(workspace, watched.started, self.settings.runtimes), str(log_file)
        )
        watched.reading.skip_to_end()  # the setup's output is not the agent's
        assert watched.lock_path is not None
        lock_fd = processes.take_run_lock(watched.lock_path)
        db_arg, db_env = connection.handed(self.board.path)
        environ.update(db_env)
        argv = [
            sys.executable,
            "-m",
            "worker.shim",
            "--db",
            db_arg,
            "--run",
            str(run_id),
            "--cwd",
            launch.cwd,
            "--lock-fd",
            str(lock_fd),
            *(["--scope", watched.scope] if watched.scope else []),
            "--",
            *launch.argv,
        ]
        try:
            # A local file opened only to hand its descriptor to the child: nothing to await.
            with open(log_file, "ab") as log_handle:  # noqa: ASYNC230
                process = await anyio.to_thread.run_sync(
                    functools.partial(
                        processes.spawn,
                        argv,
                        log=log_handle.fileno(),
                        env=environ,
                        cwd=launch.cwd,
                        pass_fds=(lock_fd, *hold.fds),
                    )
                )
        finally:
            os.close(lock_fd)  # the shim holds the lock from here on
        return process

    async def _spawn_failed(self, watched: Watched, exc: Exception) -> None:
        await anyio.to_thread.run_sync(scope.end, watched.scope)  # made, but no process in it
        if isinstance(exc, errors.KanbanError):
            reason = str(exc)
        else:
            reason = f"cannot start: {exc}"
            if not isinstance(exc, OSError) and watched.log_path:
                # Not the world's fault: keep the evidence in the run's log, not the terminal.
                await anyio.to_thread.run_sync(_append_traceback, watched.log_path, exc)
                reason += f" (traceback in {watched.log_path})"
        retry_at = None
        if isinstance(exc, preparing.SetupFailed):
            # The agent's environment failed, not kanban: an attempt spent, retried while any
            # remain (a flaky network under `npm ci`), then the task fails with the reason.
            task = await self.board.call(tasks.get, watched.task_id)
            if task.attempts < task.max_attempts:
                tries = len(await self.board.call(runs.for_task, watched.task_id))
                delay = retry.backoff(
                    tries, self.settings.retry_delay, self.settings.retry_max_delay
                )
                retry_at = time.time() + delay
            else:
                reason += f"; all {task.max_attempts} attempts used"
        elif retry.transient(exc) or isinstance(
            exc, ports.NoFreePorts | toolserver.ToolServerError
        ):
            # Ports are released as runs end; a tool server that would not start may next time.
            tries = len(await self.board.call(runs.for_task, watched.task_id))
            delay = retry.backoff(tries, self.settings.retry_delay, self.settings.retry_max_delay)
            retry_at = time.time() + delay
            reason += f" (a passing condition: retrying in {delay:.0f} s)"
        await self.board.call(
            runs.settle,
            watched.run_id,
            Outcome.SPAWN_FAILED,
            reason=reason,
            retry_at=retry_at,
            refund=retry_at is not None and not isinstance(exc, preparing.SetupFailed),
            actor=self.actor,
        )

    async def _place(self, task: records.Task, kind: str) -> Placement:
        """The task's worktree and branch (created, or reused as they are), and merges.

        A malformed ``.kanban.toml`` at the task's base is refused before anything is made.
        A remote repository's task is placed in this host's clone of it (`_place_remote`).
        """
        tid = ids.format(task.id)
        # The board's id in every name: task ids restart at 1 on every board, and two boards
        # (or one recreated after deletion) must never share a branch, a worktree or a log.
        board_id = self.board.id
        if not task.repo:
            scratch = self.settings.scratch_root / board_id / tid
            scratch.mkdir(parents=True, exist_ok=True)
            return Placement(str(scratch), None, [])
        url = remotes.url_of(task.repo)
        if url is not None:
            return await self._place_remote(task, kind, url)
        repo = task.repo
        branch, path = task.branch, task.worktree
        if not (branch and path):  # named once: a retry or a resume keeps what it was given
            new_branch, new_path = await self._named(repo, tid)
            branch, path = branch or new_branch, path or str(new_path)
        base_ref = task.base_ref
        if task.parent_id and not task.branch:
            parent = await self.board.call(tasks.get, task.parent_id)
            if parent.worktree and parent.branch and parent.repo == repo:
                await anyio.to_thread.run_sync(
                    _commit_quietly,
                    parent.worktree,
                    f"kanban: {ids.format(parent.id)} work so far, before {tid} branched off",
                )
                base_ref = parent.branch
        if base_ref is None:
            base_ref = await anyio.to_thread.run_sync(git.resolve_base, repo, None)
        repo_config = await anyio.to_thread.run_sync(
            checking.config_for, repo, base_ref, task.workspace
        )
        tree = await anyio.to_thread.run_sync(
            worktrees.ensure_worktree, repo, Path(path), branch, base_ref
        )
        merges = await self._placed(task, tree.path, branch, base_ref, kind)
        return Placement(str(tree.path), branch, merges, tree.created, repo_config, checkout=repo)

    async def _named(self, repo: str, tid: str) -> tuple[str, Path]:
        """The branch and worktree path this host gives a task of `repo` (a checkout)."""
        named = functools.partial(
            worktrees.placement,
            repo,
            root=self.settings.worktree_root,
            prefix=self.settings.branch_prefix,
            board_id=self.board.id,
            task_id=tid,
        )
        return await anyio.to_thread.run_sync(named)

    async def _placed(
        self, task: records.Task, path: Path, branch: str, base_ref: str, kind: str
    ) -> list[prompt.Merge]:
        """Record where the task works, then merge in what it builds on (`_merge_into`)."""
        await self.board.call(
            tasks.set_placement, task.id, branch=branch, worktree=str(path), base_ref=base_ref
        )
        return await self._merge_into(task, str(path), kind)

    def _checkout(self, repo: str | None) -> str | None:
        """The checkout a task's worktrees belong to on this host: its repository, or this
        host's clone of it when it is a remote (where that clone is, not whether it is yet)."""
        url = remotes.url_of(repo)
        return repo if url is None else str(remotes.clone_dir(url, self.settings.clones_root))

    async def _place_remote(self, task: records.Task, kind: str, url: str) -> Placement:
        """`_place` for a remote repository: in this host's clone, fetched first.

        The worktree is where this host puts it (the one recorded on the task may be another
        host's). The task's branch is this host's local branch brought up to what was pushed
        (made at the pushed commit, fast-forwarded to it, or merged with it when the two
        diverged, what was left here committed first), so a task that ran elsewhere goes on
        from its last pushed commit; its prompt then says so.
        """
        tid = ids.format(task.id)
        clone = await anyio.to_thread.run_sync(remotes.ensure_clone, url, self.settings.clones_root)
        await anyio.to_thread.run_sync(remotes.fetch, clone)
        repo = str(clone)
        new_branch, path = await self._named(repo, tid)
        branch = task.branch or new_branch
        base_ref = task.base_ref
        if task.parent_id and not task.branch:
            parent = await self.board.call(tasks.get, task.parent_id)
            if parent.branch and parent.repo == task.repo:
                base_ref = await self._parent_tip(parent, clone, tid) or parent.base_ref
        if base_ref is None:
            base_ref = await anyio.to_thread.run_sync(remotes.default_tip, clone)
        repo_config = await anyio.to_thread.run_sync(
            checking.config_for, repo, base_ref, task.workspace
        )
        pushed = await anyio.to_thread.run_sync(remotes.pushed, clone, branch)
        here = branch in await anyio.to_thread.run_sync(git.branch_states, clone, [branch])
        start = pushed if pushed is not None and not here else base_ref
        tree = await anyio.to_thread.run_sync(worktrees.ensure_worktree, repo, path, branch, start)
        taken: str | None = None
        own: list[prompt.Merge] = []
        if pushed is not None and not here:
            taken = pushed
        elif pushed is not None:
            caught_up = await anyio.to_thread.run_sync(
                remotes.catch_up, str(tree.path), branch, pushed, task.label
            )
            if caught_up is not None:
                taken = pushed
                own = [
                    prompt.Merge(f"{o.branch} (as pushed)", o.status, o.conflicts, source="pushed")
                    for o in caught_up
                ]
        merges = await self._placed(task, tree.path, branch, base_ref, kind)
        conflicted = {name for merge in own for name in merge.conflicted_files}
        if conflicted:
            now = await self.board.call(tasks.get, task.id)
            await self.board.call(
                tasks.set_conflicts, task.id, sorted(conflicted | set(now.conflicts))
            )
        continued = None if taken is None else await self._continued(task, taken)
        return Placement(
            str(tree.path),
            branch,
            own + merges,
            tree.created,
            repo_config,
            checkout=repo,
            continued=continued,
        )

    async def _parent_tip(self, parent: records.Task, clone: Path, tid: str) -> str | None:
        """The commit a subtask of a remote repository branches from: its parent's branch as
        it is newest here, with the parent's work so far committed first when the parent
        runs on this host (one running elsewhere: as it last pushed it)."""
        assert parent.branch
        if parent.worktree and parent.current_run_id is not None:
            run = await self.board.call(runs.get, parent.current_run_id)
            if run.host in (None, self.host) and await anyio.to_thread.run_sync(
                os.path.isdir, parent.worktree
            ):
                await anyio.to_thread.run_sync(
                    _commit_quietly,
                    parent.worktree,
                    f"kanban: {ids.format(parent.id)} work so far, before {tid} branched off",
                )
        return await anyio.to_thread.run_sync(remotes.freshest, clone, parent.branch)

    async def _continued(self, task: records.Task, sha: str) -> prompt.Continued | None:
        """Which other host made `sha`, the pushed commit this run starts from (None: this one)."""
        found = await self.board.call(runs.for_task, task.id)
        host = next((r.host for r in reversed(found) if r.commit_sha == sha and r.host), None)
        if host is None:
            host = next((r.host for r in reversed(found) if r.host and r.host != self.host), None)
        return None if host is None or host == self.host else prompt.Continued(sha, host)

    async def _merge_into(self, task: records.Task, path: str, kind: str) -> list[prompt.Merge]:
        """Bring in what the task builds on: its blockers' branches at every start, then, on a
        resume, its subtasks', each in dependency order.

        Idempotent: a start cut short (its dispatcher killed mid-merge) merges again; what was
        merged is `up_to_date`, and a blocker done again since (reopened) is merged again.
        Files left with conflict markers are recorded on the task until they are resolved.
        """
        blockers = [
            b
            for b in await self.board.call(views.blockers_in_dependency_order, task.id)
            if b.status == "done" and b.branch and b.repo == task.repo and b.id != task.parent_id
        ]
        # A remote repository's branches are wherever a host pushed them (fetched by
        # `_place_remote` just before): merged from the refs that hold their work.
        remote = remotes.url_of(task.repo) is not None
        # A landed blocker whose branch `kanban gc` collected: its work is in its base branch.
        gone = await anyio.to_thread.run_sync(
            _missing_branches,
            path,
            [b.branch for b in blockers if b.landed_sha and b.branch],
            remote,
        )
        blockers = [b for b in blockers if b.branch not in gone]
        children = []
        if kind == "resume":
            children = await self.board.call(views.children_in_dependency_order, task.id)
        missing = [
            prompt.Merge(f"{c.label} (no branch)", "missing", source="subtask")
            for c in children
            if not c.branch
        ]
        sources = {b.branch: "blocker" for b in blockers if b.branch}
        if task.catch_up:
            # A landing conflicted with the branch it lands into, as that was then: bring it
            # in, so the conflict is here for the agent to resolve.
            sources[task.catch_up] = "base"
        sources.update({c.branch: "subtask" for c in children if c.branch})
        branches = list(sources)
        if not branches:
            return missing
        await anyio.to_thread.run_sync(
            _commit_quietly, path, f"kanban: {task.label} work so far, before merging"
        )
        refs = None
        if remote:
            named = [b for b in branches if not merging.is_commit(b)]
            found = await anyio.to_thread.run_sync(remotes.tips, path, named)
            refs = {b: found.get(b, []) for b in named}
        outcomes = await anyio.to_thread.run_sync(
            lambda: merging.merge_branches(
                path, branches, lambda b: f"kanban: merge {b} into {task.label}", refs=refs
            )
        )
        merges = [
            prompt.Merge(o.branch, o.status, tuple(o.conflicts), source=sources[o.branch])
            for o in outcomes
        ]
        await self.board.call(
            tasks.record,
            task.id,
            "merged",
            data={"merges": [dataclasses.asdict(m) for m in merges]},
        )
        if task.catch_up:
            await self.board.call(tasks.caught_up, task.id, task.catch_up)
        conflicted = {name for merge in merges for name in merge.conflicted_files}
        if conflicted:
            await self.board.call(
                tasks.set_conflicts, task.id, sorted(conflicted | set(task.conflicts))
            )
        return merges + missing

    # -- adopted runs -------------------------------------------------------------------

    async def adopt(self, run: records.Run) -> None:
        """Take over a run whose dispatcher is gone: watch its shim to the end, then settle.

        What the run needs was recorded before its shim existed (`runs.prepare`); the run's
        lock says whether a shim may still write its record, even one whose pid was never
        recorded; its scope is derived from the board and the run.

        A run of another host (its dispatcher stale, its lease expired: `Dispatcher._reaper`)
        is not watched: its pids, its lock and its scope are that host's, and a pid here
        would be some unrelated process. It is settled as lost at once (`_lost_with_host`).
        """
        task = await self.board.call(tasks.get, run.task_id)
        if run.host is not None and run.host != self.host:
            await self._lost_with_host(run, task)
            return
        try:
            runtime = runtimes.get(task.runtime)
        except errors.KanbanError:
            runtime = None
        watched = Watched(
            run_id=run.id,
            task_id=task.id,
            token_hash=run.token_hash,
            repo=self._checkout(task.repo),
            remote=remotes.url_of(task.repo),
            started=run.started_at,
            timeout=task.timeout,
            runtime=runtime,
            workspace=run.worktree,
            log_path=run.log_path,
            scope=scope.path_for(self.board.id, run.id),
            shim_pid=run.shim_pid,
            shim_started=run.shim_started_at,
        )
        watched.reading = metering.Reading(
            runtime,
            base.Metered(run.worktree, run.started_at, self.settings.runtimes),
            run.log_path,
        )
        self.watched[run.id] = watched
        try:
            if run.exited_at is None:
                if processes.run_lock_held(watched.lock_path):
                    await self._watch(watched, _lock_waiter(watched.lock_path))
                elif (
                    not _exists(watched.lock_path)
                    and run.shim_pid is not None
                    and processes.alive(run.shim_pid, run.shim_started_at)
                ):
                    # A run started by a kanban from before run locks: its shim's pid it is.
                    await self._watch(watched, _pid_waiter(run.shim_pid, run.shim_started_at))
            await self._finish(watched)
        finally:
            self.watched.pop(run.id, None)

    async def _lost_with_host(self, run: records.Run, task: records.Task) -> None:
        """Settle a run whose host is gone: lost (refunded), whatever its worker reported (its
        work after its last push is on that host's disk only), the task retried from the last
        pushed commit of its branch (`_place_remote`)."""
        tries = len(await self.board.call(runs.for_task, task.id))
        delay = retry.backoff(tries, self.settings.retry_delay, self.settings.retry_max_delay)
        reason = (
            f"lost with its host {run.host}: its dispatcher stopped beating and the run's "
            f"lease expired; its processes there cannot be watched or stopped from "
            f"{self.host}, so the task is retried from the last pushed commit of its branch"
        )
        await self.board.call(
            runs.settle,
            run.id,
            Outcome.LOST,
            reason=reason,
            retry_at=time.time() + delay,
            refund=True,
            drop_report=True,
            actor=self.actor,
        )
        watched = Watched(
            run_id=run.id,
            task_id=task.id,
            token_hash=run.token_hash,
            repo=None,
            started=run.started_at,
            timeout=None,
        )
        await self._say_how_it_ended(watched)

    # -- watching -----------------------------------------------------------------------

    async def _watch(self, watched: Watched, wait_exit: Callable[[], Awaitable[Any]]) -> None:
        """Wait for the shim to end; kill the run on a stall, a timeout or a cancel."""
        done = anyio.Event()
        killed_at: float | None = None

        async def waiter() -> None:
            await wait_exit()
            done.set()
            watched.poke.set()

        interval = min(2.0, self.settings.stall_timeout / 4)
        async with anyio.create_task_group() as group:
            group.start_soon(waiter)
            while not done.is_set():
                with anyio.move_on_after(interval):
                    await watched.poke.wait()
                watched.poke = anyio.Event()
                if done.is_set():
                    break
                await self._meter(watched)
                run = await self.board.call(runs.get, watched.run_id)
                now = time.time()
                cause = self._kill_cause(watched, run, now)
                if cause is not None and watched.kill_cause is None:
                    watched.kill_cause = cause
                    killed_at = now
                    await self._kill(watched, run)
                elif killed_at is not None and now - killed_at > 3 * self.settings.kill_grace:
                    # The shim itself did not go: take the whole run down, shim included.
                    await anyio.to_thread.run_sync(self._kill_everything, watched, run)
                    killed_at = now
            group.cancel_scope.cancel()

    def _kill_cause(self, watched: Watched, run: records.Run, now: float) -> Outcome | None:
        if run.outcome is not None:
            if run.settled_by != "worker":
                return Outcome.CANCELLED  # an operator cancelled or blocked it
            if run.reported_at and now - run.reported_at > self.settings.report_grace:
                return Outcome.COMPLETED  # reported, then lingered: its report stands
            return None
        if self.stopping_workers:
            return Outcome.LOST
        if watched.timeout and now - watched.started > watched.timeout:
            return Outcome.TIMED_OUT
        spawned = run.pid_started_at  # the agent's start (after any setup)
        if (
            not watched.alive
            and watched.runtime is not None
            and watched.runtime.reports  # an agent: it talks to its model from the start
            and spawned is not None
            and now - spawned > self.settings.startup_timeout
            and (run.heartbeat_at or 0) <= spawned
        ):
            watched.kill_reason = _stuck_in_startup(
                self.settings.startup_timeout, log_tail(watched.log_path)
            )
            return Outcome.STALLED
        activity = max(run.heartbeat_at or 0, run.started_at, _mtime(watched.log_path))
        if now - activity > self.settings.stall_timeout:
            return Outcome.STALLED
        return None

    async def _meter(self, watched: Watched, *, final: bool = False) -> None:
        """Read what the run's log gained: record its usage, stop it if over its budget."""
        reading = watched.reading
        if reading is None:
            return

        def read() -> tuple[tuple[records.Usage, str | None], bool]:
            assert reading is not None
            reading.advance(final=final)
            agent = watched.runtime is not None and watched.runtime.reports
            return reading.priced(self.settings.prices), reading.started_up(agent=agent)

        figures, alive = await anyio.to_thread.run_sync(read)
        watched.alive = watched.alive or alive
        if not reading.changed(figures):
            return
        used, source = figures
        await self.board.call(spending.record, watched.run_id, used, cost_source=source)
        if final or watched.kill_cause is not None:
            return
        reason = await self.board.call(spending.task_over_budget, watched.task_id)
        if reason is not None:
            # Its run ends as blocked; the next tick sees an operator's outcome and stops it.
            await self.board.call(tasks.governor_block, watched.task_id, reason)
            pause.point("dispatcher.over-budget")
            watched.poke.set()

    async def _kill(self, watched: Watched, run: records.Run) -> None:
        """Stop the agent politely, then by force; the shim records it and ends the scope."""
        grace = self.settings.kill_grace
        if run.pid is not None:
            await anyio.to_thread.run_sync(
                functools.partial(processes.kill_tree, run.pid, run.pid_started_at, grace=grace)
            )
        elif watched.scope is not None:  # the agent's pid is not recorded yet
            await anyio.to_thread.run_sync(scope.terminate, watched.scope)
        elif watched.shim_pid is not None:  # everything below the shim
            for proc in processes.tree(watched.shim_pid, watched.shim_started)[1:]:
                await anyio.to_thread.run_sync(
                    functools.partial(processes.kill_tree, proc.pid, None, grace=grace)
                )
        # Whatever ignored SIGTERM or escaped the agent's tree: the shim ends the scope when
        # the agent is gone, and `_end_processes` makes sure of it after the shim.

    def _kill_everything(self, watched: Watched, run: records.Run) -> None:
        if watched.shim_pid is not None:
            processes.kill_tree(watched.shim_pid, watched.shim_started, grace=0.5)
        self._end_processes(watched, run)

    def _end_processes(self, watched: Watched, run: records.Run) -> None:
        """Make sure no process of the run is left (its shim is gone). Blocking."""
        if watched.scope is not None:
            if not scope.end(watched.scope, timeout=3 * self.settings.kill_grace):
                log.error("run %s: processes in %s would not die", watched.run_id, watched.scope)
            return
        if run.pid is not None:
            processes.kill_tree(run.pid, run.pid_started_at, grace=self.settings.kill_grace)
        # What escaped a killed shim still carries the run's token in its environment.
        processes.kill_carrying(env.TOKEN, watched.token_hash, grace=self.settings.kill_grace)

    # -- the end ------------------------------------------------------------------------

    async def _finish(self, watched: Watched) -> None:
        """The shim is gone: end every process of the run, commit its work, settle it."""
        run = await self.board.call(runs.get, watched.run_id)
        await anyio.to_thread.run_sync(self._end_processes, watched, run)
        await self._meter(watched, final=True)
        run = await self.board.call(runs.get, watched.run_id)  # a late exit record, if any
        task = await self.board.call(tasks.get, watched.task_id)
        commit, commit_error = None, None
        workspace_exists = watched.workspace is not None and await anyio.to_thread.run_sync(
            os.path.isdir, watched.workspace
        )
        if watched.repo and watched.workspace is not None and workspace_exists:
            message = commit_message(task, run)
            try:
                await anyio.to_thread.run_sync(worktrees.commit_all, watched.workspace, message)
                commit = await anyio.to_thread.run_sync(git.head, watched.workspace)
            except Exception as exc:  # a full disk, a broken repository: the work stays put
                commit_error = str(exc)
        push_error = await self._push(watched, task)
        tail = await anyio.to_thread.run_sync(log_tail, watched.log_path)
        last = watched.reading.meter.activity() if watched.reading is not None else None
        if last and watched.runtime is not None and watched.runtime.reports:
            # What the agent did last, as its meter read it: Hermes prints nothing of a model
            # that refused it after its message, but Codex's record of the turn has the error.
            tail = f"{tail}\n{last}"
        cause = None if watched.kill_cause is Outcome.COMPLETED else watched.kill_cause
        if self.stopping_workers and cause is Outcome.LOST:
            verdict = Verdict(
                Outcome.LOST, "the dispatcher was stopped", retry_at=time.time(), refund=True
            )
        else:
            tries = len(await self.board.call(runs.for_task, watched.task_id))
            verdict = judge(
                run,
                task,
                watched.runtime,
                kill_cause=cause,
                tail=tail,
                settings=self.settings,
                now=time.time(),
                tries=tries,
                kill_reason=watched.kill_reason,
            )
        reason = verdict.reason
        if commit_error is not None:
            note = f"could not commit the worktree: {commit_error}"
            reason = f"{reason}; {note}" if reason else note
        if push_error is not None:
            reason = f"{reason}; {push_error}" if reason else push_error
        check = None
        completed = verdict.outcome is Outcome.COMPLETED and commit_error is None
        if task.conflicts and workspace_exists:
            check = await self._conflicts_left(watched, task, completed=completed)
        if check is None and completed and workspace_exists:
            check = await self._gate(watched, task)
        if check is not None and not check.passed and task.attempts < task.max_attempts:
            # Back to its agent at once, with the check's output in its prompt: nothing to
            # wait for, the work itself must change.
            verdict = dataclasses.replace(verdict, retry_at=time.time())
        pause.point("dispatcher.before-settle")
        await self.board.call(
            runs.settle,
            watched.run_id,
            verdict.outcome,
            reason=reason,
            summary=verdict.summary,
            commit_sha=commit,
            commit_error=commit_error,
            retry_at=verdict.retry_at,
            refund=verdict.refund,
            check=check,
            actor=self.actor,
        )
        await self._say_how_it_ended(watched)

    async def _push(self, watched: Watched, task: records.Task) -> str | None:
        """Push a remote repository's task branch after its run, so that its work is not only
        on this host's disk; what went wrong, if it failed (the work stays here, and the run's
        outcome stands: the next run of the task, here or elsewhere, merges the two)."""
        if watched.remote is None or watched.repo is None or not task.branch:
            return None
        try:
            await anyio.to_thread.run_sync(remotes.push, watched.repo, task.branch)
        except Exception as exc:  # an unreachable remote, a refused push: said, not raised
            where = watched.workspace or watched.repo
            return (
                f"could not push {task.branch} to {watched.remote} ({exc}); its work is in "
                f"{where} on host {self.host}"
            )
        return None

    async def _say_how_it_ended(self, watched: Watched) -> None:
        """One line for the dispatcher's output: the task's new state and why."""
        task = await self.board.call(tasks.get, watched.task_id)
        run = await self.board.call(runs.get, watched.run_id)
        used = "" if run.usage.empty else f" [{run.usage.brief()}]"
        why = {
            Status.DONE: f"done: {_first_line(task.summary)}",
            Status.WAITING: "waiting for its subtasks",
            Status.BLOCKED: f"blocked: {_first_line(task.block_reason)}",
            Status.FAILED: f"failed: {_first_line(task.failure_reason)}",
            Status.CANCELLED: "cancelled",
        }.get(task.status, f"{task.status} (run {run.id} {run.outcome}: {_first_line(run.reason)})")
        self.on_event(f"{task.label}: {why}{used}")

    async def _conflicts_left(
        self, watched: Watched, task: records.Task, *, completed: bool
    ) -> records.CheckResult | None:
        """Forget the conflicts the run resolved; a completed run that left some fails, as a
        failed check does (its next prompt shows what is left)."""
        assert watched.workspace is not None
        left = await anyio.to_thread.run_sync(
            worker_conflicts.unresolved, watched.workspace, task.conflicts
        )
        if left != list(task.conflicts):
            await self.board.call(tasks.set_conflicts, task.id, left)
        if not left or not completed:
            return None
        hunks = await anyio.to_thread.run_sync(worker_conflicts.hunks, watched.workspace, left)
        return records.CheckResult(
            command="kanban's conflict check:",
            passed=False,
            exit_code=None,
            seconds=0.0,
            output=hunks,
            detail=f"conflict markers left in {', '.join(left)}",
        )

    async def _gate(self, watched: Watched, task: records.Task) -> records.CheckResult | None:
        """Run the repository's gated check on a completed run's committed work, if it has one.

        Only for a run that would make its task `done` (not one that waits for subtasks or
        resumes to integrate them). It runs in the run's scope, made again for it, with ports
        of its own when the repository asks for ports; a dispatcher that dies meanwhile leaves
        it to its successor, which ends the scope and runs the check again.
        """
        if not watched.repo or watched.workspace is None:
            return None
        config = watched.repo_config
        if config is None:
            try:
                config = await anyio.to_thread.run_sync(
                    checking.config_for, watched.repo, task.base_ref, task.workspace
                )
            except errors.KanbanError as exc:  # it was read at the start; gone since: say so
                log.warning("run %s: cannot read the workspace's check: %s", watched.run_id, exc)
                return None
        gate = checking.gated(config)
        if gate is None or not await self.board.call(runs.would_be_done, watched.run_id):
            return None
        environ = env.for_check(
            dict(os.environ), task=task.label, workspace=watched.workspace, branch=task.branch
        )
        environ.update(config.workspace.env)
        hold = ports.NONE
        try:
            if config.workspace.ports:
                with contextlib.suppress(ports.NoFreePorts):  # the check says what it lacks
                    hold = await anyio.to_thread.run_sync(
                        functools.partial(
                            ports.reserve,
                            config.workspace.ports,
                            directory=self.settings.ports_dir,
                            span=self.settings.port_range,
                        )
                    )
            environ.update(hold.env)
            if watched.scope is not None:
                await anyio.to_thread.run_sync(scope.create, watched.scope)
            return await anyio.to_thread.run_sync(
                functools.partial(
                    checking.run,
                    gate,
                    worktree=watched.workspace,
                    environ=environ,
                    log_path=watched.log_path or os.devnull,
                    scope_path=watched.scope,
                )
            )
        finally:
            hold.release()
            if watched.scope is not None:
                await anyio.to_thread.run_sync(scope.end, watched.scope)

    async def tool_server(self) -> services.ToolServer:
        """The board's tool server, started (or started again, on its port) if it is not up."""
        return await anyio.to_thread.run_sync(self._ensure_tool_server)

    def _ensure_tool_server(self) -> services.ToolServer:
        return toolserver.ensure(
            self.board.path,
            log_dir=self.logs_dir / self.board.id,
            idle_exit=self.settings.tool_server_idle_exit,
        )

    def _prefetch_tool_server(self) -> None:
        with contextlib.suppress(errors.KanbanError):  # the start before the agent says why
            self._ensure_tool_server()

    def uses_tool_server(self) -> bool:
        """Does a run this dispatcher watches reach the kanban tools through the server?"""
        return any(
            w.runtime is not None and w.runtime.uses_tool_server for w in self.watched.values()
        )

    def poke_all(self) -> None:
        for watched in list(self.watched.values()):
            watched.poke.set()


def _missing_branches(path: str, branches: list[str], remote: bool = False) -> set[str]:
    if not branches:
        return set()
    if remote:  # neither a local branch nor a pushed one
        return set(branches) - remotes.tips(path, branches).keys()
    return set(branches) - git.branch_states(Path(path), branches).keys()


def commit_message(task: records.Task, run: records.Run) -> str:
    """What a run's commit says: the task's title and what the worker reported it did, with
    the task and the run in trailers (``git log --grep 'Kanban-Task: t_3'`` finds them)."""
    subject = " ".join(task.title.split())
    if len(subject) > 72:
        subject = subject[:69] + "..."
    finished = run.outcome is Outcome.COMPLETED or (run.outcome is None and run.exit_code == 0)
    if not finished:
        subject = f"WIP: {subject}"  # what a failed, stopped or lost attempt left
    body = (run.summary or "").strip()
    trailers = f"Kanban-Task: {task.label}\nKanban-Run: {run.id} (attempt {run.attempt})"
    return f"{subject}\n\n{body}\n\n{trailers}" if body else f"{subject}\n\n{trailers}"


def _append_traceback(path: str, exc: BaseException) -> None:
    with contextlib.suppress(OSError), open(path, "a") as log_file:
        log_file.write("kanban: starting this run failed:\n")
        log_file.writelines(traceback.format_exception(exc))


def _commit_quietly(path: str, message: str) -> None:
    try:
        worktrees.commit_all(path, message)
    except errors.KanbanError:
        pass  # the parent's own run will commit it at its end; the child starts from HEAD


def _mtime(path: str | None) -> float:
    if not path:
        return 0.0
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


async def _child_waiter(process: subprocess.Popen[bytes]) -> None:
    """Wait for our own shim to exit, and reap it."""
    try:
        fd = os.pidfd_open(process.pid)
    except (OSError, AttributeError):  # no pidfd (not Linux, or an old kernel): a poll
        while process.poll() is None:  # noqa: ASYNC110
            await anyio.sleep(0.05)
        return
    try:
        await anyio.wait_readable(fd)  # a zombie is readable too: no exit is missed
    finally:
        os.close(fd)
    await anyio.to_thread.run_sync(process.wait)  # it has exited: reaps at once


def _exists(path: str | None) -> bool:
    return path is not None and os.path.exists(path)


def _pid_waiter(pid: int, started: float | None) -> Callable[[], Awaitable[None]]:
    async def wait() -> None:
        while processes.alive(pid, started):  # noqa: ASYNC110 - not our child: no pidfd wait
            await anyio.sleep(0.2)

    return wait


def _lock_waiter(path: str | None) -> Callable[[], Awaitable[None]]:
    """Wait until no shim holds the run's lock (an adopted run's shim is not our child)."""

    async def wait() -> None:
        # A poll, not a blocking flock in a thread: that could not be cancelled.
        while await anyio.to_thread.run_sync(processes.run_lock_held, path):  # noqa: ASYNC110
            await anyio.sleep(0.1)

    return wait
