"""Waking dispatchers the moment the board changes, from any process.

A running dispatcher registers an abstract Unix datagram socket name in the ``dispatchers``
table. Whoever commits a change a dispatcher cares about (a task became ready, was cancelled,
a run reported) sends each registered name one byte. Nothing blocks, nothing is retried: a
dispatcher that is gone just misses the datagram, and every dispatcher also re-reads the board
on a slow timer, so a lost wake-up costs latency, never correctness.

Abstract socket names are Linux-only; elsewhere `notify` does nothing and dispatchers fall back
to their polling interval.
"""

from __future__ import annotations

import socket
import sqlite3
import sys

_sock: socket.socket | None = None
SUPPORTED = sys.platform.startswith("linux")


def address(name: str) -> str:
    """The abstract socket address for a registered name (a leading NUL byte)."""
    return "\0" + name


def notify(conn: sqlite3.Connection) -> None:
    if not SUPPORTED:
        return
    names = [
        row[0]
        for row in conn.execute(
            "SELECT wake_address FROM dispatchers WHERE wake_address IS NOT NULL"
        )
    ]
    if not names:
        return
    global _sock
    if _sock is None:
        _sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        _sock.setblocking(False)
    for name in names:
        try:
            _sock.sendto(b"!", address(name))
        except OSError:
            pass  # gone, or its queue is full: it will wake up anyway


class Listener:
    """A PostgreSQL board's wake-ups: ``LISTEN`` on a connection of its own.

    `transaction` sends ``NOTIFY`` with every commit that should wake dispatchers; the server
    delivers it to every listening connection, on every host. Wait for `fileno` to become
    readable, then `drain`. A lost connection is opened again (`drain` returns True then: a
    wake-up may have been missed, so look at the board).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._open()

    def _open(self) -> None:
        import psycopg

        from board import postgres

        self.raw = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        self.raw.execute(f"LISTEN {postgres.CHANNEL}")

    def fileno(self) -> int:
        return self.raw.fileno()

    def drain(self) -> bool:
        """Read what arrived; True if it holds a wake-up."""
        import psycopg

        try:
            return bool(list(self.raw.notifies(timeout=0)))
        except psycopg.OperationalError:
            self.raw.close()
            self._open()
            return True

    def close(self) -> None:
        self.raw.close()


def listener(url: str) -> Listener:
    return Listener(url)
