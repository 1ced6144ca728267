"""What ``codex exec --json`` prints: one JSON event a line, read for usage, activity and display.

The events (codex-rs/exec/src/exec_events.rs, emitted by event_processor_with_jsonl_output.rs;
checked against codex 0.169's own output):

- ``thread.started`` ``{thread_id}``: the thread, whose rollout file Codex names after it;
- ``turn.started``; ``turn.completed`` ``{usage}``; ``turn.failed`` ``{error: {message}}``;
- ``item.started`` / ``item.updated`` / ``item.completed`` ``{item}``, ``item.type`` one of
  ``command_execution`` (``command``, ``exit_code``, ``status``), ``file_change``
  (``changes: [{path, kind}]``, ``status``), ``mcp_tool_call`` (``server``, ``tool``,
  ``status``, ``error``), ``agent_message`` (``text``), ``reasoning`` (``text``),
  ``web_search`` (``query``), ``todo_list`` (``items``), ``collab_tool_call`` (``tool``),
  ``error`` (``message``: a warning, the run goes on);
- ``error`` ``{message}``: a fatal stream error (an HTTP 429 that outlasted Codex's retries
  reads ``exceeded retry limit, last status: 429 Too Many Requests``).

``turn.completed.usage`` is the **thread's running total**, not the turn's own figures: the
processor copies ``total`` from the last ``thread/tokenUsage/updated`` notification
(``usage_from_last_total``). Its fields: ``input_tokens`` (cached ones included),
``cached_input_tokens``, ``cache_write_input_tokens``, ``output_tokens`` (reasoning included),
``reasoning_output_tokens``. So a thread's usage is its latest ``turn.completed``, never a sum;
the usage of a log is the sum over its threads. ``codex exec`` reports usage only at the end
of its turn: mid-run figures come from the rollout (`codex_rollout`).

Codex's stderr goes to the same log as plain text (warnings, ``Reading additional input from
stdin...``); every line that is not a JSON object is shown as it is, without terminal escapes.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from typing import Any

from worker import usage
from worker.runtimes import base

LIMIT = 200  # characters of one activity or rendered line
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
_SHELLS = ("bash", "sh", "zsh")
_PATCH_HEADER = re.compile(r"^\*\*\* (?:Add|Update|Delete) File: (.+?)\s*$", re.MULTILINE)


# --- shared by the log and the rollout: how one action reads ------------------------------


def plain_text(line: str) -> str:
    """`line` without terminal escape sequences (colours, titles) or a trailing CR."""
    return _ESCAPES.sub("", line).rstrip("\r")


def first_line(text: str) -> str:
    """The first non-blank line of `text`, marked with `…` when more follows or it is cut."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    head = lines[0]
    if len(head) > LIMIT - 20:
        return head[: LIMIT - 21] + "…"
    return head + (" …" if len(lines) > 1 else "")


def command_text(command: str | list[Any]) -> str:
    """A command as a person typed it: the script of Codex's ``/bin/bash -lc '...'`` wrapper."""
    if isinstance(command, list):
        words = [str(w) for w in command]
    else:
        try:
            words = shlex.split(command)
        except ValueError:
            return first_line(command)
    if len(words) == 3 and words[0].rsplit("/", 1)[-1] in _SHELLS and words[1] in ("-lc", "-c"):
        return first_line(words[2])
    return first_line(shlex.join(words) if isinstance(command, list) else command)


def patched_files(patch: str) -> list[str]:
    """The files an ``apply_patch`` body names (``*** Add/Update/Delete File: PATH``)."""
    return _PATCH_HEADER.findall(patch)


def tool_name(server: str, tool: str) -> str:
    """``kanban.kanban_complete`` for tool ``kanban_complete`` of MCP server ``kanban``."""
    return f"{server}.{tool}" if server else tool


def usage_from(figures: Mapping[str, Any] | None, *, model: str | None = None) -> usage.Usage:
    """A `Usage` from Codex's token figures (``turn.completed.usage``, a rollout's totals)."""
    figures = figures or {}

    def count(name: str) -> int:
        value = figures.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    return usage.Usage(
        input_tokens=count("input_tokens"),
        cached_input_tokens=count("cached_input_tokens"),
        output_tokens=count("output_tokens"),
        reasoning_tokens=count("reasoning_output_tokens"),
        model=model,
    )


def usage_line(figures: usage.Usage) -> str:
    cached = f" ({figures.cached_input_tokens:,} cached)" if figures.cached_input_tokens else ""
    return f"{figures.input_tokens:,} in{cached} / {figures.output_tokens:,} out tokens"


# --- the events -----------------------------------------------------------------------------


def parse(line: str) -> dict[str, Any] | None:
    """The event on `line`, or None when the line is not a JSON object with a ``type``."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        event = json.loads(text)
    except ValueError:
        return None
    return event if isinstance(event, dict) and isinstance(event.get("type"), str) else None


def _item(event: Mapping[str, Any]) -> Mapping[str, Any]:
    item = event.get("item")
    return item if isinstance(item, Mapping) else {}


def describe_item(item: Mapping[str, Any], *, workspace: str | None = None) -> str | None:
    """One line for a completed (or started) item; None for items not worth a line."""
    kind = item.get("type")
    status = item.get("status")
    if kind == "command_execution":
        shown = "$ " + command_text(item.get("command") or "")
        code = item.get("exit_code")
        if status == "declined":
            return f"{shown} (declined)"
        if isinstance(code, int):
            return f"{shown} (exit {code})"
        return shown
    if kind == "file_change":
        changes = item.get("changes") or []
        paths = [_relative(str(c.get("path")), workspace) for c in changes if isinstance(c, dict)]
        verb = "patch failed:" if status == "failed" else "patched"
        return f"{verb} {', '.join(paths)}" if paths else None
    if kind == "mcp_tool_call":
        shown = "tool " + tool_name(str(item.get("server") or ""), str(item.get("tool") or ""))
        error = item.get("error")
        if status == "failed" or isinstance(error, Mapping):
            message = error.get("message") if isinstance(error, Mapping) else None
            return f"{shown} failed: {first_line(str(message or 'no message'))}"
        return shown
    if kind == "agent_message":
        return "agent: " + first_line(str(item.get("text") or ""))
    if kind == "reasoning":
        return "thinking: " + first_line(str(item.get("text") or ""))
    if kind == "error":
        return "warning: " + first_line(str(item.get("message") or ""))
    if kind == "web_search":
        return "web search: " + first_line(str(item.get("query") or ""))
    if kind == "collab_tool_call":
        return f"agent tool {item.get('tool')}"
    if kind == "todo_list":
        items = [i for i in item.get("items") or () if isinstance(i, Mapping)]
        done = sum(1 for i in items if i.get("completed"))
        return f"plan: {done}/{len(items)} done"
    return None


def _relative(path: str, workspace: str | None) -> str:
    if workspace and path.startswith(workspace.rstrip("/") + "/"):
        return path[len(workspace.rstrip("/")) + 1 :]
    return path


def _error_message(event: Mapping[str, Any]) -> str | None:
    """The message of an ``error`` or ``turn.failed`` event (None for other events)."""
    if event.get("type") == "error":
        return str(event.get("message") or "")
    if event.get("type") == "turn.failed":
        error = event.get("error")
        return str(error.get("message") or "") if isinstance(error, Mapping) else ""
    return None


def render(line: str) -> str | None:
    """One line of a ``codex exec --json`` log as a person reads it (None: noise)."""
    event = parse(line)
    if event is None:
        text = plain_text(line)
        return text if text.strip() else None
    kind = event["type"]
    if kind == "item.completed":
        return describe_item(_item(event))
    if kind in ("item.started", "item.updated", "turn.started", "item.plan.delta"):
        return None  # the completed item says it all
    if kind == "thread.started":
        return f"codex thread {event.get('thread_id')}"
    if kind == "turn.completed":
        raw = event.get("usage")
        return "turn: " + usage_line(usage_from(raw if isinstance(raw, Mapping) else None))
    if kind == "turn.failed":
        return f"turn failed: {_error_message(event)}"
    if kind == "error":
        return f"error: {_error_message(event)}"
    return plain_text(line)  # an event this version does not know: shown as it came


def rate_limited(log_tail: str) -> bool:
    """Whether Codex's errors in `log_tail` say the model API was rate limited.

    Only Codex's own words count: ``error`` and ``turn.failed`` events, warning items, and its
    plain-text stderr. A command's output or the agent's message that mentions a rate limit
    does not. The tail may begin inside an event: that fragment is skipped.
    """
    for number, line in enumerate(log_tail.splitlines()):
        event = parse(line)
        if event is None:
            fragment = number == 0 and '"type":' in line
            if not fragment and base.looks_rate_limited(plain_text(line)):
                return True
            continue
        message = _error_message(event)
        item = _item(event)
        if message is None and event["type"] == "item.completed" and item.get("type") == "error":
            message = str(item.get("message") or "")
        if message and base.looks_rate_limited(message):
            return True
    return False


class Events:
    """What a ``codex exec --json`` log has said so far: threads, their usage, the last action.

    Fed each line once, in order; a fresh instance fed the same lines arrives at the same
    state (usage is taken, never added, from each thread's latest ``turn.completed``).
    """

    def __init__(self, workspace: str | None = None) -> None:
        self.workspace = workspace
        self.threads: list[str] = []
        self.reported: dict[str, usage.Usage] = {}  # thread -> its latest turn.completed
        self.activity: str | None = None

    def feed(self, line: str) -> None:
        event = parse(line)
        if event is None:
            return
        kind = event["type"]
        thread = self.threads[-1] if self.threads else ""
        if kind == "thread.started" and isinstance(event.get("thread_id"), str):
            if event["thread_id"] not in self.threads:
                self.threads.append(event["thread_id"])
        elif kind == "turn.completed":
            raw = event.get("usage")
            self.reported[thread] = usage_from(raw if isinstance(raw, Mapping) else None)
        elif kind in ("item.started", "item.completed"):
            item = _item(event)
            if kind == "item.started" and item.get("type") not in (
                "command_execution",
                "mcp_tool_call",
            ):
                return  # only calls are worth showing before they end
            shown = describe_item(item, workspace=self.workspace)
            if shown and item.get("type") not in ("error", "reasoning", "todo_list"):
                self.activity = shown[:LIMIT]
        elif (message := _error_message(event)) is not None:
            self.activity = f"error: {first_line(message)}"[:LIMIT]
