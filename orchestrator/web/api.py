"""The JSON API under ``/api/``: the same reads and actions as the pages (docs/web.md).

Reads return the CLI's ``--json`` shapes (`board.views`); actions take a JSON object and
return what changed; a refusal is ``{"error": "<the CLI's message>"}`` with a 4xx status.
"""

from __future__ import annotations

import json
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from board import errors, feed, notifications, tasks, views
from orchestrator.web import actions, live, pages
from orchestrator.web.app import PAGE, error_json, web

ACTIONS = {
    "comment": actions.comment,
    "unblock": actions.unblock,
    "retry": actions.retry,
    "cancel": actions.cancel,
    "reopen": actions.reopen,
}
MAX_LIST = 5000


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        found = json.loads(raw)
    except ValueError as exc:
        raise errors.InvalidInput(f"the request's body is not JSON: {exc}") from None
    if not isinstance(found, dict):
        raise errors.InvalidInput("the request's body must be a JSON object")
    return found


def board_data(db: Any, *, limit: int) -> dict[str, Any]:
    cursor = feed.cursor(db)
    counts = feed.counts(db)
    columns = {}
    for status in counts:
        found = feed.column(db, status, limit=limit + 1)
        more = feed.sort_key(found[limit - 1]) if len(found) > limit else None
        columns[status] = {
            "tasks": views.task_objects(db, found[:limit]),
            "next_after": more,
        }
    return {"cursor": cursor.label, "counts": counts, "columns": columns}


def column_data(db: Any, status: str, after: Any, *, limit: int) -> dict[str, Any]:
    found = feed.column(db, status, limit=limit + 1, after=after)
    more = feed.sort_key(found[limit - 1]) if len(found) > limit else None
    return {"tasks": views.task_objects(db, found[:limit]), "next_after": more}


def _limit(request: Request, default: int = PAGE) -> int:
    text = request.query_params.get("limit")
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIST:
        raise errors.InvalidInput(f"limit: a whole number from 1 to {MAX_LIST}")
    return int(text)


async def board(request: Request) -> Response:
    try:
        return JSONResponse(await web(request).call(board_data, limit=_limit(request)))
    except errors.KanbanError as exc:
        return error_json(exc)


async def column(request: Request) -> Response:
    try:
        status, after = pages._status(request), pages._after(request)
        found = await web(request).call(column_data, status, after, limit=_limit(request))
    except errors.KanbanError as exc:
        return error_json(exc)
    return JSONResponse(found)


def list_data(db: Any, statuses: list[str], limit: int) -> list[dict[str, Any]]:
    return views.task_objects(db, tasks.list_tasks(db, statuses, limit=limit))


async def task_list(request: Request) -> Response:
    try:
        statuses = request.query_params.getlist("status")
        found = await web(request).call(list_data, statuses, _limit(request, 500))
    except errors.KanbanError as exc:
        return error_json(exc)
    return JSONResponse(found)


async def show(request: Request) -> Response:
    try:
        number = actions.task_id(request.path_params["task"])
        return JSONResponse(await web(request).call(views.show, number))
    except errors.KanbanError as exc:
        return error_json(exc)


async def log(request: Request) -> Response:
    state = web(request)
    try:
        run = await state.call(
            actions.run_for, request.path_params["task"], request.query_params.get("run")
        )
    except errors.KanbanError as exc:
        return error_json(exc)
    if run is None:
        return JSONResponse({"run": None, "text": ""})
    text = await state.alone(actions.read_log, run.log_path)
    return JSONResponse({"run": views.run_object(run), "text": text})


async def diff(request: Request) -> Response:
    state = web(request)
    try:
        found = await state.alone(pages._diff, state.db_path, request.path_params["task"])
    except errors.KanbanError as exc:
        return error_json(exc)
    return JSONResponse(found)


async def create(request: Request) -> Response:
    try:
        fields = await _body(request)
        return JSONResponse(await web(request).call(actions.create, fields), status_code=201)
    except errors.KanbanError as exc:
        return error_json(exc)


async def act(request: Request) -> Response:
    label, action = request.path_params["task"], request.path_params["action"]
    state = web(request)
    try:
        fields = await _body(request)
        if action == "land":
            result = await state.alone(actions.land, state.db_path, label, fields)
            return JSONResponse(result, status_code=200 if result["ok"] else 409)
        if action not in ACTIONS:
            return JSONResponse(
                {"error": f"no action {action!r}; use one of: land, {', '.join(ACTIONS)}"},
                status_code=404,
            )
        return JSONResponse(await state.call(ACTIONS[action], label, fields))
    except errors.KanbanError as exc:
        return error_json(exc)


async def batch_list(request: Request) -> Response:
    return JSONResponse(await web(request).call(pages.batches_data))


async def schedule_list(request: Request) -> Response:
    return JSONResponse(await web(request).call(pages.schedules_data))


async def notification_list(request: Request) -> Response:
    found = await web(request).call(notifications.history)
    for row in found:
        for key in ("sent_at", "gave_up_at", "created_at"):
            row[key] = views.when(row[key])
    return JSONResponse(found)


async def events(request: Request) -> Response:
    return EventSourceResponse(
        live.events(web(request).watcher, api=True, last_id=request.headers.get("last-event-id")),
        ping=15,
    )


async def not_found(request: Request) -> Response:
    return JSONResponse({"error": f"no API at {request.url.path}"}, status_code=404)


ROUTES = [
    Route("/api/board", board),
    Route("/api/board/{status}", column),
    Route("/api/tasks", task_list, methods=["GET"]),
    Route("/api/tasks", create, methods=["POST"]),
    Route("/api/tasks/{task}", show),
    Route("/api/tasks/{task}/log", log),
    Route("/api/tasks/{task}/diff", diff),
    Route("/api/tasks/{task}/{action}", act, methods=["POST"]),
    Route("/api/batches", batch_list),
    Route("/api/schedules", schedule_list),
    Route("/api/notifications", notification_list),
    Route("/api/events", events),
    Route("/api/{rest:path}", not_found, methods=["GET", "POST"]),
]
