"""Making a new worktree ready for its agent, and running what must run before one goes, as
its repository's ``.kanban.toml`` says.

Before a run's agent starts in a worktree that was just created, the ignored files that the
workspace's ``copy`` globs select are copied from the main checkout into it (relative paths
and modes kept), those of ``link`` are symlinked to the main checkout, and the ``setup``
commands run in it, in order, their output appended to the run's log.

A worktree is prepared once. Success leaves a marker (`READY`) in the task's private log
directory; a worktree that is reused (a retry, a resume) is prepared again only when the
marker is missing, that is when its preparation failed or was cut short (a dispatcher killed
mid-setup). A failing or overlong setup command raises `SetupFailed`: the caller starts no
agent in a half-set-up worktree.

`teardown` is the other end: the workspace's ``teardown`` commands, run by ``kanban gc`` in
a worktree it is about to remove, the same way as setup (`run_command` runs both) but in no
run's scope and with a log of their own; a failing one raises `TeardownFailed`.

Blocking throughout: call it from a thread.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from board import errors
from orchestrator import git, processes, workspace
from worker import pause

READY = "workspace.ready"
TAIL_LINES = 5
KILL_GRACE = 2.0


class CommandFailed(errors.KanbanError):
    """A workspace command failed, outlived its timeout, or could not start."""

    what = "command"  # in the log's header line: ``kanban: <what>: COMMAND``
    timeout_key = "setup_timeout"  # the key of `.kanban.toml` that bounds it
    label = "command failed"

    def __init__(
        self, command: workspace.Command, detail: str, tail: str, *, code: int | None = None
    ) -> None:
        self.code = code  # its exit status; None if it was killed or never started
        self.command = command
        self.detail = detail
        self.tail = tail
        super().__init__(f"{self.label}: {shown(command)} {detail}; last lines: {tail or '(none)'}")


class SetupFailed(CommandFailed):
    """A setup command failed (or outlived its timeout): the attempt ends before its agent."""

    what = "setup"
    label = "setup_failed"  # the start of a run's reason: a fixed word, as the others


class TeardownFailed(CommandFailed):
    """A teardown command failed: ``kanban gc`` keeps the worktree (unless forced)."""

    what = "teardown"
    label = "teardown failed"


def shown(command: workspace.Command, limit: int = 200) -> str:
    """A command on one line, cut at `limit` characters (for a reason, a log's header)."""
    text = " ".join(str(command).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def needed(private_dir: Path | str, *, created: bool) -> bool:
    """Does the worktree need preparing: new, or its last preparation not finished?"""
    return created or not (Path(private_dir) / READY).exists()


def prepare(
    space: workspace.Workspace,
    *,
    checkout: Path | str,
    worktree: Path | str,
    environ: Mapping[str, str],
    log_path: Path | str,
    private_dir: Path | str,
    scope_path: str | None,
) -> None:
    """Copy and link the workspace's files into `worktree`, then run its setup there."""
    marker = Path(private_dir) / READY
    marker.unlink(missing_ok=True)
    place_files(space, checkout=Path(checkout), worktree=Path(worktree))
    _run_all(
        space.setup,
        space,
        worktree=worktree,
        environ=environ,
        log_path=log_path,
        scope_path=scope_path,
        failure=SetupFailed,
    )
    pause.point("dispatcher.set-up")
    marker.write_text(f"{worktree}\n")


def place_files(space: workspace.Workspace, *, checkout: Path, worktree: Path) -> list[str]:
    """Copy (``copy``) and symlink (``link``) the selected ignored files; returns what was put.

    Nothing that exists in the worktree is replaced (a file tracked at the task's base is the
    branch's own). What the worktree's git would not ignore (its base commit lacks the ignore
    rule the main checkout has) is removed again, so it can never be committed to the branch.
    """
    placed = []
    for linked, patterns in ((False, space.copy), (True, space.link)):
        if not patterns:
            continue
        for relative in workspace.select(checkout, patterns):
            source, target = checkout / relative, worktree / relative
            if os.path.lexists(target):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if linked:
                target.symlink_to(source)
            elif source.is_dir() and not source.is_symlink():
                shutil.copytree(source, target, symlinks=True)
            else:
                shutil.copy2(source, target, follow_symlinks=False)
            placed.append(relative)
    if placed:
        listed = git.run(
            worktree, "ls-files", "-z", "--others", "--exclude-standard", "--", *placed
        ).out
        for path in {entry for entry in listed.split("\0") if entry}:
            top = next(p for p in placed if path == p or path.startswith(p + "/"))
            _remove(worktree / top)
            placed.remove(top)
    return placed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def teardown(
    space: workspace.Workspace,
    *,
    worktree: Path | str,
    environ: Mapping[str, str],
    log_path: Path | str | None,
) -> None:
    """Run the workspace's teardown commands in order in `worktree`; TeardownFailed at the first
    that fails (the others do not run).

    Each gets `environ` plus the workspace's ``env`` and ``setup_timeout``. Their output is
    appended to `log_path`; without one it is kept only for a failure's last lines.
    """
    if not space.teardown:
        return
    with contextlib.ExitStack() as stack:
        if log_path is None:
            captured = stack.enter_context(
                tempfile.NamedTemporaryFile(prefix="kanban-teardown-", suffix=".log")
            )
            log_path = captured.name
        _run_all(
            space.teardown,
            space,
            worktree=worktree,
            environ=environ,
            log_path=log_path,
            scope_path=None,
            failure=TeardownFailed,
        )


def _run_all(
    commands: tuple[workspace.Command, ...],
    space: workspace.Workspace,
    *,
    worktree: Path | str,
    environ: Mapping[str, str],
    log_path: Path | str,
    scope_path: str | None,
    failure: type[CommandFailed],
) -> None:
    """Run `commands` in order in the worktree with the workspace's env and setup_timeout;
    `failure` at the first that fails (the others do not run)."""
    for command in commands:
        run_command(
            command,
            cwd=str(worktree),
            environ={**environ, **space.env},
            log_path=str(log_path),
            timeout=space.setup_timeout,
            scope_path=scope_path,
            failure=failure,
        )


def run_command(
    command: workspace.Command,
    *,
    cwd: str,
    environ: Mapping[str, str],
    log_path: str,
    timeout: float,
    scope_path: str | None,
    failure: type[CommandFailed],
) -> None:
    """Run one workspace command in `cwd`, its output appended to the log; `failure` if it fails.

    It starts in a session of its own, stdin from /dev/null (and in the cgroup at `scope_path`,
    if any); whatever it leaves in its process group is killed when it ends, and all of it on
    a timeout. The log gets a ``kanban: setup: COMMAND`` line first (`what` of `failure`).
    """
    with open(log_path, "ab") as log:
        log.write(f"kanban: {failure.what}: {shown(command)}\n".encode())
        log.flush()
        start = log.tell()  # the tail in a failure's reason is this command's output only
        try:
            proc = subprocess.Popen(
                command.argv,
                cwd=cwd,
                env=dict(environ),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        except OSError as exc:
            raise failure(command, f"could not start ({exc})", "") from exc
        _enter_scope(proc.pid, scope_path)
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            processes.kill_tree(proc.pid, grace=KILL_GRACE)
            code = None
        finally:
            # These commands prepare or clean up files; whatever they left running in their
            # group goes with them.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if code == 0:
        return
    if code is None:
        detail = f"ran longer than its {failure.timeout_key} of {timeout:g} s"
    elif code < 0:
        detail = f"was killed by signal {-code}"
    else:
        detail = f"exited {code}"
    raise failure(command, detail, _tail(log_path, start), code=code)


def _enter_scope(pid: int, scope_path: str | None) -> None:
    """Move a setup process into the run's cgroup, so it is contained like the agent."""
    if scope_path is None:
        return
    with contextlib.suppress(OSError), open(os.path.join(scope_path, "cgroup.procs"), "w") as f:
        f.write(str(pid))


def _tail(log_path: str, start: int) -> str:
    try:
        with open(log_path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(start, log.tell() - 4096))
            text = log.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " / ".join(lines[-TAIL_LINES:])[-500:]
