"""The web board's pages: the board, a task, a column, batches, schedules, login; and forms.

Server-rendered HTML that works without its script; the script (static/board.js) makes it
live. A form posts, the action goes through `actions` (the CLI's board functions), and the
answer is a redirect, or the same page again with the CLI's error message in it.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import sqlite_utils
from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from board import errors, feed, ids, spending, states, views
from orchestrator.web import actions, html, live, security
from orchestrator.web.app import PAGE, status_of, web
from worker import runtimes

FORM_ACTIONS = {
    "comment": actions.comment,
    "unblock": actions.unblock,
    "retry": actions.retry,
    "cancel": actions.cancel,
    "reopen": actions.reopen,
}


# -- what every page needs -----------------------------------------------------------------


def _csrf(request: Request) -> tuple[str | None, str | None]:
    """The CSRF token for this page's forms, and a new cookie value to set (if one is needed)."""
    expected = security.csrf_expected(request.state, dict(request.cookies))
    if expected is not None:
        return expected, None
    if request.state.kanban_auth == "bearer":
        return None, None
    fresh = secrets.token_urlsafe(24)
    return fresh, fresh


def _page(request: Request, text: str, status: int, cookie: str | None) -> HTMLResponse:
    response = HTMLResponse(text, status_code=status)
    if cookie is not None:
        response.set_cookie(
            security.CSRF_COOKIE,
            cookie,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
    return response


def _auth(request: Request) -> bool:
    return request.state.kanban_auth == "session"


async def _form(request: Request) -> dict[str, Any]:
    """The posted form's fields; refuses a form without this session's CSRF token."""
    form = await request.form()
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    if not security.csrf_ok(request.state, dict(request.cookies), fields.get(security.CSRF_FIELD)):
        raise _Forged
    return fields


class _Forged(Exception):
    """A form without the right CSRF token."""


FORGED = "this form is out of date or came from another site (its CSRF token is missing or wrong): reload the page and try again"  # noqa: E501


# -- the board ---------------------------------------------------------------------------


def board_html(db: sqlite_utils.Database, *, limit: int = PAGE) -> tuple[str, str]:
    """The columns of the board (a page each) and the cursor they are as of."""
    cursor = feed.cursor(db)  # before the reads: a change after them is pushed again
    counts = feed.counts(db)
    pages: list[tuple[str, list[Any], Sequence[float] | None]] = []
    for status in html.COLUMNS:
        found = feed.column(db, status, limit=limit + 1)
        more = feed.sort_key(found[limit - 1]) if len(found) > limit else None
        pages.append((status, found[:limit], more))
    every = [task for _, found, _ in pages for task in found]
    objects = {obj["id"]: obj for obj in views.task_objects(db, every)}
    keys = {task.label: feed.sort_key(task) for task in every}
    parts = [
        html.column(
            status,
            counts[status],
            [objects[task.label] for task in found],
            keys,
            next_after=more,
        )
        for status, found, more in pages
    ]
    return html.columns(parts, cursor.label), cursor.label


def column_html(
    db: sqlite_utils.Database, status: str, after: Sequence[float] | None, *, limit: int = PAGE
) -> str:
    found = feed.column(db, status, limit=limit + 1, after=after)
    more = feed.sort_key(found[limit - 1]) if len(found) > limit else None
    found = found[:limit]
    objects = views.task_objects(db, found)
    keys = {task.label: feed.sort_key(task) for task in found}
    return html.cards(objects, keys) + html.more_link(status, more)


def _after(request: Request) -> Sequence[float] | None:
    text = request.query_params.get("after")
    if not text:
        return None
    try:
        key = json.loads(text)
        if isinstance(key, list) and len(key) == 2:
            return [float(key[0]), float(key[1])]
    except (ValueError, TypeError):
        pass
    raise errors.InvalidInput(f"after: {text!r} is not a place in a column")


def _status(request: Request) -> str:
    status = request.path_params["status"]
    if status not in states.Status.__members__.values():
        raise errors.InvalidInput(
            f"unknown status {status!r}; use one of: {', '.join(states.Status)}"
        )
    return str(status)


async def board_page(
    request: Request, *, error: str | None = None, values: Mapping[str, str] | None = None
) -> Response:
    csrf, cookie = _csrf(request)
    state = web(request)
    columns, cursor = await state.call(board_html)
    notice = await state.call(actions.board_notice)
    form = html.new_task_form(csrf, values or {}, runtimes.NAMES, open_=bool(error))
    text = html.board_page(
        csrf=csrf,
        board=columns,
        error=error,
        form=form,
        notice=notice,
        authenticated=_auth(request),
        cursor=cursor,
    )
    status = 200 if error is None else 400
    return _page(request, text, status, cookie)


async def board_fragment(request: Request) -> Response:
    columns, _ = await web(request).call(board_html)
    return HTMLResponse(columns)


async def column_page(request: Request) -> Response:
    csrf, cookie = _csrf(request)
    status, after = _status(request), _after(request)
    state = web(request)
    counts = await state.call(feed.counts)
    inner = await state.call(column_html, status, after)
    text = html.column_page(
        status,
        f'<section class="column" data-status="{html.e(status)}" data-complete="0">'
        f'<h2>{html.e(status)} <span class="count">{counts[status]}</span></h2>'
        f'<ol class="cards">{inner}</ol></section>',
        csrf=csrf,
        authenticated=_auth(request),
    )
    return _page(request, text, 200, cookie)


async def column_fragment(request: Request) -> Response:
    inner = await web(request).call(column_html, _status(request), _after(request))
    return HTMLResponse(inner)


async def create(request: Request) -> Response:
    try:
        fields = await _form(request)
    except _Forged:
        return HTMLResponse(html.refusal(403, FORGED), status_code=403)
    try:
        obj = await web(request).call(actions.create, fields)
    except errors.KanbanError as exc:
        return await board_page(request, error=str(exc), values=fields)
    return RedirectResponse(f"/#card-{obj['id']}", status_code=303)


# -- a task ---------------------------------------------------------------------------------


def task_html(db: sqlite_utils.Database, label: str) -> tuple[dict[str, Any], str, int | None]:
    number = actions.task_id(label)
    obj = views.show(db, number)
    live_html = html.task_live(obj, actions.run_times(db, number))
    return obj, live_html, obj["runs"][-1]["id"] if obj["runs"] else None


async def task_page(request: Request, *, error: str | None = None, status: int = 200) -> Response:
    csrf, cookie = _csrf(request)
    label = request.path_params["task"]
    try:
        obj, live_html, log_run = await web(request).call(task_html, label)
    except errors.KanbanError as exc:
        text = html.refusal(status_of(exc), str(exc))
        return _page(request, text, status_of(exc), cookie)
    text = html.task_page(
        obj, live_html, csrf=csrf, error=error, authenticated=_auth(request), log_run=log_run
    )
    return _page(request, text, status, cookie)


async def task_fragment(request: Request) -> Response:
    try:
        _, live_html, _ = await web(request).call(task_html, request.path_params["task"])
    except errors.KanbanError as exc:
        return HTMLResponse(html.error_box(str(exc)), status_code=status_of(exc))
    return HTMLResponse(live_html)


async def task_action(request: Request) -> Response:
    label, action = request.path_params["task"], request.path_params["action"]
    try:
        fields = await _form(request)
    except _Forged:
        return HTMLResponse(html.refusal(403, FORGED), status_code=403)
    state = web(request)
    try:
        if action == "land":
            result = await state.alone(actions.land, state.db_path, label, fields)
            if not result["ok"]:
                detail = "; ".join(f"{t['status']}: {t['detail']}" for t in result["tasks"])
                return await task_page(request, error=f"not landed: {detail}", status=409)
        elif action in FORM_ACTIONS:
            await state.call(FORM_ACTIONS[action], label, fields)
        else:
            return HTMLResponse(html.refusal(404, f"no action {action!r}"), status_code=404)
    except errors.KanbanError as exc:
        return await task_page(request, error=str(exc), status=status_of(exc))
    return RedirectResponse(f"/tasks/{urllib.parse.quote(label)}", status_code=303)


async def diff(request: Request) -> Response:
    label = request.path_params["task"]
    fragment = request.query_params.get("fragment") == "1"
    try:
        result = await web(request).alone(_diff, web(request).db_path, label)
        body = html.diff_fragment(result)
        code = 200
    except errors.KanbanError as exc:
        body, code = html.error_box(str(exc)), status_of(exc)
    if fragment:
        return HTMLResponse(body, status_code=code)
    csrf, cookie = _csrf(request)
    text = html.diff_page(label, body, csrf=csrf, authenticated=_auth(request))
    return _page(request, text, code, cookie)


def _diff(db_path: str, label: str) -> dict[str, Any]:
    from board import connection

    db = connection.connect(db_path, create=False)
    try:
        return actions.diff(db, label)
    finally:
        db.conn.close()


async def log_text(request: Request) -> Response:
    state = web(request)
    try:
        run = await state.call(
            actions.run_for, request.path_params["task"], request.query_params.get("run")
        )
    except errors.KanbanError as exc:
        return PlainTextResponse(f"Error: {exc}\n", status_code=status_of(exc))
    if run is None:
        return PlainTextResponse("(it has not run yet)\n")
    text = await anyio.to_thread.run_sync(actions.read_log, run.log_path)
    return PlainTextResponse(text)


async def log_stream(request: Request) -> Response:
    label = request.path_params["task"]
    state = web(request)
    try:
        await state.call(actions.run_for, label)
    except errors.KanbanError as exc:
        return PlainTextResponse(f"Error: {exc}\n", status_code=status_of(exc))
    return EventSourceResponse(_follow(state, label), ping=15)


class _Tail:
    """A log file read from near its end on, a chunk at a time (called in a thread)."""

    def __init__(self, path: str) -> None:
        self.handle = open(path, "rb")  # kept open while the page follows it
        self.handle.seek(0, 2)
        self.handle.seek(max(0, self.handle.tell() - 65536))

    def read(self) -> bytes:
        return self.handle.read(65536)

    def close(self) -> None:
        self.handle.close()


async def _follow(state: Any, label: str) -> Any:
    """The task's latest run's log as it grows (the last 64 KiB first); a new run starts over."""
    import codecs

    current = None
    tail: _Tail | None = None
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    looked = 0.0
    try:
        while True:
            if time.monotonic() - looked > 1.0:
                looked = time.monotonic()
                latest = await state.call(actions.run_for, label)
                if latest is not None and (current is None or latest.id != current.id):
                    if tail is not None:
                        tail.close()
                        tail = None
                    decoder.reset()
                    yield {
                        "event": "run",
                        "data": json.dumps({"id": latest.id, "attempt": latest.attempt}),
                    }
                current = latest
            if tail is None and current is not None and current.log_path:
                try:
                    tail = await anyio.to_thread.run_sync(_Tail, current.log_path)
                except OSError:
                    tail = None  # not written yet
            if tail is not None:
                chunk = await anyio.to_thread.run_sync(tail.read)
                if chunk:
                    yield {"event": "log", "data": json.dumps({"text": decoder.decode(chunk)})}
                    continue
            await anyio.sleep(0.25)
    finally:
        if tail is not None:
            tail.close()


# -- batches and schedules -------------------------------------------------------------------


def batches_data(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    found = feed.batches(db)
    for batch in found:
        batch["created"] = views.when(batch["created_at"])
        used = spending.of_batch(db, batch["id"])
        batch["used"] = "" if used.empty else used.brief()
    return found


def schedules_data(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """What `kanban schedule list --json` prints."""
    from orchestrator import schedules as firing

    return firing.listing(db)


async def batches_page(request: Request) -> Response:
    csrf, cookie = _csrf(request)
    found = await web(request).call(batches_data)
    text = html.batches_page(found, csrf=csrf, auth=_auth(request))
    return _page(request, text, 200, cookie)


async def schedules_page(request: Request) -> Response:
    csrf, cookie = _csrf(request)
    found = await web(request).call(schedules_data)
    text = html.schedules_page(found, csrf=csrf, auth=_auth(request))
    return _page(request, text, 200, cookie)


# -- live, login -----------------------------------------------------------------------------


async def page_events(request: Request) -> Response:
    return EventSourceResponse(
        live.events(web(request).watcher, api=False, last_id=request.headers.get("last-event-id")),
        ping=15,
    )


def _next(value: object) -> str:
    """Where to go after logging in: a path on this server only."""
    if isinstance(value, str) and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return "/"


async def login_page(request: Request) -> Response:
    if web(request).policy.token_hash is None:
        return RedirectResponse("/", status_code=303)
    return HTMLResponse(html.login_page(_next(request.query_params.get("next")), None))


async def login(request: Request) -> Response:
    state = web(request)
    form = await request.form()
    target = _next(form.get("next"))
    token = form.get("token")
    if state.policy.token_hash is None:
        return RedirectResponse(target, status_code=303)
    if not isinstance(token, str) or not security.fencing.token_matches(
        state.policy.token_hash, token.strip()
    ):
        text = html.login_page(target, "that is not the board's token")
        return HTMLResponse(text, status_code=401)
    sid, _ = state.sessions.create()
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        security.SESSION_COOKIE,
        sid,
        max_age=security.SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def logout(request: Request) -> Response:
    try:
        await _form(request)
    except _Forged:
        return HTMLResponse(html.refusal(403, FORGED), status_code=403)
    web(request).sessions.drop(request.cookies.get(security.SESSION_COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(security.SESSION_COOKIE)
    return response


def _label(value: str) -> str:
    return ids.format(actions.task_id(value))


ROUTES = [
    Route("/", board_page),
    Route("/board/fragment", board_fragment),
    Route("/board/column/{status}", column_fragment),
    Route("/column/{status}", column_page),
    Route("/events", page_events),
    Route("/tasks", create, methods=["POST"]),
    Route("/tasks/{task}", task_page),
    Route("/tasks/{task}/live", task_fragment),
    Route("/tasks/{task}/diff", diff),
    Route("/tasks/{task}/log", log_text),
    Route("/tasks/{task}/log/stream", log_stream),
    Route("/tasks/{task}/{action}", task_action, methods=["POST"]),
    Route("/batches", batches_page),
    Route("/schedules", schedules_page),
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
