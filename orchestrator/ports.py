"""Blocks of free ports for running tasks: no two running tasks on a host share one.

A repository that declares ``ports = N`` in its ``.kanban.toml`` gives each running task N
consecutive ports, in ``$KANBAN_PORT`` (the first) and ``$KANBAN_PORTS`` (all, comma-separated),
so that parallel dev servers never clash.

The hold on a port is an ``flock`` on a file named after it in a directory every kanban of
this user on this host shares (`default_dir`). The dispatcher takes the locks and hands their
descriptors to the run's shim, which keeps them for its whole life: the ports are released
when the run's last process of kanban's is gone, whether it ended, crashed or was killed, and
no record can go stale. A port is taken only if it is also free at that moment (nothing
listens on it, whoever started it), checked by binding it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import os
import socket
import tempfile
from pathlib import Path

from board import errors

DEFAULT_RANGE = (20000, 29999)  # below Linux's ephemeral ports (32768-60999)


class NoFreePorts(errors.KanbanError):
    """No block of free ports in the range: every one is held or in use."""


@dataclasses.dataclass
class Hold:
    """Ports held by this process through the open lock files `fds` (closing releases them)."""

    ports: tuple[int, ...]
    fds: tuple[int, ...]

    @property
    def env(self) -> dict[str, str]:
        if not self.ports:
            return {}
        return {"KANBAN_PORT": str(self.ports[0]), "KANBAN_PORTS": ",".join(map(str, self.ports))}

    def release(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = ()


NONE = Hold((), ())


def default_dir() -> Path:
    """Where the lock files live: shared by every board of this user on this host.

    ``$XDG_RUNTIME_DIR`` when set (never cleaned while the user is logged in), else a
    directory of this user's in the system's temporary directory.
    """
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return Path(runtime) / "kanban" / "ports"
    return Path(tempfile.gettempdir()) / f"kanban-{os.getuid()}" / "ports"


def reserve(
    count: int, *, directory: Path | None = None, span: tuple[int, int] = DEFAULT_RANGE
) -> Hold:
    """Hold `count` consecutive ports that no other run holds and nothing listens on.

    Raises `NoFreePorts` when the range has no such block; the caller treats it as a passing
    condition (ports are released as runs end).
    """
    if count <= 0:
        return NONE
    directory = directory or default_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    low, high = span
    start = low
    while start + count - 1 <= high:
        fds: list[int] = []
        taken: list[int] = []
        for port in range(start, start + count):
            fd = _lock(directory / f"{port}.lock")
            if fd is None or not is_free(port):
                if fd is not None:
                    os.close(fd)
                break
            fds.append(fd)
            taken.append(port)
        if len(taken) == count:
            return Hold(tuple(taken), tuple(fds))
        for fd in fds:
            os.close(fd)
        start += len(taken) + 1  # past the port that was not free
    raise NoFreePorts(
        f"no {count} consecutive free ports between {low} and {high}: every block is held by "
        "a running task or in use; the task waits until ports are released"
    )


def held(port: int, *, directory: Path | None = None) -> bool:
    """Does a running task hold `port` (its lock is taken)?"""
    path = (directory or default_dir()) / f"{port}.lock"
    if not path.exists():
        return False
    fd = _lock(path)
    if fd is None:
        return True
    os.close(fd)
    return False


def _lock(path: Path) -> int | None:
    """The descriptor of `path` locked exclusively, or None if someone holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        raise
    return fd


def is_free(port: int) -> bool:
    """Can a server listen on `port` now, on every interface (IPv4, and IPv6 where there is)?"""
    families = [(socket.AF_INET, "0.0.0.0")]
    if socket.has_ipv6:
        families.append((socket.AF_INET6, "::"))
    for family, address in families:
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            continue  # no such family on this host
        try:
            # As a dev server would bind it: a port whose old connections linger is free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address, port))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                continue  # IPv6 compiled in but not configured
            return False
        finally:
            sock.close()
    return True
