"""The shim: the small process that owns one worker's agent and records its end in the board.

The dispatcher starts ``python -m worker.shim --db DB --run RUN --lock-fd N [--scope CGROUP]
-- ARGV...`` in a session of its own, with the run's log file as stdout and stderr and the
worker's environment (which carries the run's token). The shim:

1. holds the run's lock (an ``flock`` the dispatcher took *before* starting it and handed over
   as descriptor N) for as long as it lives, so anyone can tell whether a shim may still write
   this run's record, even one the dispatcher died before recording (see `locks`);
2. starts the agent in a further session (so the dispatcher can kill the agent's whole tree
   while the shim survives to record it), inside the run's scope (`scope`: a cgroup, or the
   shim as child subreaper), armed to die with the shim;
3. records the agent's pid and start time, waits, then ends every process left in the scope
   (`sleep 300 &`, a dev server, a double-forked daemon) and only then records the exit code or
   signal. Because the shim, not the dispatcher, writes the exit, the outcome survives a
   dispatcher that was killed or restarted; because it writes it last, a recorded exit means
   no process of the run is left.

The agent is started *before* the board is imported: that import is off the critical path
from claim to the agent's first instruction.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import types

from worker import pause, scope

SPAWN_FAILED_EXIT = 127


def _record(action, path: str, *args, **kwargs) -> None:
    """Write to the board at `path`, through a connection of its own.

    Opened for each record (twice a run): a board restored from a backup while the agent ran
    is the one at the path now, and the record must reach it, not the file we saw at start.
    The board may be busy or briefly unavailable; the exit must not be lost for that. The run
    stays un-ended meanwhile, so nothing else can start in its worktree.
    """
    from board import connection

    delay = 0.1
    deadline = time.monotonic() + 600
    while True:
        try:
            db = connection.connect(path)
            try:
                action(db, *args, **kwargs)
            finally:
                db.conn.close()
            return
        except Exception as exc:
            if time.monotonic() > deadline or _permanent(exc):
                sys.stderr.write(f"kanban-shim: could not record in the board: {exc}\n")
                return
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def _permanent(exc: Exception) -> bool:
    from board import errors

    # A stale or unknown run will never be accepted: stop trying.
    return isinstance(exc, errors.KanbanError) and not isinstance(exc, errors.BoardBusy)


_OPTIONS = ("--db", "--run", "--cwd", "--lock-fd", "--scope")


def _parse(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """``--db DB --run N --cwd DIR [--lock-fd N] [--scope CGROUP] -- ARGV...``.

    By hand, not argparse: the shim is on the path from claim to the agent's start, and
    importing argparse alone costs about 12 ms. Its one caller is the dispatcher.
    """
    options: dict[str, str] = {}
    rest = list(argv)
    while rest and rest[0] != "--":
        name = rest.pop(0)
        if name not in _OPTIONS or not rest:
            raise SystemExit(f"kanban-shim: bad arguments near {name!r}; usage: {_parse.__doc__}")
        options[name] = rest.pop(0)
    missing = [name for name in ("--db", "--run", "--cwd") if name not in options]
    if missing or not rest[1:] or not options["--run"].isdigit():
        raise SystemExit(f"kanban-shim: {', '.join(missing) or 'a command'} missing or bad")
    return options, rest[1:]


def main(argv: list[str] | None = None) -> int:
    options, command = _parse(sys.argv[1:] if argv is None else argv)
    args = types.SimpleNamespace(
        db=options["--db"],
        run=int(options["--run"]),
        cwd=options["--cwd"],
        scope=options.get("--scope"),  # --lock-fd: held, never read (the module's docstring)
    )
    token = os.environ.get("HERMES_KANBAN_TOKEN", "")
    me = os.getpid()

    # Stopping the shim must not orphan the agent: forward SIGTERM, ignore SIGINT/SIGHUP.
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: object) -> None:
        if child is not None and child.poll() is None:
            try:
                os.killpg(child.pid, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if args.scope is None:
        scope.become_subreaper()
    try:
        child = subprocess.Popen(
            command,
            cwd=args.cwd,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,  # the run's lock stays with the shim alone
            preexec_fn=scope.child_setup(args.scope, me),
        )
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        sys.stderr.write(f"kanban-shim: cannot start {command[:1]}: {exc}\n")
        sys.stderr.flush()
        from board import runs

        _record(runs.exited, args.db, args.run, token, exit_code=SPAWN_FAILED_EXIT, signal=None)
        return SPAWN_FAILED_EXIT

    import psutil

    from board import runs

    pause.point("shim.agent-started")
    try:
        started = psutil.Process(child.pid).create_time()
    except psutil.NoSuchProcess:
        started = time.time()
    _record(
        runs.started,
        args.db,
        args.run,
        token,
        pid=child.pid,
        pid_started_at=started,
        shim_pid=me,
        shim_started_at=psutil.Process(me).create_time(),
    )
    while True:
        try:
            code = child.wait()
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us
            continue
    pause.point("shim.agent-exited")
    # The agent is gone; nothing it started may outlive the run.
    if args.scope is not None:
        if not scope.end(args.scope):
            sys.stderr.write(f"kanban-shim: processes left in {args.scope} would not die\n")
    else:
        scope.reap_descendants(me)
    exit_code, sig = (None, -code) if code < 0 else (code, None)
    _record(runs.exited, args.db, args.run, token, exit_code=exit_code, signal=sig)
    return code if code >= 0 else 128 + sig  # type: ignore[operator]


if __name__ == "__main__":
    sys.exit(main())
