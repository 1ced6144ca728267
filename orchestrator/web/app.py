"""The web board's ASGI application: routes, the board in a thread, errors as the CLI says them.

`create` builds it for one board file. Requests read and write the board through one
connection in a worker thread, one call at a time (`Web.call`); the live watcher has a
connection of its own, and so does a landing (it runs git and the repository's check).
Pages live in `pages`, the JSON API under ``/api/`` in `api`, checks of who may ask in
`security`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import anyio
import sqlite_utils
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from board import connection, errors
from orchestrator.web import html, live, security

T = TypeVar("T")
PAGE = 50  # tasks per column and page


class Web:
    """What every handler needs: the board, the watcher, the sessions, the policy."""

    def __init__(self, db_path: str, policy: security.Policy, *, interval: float) -> None:
        self.db_path = db_path
        self.policy = policy
        self.sessions = security.Sessions()
        self.db: sqlite_utils.Database = connection.connect(db_path, create=False)
        self.watcher = live.Watcher(db_path, interval=interval)
        self._limiter = anyio.CapacityLimiter(1)

    async def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``await web.call(views.show, 3)`` runs ``views.show(db, 3)`` in a thread."""
        return await anyio.to_thread.run_sync(
            functools.partial(fn, self.db, *args, **kwargs), limiter=self._limiter
        )

    async def alone(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """A call that opens what it needs itself (a landing): not behind other requests."""
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        self.watcher.close()
        self.db.conn.close()


def web(request: Request) -> Web:
    return request.app.state.web


def status_of(exc: errors.KanbanError) -> int:
    if isinstance(exc, errors.TaskNotFound | errors.BoardNotFound):
        return 404
    if isinstance(exc, errors.InvalidTransition):
        return 409
    if isinstance(exc, errors.BoardBusy):
        return 503
    if isinstance(exc, errors.PolicyError):
        return 403
    return 400


def error_json(exc: errors.KanbanError) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=status_of(exc))


def create(db_path: str, *, policy: security.Policy, interval: float = live.INTERVAL) -> Any:
    """The application for the board at `db_path` (which must exist)."""
    from orchestrator.web import api, pages

    state = Web(db_path, policy, interval=interval)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as group:
            group.start_soon(state.watcher.run)
            try:
                yield
            finally:
                group.cancel_scope.cancel()
        state.close()

    app = Starlette(
        routes=[
            *pages.ROUTES,
            *api.ROUTES,
            Mount("/static", app=StaticFiles(directory=html.STATIC), name="static"),
        ],
        lifespan=lifespan,
        exception_handlers={errors.KanbanError: _kanban_error},
    )
    app.state.web = state
    return security.Guard(app, policy, state.sessions)


async def _kanban_error(request: Request, exc: Exception) -> Response:
    """A board error no handler expected (a busy board on a read): said, not a traceback."""
    assert isinstance(exc, errors.KanbanError)
    if request.url.path.startswith("/api/"):
        return error_json(exc)
    return Response(
        html.refusal(status_of(exc), str(exc)),
        status_code=status_of(exc),
        media_type="text/html",
    )
