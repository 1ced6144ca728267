"""A real PostgreSQL server for the tests and the benchmarks: Debian's, in a temporary directory.

    with postgres.server() as pg:
        pg.create_database("board_1")
        url = pg.url("board_1")  # postgresql://kanban:...@127.0.0.1:PORT/board_1

`server()` runs ``initdb`` in a fresh temporary directory (in memory, /dev/shm, unless told
otherwise) and starts the server with ``pg_ctl`` on a free port of 127.0.0.1 (no other
address), its Unix socket inside that directory, password (SCRAM) authentication with a
password made for this server; it stops it (``pg_ctl stop -m immediate``) and removes the
directory at the end. The programs come from Debian's packages,
/usr/lib/postgresql/<version>/bin (``make test`` installs postgresql-15 when they are missing).

PostgreSQL refuses to run as root: as root the server runs as a system user of its own,
``kanban-pg``, created (``useradd --system``) the first time; anyone else runs it as
themselves.

By default durability is off (``fsync``, ``full_page_writes``, ``synchronous_commit``): a test
server's data never outlives it, and every commit would otherwise wait for the disk. A
benchmark passes the settings it compares under instead.

A watchdog process holds a pipe from the process that started the server: if that process
dies without stopping the server (SIGKILL, a crash), the watchdog stops it and removes its
directory, so no server outlives the test session or benchmark that started it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import os
import pwd
import re
import secrets
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

SYSTEM_USER = "kanban-pg"  # the server's OS user when we are root
ROLE = "kanban"  # the database superuser the URLs name
BIN_GLOB = "/usr/lib/postgresql/*/bin"
INSTALL_HINT = "`make test` installs it (Debian's postgresql-15: apt-get install -y postgresql-15)"
FAST = {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off"}
START_TIMEOUT = 60  # seconds pg_ctl waits for the server to accept connections
START_ATTEMPTS = 3  # a free port can be taken by someone else before the server binds it
# Every database is some 300 files, created and deleted with each test's database; on a disk
# that is slow right after mass deletion (../shared/benchmarking.md, trap 2): 100-500 ms a
# CREATE DATABASE measured on this machine's disk, 20-40 ms in memory.
MEMORY = Path("/dev/shm")
MEMORY_NEEDED = 1 << 30  # bytes free on /dev/shm to use it (a container's may be 64 MiB)

# Reads its standard input until the end (the pipe from the process that started the
# server closes when it exits, however it exits), then stops the server and removes its
# directory. Its own session: a Ctrl-C meant for the tests must not kill it first.
WATCHDOG = r"""
import json, shutil, subprocess, sys
args = json.loads(sys.argv[1])
sys.stdin.buffer.read()
subprocess.run(
    [args["pg_ctl"], "stop", "-D", args["data"], "-m", "immediate", "-w", "-s"],
    cwd=args["base"], capture_output=True, check=False, **args["as_user"],
)
shutil.rmtree(args["base"], ignore_errors=True)
"""


class PostgresUnavailable(RuntimeError):
    """PostgreSQL could not be started here; the message says what is missing or what failed."""


@dataclasses.dataclass(frozen=True)
class Server:
    """A running server: URLs for its databases, and creating and dropping them."""

    port: int
    password: str
    base: Path  # the temporary directory: data/, sock/, server.log
    user: str  # the OS user the server runs as
    admin: psycopg.Connection[Any]  # autocommit, to the `postgres` database

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    def url(self, dbname: str, *, password: bool = True) -> str:
        """A URL of database `dbname`; without its password for a process that is given it
        in ``PGPASSWORD`` (libpq reads it), so that it is not in the process's argv."""
        secret = f":{self.password}" if password else ""
        return f"postgresql://{ROLE}{secret}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str, *, template: str = "template0") -> None:
        """A new, empty database (or a copy of `template`, which nobody may be connected to)."""
        self.admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )

    def drop_database(self, name: str) -> None:
        """Drop `name`, ending whatever connections are left to it (a test's unclosed pool)."""
        self.admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def binaries() -> Path:
    """The directory of the newest installed server's programs (initdb, pg_ctl)."""

    def version(directory: str) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", Path(directory).parent.name))

    found = [d for d in glob.glob(BIN_GLOB) if (Path(d) / "initdb").exists()]
    for directory in sorted(found, key=version, reverse=True):
        if (Path(directory) / "pg_ctl").exists() and (Path(directory) / "postgres").exists():
            return Path(directory)
    raise PostgresUnavailable(
        f"PostgreSQL's server programs (initdb, pg_ctl, postgres) are not installed: none "
        f"under {BIN_GLOB}; {INSTALL_HINT}"
    )


def unprivileged_user() -> pwd.struct_passwd:
    """Ourselves, unless we are root: then the system user `kanban-pg`, created if missing."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(SYSTEM_USER)
    command = ["useradd", "--system", "--user-group", "--no-create-home"]
    command += ["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", SYSTEM_USER]
    try:
        made = subprocess.run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise PostgresUnavailable(
            f"PostgreSQL refuses to run as root and `useradd` is missing to create the "
            f"unprivileged user {SYSTEM_USER!r} for it: create that user, or run as another one"
        ) from exc
    try:  # another test process may have created it at the same moment: fine
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise PostgresUnavailable(
            f"PostgreSQL refuses to run as root, and creating the unprivileged user "
            f"{SYSTEM_USER!r} for it failed: {' '.join(command)}: {made.stderr.strip()}"
        ) from None


def in_memory() -> Path | None:
    """/dev/shm when it is a writable directory with room, else None (the default place)."""
    try:
        room = os.statvfs(MEMORY)
    except OSError:
        return None
    if room.f_bavail * room.f_frsize < MEMORY_NEEDED or not os.access(MEMORY, os.W_OK | os.X_OK):
        return None
    return MEMORY


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def server(
    *, settings: Mapping[str, str] = FAST, directory: Path | None = None
) -> Iterator[Server]:
    """Start a server in a temporary directory; stop it and remove the directory afterwards.

    `settings` are server parameters (``postgres -c name=value``) on top of PostgreSQL's
    defaults; the default turns durability off. The temporary directory goes in `directory`
    (a benchmark puts it beside the SQLite files it compares with), else in /dev/shm when it
    has room, else in the system's temporary directory. Raises PostgresUnavailable when the
    programs are missing or the server does not start, with what is missing or PostgreSQL's
    own words.
    """
    bindir = binaries()
    account = unprivileged_user()
    # Only the caller's user and the server's may enter it: mkdtemp makes it 0700.
    base = Path(tempfile.mkdtemp(prefix="kanban-pg-", dir=directory or in_memory()))
    as_user: dict[str, Any] = {}
    if os.geteuid() == 0:
        os.chown(base, account.pw_uid, account.pw_gid)
        as_user = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    watchdog = subprocess.Popen(
        [
            sys.executable,
            "-c",
            WATCHDOG,
            json.dumps(
                {
                    "pg_ctl": str(bindir / "pg_ctl"),
                    "data": str(base / "data"),
                    "base": str(base),
                    "as_user": as_user,
                }
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    admin: psycopg.Connection[Any] | None = None
    try:
        password = secrets.token_urlsafe(18)
        port = start(bindir, base, password=password, settings=settings, as_user=as_user)
        url = f"postgresql://{ROLE}:{password}@127.0.0.1:{port}/postgres"
        try:
            admin = psycopg.connect(url, autocommit=True)
        except psycopg.Error as exc:
            raise PostgresUnavailable(f"PostgreSQL started but refused {url}: {exc}") from exc
        yield Server(port=port, password=password, base=base, user=account.pw_name, admin=admin)
    finally:
        if admin is not None:
            admin.close()
        assert watchdog.stdin is not None
        watchdog.stdin.close()  # the watchdog stops the server and removes the directory
        watchdog.wait(timeout=120)


def start(
    bindir: Path,
    base: Path,
    *,
    password: str,
    settings: Mapping[str, str],
    as_user: dict[str, Any],
) -> int:
    """initdb and pg_ctl start in `base` as the server's user; the port it listens on."""

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, cwd=base, capture_output=True, text=True, check=False, **as_user
        )

    (base / "pwfile").write_text(password + "\n")
    if as_user:
        os.chown(base / "pwfile", as_user["user"], as_user["group"])
    initdb = run(
        str(bindir / "initdb"),
        "--pgdata",
        str(base / "data"),
        "--username",
        ROLE,
        "--pwfile",
        str(base / "pwfile"),
        "--auth",
        "scram-sha-256",
        "--encoding",
        "UTF8",
        "--no-locale",
        "--no-sync",  # the directory is thrown away; waiting for the disk buys nothing
        "--no-instructions",
    )
    (base / "pwfile").unlink()
    if initdb.returncode != 0:
        raise PostgresUnavailable(
            f"initdb failed (exit {initdb.returncode}): {initdb.stderr.strip()[-2000:]}"
        )
    (base / "sock").mkdir(mode=0o700)
    if as_user:
        os.chown(base / "sock", as_user["user"], as_user["group"])
    log = base / "server.log"
    failures = []
    for _ in range(START_ATTEMPTS):
        port = free_port()
        options = {
            "listen_addresses": "127.0.0.1",
            "port": str(port),
            "unix_socket_directories": str(base / "sock"),
            **settings,
        }
        started = run(
            str(bindir / "pg_ctl"),
            "start",
            "--pgdata",
            str(base / "data"),
            "--log",
            str(log),
            "--wait",
            "--timeout",
            str(START_TIMEOUT),
            "--silent",
            "-o",
            " ".join(f"-c {name}={value}" for name, value in options.items()),
        )
        if started.returncode == 0:
            return port
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        failures.append(f"port {port}: {started.stderr.strip()} {tail.strip()}")
        if "could not bind" not in tail and "Address already in use" not in tail:
            break
    raise PostgresUnavailable("PostgreSQL did not start: " + "\n".join(failures))
