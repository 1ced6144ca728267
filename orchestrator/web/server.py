"""Serving the web board: the listening socket, the token, uvicorn.

`kanban serve` calls `listen` then `run`; benchmarks and tests may build the application
with `app.create` and serve it the same way.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable
from typing import Any

import sqlite_utils

from board import errors, feed
from orchestrator.web import security


@dataclasses.dataclass(frozen=True)
class Listening:
    sock: socket.socket
    host: str
    port: int

    @property
    def url(self) -> str:
        shown = self.host
        if shown in ("0.0.0.0", "::", ""):
            shown = socket.gethostname()
        elif ":" in shown:
            shown = f"[{shown}]"
        return f"http://{shown}:{self.port}/"


def listen(host: str, port: int) -> Listening:
    """A listening TCP socket on `host`:`port` (0: any free port)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise errors.InvalidInput(f"--host {host}: {exc.strerror}") from exc
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # No Nagle: a pushed event goes out at once, not after a delayed acknowledgement.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise errors.InvalidInput(
            f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port "
            "(0: any free one)"
        ) from exc
    sock.listen(128)
    sock.set_inheritable(False)
    return Listening(sock, host, sock.getsockname()[1])


def policy(db: sqlite_utils.Database, where: Listening) -> security.Policy:
    """Loopback: no token, loopback Host names only. Elsewhere: the board's token."""
    if security.is_loopback(where.host):
        hosts = security.loopback_hosts(where.port) | {f"{where.host}:{where.port}".lower()}
        return security.Policy(token_hash=None, hosts=frozenset(hosts))
    hashed = feed.token_hash(db)
    if hashed is None:
        raise errors.InvalidInput("the web board has no token yet: `kanban serve --new-token`")
    return security.Policy(token_hash=hashed, hosts=None)


def ensure_token(db: sqlite_utils.Database, *, renew: bool) -> str | None:
    """A new token when the board has none (or `renew`): returned once, kept only hashed."""
    if feed.token_hash(db) is not None and not renew:
        return None
    token = security.new_token()
    feed.set_token_hash(db, security.hash_token(token))
    return token


def run(app: Any, where: Listening, *, on_ready: Callable[[], None] | None = None) -> None:
    """Serve `app` on the socket until interrupted (Ctrl-C, SIGTERM)."""
    import anyio
    import uvicorn

    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        ws="none",
        timeout_graceful_shutdown=1,
        timeout_keep_alive=30,
    )
    served = uvicorn.Server(config)

    async def main() -> None:
        original = served.startup

        async def startup(sockets: Any = None) -> None:
            await original(sockets=sockets)
            if on_ready is not None:
                on_ready()

        served.startup = startup  # type: ignore[method-assign]
        await served.serve(sockets=[where.sock])

    anyio.run(main)
