"""Notifications: webhooks and desktop notices for blocked, failed, done, landed and budget events.

Configured by ``[notify]`` in the dispatcher's config file (`orchestrator.config`)::

    [notify]
    webhooks = ["https://hooks.example.com/kanban"]
    desktop = true                 # notify-send, when it is installed
    events = ["blocked", "failed", "done", "landed", "budget"]
    link = "http://build-box:8765" # where `kanban serve` is reached (default: the URL it recorded)

Every dispatcher runs a notifier beside its loop (`run`). It reads the board only after
changes commit, through the outbox of `board.notifications`: events are queued once per sink
as the board's cursor passes them, claimed by one sender, and marked sent, retried with
exponential backoff, or given up. Deliveries run in threads of their own (at most
`CONCURRENCY` at once, with a timeout each), so a slow or dead receiver never holds up the
dispatcher; a delivery under way when the dispatcher stops is finished (and recorded) first,
and what is due then is flushed for at most `timeout` seconds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import shutil
import subprocess
import time
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import sqlite_utils

from board import errors, feed, notifications, views
from orchestrator import boardio, config

log = logging.getLogger("kanban.notify")

CONCURRENCY = 4  # deliveries at once
POLL = 0.5  # s between looks at the board's newest event
MAX_DELAY = 600.0  # s: the longest wait before a retry
DESKTOP = "desktop"
# 4xx answers that may pass: a timeout, "too early", a rate limit.
_TRANSIENT_STATUS = {408, 425, 429}


@dataclasses.dataclass(frozen=True)
class Settings:
    webhooks: tuple[str, ...] = ()
    desktop: bool = True  # through notify-send, when it is on PATH
    events: frozenset[str] = frozenset(notifications.KINDS)
    link: str | None = None  # base URL of the web board (else the one `kanban serve` recorded)
    retries: int = 8  # attempts per notification and sink, the first included
    retry_delay: float = 5.0  # s before the first retry; doubles each time
    timeout: float = 10.0  # s a delivery may take
    max_age: float = 86_400.0  # s: older events are not announced
    configured: bool = False  # the config has a [notify] table at all


_KEYS = {
    "webhooks",
    "desktop",
    "events",
    "link",
    "retries",
    "retry_delay",
    "timeout",
    "max_age",
}


def load(path: Path | None = None) -> Settings:
    """``[notify]`` of the config file (`config.config_path`); no table: nothing is sent."""
    path = path or config.config_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise errors.InvalidInput(f"cannot read {path}: {exc}") from exc
    return parse(data.get("notify"), path)


def parse(table: Any, path: Path) -> Settings:
    """The ``[notify]`` table, checked; errors name the file and the key."""
    if table is None:
        return Settings()
    where = f"{path} [notify]"
    if not isinstance(table, dict):
        raise errors.InvalidInput(f"{where} must be a table")
    unknown = set(table) - _KEYS
    if unknown:
        raise errors.InvalidInput(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: "
            f"{', '.join(sorted(_KEYS))}"
        )
    webhooks = table.get("webhooks", [])
    if not isinstance(webhooks, list) or not all(isinstance(url, str) for url in webhooks):
        raise errors.InvalidInput(f'{where} webhooks: a list of URLs, ["https://..."]')
    for url in webhooks:
        if not url.startswith(("http://", "https://")):
            raise errors.InvalidInput(f"{where} webhooks: {url!r} is not an http(s) URL")
    events = table.get("events", list(notifications.KINDS))
    if not isinstance(events, list) or not set(events) <= set(notifications.KINDS):
        raise errors.InvalidInput(
            f"{where} events: a list of some of {', '.join(notifications.KINDS)}"
        )
    desktop = table.get("desktop", True)
    if not isinstance(desktop, bool):
        raise errors.InvalidInput(f"{where} desktop: true or false")
    link = table.get("link")
    if link is not None and not (isinstance(link, str) and link.startswith(("http:", "https:"))):
        raise errors.InvalidInput(f"{where} link: the web board's URL, http://HOST:PORT")
    numbers: dict[str, Any] = {}
    for key, kind in (("retries", int), ("retry_delay", float), ("timeout", float)):
        if key in table:
            value = table[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise errors.InvalidInput(f"{where} {key}: {value!r} is not a number")
            if not (math.isfinite(value) and value > 0) or (kind is int and value != int(value)):
                raise errors.InvalidInput(f"{where} {key}: must be a positive finite number")
            numbers[key] = kind(value)
    if "max_age" in table:
        value = table["max_age"]
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise errors.InvalidInput(f"{where} max_age: a positive number of seconds")
        numbers["max_age"] = float(value)
    return Settings(
        webhooks=tuple(dict.fromkeys(webhooks)),
        desktop=desktop,
        events=frozenset(events),
        link=link.rstrip("/") if link else None,
        configured=True,
        **numbers,
    )


def sink_name(url: str) -> str:
    """A webhook's name in the board: a hash, since a URL may carry a secret."""
    return "webhook:" + hashlib.sha256(url.encode()).hexdigest()[:16]


class Failure(Exception):
    """A delivery that did not go through; `permanent`: retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool = False, wait: float | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.wait = wait  # what the receiver asked for (Retry-After), if anything


def post(url: str, payload: Mapping[str, Any], *, timeout: float) -> int:
    """POST `payload` as JSON; returns the status, raises `Failure` unless it is 2xx."""
    import urllib.error  # here: 0.1 s of imports (ssl, email) a dispatcher without webhooks
    import urllib.request  # never pays

    class NoRedirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None  # a redirect is an answer, not a delivery: it fails and is retried

    body = json.dumps(payload, ensure_ascii=False).encode()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "kanban-notify",
            "X-Kanban-Event": str(payload["event"]),
            "X-Kanban-Delivery": str(payload["id"]),
        },
    )
    try:
        with urllib.request.build_opener(NoRedirects).open(request, timeout=timeout) as answer:
            answer.read(65536)
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        retry_after = exc.headers.get("Retry-After") if exc.headers else None
        wait = float(retry_after) if retry_after and retry_after.isdigit() else None
        permanent = 400 <= exc.code < 500 and exc.code not in _TRANSIENT_STATUS
        raise Failure(f"HTTP {exc.code} from the webhook", permanent=permanent, wait=wait) from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Failure(f"the webhook cannot be reached: {reason}") from exc


def desktop(binary: str, title: str, text: str, *, timeout: float) -> None:
    try:
        done = subprocess.run(
            [binary, "--app-name=kanban", title, text],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Failure(f"notify-send failed: {exc}") from exc
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()[-300:]
        raise Failure(f"notify-send exited {done.returncode}: {message}")


def payload(
    db: sqlite_utils.Database, delivery: notifications.Delivery, *, link: str | None, board_id: str
) -> dict[str, Any]:
    """What a webhook receives (docs/web.md#notifications)."""
    task = views.task_object(db, delivery.task_id)
    base = link or feed.server_url(db)
    reason = delivery.reason
    if delivery.kind == "done":
        reason = task["summary"] or reason  # what was done says more than "completed"
    elif delivery.kind == "landed":
        sha = delivery.data.get("sha")
        reason = f"landed in {sha[:12]}" if isinstance(sha, str) else "landed"
    headline = f"{task['id']} {delivery.kind}"
    return {
        "id": f"{board_id}:{delivery.event_id}",
        "event": delivery.kind,
        "at": views.when(delivery.at),
        "reason": reason,
        "text": f"{headline}: {task['title']}" + (f" ({reason})" if reason else ""),
        "link": f"{base.rstrip('/')}/tasks/{task['id']}" if base else None,
        "board": board_id,
        "task": task,
    }


class Notifier:
    """Sends the board's notifications from inside a dispatcher."""

    def __init__(
        self,
        board: boardio.Board,
        settings: Settings,
        *,
        claimer: str,
        say: Callable[[str], None],
        notify_send: str | None,
    ) -> None:
        self.board = board
        self.settings = settings
        self.claimer = claimer
        self.say = say
        self.sinks: dict[str, str] = {sink_name(url): url for url in settings.webhooks}
        self.notify_send = notify_send
        if notify_send is not None:
            self.sinks[DESKTOP] = notify_send
        self._limiter = anyio.CapacityLimiter(CONCURRENCY)
        self._in_flight: set[int] = set()

    async def run(self) -> None:
        try:
            async with anyio.create_task_group() as group:
                while True:
                    await self._round(group)
                    await anyio.sleep(POLL)
        except anyio.get_cancelled_exc_class():
            # Stopping: what is due now goes out first (bounded), so a one-shot dispatcher's
            # last events are not left for the next one.
            with anyio.move_on_after(self.settings.timeout, shield=True):
                async with anyio.create_task_group() as group:
                    await self._round(group)
            raise

    async def _round(self, group: anyio.abc.TaskGroup) -> None:
        names = list(self.sinks)
        try:
            await self.board.call(
                notifications.scan,
                sinks=names,
                kinds=self.settings.events,
                now=time.time(),
                max_age=self.settings.max_age,
            )
            free = CONCURRENCY - len(self._in_flight)
            if free <= 0:
                return
            due = await self.board.call(
                notifications.claim,
                claimer=self.claimer,
                now=time.time(),
                hold=self.settings.timeout * 3 + 30,
                sinks=names,
                limit=free,
            )
        except errors.KanbanError as exc:
            self.say(f"notifications: {exc}")
            return
        for delivery in due:
            self._in_flight.add(delivery.id)
            group.start_soon(self._deliver, delivery)

    async def _deliver(self, delivery: notifications.Delivery) -> None:
        # Shielded: a delivery that went out is recorded, even when the dispatcher stops.
        with anyio.CancelScope(shield=True):
            try:
                await self._send(delivery)
            except errors.KanbanError as exc:
                self.say(f"notifications: {exc}")
            finally:
                self._in_flight.discard(delivery.id)

    async def _send(self, delivery: notifications.Delivery) -> None:
        board_id = self.board.id
        body = await self.board.call(payload, delivery, link=self.settings.link, board_id=board_id)
        target = self.sinks[delivery.sink]
        try:
            if delivery.sink == DESKTOP:
                title = f"kanban: {body['task']['id']} {delivery.kind}"
                first = (body["reason"] or "").strip().split("\n")[0][:200]
                text = body["task"]["title"] + (f"\n{first}" if first else "")
                await anyio.to_thread.run_sync(
                    lambda: desktop(target, title, text, timeout=self.settings.timeout),
                    limiter=self._limiter,
                )
            else:
                await anyio.to_thread.run_sync(
                    lambda: post(target, body, timeout=self.settings.timeout),
                    limiter=self._limiter,
                )
        except Failure as exc:
            await self._failed(delivery, exc, body)
            return
        await self.board.call(notifications.sent, delivery.id, claimer=self.claimer)

    async def _failed(
        self, delivery: notifications.Delivery, exc: Failure, body: dict[str, Any]
    ) -> None:
        attempts = delivery.attempts + 1
        what = f"notification {body['id']} ({delivery.kind} of {body['task']['id']})"
        if exc.permanent or attempts >= self.settings.retries:
            self.say(f"{what} given up after {attempts} attempt(s): {exc}")
            await self.board.call(
                notifications.give_up, delivery.id, claimer=self.claimer, error=str(exc)
            )
            return
        delay = min(self.settings.retry_delay * 2 ** (attempts - 1), MAX_DELAY)
        delay = max(delay * random.uniform(0.8, 1.2), min(exc.wait or 0.0, MAX_DELAY))
        log.info("%s: %s; retrying in %.1f s", what, exc, delay)
        await self.board.call(
            notifications.retry_later,
            delivery.id,
            claimer=self.claimer,
            error=str(exc),
            at=time.time() + delay,
        )


async def run(dispatcher: Any) -> None:
    """A dispatcher's notifier (started in its task group); returns at once when the config
    asks for no notifications."""
    try:
        settings = load()
    except errors.KanbanError as exc:
        dispatcher.on_event(f"notifications are off: {exc}")
        return
    notify_send = shutil.which("notify-send") if settings.desktop else None
    if not settings.configured or not (settings.webhooks or notify_send):
        return
    notifier = Notifier(
        dispatcher.board,
        settings,
        claimer=f"{os.uname().nodename}:{os.getpid()}:{dispatcher.id}",
        say=dispatcher.on_event,
        notify_send=notify_send,
    )
    try:
        await notifier.run()
    except Exception as exc:  # a bug here must not stop the dispatcher's work
        log.exception("the notifier failed")
        dispatcher.on_event(f"notifications stopped: unexpected {type(exc).__name__}: {exc}")
