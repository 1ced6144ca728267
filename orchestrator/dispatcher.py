"""The dispatcher: claims ready tasks and supervises their workers until told to stop.

One task group runs the dispatch loop, the wake-up listener, the reaper (which adopts the runs
of dead dispatchers and beats this one's heartbeat) and the signal handler. If one of them
fails, the group is cancelled and the dispatcher stops with the error instead of limping on.

It is event-driven: anyone who commits a change a dispatcher cares about sends it a datagram
(`board.wake`), and the loop claims within milliseconds. Polling (`poll_interval`) is only the
fallback. A delayed retry is a timer, not a poll.

Several hosts may share a PostgreSQL board, each with its own dispatchers. A dispatcher
records its host (`dispatchers.host`) on its registration and on every run it claims, and
judges another's liveness by its pid on its own host, by its heartbeat elsewhere. It adopts a
run of another host only once that host's dispatcher is stale and the run's lease (renewed by
its dispatcher's beats and its worker's heartbeats) has expired too, and never watches or
kills another host's pids: such a run is settled as lost and retried (`Supervisor.adopt`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import socket
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import sqlite_utils

from board import connection, dispatchers, errors, ids, records, runs, spending, tasks, wake
from board.wake import Listener
from orchestrator import boardio, config, notify, processes, schedules, supervisor
from worker import scope

log = logging.getLogger("kanban.dispatcher")

REAP_INTERVAL = 5.0


class Dispatcher:
    def __init__(
        self,
        settings: config.Settings,
        db_path: str | None,
        *,
        until_idle: bool = False,
        on_event: Callable[[str], None] | None = None,
        idle_scope: Callable[[sqlite_utils.Database], bool] | None = None,
        batch_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.board = boardio.Board(db_path)
        self.until_idle = until_idle
        self.on_event = on_event or (lambda message: None)
        self._spent: str | None = None  # why the daily budget stops new work, if it does
        # For `kanban run`: stop when this says the work we care about is finished.
        self.idle_scope = idle_scope
        # For `kanban run`: claim only this batch's tasks (their subtasks inherit it).
        self.batch_id = batch_id
        self.id = 0
        self.host = dispatchers.host()
        self.stopping = False
        self._wakeup = anyio.Event()
        self._board_changed = anyio.Event()
        self.supervisor: supervisor.Supervisor | None = None
        self.extra_tasks: list[Callable[[Dispatcher], Coroutine[Any, Any, object]]] = []
        self.clock: Callable[[], float] = time.time

    def wake(self) -> None:
        self._wakeup.set()

    # -- lifecycle ----------------------------------------------------------------------

    async def run(self) -> int:
        """Run until stopped (or idle with `until_idle`); returns the exit code."""
        # Woken by a datagram from any process on this host, or (a PostgreSQL board, shared
        # by hosts) by the database's NOTIFY, from any host.
        sock, address = (None, None) if self.board.on_postgres else _wake_socket()
        listener = wake.listener(self.board.path) if self.board.on_postgres else None
        me = os.getpid()
        self.id = await self.board.call(
            dispatchers.register,
            pid=me,
            pid_started_at=processes.start_time(me),
            host=self.host,
            wake_address=address,
        )
        await self.board.call(tasks.store_limits, self.settings.limits)
        logs_dir = self.settings.logs_dir or (
            Path.home() / ".kanban" / "logs"
            if self.board.on_postgres
            else Path(self.board.path).parent / "logs"
        )
        self.supervisor = supervisor.Supervisor(
            self.board,
            self.settings,
            dispatcher_id=self.id,
            logs_dir=logs_dir,
            on_event=self.on_event,
            host=self.host,
        )
        self.board.on_busy = self.on_event
        self.on_event(
            f"dispatcher {self.id} started (pid {me} on host {self.host}, board "
            f"{connection.shown(self.board.path)}; "
            f"every run's processes are contained by {scope.mechanism()})"
        )
        try:
            async with anyio.create_task_group() as group:
                if sock is not None:
                    group.start_soon(self._listen, sock)
                if listener is not None:
                    group.start_soon(self._listen_to_database, listener)
                group.start_soon(self._signals, group)
                group.start_soon(self._reaper, group)
                group.start_soon(notify.run, self)
                if self.batch_id is None:  # a one-shot `kanban run` fires no schedules
                    group.start_soon(self._scheduler)
                for extra in self.extra_tasks:
                    group.start_soon(extra, self)
                await self._loop(group)
                group.cancel_scope.cancel()
        finally:
            # Best effort, once: dispatcher ids are never reused, so a registration left behind
            # (a locked board, a crash) is only a dead pid to the next dispatcher, which adopts
            # whatever runs this one still held.
            with anyio.CancelScope(shield=True), contextlib.suppress(errors.KanbanError):
                await anyio.to_thread.run_sync(dispatchers.unregister, self.board.db, self.id)
            if sock is not None:
                sock.close()
            if listener is not None:
                listener.close()
            self.board.close()
        # Interrupted: running work was stopped (and will be retried), not finished.
        return 130 if self.supervisor.stopping_workers else 0

    async def _loop(self, group: anyio.abc.TaskGroup) -> None:
        assert self.supervisor is not None
        while True:
            self._wakeup = anyio.Event()
            if not self.stopping:
                free = self.settings.max_workers - len(self.supervisor.watched)
                if free > 0:
                    held: list[tuple[int, str]] = []
                    claims = await self.board.call(
                        runs.claim,
                        limit=free,
                        dispatcher_id=self.id,
                        lease=self.settings.lease,
                        batch_id=self.batch_id,
                        held=held,
                        host=self.host,
                    )
                    for task_id, reason in held:
                        self.on_event(f"{ids.format(task_id)}: blocked: {reason}")
                    for claim in claims:
                        self.on_event(
                            f"{claim.task.label}: attempt {claim.attempt} ({claim.kind}) started"
                        )
                        group.start_soon(self._supervise, claim)
                    if not claims:
                        await self._check_daily_budget()
            if self.stopping and not self.supervisor.watched:
                return
            if (
                self.until_idle
                and not self.supervisor.watched
                and (self._spent is not None or await self._idle())
            ):
                return
            await self._sleep()

    async def _check_daily_budget(self) -> None:
        """Say so when the board's daily budget stops new work, and when it no longer does."""
        limits = self.settings.limits
        spent = await self.board.call(
            spending.daily, limits.daily_tokens, limits.daily_usd, time.time()
        )
        if spent != self._spent:
            if spent is not None:
                self.on_event(spent)
            elif self._spent is not None:
                self.on_event("the daily budget allows new work again")
            self._spent = spent

    async def _supervise(self, claim: runs.Claim) -> None:
        assert self.supervisor is not None
        try:
            await self.supervisor.start(claim)
        finally:
            self.wake()  # a slot is free

    async def _sleep(self) -> None:
        timeout = self.settings.poll_interval
        due = await self.board.call(runs.next_retry_at)
        if due is not None:
            timeout = max(0.0, min(timeout, due - time.time() + 0.01))
        with anyio.move_on_after(timeout):
            await self._wakeup.wait()

    async def _idle(self) -> bool:
        if self.idle_scope is not None:
            return await self.board.call(self.idle_scope)
        counts = await self.board.call(runs.active_counts)
        return counts == (0, 0)

    # -- wake-ups, signals, orphans -------------------------------------------------------

    async def _listen_to_database(self, listener: Listener) -> None:
        while True:
            await anyio.wait_readable(listener.fileno())
            if listener.drain():
                self._woken()

    def _woken(self) -> None:
        self.wake()
        self._board_changed.set()
        if self.supervisor is not None:
            self.supervisor.poke_all()  # a cancel or a report may concern a worker

    async def _listen(self, sock: socket.socket) -> None:
        while True:
            await anyio.wait_readable(sock)
            with contextlib.suppress(BlockingIOError):
                while True:
                    sock.recv(64)
            self._woken()

    async def _signals(self, group: anyio.abc.TaskGroup) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                assert self.supervisor is not None
                name = signal.Signals(signum).name
                if not self.stopping:
                    self.stopping = True
                    running = len(self.supervisor.watched)
                    self.on_event(
                        f"{name}: starting no new workers; waiting for {running} "
                        "running worker(s) (send it again to stop them)"
                    )
                else:
                    self.supervisor.stopping_workers = True
                    self.on_event(f"{name} again: stopping the running workers")
                    self.supervisor.poke_all()
                self.wake()

    async def _reaper(self, group: anyio.abc.TaskGroup) -> None:
        """Adopt runs whose dispatcher is gone; keep our own registration (and the leases of
        the runs we hold) fresh.

        A run of this host is adopted as soon as its dispatcher's process is gone (its
        processes are watched from here). A run of another host only once its dispatcher is
        stale *and* its lease has expired: its worker may still be beating, on a host that
        lost only its dispatcher; adopted, it is settled as lost (`Supervisor.adopt`).
        """
        assert self.supervisor is not None
        # Beat well within the time after which other hosts take this dispatcher for gone.
        interval = min(REAP_INTERVAL, self.settings.host_stale_after / 4)
        while True:
            # Runs before dispatchers: a dispatcher that registers after this read owns none
            # of these runs, so its fresh claims are never mistaken for orphans.
            # A one-shot `kanban run` adopts only its own batch's runs: it must not wait for
            # (or be answerable for) work that is not its own; a long-lived dispatcher will.
            unended = await self.board.call(runs.unended, batch_id=self.batch_id)
            registered = await self.board.call(dispatchers.all_)
            live, dead = await anyio.to_thread.run_sync(self._partition_dispatchers, registered)
            if dead:
                await self.board.call(dispatchers.forget, dead)
            now = time.time()
            for run in unended:
                if run.dispatcher_id in live or run.id in self.supervisor.watched:
                    continue
                if self.stopping:
                    break
                elsewhere = run.host is not None and run.host != self.host
                if elsewhere and (run.lease_expires_at or 0.0) > now:
                    continue  # its host may still be working on it: wait out its lease
                if await self.board.call(
                    dispatchers.adopt, run.id, self.id, old_owner=run.dispatcher_id
                ):
                    self.on_event(f"adopting run {run.id} of task {ids.format(run.task_id)}")
                    group.start_soon(self._adopt, run)
            if self.supervisor.uses_tool_server():
                # A tool server that died is started again on its port: the workers' Codex
                # re-initializes with it at their next tool call.
                try:
                    await self.supervisor.tool_server()
                except errors.KanbanError as exc:
                    self.on_event(f"the kanban tool server is down: {exc}")
            await anyio.sleep(interval)
            # Never go on with a board that is no longer the file at its path: the CLI and the
            # workers would use the new one, this dispatcher the old (a silent split brain).
            # Every board call checks it too; this one notices it on an idle board.
            self.board.check_same_file()
            registered_still = await self.board.call(
                dispatchers.beat, self.id, lease=self.settings.lease
            )
            if not registered_still and not self.stopping:
                # A dispatcher on another host took this one for gone (this host was cut off
                # from the board for longer than host_stale_after) and settled what it held:
                # claiming more under an id the board has forgotten would only repeat that.
                self.stopping = True
                self.on_event(
                    f"dispatcher {self.id} was taken for gone by another host (no beat for "
                    f"{self.settings.host_stale_after:g} s): starting no new workers; the runs "
                    "it held were settled there and are stopped here"
                )
                self.supervisor.poke_all()
                self.wake()

    async def _scheduler(self) -> None:
        """Fire due cron schedules; sleeps until the next fire time (or a board change)."""
        while True:
            if not self.stopping:
                now = self.clock()
                for name, fire_at, batch_id in await self.board.call(schedules.fire_due, now):
                    self.on_event(
                        f"schedule {name} fired for {time.ctime(fire_at)}"
                        + (f": batch {batch_id}" if batch_id else " (batch file error)")
                    )
            wait = await self.board.call(schedules.seconds_until_next, self.clock())
            self._board_changed = anyio.Event()
            # A schedule added meanwhile wakes the board listener, and with it this loop.
            with anyio.move_on_after(min(wait if wait is not None else 60.0, 60.0) + 0.01):
                await self._board_changed.wait()

    async def _adopt(self, run: records.Run) -> None:
        assert self.supervisor is not None
        try:
            await self.supervisor.adopt(run)
        finally:
            self.wake()

    def _partition_dispatchers(
        self, registered: list[records.Dispatcher]
    ) -> tuple[set[int], list[int]]:
        """(the live dispatchers, the dead ones): on this host by their pid (and its start
        time), elsewhere by their heartbeat, stale after `host_stale_after`."""
        host = self.host
        stale_after = self.settings.host_stale_after
        live, dead = {self.id}, []
        for other in registered:
            if other.id == self.id:
                continue
            if other.host == host:
                alive = processes.alive(other.pid, other.pid_started_at)
            else:
                alive = time.time() - other.heartbeat_at < stale_after
            (live.add(other.id) if alive else dead.append(other.id))
        return live, dead


def _wake_socket() -> tuple[socket.socket | None, str | None]:
    if not wake.SUPPORTED:
        return None, None
    name = f"kanban-dispatcher-{os.getpid()}-{secrets.token_hex(6)}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(wake.address(name))
    sock.setblocking(False)
    return sock, name
