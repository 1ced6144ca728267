"""A run's scope: every process a run starts, contained so that none outlives the run.

Agents start dev servers, language servers, `sleep 300 &`, double-forked daemons, processes
in sessions of their own. A process group or a tree walk misses those that re-parent to init.
Two mechanisms, the stronger in force where the machine allows it:

- **cgroup** (Linux cgroup v2, writable, as for root or a delegated subtree): the agent starts
  inside ``<cgroup2 mount>/kanban/<board id>/run-<run id>``. No fork, ``setsid`` or double
  fork leaves a cgroup; ``cgroup.kill`` ends all of it at once, and an empty ``cgroup.procs``
  proves the run is over. The path is derived from the board and the run alone, so a
  dispatcher that adopts a run finds its scope without anything recorded.
- **subreaper** (anywhere else on Linux): the shim marks itself a child subreaper
  (``PR_SET_CHILD_SUBREAPER``), so orphaned descendants re-parent to the shim instead of init,
  and it kills them when the agent exits. Its limit: a process that escapes while the shim
  itself is killed (SIGKILL) re-parents to init; the agent is killed with the shim
  (``PR_SET_PDEATHSIG``), and the dispatcher then kills what still carries the run's token in
  its environment, but a process that cleared its environment is out of reach.

``KANBAN_SCOPE=subreaper`` forces the second (tests use it to exercise both); ``kanban
doctor`` and the dispatcher's start-up line say which is in force.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import time

ENV = "KANBAN_SCOPE"
CGROUP = "cgroup"
SUBREAPER = "subreaper"

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _prctl(option: int, value: int) -> bool:
    libc = _libc()
    return libc is not None and libc.prctl(option, value, 0, 0, 0) == 0


# Paths are plain strings here: pathlib would cost the shim ~5 ms at start-up, on the way to
# starting its agent.


def _cgroup2_mount() -> str | None:
    try:
        with open("/proc/self/mounts") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) > 2 and fields[2] == "cgroup2":
                    return fields[1]
    except OSError:
        pass
    return None


@functools.cache
def cgroup_root() -> str | None:
    """``<cgroup2 mount>/kanban`` if runs can be put in cgroups here, else None."""
    if os.environ.get(ENV) == SUBREAPER:
        return None
    mount = _cgroup2_mount()
    if mount is None:
        return None
    root = os.path.join(mount, "kanban")
    try:
        os.makedirs(root, exist_ok=True)
    except OSError:
        return None
    # Moving processes needs write access to cgroup.procs; cgroup.kill needs Linux 5.14.
    procs, kill_file = os.path.join(root, "cgroup.procs"), os.path.join(root, "cgroup.kill")
    if not os.access(procs, os.W_OK) or not os.path.exists(kill_file):
        return None
    return root


def mechanism() -> str:
    """Which containment is in force on this machine: ``cgroup`` or ``subreaper``."""
    return CGROUP if cgroup_root() is not None else SUBREAPER


def path_for(board_id: str, run_id: int) -> str | None:
    """The cgroup of a run (None where cgroups are not in force)."""
    root = cgroup_root()
    return None if root is None else os.path.join(root, board_id, f"run-{run_id}")


def create(path: str | None) -> None:
    if path is None:
        return
    for _ in range(10):
        try:
            os.makedirs(path, exist_ok=True)
            return
        except FileNotFoundError:  # the board's directory was just removed as empty (`end`)
            continue
    os.makedirs(path, exist_ok=True)


# --- in the shim ------------------------------------------------------------------------


def become_subreaper() -> bool:
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def child_setup(path: str | None, parent: int):
    """A ``preexec_fn`` for the agent: die with the shim, and start inside the run's cgroup.

    Runs in the forked child before exec. The death signal is armed first, then the parent is
    checked: a shim killed between the fork and this point has already gone, and the child
    must not go on to start an agent nobody watches.
    """
    procs = None if path is None else os.path.join(path, "cgroup.procs")
    _libc()  # loaded before the fork: no dlopen in the child

    def setup() -> None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)
        if procs is not None:
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, str(os.getpid()).encode())
            finally:
                os.close(fd)

    return setup


# --- ending a scope -----------------------------------------------------------------------


def pids(path: str | None) -> list[int]:
    """The processes in a run's cgroup (empty if it has none, or no cgroup)."""
    if path is None:
        return []
    try:
        with open(os.path.join(path, "cgroup.procs")) as procs:
            return [int(line) for line in procs if line.strip()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def kill(path: str | None) -> None:
    """SIGKILL every process in the run's cgroup (and its sub-cgroups), at once."""
    if path is None:
        return
    with contextlib.suppress(FileNotFoundError):
        with open(os.path.join(path, "cgroup.kill"), "w") as handle:
            handle.write("1")


def terminate(path: str | None) -> None:
    """SIGTERM every process in the run's cgroup (the polite first step of a kill)."""
    for pid in pids(path):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)


def end(path: str | None, *, grace: float = 1.0, timeout: float = 10.0) -> bool:
    """End whatever is left in the run's cgroup, wait until it is empty, remove it.

    Politely first (SIGTERM, so a dev server can clean up), with SIGKILL after `grace`.
    True when the cgroup is gone (or there was none). Blocking: call it from a thread.
    """
    if path is None or not os.path.isdir(path):
        return True
    if pids(path):
        terminate(path)
        polite_until = time.monotonic() + grace
        while pids(path) and time.monotonic() < polite_until:
            time.sleep(0.01)
    deadline = time.monotonic() + timeout
    while pids(path):
        kill(path)
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    for _ in range(100):  # the kernel frees an emptied cgroup a moment after its last exit
        try:
            os.rmdir(path)
            break
        except FileNotFoundError:
            break
        except OSError:
            time.sleep(0.01)
    else:
        return not os.path.isdir(path)
    # The board's own directory goes with its last run (it is refused while others remain).
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(path))
    return True


def reap_descendants(own_pid: int, *, grace: float = 1.0) -> None:
    """Subreaper mode: end every remaining descendant of this process and reap them all.

    Politely first (SIGTERM), then SIGKILL after `grace`, as `end` does for a cgroup.
    """
    import psutil

    def remaining() -> list[psutil.Process]:
        _reap_all()
        try:
            return psutil.Process(own_pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    rest = remaining()
    for proc in rest:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc.terminate()
    polite_until = time.monotonic() + grace
    while rest and time.monotonic() < polite_until:
        time.sleep(0.01)
        rest = remaining()
    for _ in range(50):
        if not rest:
            return
        for proc in rest:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                proc.kill()
        time.sleep(0.01)
        rest = remaining()


def _reap_all() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
