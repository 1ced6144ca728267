"""Live updates: board changes from any process pushed to every open page as server-sent events.

A writer anywhere (a dispatcher, a worker's tool call, the CLI, this server) commits to the
board file; nothing tells this server. So one watcher per server looks: every `INTERVAL`
seconds it asks SQLite for its data version (microseconds; it changes when another
connection commits), and only when that moved reads what changed since its cursor (events and
comments after the last ids it saw: a primary-key range). The changed tasks are rendered
once, as cards for the pages and as task objects for the API, and the message goes to every
subscriber. A change reaches a page within `INTERVAL` plus a few milliseconds, whatever the
board's size (bench/web.py measures it). Too many changes at once, or a subscriber too slow
to keep up, get a ``reload`` instead: the page fetches its columns again.

The dispatchers' wake-up datagrams (`board.wake`) are not joined: they go to registered
dispatchers only, and registering as one would make this server part of the dispatchers' own
bookkeeping (adoption, liveness) for no gain over a 50 ms look.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import anyio
import anyio.abc
import sqlite_utils
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from board import connection, errors, feed, views
from orchestrator.web import html

INTERVAL = 0.05  # s between looks at data_version
MAX_TASKS = 200  # changed tasks in one message; more: a reload
BUFFER = 64  # messages a subscriber may fall behind before it is told to reload


@dataclasses.dataclass(frozen=True)
class Message:
    cursor: str
    page: str  # JSON for the pages: counts, cards
    api: str  # JSON for API clients: counts, task objects


class Subscriber:
    def __init__(self) -> None:
        self.send: MemoryObjectSendStream[Message]
        self.receive: MemoryObjectReceiveStream[Message]
        self.send, self.receive = anyio.create_memory_object_stream[Message](BUFFER)
        self.behind = False


class Watcher:
    """The one loop that notices board changes and tells every subscriber."""

    def __init__(self, db_path: str, *, interval: float = INTERVAL) -> None:
        self.db_path = db_path
        self.interval = interval
        self.db: sqlite_utils.Database = connection.connect(db_path, create=False)
        self.cursor = feed.cursor(self.db)
        self.version = feed.data_version(self.db)
        self.subscribers: set[Subscriber] = set()
        self._limiter = anyio.CapacityLimiter(1)

    def subscribe(self) -> Subscriber:
        subscriber = Subscriber()
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        subscriber.send.close()

    async def run(self) -> None:
        while True:
            await anyio.sleep(self.interval)
            version = feed.data_version(self.db)  # a few microseconds: no thread
            if version == self.version:
                continue
            self.version = version
            try:
                message = await anyio.to_thread.run_sync(self._look, limiter=self._limiter)
            except errors.KanbanError:
                continue  # locked for now: the next look sees the same changes
            if message is not None:
                self.broadcast(message)

    def broadcast(self, message: Message) -> None:
        for subscriber in list(self.subscribers):
            try:
                subscriber.send.send_nowait(message)
            except anyio.WouldBlock:
                subscriber.behind = True
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self.subscribers.discard(subscriber)

    def _look(self) -> Message | None:
        new, changed, overflow = feed.changes(self.db, self.cursor, limit=MAX_TASKS)
        if new == self.cursor:
            return None  # a heartbeat, a lease renewed: nothing a page shows
        self.cursor = new
        return message(self.db, new, changed, reload=overflow)

    def close(self) -> None:
        self.db.conn.close()


def message(
    db: sqlite_utils.Database, cursor: feed.Cursor, changed: list[int], *, reload: bool
) -> Message:
    counts = feed.counts(db)
    found = [] if reload else feed.tasks_by_id(db, changed)
    objects = views.task_objects(db, found)
    cards = [
        {
            "id": obj["id"],
            "status": obj["status"],
            "parent": obj["parent"],
            "sort": feed.sort_key(task),
            "html": html.card(obj, sort=feed.sort_key(task)),
        }
        for task, obj in zip(found, objects, strict=True)
    ]
    base = {"cursor": cursor.label, "reload": reload, "counts": counts}
    return Message(
        cursor=cursor.label,
        page=json.dumps({**base, "tasks": cards}, ensure_ascii=False),
        api=json.dumps({**base, "tasks": objects}, ensure_ascii=False),
    )


def reload_message(cursor: str) -> dict[str, Any]:
    return {"event": "change", "id": cursor, "data": json.dumps({"cursor": cursor, "reload": True})}


async def events(watcher: Watcher, *, api: bool, last_id: str | None) -> Any:
    """The server-sent events of one subscriber: ``hello`` with the cursor, then ``change``
    messages (``reload`` when it fell behind, or missed changes while disconnected)."""
    subscriber = watcher.subscribe()
    try:
        cursor = watcher.cursor.label
        yield {"event": "hello", "id": cursor, "data": json.dumps({"cursor": cursor})}
        if last_id is not None and last_id != cursor:
            yield reload_message(cursor)
        async for found in subscriber.receive:
            if subscriber.behind:
                subscriber.behind = False
                yield reload_message(found.cursor)
                continue
            yield {"event": "change", "id": found.cursor, "data": found.api if api else found.page}
    finally:
        watcher.unsubscribe(subscriber)
