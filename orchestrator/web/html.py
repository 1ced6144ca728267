"""The web board's HTML, written out by hand: every piece of board text goes through `e`.

No template engine and no script in the pages themselves: one stylesheet and one script,
shipped in ``static/``, and a Content-Security-Policy that allows nothing else. Task text
(titles, bodies, comments, logs, diffs) is data from people and models: it is always escaped,
so a title that carries HTML is shown as typed.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from board.states import Status

STATIC = Path(__file__).parent / "static"
COLUMNS = tuple(Status)  # in the lifecycle's order
OPEN_ACTIONS = ("todo", "ready", "running", "waiting", "blocked")


def e(value: object) -> str:
    """Text for HTML, attribute values included."""
    return html.escape("" if value is None else str(value), quote=True)


def _asset_version() -> str:
    digest = hashlib.sha256()
    for name in ("board.css", "board.js"):
        digest.update((STATIC / name).read_bytes())
    return digest.hexdigest()[:10]


ASSETS = _asset_version()


def layout(
    title: str,
    body: str,
    *,
    csrf: str | None,
    page: str,
    attrs: Mapping[str, str] | None = None,
    authenticated: bool = False,
) -> str:
    extra = "".join(f' data-{k}="{e(v)}"' for k, v in (attrs or {}).items())
    nav = "".join(
        f'<a href="{href}"{" aria-current=page" if page == name else ""}>{label}</a>'
        for name, href, label in (
            ("board", "/", "Board"),
            ("batches", "/batches", "Batches"),
            ("schedules", "/schedules", "Schedules"),
        )
    )
    logout = (
        f'<form method="post" action="/logout" class="logout">{csrf_field(csrf)}'
        '<button type="submit">Log out</button></form>'
        if authenticated
        else ""
    )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} · kanban</title>"
        f'<link rel="stylesheet" href="/static/board.css?v={ASSETS}">'
        f'<script src="/static/board.js?v={ASSETS}" defer></script>'
        f'</head><body data-page="{e(page)}"{extra}>'
        f'<header class="top"><span class="brand">kanban</span><nav>{nav}</nav>'
        f'<span class="live" id="live" title="live updates">●</span>{logout}</header>'
        f"{body}</body></html>"
    )


def csrf_field(csrf: str | None) -> str:
    return f'<input type="hidden" name="csrf" value="{e(csrf)}">' if csrf else ""


def error_box(message: str | None) -> str:
    if not message:
        return '<div class="error" id="error" role="alert" hidden></div>'
    return f'<div class="error" id="error" role="alert">Error: {e(message)}</div>'


# -- cards and columns ----------------------------------------------------------------------


def brief_usage(usage: Mapping[str, Any] | None) -> str:
    if not usage:
        return ""
    text = f"{usage['tokens']:,} tokens"
    if usage.get("cost_usd") is not None:
        text += f", ${usage['cost_usd']:,.2f}"
    return text


def card(task: Mapping[str, Any], *, sort: Sequence[float], sub: bool = False) -> str:
    """One task on the board (`task`: its object, as `board.views.task_objects` makes it)."""
    meta = [e(task["runtime"]), f"attempts {task['attempts']}/{task['max_attempts']}"]
    if task["parent"]:
        meta.append(f"subtask of {e(task['parent'])}")
    if task["landed"]:
        meta.append('<span class="landed">landed</span>')
    if task["usage"]:
        meta.append(e(brief_usage(task["usage"])))
    note = task["summary"] or task["why_not_runnable"] or ""
    classes = f"card st-{e(task['status'])}" + (" sub" if sub else "")
    return (
        f'<li class="{classes}" id="card-{e(task["id"])}" data-id="{e(task["id"])}" '
        f'data-status="{e(task["status"])}" data-sort="{e(json.dumps(list(sort)))}" '
        f'data-parent="{e(task["parent"] or "")}">'
        f'<a class="card-link" href="/tasks/{e(task["id"])}"><span class="tid">{e(task["id"])}'
        f'</span> <span class="title">{e(task["title"])}</span></a>'
        f'<div class="meta">{" · ".join(meta)}</div>'
        + (f'<div class="note">{e(note[:240])}</div>' if note else "")
        + "</li>"
    )


def ordered(
    tasks: Sequence[Mapping[str, Any]],
) -> list[tuple[Mapping[str, Any], bool]]:
    """Subtasks right under their parent when both are in the same page of a column: each
    task with whether it is shown nested."""
    shown = {t["id"] for t in tasks}
    children: dict[str, list[Mapping[str, Any]]] = {}
    roots = []
    for task in tasks:
        if task["parent"] in shown:
            children.setdefault(task["parent"], []).append(task)
        else:
            roots.append(task)
    out: list[tuple[Mapping[str, Any], bool]] = []

    def walk(task: Mapping[str, Any], nested: bool) -> None:
        out.append((task, nested))
        for child in children.get(task["id"], []):
            walk(child, True)

    for root in roots:
        walk(root, False)
    return out


def cards(tasks: Sequence[Mapping[str, Any]], keys: Mapping[str, Sequence[float]]) -> str:
    return "".join(card(task, sort=keys[task["id"]], sub=sub) for task, sub in ordered(tasks))


def more_link(status: str, after: Sequence[float] | None) -> str:
    if after is None:
        return ""
    key = e(json.dumps(list(after)))
    return (
        f'<a class="more" href="/column/{e(status)}?after={key}" data-status="{e(status)}" '
        f'data-after="{key}">more</a>'
    )


def column(
    status: str,
    count: int,
    tasks: Sequence[Mapping[str, Any]],
    keys: Mapping[str, Sequence[float]],
    *,
    next_after: Sequence[float] | None,
) -> str:
    complete = "1" if next_after is None else "0"
    return (
        f'<section class="column" data-status="{e(status)}" data-complete="{complete}">'
        f'<h2><span class="name">{e(status)}</span> <span class="count">{count}</span></h2>'
        f'<ol class="cards">{cards(tasks, keys)}</ol>{more_link(status, next_after)}</section>'
    )


def columns(parts: Iterable[str], cursor: str) -> str:
    return f'<main class="board" id="board" data-cursor="{e(cursor)}">{"".join(parts)}</main>'


def new_task_form(
    csrf: str | None, values: Mapping[str, str], runtimes: Sequence[str], *, open_: bool
) -> str:
    def field(name: str, label: str, kind: str = "text", hint: str = "") -> str:
        return (
            f'<label>{label} <input type="{kind}" name="{name}" value="{e(values.get(name, ""))}"'
            f"{' placeholder=' + chr(34) + e(hint) + chr(34) if hint else ''}></label>"
        )

    chosen = values.get("runtime", "")
    options = '<option value="">default (hermes)</option>' + "".join(
        f'<option value="{e(name)}"{" selected" if name == chosen else ""}>{e(name)}</option>'
        for name in runtimes
    )
    return (
        f'<details class="new-task"{" open" if open_ else ""}><summary>New task</summary>'
        f'<form method="post" action="/tasks" id="new-task">{csrf_field(csrf)}'
        f'<label>Title <input name="title" required maxlength="500" '
        f'value="{e(values.get("title", ""))}"></label>'
        f'<label>Instructions <textarea name="body" rows="4">{e(values.get("body", ""))}'
        "</textarea></label>"
        '<div class="row">'
        + field("repo", "Repository", hint="/path/to/repo or a remote's URL")
        + field("base", "Base ref", hint="HEAD")
        + f'<label>Runtime <select name="runtime">{options}</select></label>'
        + field("command", "Command", hint="for the command runtime")
        + "</div><div class=row>"
        + field("after", "After", hint="t_1 t_2")
        + field("parent", "Parent", hint="t_1")
        + field("priority", "Priority", "number")
        + field("max_attempts", "Max attempts", "number")
        + field("budget", "Budget", hint="200k,$5")
        + '</div><button type="submit">Create</button></form></details>'
    )


def board_page(
    *,
    csrf: str | None,
    board: str,
    error: str | None,
    form: str,
    notice: str | None,
    authenticated: bool,
    cursor: str,
) -> str:
    body = (
        error_box(error) + form + (f'<p class="notice">{e(notice)}</p>' if notice else "") + board
    )
    return layout(
        "Board",
        body,
        csrf=csrf,
        page="board",
        attrs={"cursor": cursor},
        authenticated=authenticated,
    )


def column_page(status: str, column_html: str, *, csrf: str | None, authenticated: bool) -> str:
    body = f'<p><a href="/">← board</a></p><main class="board single">{column_html}</main>'
    return layout(status, body, csrf=csrf, page="column", authenticated=authenticated)


# -- the task page --------------------------------------------------------------------------


def _dl(items: Iterable[tuple[str, object]]) -> str:
    rows = "".join(
        f"<dt>{e(name)}</dt><dd>{e(value)}</dd>" for name, value in items if value not in (None, "")
    )
    return f'<dl class="fields">{rows}</dl>'


def _duration(started: float | None, ended: float | None) -> str:
    if started is None:
        return ""
    if ended is None:
        return "running"
    seconds = ended - started
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def task_live(obj: Mapping[str, Any], run_times: Mapping[int, tuple[float, float | None]]) -> str:
    """The parts of a task page that change as it runs (re-fetched on each change)."""
    fields = _dl(
        [
            ("status", obj["status"] + (", landed" if obj["landed"] else "")),
            ("parent", obj["parent"]),
            ("repository", obj["repo"]),
            ("base branch", obj["base_branch"]),
            ("branch", obj["branch"]),
            ("worktree", obj["worktree"]),
            ("runtime", obj["runtime"]),
            ("attempts", f"{obj['attempts']}/{obj['max_attempts']}"),
            ("summary", obj["summary"]),
            ("blocked", obj["block_reason"]),
            ("failed", obj["failure_reason"]),
            ("why not running", obj["why_not_runnable"]),
            ("landed", obj["landed"]),
            ("pull request", obj["pr_url"]),
            ("conflicts", ", ".join(obj["conflicts"])),
            ("blockers", ", ".join(obj["blockers"])),
            ("dependents", ", ".join(obj["dependents"])),
            ("used", brief_usage(obj["usage"])),
            ("budget", _budget(obj["budget"])),
        ]
    )
    body = f'<pre class="body">{e(obj["body"])}</pre>' if obj["body"] else ""
    subtasks = ""
    if obj["subtasks"]:
        items = "".join(
            f'<li style="margin-left:{(s["level"] - 1) * 1.5}em">'
            f'<a href="/tasks/{e(s["id"])}">{e(s["id"])}</a> '
            f'<span class="badge st-{e(s["status"])}">{e(s["status"])}</span> {e(s["title"])}</li>'
            for s in obj["subtasks"]
        )
        subtasks = f'<section><h2>Subtasks</h2><ul class="subtasks">{items}</ul></section>'
    run_rows = "".join(
        "<tr>"
        f"<td>#{run['id']}</td><td>{run['attempt']} ({e(run['kind'])})</td>"
        f"<td>{e(run['outcome'] or 'live')}</td>"
        f"<td>{e(_duration(*run_times.get(run['id'], (None, None))))}</td>"
        f"<td>{e(_exit(run))}</td><td>{e(brief_usage(run['usage']))}</td>"
        f"<td>{e(run['reason'] or '')}</td>"
        f'<td><a href="/tasks/{e(obj["id"])}/log?run={run["id"]}">log</a></td>'
        "</tr>"
        for run in obj["runs"]
    )
    runs = (
        '<section><h2>Runs</h2><table class="runs"><thead><tr><th>run</th><th>attempt</th>'
        "<th>outcome</th><th>duration</th><th>exit</th><th>used</th><th>reason</th><th></th>"
        f"</tr></thead><tbody>{run_rows}</tbody></table></section>"
        if obj["runs"]
        else ""
    )
    comments = "".join(
        f'<li><span class="when">{e(c["at"])}</span> <b>{e(c["author"])}</b>'
        f'<pre class="comment">{e(c["body"])}</pre></li>'
        for c in obj["comments"]
    )
    events = "".join(
        f'<li><span class="when">{e(ev["at"])}</span> {e(ev["actor"])}: {e(ev["kind"])} '
        + (f"{e(ev['from'] or '')} → {e(ev['to'])} " if ev["to"] else "")
        + f"{e(_detail(ev['data']))}</li>"
        for ev in obj["events"]
    )
    watch = " ".join([obj["id"], *(s["id"] for s in obj["subtasks"])])
    return (
        f'<div id="task-live" data-id="{e(obj["id"])}" data-status="{e(obj["status"])}" '
        f'data-landed="{"1" if obj["landed"] else ""}" data-watch="{e(watch)}">'
        f'<h1><span class="tid">{e(obj["id"])}</span> <span class="title">{e(obj["title"])}'
        f'</span> <span class="badge st-{e(obj["status"])}" id="status">{e(obj["status"])}'
        f"</span></h1>{fields}{body}{subtasks}{runs}"
        + (f'<section><h2>Comments</h2><ul class="comments">{comments}</ul></section>')
        + f'<section><h2>Events</h2><ul class="events">{events}</ul></section></div>'
    )


def _budget(budget: Mapping[str, Any] | None) -> str:
    if not budget:
        return ""
    parts = []
    if budget.get("tokens"):
        parts.append(f"{budget['tokens']:,} tokens")
    if budget.get("usd"):
        parts.append(f"${budget['usd']:,.2f}")
    return ", ".join(parts)


def _exit(run: Mapping[str, Any]) -> str:
    if run["signal"] is not None:
        return f"signal {run['signal']}"
    return "" if run["exit_code"] is None else f"exit {run['exit_code']}"


def _detail(data: Mapping[str, Any] | None) -> str:
    if not data:
        return ""
    for key in ("reason", "note", "sha"):
        if data.get(key):
            return str(data[key])
    return ""


def actions(label: str, csrf: str | None) -> str:
    """The forms of a task page; CSS shows those that apply to its status (`data-status`)."""
    token = csrf_field(csrf)

    def form(action: str, when: str, inner: str, button: str) -> str:
        return (
            f'<form method="post" action="/tasks/{e(label)}/{action}" '
            f'class="action act-{action} {when}">{token}{inner}'
            f'<button type="submit">{button}</button></form>'
        )

    strategies = "".join(f'<option value="{s}">{s}</option>' for s in ("merge", "squash", "rebase"))
    return (
        '<section class="actions"><h2>Actions</h2>'
        + form(
            "unblock",
            "when-blocked",
            '<label>Answer <textarea name="comment" rows="3" '
            'placeholder="the answer to its question (goes into the next prompt)"></textarea>'
            "</label>",
            "Unblock",
        )
        + form(
            "reopen",
            "when-done",
            '<label>Review <textarea name="comment" rows="3" required '
            'placeholder="what to change (goes into the next prompt)"></textarea></label>',
            "Reopen",
        )
        + form(
            "land",
            "when-done",
            f'<label>Strategy <select name="strategy">{strategies}</select></label>'
            '<label class="check"><input type="checkbox" name="check" value="1" checked> '
            "run the repository's check</label>",
            "Land",
        )
        + form("retry", "when-failed when-cancelled when-blocked", "", "Retry")
        + form("cancel", " ".join(f"when-{s}" for s in OPEN_ACTIONS), "", "Cancel")
        + form(
            "comment",
            "when-any",
            '<label>Comment <textarea name="text" rows="2" required></textarea></label>',
            "Comment",
        )
        + "</section>"
    )


def task_page(
    obj: Mapping[str, Any],
    live: str,
    *,
    csrf: str | None,
    error: str | None,
    authenticated: bool,
    log_run: int | None,
) -> str:
    label = obj["id"]
    body = (
        '<p><a href="/">← board</a></p>'
        + error_box(error)
        + live
        + actions(label, csrf)
        + '<section class="log"><h2>Log <small id="log-run">'
        + (f"run #{log_run}" if log_run else "no run yet")
        + f'</small> <a href="/tasks/{e(label)}/log">plain</a></h2>'
        f'<pre id="log" class="log" data-src="/tasks/{e(label)}/log/stream"></pre></section>'
        '<section class="diff"><h2>Diff</h2>'
        f'<a href="/tasks/{e(label)}/diff" id="load-diff" data-src="/tasks/{e(label)}/diff'
        '?fragment=1">show the diff against its base branch</a>'
        '<div id="diff"></div></section>'
    )
    return layout(
        f"{label} {obj['title']}",
        body,
        csrf=csrf,
        page="task",
        attrs={"task": label, "status": obj["status"]},
        authenticated=authenticated,
    )


def diff_fragment(result: Mapping[str, Any]) -> str:
    return (
        f'<p class="diff-head">{e(result["branch"])} against {e(result["base"])}</p>'
        f'<pre class="diff-stat">{e(result["stat"] or "no changes")}</pre>'
        f'<pre class="diff-patch">{_patch(result["patch"])}</pre>'
        + ('<p class="notice">the diff is cut at 1 MB</p>' if result["truncated"] else "")
    )


def _patch(text: str) -> str:
    lines = []
    for line in text.splitlines():
        kind = (
            "add"
            if line.startswith("+") and not line.startswith("+++")
            else "del"
            if line.startswith("-") and not line.startswith("---")
            else "hunk"
            if line.startswith("@@")
            else ""
        )
        lines.append(f'<span class="{kind}">{e(line)}</span>' if kind else e(line))
    return "\n".join(lines)


def diff_page(label: str, fragment: str, *, csrf: str | None, authenticated: bool) -> str:
    body = f'<p><a href="/tasks/{e(label)}">← {e(label)}</a></p><div id="diff">{fragment}</div>'
    return layout(f"{label} diff", body, csrf=csrf, page="diff", authenticated=authenticated)


# -- batches, schedules, login, refusals ------------------------------------------------------


def batches_page(found: Sequence[Mapping[str, Any]], *, csrf: str | None, auth: bool) -> str:
    rows = "".join(
        f"<tr><td>{e(b['id'])}</td><td>{e(b['name'])}</td><td>{e(b['created'])}</td>"
        f"<td>{e(b['schedule'] or '')}</td><td>{_counts(b['counts'])}</td>"
        f"<td>{e(b['used'])}</td></tr>"
        for b in found
    )
    body = "<h1>Batches</h1>" + (
        '<table class="list"><thead><tr><th>id</th><th>name</th><th>submitted</th>'
        "<th>schedule</th><th>tasks</th><th>used</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
        if found
        else "<p>No batches yet: <code>kanban run BATCH.toml</code> submits one.</p>"
    )
    return layout("Batches", body, csrf=csrf, page="batches", authenticated=auth)


def _counts(counts: Mapping[str, int]) -> str:
    return " ".join(
        f'<span class="badge st-{e(status)}">{e(status)} {counts[status]}</span>'
        for status in COLUMNS
        if counts.get(status)
    )


def schedules_page(found: Sequence[Mapping[str, Any]], *, csrf: str | None, auth: bool) -> str:
    rows = "".join(
        f"<tr><td>{e(s['name'])}</td><td><code>{e(s['cron'])}</code></td>"
        f"<td>{e(s['batch_file'])}</td><td>{e(s['last_fire_at'] or 'never')}</td>"
        f"<td>{e(s['next_fire_at'] or ('never: ' + (s['problem'] or '')))}</td></tr>"
        for s in found
    )
    body = "<h1>Schedules</h1>" + (
        '<table class="list"><thead><tr><th>name</th><th>cron</th><th>batch file</th>'
        f"<th>last fire</th><th>next fire</th></tr></thead><tbody>{rows}</tbody></table>"
        if found
        else "<p>No schedules: <code>kanban schedule add</code> adds one.</p>"
    )
    return layout("Schedules", body, csrf=csrf, page="schedules", authenticated=auth)


def login_page(next_path: str, error: str | None) -> str:
    body = (
        "<h1>Log in</h1>" + error_box(error) + '<form method="post" action="/login" class="login">'
        f'<input type="hidden" name="next" value="{e(next_path)}">'
        '<label>Token <input type="password" name="token" autocomplete="current-password" '
        'required autofocus></label><button type="submit">Log in</button></form>'
        "<p>The token was printed once by <code>kanban serve</code>; "
        "<code>kanban serve --new-token</code> makes another.</p>"
    )
    return layout("Log in", body, csrf=None, page="login")


def refusal(status: int, message: str) -> str:
    return layout(
        f"Error {status}",
        f"<h1>Error {status}</h1>{error_box(message)}",
        csrf=None,
        page="error",
    )
