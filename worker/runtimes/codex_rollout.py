"""A Codex thread's rollout: the JSONL record Codex keeps of it, read for usage and activity.

Codex writes each thread to ``$CODEX_HOME/sessions/YYYY/MM/DD/rollout-<time>-<thread
id>.jsonl``, the date and time being local (codex-rs/rollout/src/recorder.rs), one
``{"timestamp", "type", "payload"}`` record a line, appended as the thread goes
(codex-rs/rollout/src/policy.rs says which records are kept). What is read here, checked
against the files codex 0.169 writes for ``codex exec`` and for ``codex app-server``:

- ``session_meta``, the first line: ``payload.id`` (the thread), ``payload.cwd`` (the
  working directory it was started in), ``payload.timestamp`` (UTC, when it started);
- ``turn_context``: ``payload.model``, the model of the turn that follows;
- ``event_msg`` with ``payload.type == "token_count"``: ``payload.info.total_token_usage``,
  the thread's running totals (``input_tokens`` including ``cached_input_tokens``,
  ``output_tokens`` including ``reasoning_output_tokens``), written after every model
  response, so it is exact mid-run; ``info`` may be null (a rate-limit-only update);
- ``response_item``: what the model did: ``function_call`` (``name``, ``arguments``, and a
  ``namespace`` such as ``mcp__kanban`` for an MCP tool), ``custom_tool_call``
  (``apply_patch`` with the patch as ``input``), ``local_shell_call``, an assistant
  ``message``; and ``function_call_output`` (a shell's carries ``Process exited with code N``
  or ``Exit code: N``);
- ``event_msg`` with ``payload.type == "task_complete"``: the turn's end; a failed turn has
  ``payload.error.message`` (e.g. ``exceeded retry limit, last status: 429 Too Many
  Requests``), the only trace of the failure in the file (``error`` events are not kept).

A `Rollout` reads only what was appended since its last read (whole lines only).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from worker import usage
from worker.runtimes import codex_events
from worker.setup import codex as codex_setup

CHUNK = 1 << 20
_EXIT = re.compile(r"(?:Process exited with code|Exit code:) (-?\d+)")
_SHELL_TOOLS = {"exec_command": "cmd", "shell": "command", "shell_command": "command"}
# A thread that started up to this long before the run did is not the run's (clock steps).
SLACK_SEC = 1.0


def sessions_dir(codex_home: str | None) -> Path:
    """Where Codex keeps rollouts: ``$CODEX_HOME/sessions`` (`codex_home`: the setting)."""
    return codex_setup.codex_home(codex_home) / "sessions"


def day_dirs(sessions: Path, since: float, until: float) -> list[Path]:
    """The ``YYYY/MM/DD`` directories a thread started between `since` and `until` can be in
    (a day more on each side: Codex names them in its local time, whatever that was)."""
    first = datetime.date.fromtimestamp(since) - datetime.timedelta(days=1)
    last = datetime.date.fromtimestamp(until) + datetime.timedelta(days=1)
    days = [first + datetime.timedelta(days=n) for n in range((last - first).days + 1)]
    return [sessions / f"{d.year:04d}" / f"{d.month:02d}" / f"{d.day:02d}" for d in days]


def rollout_files(sessions: Path, since: float, until: float) -> Iterator[Path]:
    for directory in day_dirs(sessions, since, until):
        with contextlib.suppress(OSError), os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.startswith("rollout-") and entry.name.endswith(".jsonl"):
                    yield Path(entry.path)


def thread_file(sessions: Path, thread_id: str, since: float, until: float) -> Path | None:
    """The rollout of thread `thread_id` (its name ends with the id), if it exists yet."""
    suffix = f"-{thread_id}.jsonl"
    return next((p for p in rollout_files(sessions, since, until) if p.name.endswith(suffix)), None)


def _timestamp(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def session_meta(path: Path) -> dict[str, Any] | None:
    """The payload of a rollout's first line, or None while that line is not fully written."""
    try:
        with open(path, "rb") as handle:
            head = handle.readline()
    except OSError:
        return None
    if not head.endswith(b"\n"):
        return None
    try:
        record = json.loads(head)
    except ValueError:
        return {}
    payload = record.get("payload") if isinstance(record, dict) else None
    if not (isinstance(record, dict) and record.get("type") == "session_meta"):
        return {}
    return payload if isinstance(payload, dict) else {}


class WorkspaceThreads:
    """Finds the rollouts of threads started in `workspace` since `since`, as they appear.

    For agents that start Codex themselves and print nothing that names the thread (Hermes'
    app-server runtime): a thread is the run's when its ``session_meta`` names the run's
    worktree as ``cwd`` and it started after the run did. Each file is judged once, from its
    first line; files last written before the run started are passed over unread.
    """

    def __init__(self, sessions: Path, workspace: str, since: float) -> None:
        self.sessions = sessions
        self.workspace = os.path.realpath(workspace)
        self.since = since
        self._judged: set[str] = set()

    def new(self, now: float) -> list[Path]:
        """Rollouts of the run's threads not returned before."""
        found = []
        for path in rollout_files(self.sessions, self.since, now):
            if path.name in self._judged:
                continue
            try:
                if path.stat().st_mtime < self.since - SLACK_SEC:
                    self._judged.add(path.name)
                    continue
            except OSError:
                continue
            meta = session_meta(path)
            if meta is None:
                continue  # its first line is still being written: judged next time
            self._judged.add(path.name)
            started = _timestamp(meta.get("timestamp"))
            cwd = meta.get("cwd")
            if (
                isinstance(cwd, str)
                and os.path.realpath(cwd) == self.workspace
                and started is not None
                and started >= self.since - SLACK_SEC
            ):
                found.append(path)
        return found


@dataclasses.dataclass
class Rollout:
    """One rollout file, read as it grows: the thread's totals, model and last action."""

    path: Path
    offset: int = 0
    totals: usage.Usage = dataclasses.field(default_factory=usage.Usage)
    model: str | None = None
    activity: str | None = None
    activity_at: str = ""  # the record's timestamp (ISO 8601 UTC: ordered as text)
    _calls: dict[str, str] = dataclasses.field(default_factory=dict)

    def read(self) -> None:
        """Take in the whole lines appended since the last read."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                pending = b""
                while chunk := handle.read(CHUNK):
                    data = pending + chunk
                    end = data.rfind(b"\n")
                    if end < 0:
                        pending = data
                        continue
                    for line in data[:end].split(b"\n"):
                        self._take(line)
                    self.offset += end + 1
                    pending = data[end + 1 :]
        except OSError:
            return

    def usage(self) -> usage.Usage:
        return dataclasses.replace(self.totals, model=self.model)

    def _take(self, line: bytes) -> None:
        try:
            record = json.loads(line)
        except ValueError:
            return
        if not isinstance(record, dict) or not isinstance(record.get("payload"), dict):
            return
        kind, payload = record.get("type"), record["payload"]
        if kind == "turn_context" and isinstance(payload.get("model"), str):
            self.model = payload["model"]
        elif kind == "event_msg" and payload.get("type") == "token_count":
            info = payload.get("info")
            if isinstance(info, dict) and isinstance(info.get("total_token_usage"), dict):
                self.totals = codex_events.usage_from(info["total_token_usage"])
        elif kind == "event_msg" and payload.get("type") == "task_complete":
            error = payload.get("error")
            if isinstance(error, dict) and error.get("message"):
                self._act(record, "error: " + codex_events.first_line(str(error["message"])))
        elif kind == "response_item":
            shown = self._describe(payload)
            if shown:
                self._act(record, shown)

    def _act(self, record: Mapping[str, Any], shown: str) -> None:
        self.activity = shown[: codex_events.LIMIT]
        self.activity_at = str(record.get("timestamp") or "")

    def _describe(self, item: Mapping[str, Any]) -> str | None:
        kind = item.get("type")
        call_id = str(item.get("call_id") or "")
        if kind == "function_call":
            shown = _function_call(item)
            if shown.startswith("$ "):
                self._calls[call_id] = shown
            return shown
        if kind == "function_call_output" and call_id in self._calls:
            output = item.get("output")
            if isinstance(output, list):
                output = "".join(str(p.get("text", "")) for p in output if isinstance(p, dict))
            code = _EXIT.search(str(output))
            shown = self._calls.pop(call_id)
            return f"{shown} (exit {code.group(1)})" if code else None
        if kind == "custom_tool_call":
            if item.get("name") == "apply_patch":
                return _patched(str(item.get("input") or ""))
            return f"tool {item.get('name')}"
        if kind == "local_shell_call":
            action = item.get("action")
            command = action.get("command") if isinstance(action, dict) else None
            return "$ " + codex_events.command_text(command or "")
        if kind == "message" and item.get("role") == "assistant":
            content = item.get("content")
            parts = content if isinstance(content, list) else []
            text = "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))
            return "agent: " + codex_events.first_line(text) if text.strip() else None
        if kind == "web_search_call":
            return "web search"
        return None


def _function_call(item: Mapping[str, Any]) -> str:
    name = str(item.get("name") or "")
    namespace = item.get("namespace")
    if isinstance(namespace, str) and namespace:
        return "tool " + codex_events.tool_name(namespace.removeprefix("mcp__"), name)
    try:
        arguments = json.loads(str(item.get("arguments") or "{}"))
    except ValueError:
        arguments = {}
    command = arguments.get(_SHELL_TOOLS.get(name, "")) if isinstance(arguments, dict) else None
    if isinstance(command, str | list) and command:
        script = command if isinstance(command, str) else ""
        if isinstance(command, list) and len(command) == 3 and command[1] in ("-lc", "-c"):
            script = str(command[2])
        if script.lstrip().startswith("apply_patch"):
            return _patched(script)
        return "$ " + codex_events.command_text(command)
    if name.startswith("mcp__") and "__" in name[5:]:  # older Codex: one flat name
        server, tool = name[5:].split("__", 1)
        return "tool " + codex_events.tool_name(server, tool)
    return f"tool {name}"


def _patched(patch: str) -> str:
    files = codex_events.patched_files(patch)
    return "patched " + ", ".join(files) if files else "patched files"
