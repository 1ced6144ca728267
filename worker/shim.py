"""The shim: the small process that owns one worker's agent and records its end in the board.

The dispatcher starts ``python -m worker.shim --db DB --run RUN -- ARGV...`` in a session of
its own, with the run's log file as stdout and stderr and the worker's environment (which
carries the run's token). The shim starts the agent in a further session (so the dispatcher
can kill the agent's whole tree while the shim survives to record it), records the agent's
pid and start time, waits, and records the exit code or signal. Because the shim, not the
dispatcher, writes the exit, the outcome survives a dispatcher that was killed or restarted.

The agent is started *before* the board is imported: that import is off the critical path
from claim to the agent's first instruction.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

SPAWN_FAILED_EXIT = 127


def _record(action, *args, **kwargs) -> None:
    # The board may be busy or briefly unavailable; the exit must not be lost for that.
    for delay in (0.1, 0.5, 1, 2, 5, 10, 0):
        try:
            action(*args, **kwargs)
            return
        except Exception as exc:
            if delay == 0:
                sys.stderr.write(f"kanban-shim: could not record in the board: {exc}\n")
                return
            time.sleep(delay)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.shim")
    parser.add_argument("--db", required=True)
    parser.add_argument("--run", type=int, required=True)
    parser.add_argument("--cwd", required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    token = os.environ.get("HERMES_KANBAN_TOKEN", "")

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
    try:
        child = subprocess.Popen(
            command,
            cwd=args.cwd,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        sys.stderr.write(f"kanban-shim: cannot start {command[:1]}: {exc}\n")
        sys.stderr.flush()
        from board import connection, runs

        db = connection.connect(args.db)
        _record(runs.exited, db, args.run, token, exit_code=SPAWN_FAILED_EXIT, signal=None)
        return SPAWN_FAILED_EXIT

    import psutil

    from board import connection, runs

    try:
        started = psutil.Process(child.pid).create_time()
    except psutil.NoSuchProcess:
        started = time.time()
    db = connection.connect(args.db)
    _record(runs.started, db, args.run, token, pid=child.pid, pid_started_at=started)
    while True:
        try:
            code = child.wait()
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us
            continue
    exit_code, sig = (None, -code) if code < 0 else (code, None)
    _record(runs.exited, db, args.run, token, exit_code=exit_code, signal=sig)
    return code if code >= 0 else 128 + sig  # type: ignore[operator]


if __name__ == "__main__":
    sys.exit(main())
