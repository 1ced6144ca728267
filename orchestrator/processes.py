"""Process identity, liveness and killing whole process trees (psutil).

A pid alone identifies nothing: pids are reused. A process is identified by its pid together
with its start time (`psutil.Process.create_time()`), recorded in the board when it starts;
`alive` answers for that pair only. Killing a worker kills its process group *and* every
descendant psutil can find (an agent may start children in sessions of their own), politely
first (SIGTERM), then with SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

from board import fencing

# create_time() is rounded differently by different readers; a pid reused within this
# tolerance of the original start is not a risk worth a false "dead".
_START_TOLERANCE = 0.05


def start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def alive(pid: int | None, started_at: float | None) -> bool:
    """Is the process `pid` that started at `started_at` still running (not a zombie)?"""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if started_at is not None and abs(proc.create_time() - started_at) > _START_TOLERANCE:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def tree(pid: int, started_at: float | None = None) -> list[psutil.Process]:
    """The process and all its descendants (empty if it is gone or is another process)."""
    if not alive(pid, started_at):
        return []
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def kill_tree(pid: int, started_at: float | None = None, *, grace: float = 5.0) -> list[int]:
    """SIGTERM the process group and tree of `pid`, SIGKILL what is left after `grace`.

    Returns the pids that had to be killed with SIGKILL. Blocking: call it from a thread.
    """
    procs = tree(pid, started_at)
    if not procs:
        return []
    groups = set()
    for proc in procs:
        try:
            groups.add(os.getpgid(proc.pid))
        except ProcessLookupError:
            pass
    groups.discard(os.getpgrp())  # never our own group
    _signal_all(procs, groups, signal.SIGTERM)
    survivors = _wait_dead(procs, grace)
    # Children forked during the grace period are found again before the final blow.
    survivors = _refresh(survivors, pid, started_at)
    if not survivors:
        return []
    _signal_all(survivors, groups, signal.SIGKILL)
    _wait_dead(survivors, grace)
    return [p.pid for p in survivors]


def _running(proc: psutil.Process) -> bool:
    # A zombie has already died: only its parent's (or a slow init's) wait() is missing, and
    # no signal can hurry that. Counting it as alive made every kill wait out both graces.
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_dead(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Poll until every process has died (zombies count as dead); returns the survivors.

    Not `psutil.wait_procs`: it waits for zombies to be reaped, and it reaps our own children,
    stealing the exit status from whoever else waits for them (the supervisor's shim)."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        survivors = [p for p in procs if _running(p)]
        if not survivors or time.monotonic() >= deadline:
            return survivors
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _refresh(survivors: list[psutil.Process], pid: int, started_at: float | None) -> list:
    found = {p.pid: p for p in survivors if _running(p)}
    for proc in tree(pid, started_at):
        if _running(proc):
            found.setdefault(proc.pid, proc)
    return list(found.values())


def _signal_all(procs: list[psutil.Process], groups: set[int], sig: int) -> None:
    for group in groups:
        try:
            os.killpg(group, sig)
        except (ProcessLookupError, PermissionError):
            pass
    for proc in procs:
        try:
            proc.send_signal(sig)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass


# --- a run's lock: is its shim alive? ------------------------------------------------------
#
# The dispatcher takes an flock on the run's lock file *before* starting the shim and hands
# the descriptor over; the shim holds it until it exits (its agent never inherits it). So the
# lock is held exactly while a shim of that run may still write the run's record, even a shim
# whose pid the dispatcher died before recording. flock, not fcntl record locks: those would be
# dropped by any close() of another descriptor of the file in this process.


@contextlib.contextmanager
def exclusive(path: Path | str) -> Iterator[None]:
    """Hold an exclusive flock on the file at `path` (made if missing) while in the block:
    one at a time, across threads and processes. Not inherited by children."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def take_run_lock(path: str) -> int:
    """Create and lock the run's lock file; returns the descriptor to hand to the shim."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


def run_lock_held(path: str | None) -> bool:
    """True while a shim holds the run's lock at `path`."""
    if not path:
        return False
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the lock if we got it
    return False


def kill_carrying(name: str, token_hash: str, *, grace: float = 5.0) -> list[int]:
    """Kill every process whose environment has `name` set to the token whose hash this is.

    Where runs are not in cgroups, this finds what escaped a killed shim: descendants of an
    agent inherit its environment, and the run's token is in no other process's. The board
    keeps only the token's hash, so an adopting dispatcher can still recognise it.
    """
    found = []
    for proc in psutil.process_iter():
        try:
            value = proc.environ().get(name) if proc.pid != os.getpid() else None
            if value is not None and fencing.token_matches(token_hash, value):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    _signal_all(found, set(), signal.SIGTERM)
    survivors = _wait_dead(found, grace)
    _signal_all(survivors, set(), signal.SIGKILL)
    _wait_dead(survivors, grace)
    return [p.pid for p in found]


def spawn(
    argv: list[str], *, log: int, env: dict[str, str], cwd: str, pass_fds: tuple[int, ...]
) -> subprocess.Popen[bytes]:
    """Start a run's shim in a session of its own, its output into the run's log.

    A plain `subprocess.Popen`, not the event loop's: asyncio kills the processes it started
    when its loop closes, and a dispatcher that stops (or crashes) must leave its shims
    running for the next dispatcher to adopt. Blocking: call it from a thread.
    """
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        env=env,
        cwd=cwd,
        start_new_session=True,
        pass_fds=pass_fds,
    )
