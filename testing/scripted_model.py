"""A scripted stand-in for a model API, for tests and the demo. It is not a model.

Nothing here understands a prompt. The server answers the model APIs that the real agents
speak (``POST /v1/responses`` for Codex, ``POST /v1/chat/completions`` for Hermes' default
runtime, ``POST /v1/messages`` for Claude Code: `testing.scripted_anthropic`, ``GET
/v1/models``) with replies written down in advance in a *script*, so that the real ``codex``,
``hermes`` and ``claude`` programs can run whole tasks offline and deterministically against
127.0.0.1.

A script is a list of scenarios. Each has a ``match`` marker, looked for in the user text of a
request (e.g. a task's title, so each task of a batch follows its own scenario; the first
scenario whose marker occurs wins; an empty marker matches anything), and a list of turns.
``match`` may also be a list of markers that must all occur (``["being resumed", "T1"]``: put
such a scenario before a plainer one it refines). A turn is a list of actions, answered
together as one model response:

    {"shell": "echo hi > f"}                 a shell command: Codex's ``exec_command``, Hermes'
                                             ``terminal``; optional "workdir", and "args"
                                             (extra arguments merged into the call)
    {"tool": "kanban_complete", "args": {}}  a call to a tool of our MCP server; optional
                                             "namespace" (Responses) or "name" (chat) to pick
                                             the exact tool, else found among the offered ones
    {"message": "done"}                      a message; a turn without calls ends the agent turn
    {"hang": true}                           never answer (not even headers) until shutdown
    {"hang": "stream"}                       send headers and the response start, then stall
    {"status": 429}                          an HTTP error; optional "retry_after" (seconds,
                                             sent as Retry-After) and "body" (JSON to send)
    {"wait_for": "/abs/path"}                hold this turn's answer until that file exists
                                             (a test's cue), then answer its other actions
    {"usage": {"input_tokens": 1200, ...}}   the token usage this response reports (keys:
                                             input_tokens, cached_tokens, cache_write_tokens,
                                             output_tokens, reasoning_tokens; missing ones are 0)

``hang`` and ``status`` take an optional ``"times": N``: they misbehave for the first N
requests that reach that turn of that scenario (over all conversations), after which the
turn's other actions are answered. Without ``times`` they misbehave every time.

Every response reports its token usage, as the real APIs do: ``usage`` in the Responses API's
``response.completed`` (``input_tokens`` with ``input_tokens_details.cached_tokens``,
``output_tokens`` with ``output_tokens_details.reasoning_tokens``), and in the last chunk of a
chat completion (``prompt_tokens``, ``completion_tokens`` and their details). The figures are
the turn's ``usage`` action, else the script's own ``"usage"`` (``{"scenarios": [...],
"usage": {...}}``), else zeros.

The turn a request is at is worked out from the request alone: every call this server emits
has a call id naming its scenario and turn (``ks-S-T-A``), the agents send those ids back with
the calls' outputs, and a message turn is recognised by its text. So a request the agent
retries gets the same answer again, and any number of conversations can share one server.
Calls of one turn may run in parallel in the agent; put actions in separate turns to order them.

    with scripted_model.serve({"scenarios": [{"match": "T1", "turns": [...]}]}) as server:
        ...  # point the agent at server.base_url, "http://127.0.0.1:PORT/v1"
        assert "T1" in server.requests[-1].user_text

    python -m testing.scripted_model --script script.json [--port 0] [--record log.jsonl]

The command prints its base URL as the first line of stdout and serves until killed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO

from testing import scripted_anthropic

MODEL_NAME = "scripted"
DEFAULT_NAMESPACE = "mcp__kanban"
_CALL_ID = re.compile(r"^ks-(\d+)-(\d+)-(\d+)$")
_ACTION_KEYS = {
    "shell": {"shell", "workdir", "args"},
    "tool": {"tool", "args", "namespace", "name"},
    "message": {"message"},
    "hang": {"hang", "times"},
    "status": {"status", "times", "retry_after", "body"},
    "wait_for": {"wait_for"},
    "usage": {"usage"},
}
_USAGE_KEYS = (
    "input_tokens",
    "cached_tokens",
    "cache_write_tokens",  # Anthropic's cache creation (within input_tokens)
    "output_tokens",
    "reasoning_tokens",
)
_MISBEHAVIOURS = ("hang", "status")
_POLL_INTERVAL = 0.02

Action = Mapping[str, Any]


class ScriptError(ValueError):
    """A script that cannot be followed; the message says where and why."""


@dataclass(frozen=True)
class Scenario:
    match: str | tuple[str, ...]  # a tuple: every marker must occur
    turns: tuple[tuple[Action, ...], ...]

    def matches(self, text: str) -> bool:
        markers = (self.match,) if isinstance(self.match, str) else self.match
        return all(marker in text for marker in markers)

    @property
    def label(self) -> str:
        """The marker, or the markers joined with " & ", as requests are recorded."""
        return self.match if isinstance(self.match, str) else " & ".join(self.match)


@dataclass(frozen=True)
class Script:
    scenarios: tuple[Scenario, ...]
    usage: Mapping[str, int] | None = None  # what every response reports, unless its turn says

    @classmethod
    def from_data(cls, data: Any) -> Script:
        """A script from ``{"scenarios": [...], "usage": {...}}`` or a bare list of scenarios."""
        usage = None
        if isinstance(data, Mapping):
            if "usage" in data:
                usage = _usage("the script's usage", data["usage"])
            data = data.get("scenarios")
        if not isinstance(data, list):
            raise ScriptError('a script is {"scenarios": [...]} or a list of scenarios')
        return cls(tuple(_scenario(f"scenario {i}", s) for i, s in enumerate(data)), usage)

    @classmethod
    def load(cls, path: str | Path) -> Script:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ScriptError(f"cannot read script {path}: {exc}") from exc
        return cls.from_data(data)

    def to_data(self) -> dict[str, Any]:
        return {
            "scenarios": [
                {
                    "match": s.match if isinstance(s.match, str) else list(s.match),
                    "turns": [[dict(a) for a in turn] for turn in s.turns],
                }
                for s in self.scenarios
            ],
            **({"usage": dict(self.usage)} if self.usage is not None else {}),
        }


def _scenario(where: str, data: Any) -> Scenario:
    if not isinstance(data, Mapping) or not isinstance(data.get("turns"), list):
        raise ScriptError(f'{where}: a scenario is {{"match": "...", "turns": [[action, ...]]}}')
    match = data.get("match", "")
    if isinstance(match, list) and match and all(isinstance(m, str) for m in match):
        match = tuple(match)
    elif not isinstance(match, str):
        raise ScriptError(f"{where}: match must be a string or a non-empty list of strings")
    for t, turn in enumerate(data["turns"]):
        if not isinstance(turn, list) or not turn:
            raise ScriptError(f"{where} turn {t}: a turn is a non-empty list of actions")
        for a, action in enumerate(turn):
            _check_action(f"{where} turn {t} action {a}", action)
    return Scenario(match, tuple(tuple(turn) for turn in data["turns"]))


def _check_action(where: str, action: Any) -> None:
    kinds = [k for k in _ACTION_KEYS if isinstance(action, Mapping) and k in action]
    if len(kinds) != 1:
        raise ScriptError(f"{where}: an action has exactly one of {', '.join(_ACTION_KEYS)}")
    kind = kinds[0]
    if extra := set(action) - _ACTION_KEYS[kind]:
        raise ScriptError(f"{where}: unknown keys {sorted(extra)} in a {kind} action")
    value = action[kind]
    if kind == "usage":
        _usage(where, value)
        return
    well_formed = {
        "shell": isinstance(value, str),
        "tool": isinstance(value, str),
        "message": isinstance(value, str),
        "hang": value is True or value == "stream",
        "status": isinstance(value, int) and 400 <= value <= 599,
        "wait_for": isinstance(value, str) and value.startswith("/"),
    }[kind]
    if not (
        well_formed
        and isinstance(action.get("args", {}), Mapping)
        and isinstance(action.get("times", 0), int)
    ):
        raise ScriptError(f"{where}: malformed {kind} action {dict(action)!r}")


def _usage(where: str, value: Any) -> dict[str, int]:
    """Token figures from a script: every key one of `_USAGE_KEYS`, every value an int >= 0."""
    if not (
        isinstance(value, Mapping)
        and set(value) <= set(_USAGE_KEYS)
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value.values())
    ):
        keys = ", ".join(_USAGE_KEYS)
        raise ScriptError(f"{where}: usage is an object of counts >= 0 with keys among {keys}")
    return {key: value.get(key, 0) for key in _USAGE_KEYS}


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it, and how it answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # the parsed JSON body, or None
    scenario: str | None  # the matched scenario's marker (markers joined with " & ")
    turn: int | None
    answer: str  # "models", "calls", "message", "hang", "status 429", "no scenario", ...
    time: float = field(default_factory=time.time)

    @property
    def user_text(self) -> str:
        """All user-role text of the request, one part per line: the prompt is in here."""
        return "\n".join(_user_texts(self.body))

    @property
    def tool_names(self) -> list[str]:
        """The offered tools; namespaced ones as ``mcp__kanban.kanban_show``."""
        return [name for name, _ in _offered_tools(self.body)]

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "scenario": self.scenario,
            "turn": self.turn,
            "answer": self.answer,
            "time": self.time,
            "body": self.body,
        }


# --- reading requests -------------------------------------------------------------------


def _items(body: Any) -> list[Any]:
    """The conversation of a Responses (``input``) or chat (``messages``) request."""
    if not isinstance(body, dict):
        return []
    items = body.get("input") if "input" in body else body.get("messages")
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    return items if isinstance(items, list) else []


def _text_of(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        ]
    return []


def _user_texts(body: Any) -> list[str]:
    texts: list[str] = []
    for item in _items(body):
        if isinstance(item, dict) and item.get("role") == "user":
            texts += _text_of(item.get("content"))
    return texts


def _offered_tools(body: Any) -> Iterator[tuple[str, str | None]]:
    """(display name, Responses namespace) of every tool a request offers."""
    tools = body.get("tools") if isinstance(body, dict) else None
    for tool in tools if isinstance(tools, list) else ():
        if not isinstance(tool, dict):
            continue
        if tool.get("type") == "namespace":
            for inner in tool.get("tools") or ():
                yield f"{tool.get('name')}.{inner.get('name')}", tool.get("name")
        elif isinstance(tool.get("function"), dict):
            yield str(tool["function"].get("name")), None
        elif "name" in tool:
            yield str(tool["name"]), None


def _turn_of(body: Any, index: int, scenario: Scenario) -> int:
    """One past the latest turn of this scenario that the request's conversation holds."""
    last = -1
    for item in _items(body):
        if not isinstance(item, dict):
            continue
        ids = [item.get("call_id")] if item.get("type") == "function_call" else []
        ids += [c.get("id") for c in item.get("tool_calls") or () if isinstance(c, dict)]
        for call_id in ids:
            if (m := _CALL_ID.match(str(call_id))) and int(m.group(1)) == index:
                last = max(last, int(m.group(2)))
        text = "".join(_text_of(item.get("content"))) if item.get("role") == "assistant" else ""
        if text:
            later = [
                t
                for t, turn in enumerate(scenario.turns)
                if t > last and any(a.get("message") == text for a in turn)
            ]
            last = later[0] if later else last
    return last + 1


# --- writing replies --------------------------------------------------------------------


def _call_args(action: Action, **base: Any) -> str:
    if "workdir" in action:
        base["workdir"] = action["workdir"]
    return json.dumps({**base, **action.get("args", {})})


def _responses_reply(body: Any, call_id: str, action: Action) -> dict[str, Any]:
    if "message" in action:
        part = {"type": "output_text", "text": action["message"], "annotations": []}
        return {"type": "message", "role": "assistant", "id": f"msg-{call_id}", "content": [part]}
    if "shell" in action:
        args = _call_args(action, cmd=action["shell"])
        return {
            "type": "function_call",
            "name": "exec_command",
            "call_id": call_id,
            "arguments": args,
        }
    namespace = action.get("namespace")
    if namespace is None:
        offered = [
            ns for name, ns in _offered_tools(body) if ns and name == f"{ns}.{action['tool']}"
        ]
        mcp = [ns for ns in offered if ns.startswith("mcp__")]
        namespace = (mcp or offered or [DEFAULT_NAMESPACE])[0]
    return {
        "type": "function_call",
        "namespace": namespace,
        "name": action["tool"],
        "call_id": call_id,
        "arguments": json.dumps(dict(action.get("args", {}))),
    }


def _chat_call(body: Any, call_id: str, action: Action) -> dict[str, Any]:
    name: str | None
    if "shell" in action:
        name, args = "terminal", _call_args(action, command=action["shell"])
    else:
        # Hermes names MCP tools mcp__<server>__<tool>; prefer one over a native namesake.
        name = action.get("name")
        if name is None:
            offered = [n for n, ns in _offered_tools(body) if ns is None]
            mcp = [n for n in offered if n.startswith("mcp_") and n.endswith(f"_{action['tool']}")]
            name = mcp[0] if mcp else action["tool"]
        args = json.dumps(dict(action.get("args", {})))
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}


def _responses_usage(figures: Mapping[str, int]) -> dict[str, Any]:
    """The Responses API's ``usage``: cached input within input, reasoning within output."""
    return {
        "input_tokens": figures["input_tokens"],
        "input_tokens_details": {"cached_tokens": figures["cached_tokens"]},
        "output_tokens": figures["output_tokens"],
        "output_tokens_details": {"reasoning_tokens": figures["reasoning_tokens"]},
        "total_tokens": figures["input_tokens"] + figures["output_tokens"],
    }


def _chat_usage(figures: Mapping[str, int]) -> dict[str, Any]:
    """Chat completions' ``usage``, the same figures under the chat API's names."""
    return {
        "prompt_tokens": figures["input_tokens"],
        "prompt_tokens_details": {"cached_tokens": figures["cached_tokens"]},
        "completion_tokens": figures["output_tokens"],
        "completion_tokens_details": {"reasoning_tokens": figures["reasoning_tokens"]},
        "total_tokens": figures["input_tokens"] + figures["output_tokens"],
    }


_NO_USAGE = dict.fromkeys(_USAGE_KEYS, 0)


def _responses_answer(
    body: Any,
    index: int,
    turn: int,
    actions: list[Action],
    stream: bool,
    usage: Mapping[str, int] = _NO_USAGE,
) -> dict[str, Any] | list[Any]:
    """A Responses API answer: an event list to stream, or the JSON body when not streaming."""
    rid = f"resp-{index}-{turn}-{time.monotonic_ns()}"
    items = [_responses_reply(body, f"ks-{index}-{turn}-{a}", x) for a, x in enumerate(actions)]
    done = {"id": rid, "status": "completed", "model": MODEL_NAME, "usage": _responses_usage(usage)}
    if not stream:
        return {**done, "object": "response", "output": items}
    return [
        {"type": "response.created", "response": {"id": rid}},
        *(
            {"type": "response.output_item.done", "output_index": i, "item": item}
            for i, item in enumerate(items)
        ),
        {"type": "response.completed", "response": done},
    ]


def _chat_answer(
    body: Any,
    index: int,
    turn: int,
    actions: list[Action],
    stream: bool,
    usage: Mapping[str, int] = _NO_USAGE,
) -> dict[str, Any] | list[Any]:
    """A chat completions answer: chunks to stream, or the JSON body when not streaming."""
    text = "".join(a["message"] for a in actions if "message" in a)
    calls = [
        _chat_call(body, f"ks-{index}-{turn}-{a}", action)
        for a, action in enumerate(actions)
        if "message" not in action
    ]
    finish = "tool_calls" if calls else "stop"
    head = {
        "id": f"chatcmpl-{index}-{turn}-{time.monotonic_ns()}",
        "created": int(time.time()),
        "model": body.get("model") or MODEL_NAME,
    }
    reported = _chat_usage(usage)
    if not stream:
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = calls
        choice = {"index": 0, "message": message, "finish_reason": finish}
        return {**head, "object": "chat.completion", "choices": [choice], "usage": reported}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {**head, "object": "chat.completion.chunk", "choices": [choice]}

    return [
        chunk({"role": "assistant", "content": text}),
        *(chunk({"tool_calls": [{"index": i, **call}]}) for i, call in enumerate(calls)),
        {**chunk({}, finish), "usage": reported},
        "[DONE]",
    ]


# --- the server -------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the --record log says more: scenario, turn and answer

    def do_GET(self) -> None:
        self.server.model.handle(self, None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else self._read_chunked()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self.server.model.handle(self, body)

    def _read_chunked(self) -> bytes:
        if "chunked" not in (self.headers.get("Transfer-Encoding") or ""):
            return b""
        data = b""
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            data += self.rfile.read(size)
            self.rfile.readline()
        self.rfile.readline()
        return data

    def send_json(
        self, status: int, payload: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def start_events(self) -> None:
        # No Content-Length: the stream ends when the connection closes.
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def send_event(self, event: Any) -> None:
        data = event if isinstance(event, str) else json.dumps(event)
        # Named by its type, as the real APIs do: Anthropic's SDK dispatches on the name.
        name = event.get("type") if isinstance(event, dict) else None
        head = f"event: {name}\n" if isinstance(name, str) else ""
        self.wfile.write(f"{head}data: {data}\n\n".encode())
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], model: ScriptedModel) -> None:
        self.model = model
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # an agent gave up: normal
            super().handle_error(request, client_address)


class ScriptedModel:
    """A running server: its script, address, the requests it saw, its misbehaviour counts."""

    def __init__(self, script: Script, log: TextIO | None = None) -> None:
        self.script = script
        self.requests: list[RecordedRequest] = []
        self.port = 0
        self.base_url = ""
        self._log = log
        self._lock = threading.Condition()
        self._misbehaved: dict[tuple[int, int, int], int] = {}
        self._stopping = threading.Event()

    def wait_for(
        self, predicate: Callable[[RecordedRequest], bool], timeout: float = 30.0
    ) -> RecordedRequest:
        """The first recorded request satisfying ``predicate``, waiting up to ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = next((r for r in self.requests if predicate(r)), None)
                if found is not None:
                    return found
                if (left := deadline - time.monotonic()) <= 0:
                    raise TimeoutError(f"no matching request within {timeout} s")
                self._lock.wait(left)

    def bind(self, host: str = "127.0.0.1", port: int = 0) -> _Server:
        server = _Server((host, port), self)
        self.port = server.server_address[1]
        self.base_url = f"http://{host}:{self.port}/v1"
        return server

    def release_hanging(self) -> None:
        """Let every hanging request end (its connection closes without an answer)."""
        self._stopping.set()

    def _record(
        self, handler: _Handler, body: Any, scenario: Scenario | None, turn: int | None, answer: str
    ) -> None:
        request = RecordedRequest(
            handler.command,
            handler.path,
            dict(handler.headers.items()),
            body,
            scenario.label if scenario else None,
            turn,
            answer,
        )
        with self._lock:
            self.requests.append(request)
            self._lock.notify_all()
            if self._log is not None:
                self._log.write(json.dumps(request.to_json()) + "\n")
                self._log.flush()

    def handle(self, handler: _Handler, body: Any) -> None:
        path = handler.path.split("?")[0].rstrip("/")
        if handler.command == "GET" and path.endswith("/models"):
            self._record(handler, body, None, None, "models")
            model = {"id": MODEL_NAME, "object": "model", "created": 0, "owned_by": "kanban"}
            handler.send_json(200, {"object": "list", "data": [model]})
            return
        if handler.command == "GET" and path.endswith(f"/models/{MODEL_NAME}"):
            self._record(handler, body, None, None, "model")
            handler.send_json(200, {"id": MODEL_NAME, "object": "model", "created": 0})
            return
        if handler.command == "POST" and path.endswith("/messages/count_tokens"):
            self._record(handler, body, None, None, "count tokens")
            handler.send_json(200, scripted_anthropic.count_tokens(body))
            return
        api = {
            "/v1/responses": "responses",
            "/v1/chat/completions": "chat",
            "/v1/messages": "anthropic",
        }.get(path)
        if handler.command != "POST" or api is None or not isinstance(body, dict):
            self._record(handler, body, None, None, "not found")
            handler.send_json(404, {"error": {"message": f"scripted model: no {path} here"}})
            return
        text = "\n".join(_user_texts(body))
        index, scenario = next(
            ((i, s) for i, s in enumerate(self.script.scenarios) if s.matches(text)), (-1, None)
        )
        if scenario is None:
            self._record(handler, body, None, None, "no scenario")
            markers = ", ".join(repr(s.label) for s in self.script.scenarios)
            message = f"scripted model: no scenario matches this request (markers: {markers})"
            self._reply(handler, api, body, -1, -1, [{"message": message}])
            return
        turn_of = scripted_anthropic.turn_of if api == "anthropic" else _turn_of
        turn = turn_of(body, index, scenario)
        if turn >= len(scenario.turns):
            self._record(handler, body, scenario, turn, "script exhausted")
            message = f"scripted model: scenario {scenario.label!r} has no turn {turn}"
            self._reply(handler, api, body, index, turn, [{"message": message}])
            return
        actions = scenario.turns[turn]
        for a, action in enumerate(actions):
            if any(k in action for k in _MISBEHAVIOURS) and self._misbehave(index, turn, a):
                self._act_up(handler, api, body, scenario, turn, action)
                return
        actions = tuple(a for a in actions if not any(k in a for k in _MISBEHAVIOURS))
        for action in actions:
            if "wait_for" in action:
                cue = Path(action["wait_for"])
                while not cue.exists() and not self._stopping.is_set():
                    self._stopping.wait(_POLL_INTERVAL)
        actions = tuple(a for a in actions if "wait_for" not in a)
        calls = any("shell" in a or "tool" in a for a in actions)
        self._record(handler, body, scenario, turn, "calls" if calls else "message")
        self._reply(handler, api, body, index, turn, list(actions))

    def _misbehave(self, index: int, turn: int, a: int) -> bool:
        """Count one misbehaviour of this action, unless its ``times`` are used up."""
        times = self.script.scenarios[index].turns[turn][a].get("times")
        with self._lock:
            done = self._misbehaved.get((index, turn, a), 0)
            if times is not None and done >= times:
                return False
            self._misbehaved[(index, turn, a)] = done + 1
            return True

    def _act_up(
        self, handler: _Handler, api: str, body: Any, scenario: Scenario, turn: int, action: Action
    ) -> None:
        if "hang" in action:
            self._record(handler, body, scenario, turn, "hang")
            if action["hang"] == "stream":
                handler.start_events()
                if api == "responses":
                    handler.send_event({"type": "response.created", "response": {"id": "hung"}})
            self._stopping.wait()
            return
        status = action["status"]
        self._record(handler, body, scenario, turn, f"status {status}")
        kind = "rate_limit_exceeded" if status == 429 else "server_error"
        error = {"message": f"scripted model: HTTP {status}", "type": kind, "code": kind}
        headers = {"Retry-After": str(action["retry_after"])} if "retry_after" in action else {}
        default = scripted_anthropic.error(status) if api == "anthropic" else {"error": error}
        handler.send_json(status, action.get("body") or default, headers)

    def _reply(
        self,
        handler: _Handler,
        api: str,
        body: dict[str, Any],
        index: int,
        turn: int,
        actions: list[Action],
    ) -> None:
        turn_usage = [a["usage"] for a in actions if "usage" in a]
        usage = _usage("usage", turn_usage[0] if turn_usage else self.script.usage or {})
        actions = [a for a in actions if "usage" not in a]
        answer = {
            "responses": _responses_answer,
            "chat": _chat_answer,
            "anthropic": scripted_anthropic.answer,
        }[api]
        reply = answer(body, index, turn, actions, bool(body.get("stream")), usage)
        if isinstance(reply, dict):
            handler.send_json(200, reply)
            return
        handler.start_events()
        for event in reply:
            handler.send_event(event)


@contextlib.contextmanager
def serve(
    script: Script | Mapping[str, Any] | list[Any] | str | Path,
    *,
    port: int = 0,
    log: TextIO | None = None,
) -> Iterator[ScriptedModel]:
    """Serve ``script`` (a Script, its dict/list form, or a JSON file) in a background thread."""
    if isinstance(script, str | Path):
        script = Script.load(script)
    elif not isinstance(script, Script):
        script = Script.from_data(script)
    model = ScriptedModel(script, log)
    server = model.bind(port=port)
    # A short poll interval makes shutdown() quick (it waits for the loop to notice).
    thread = threading.Thread(
        target=server.serve_forever, args=(_POLL_INTERVAL,), name="scripted-model", daemon=True
    )
    thread.start()
    try:
        yield model
    finally:
        model.release_hanging()
        server.shutdown()
        server.server_close()
        thread.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m testing.scripted_model",
        description="Serve a scripted stand-in for a model API on 127.0.0.1. It is not a model.",
    )
    parser.add_argument("--script", required=True, help="the JSON script file")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free one)")
    parser.add_argument("--record", help="append every request to this file as a JSON line")
    args = parser.parse_args(argv)
    try:
        script = Script.load(args.script)
    except ScriptError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return 2
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(open(args.record, "a")) if args.record else None
        model = ScriptedModel(script, log)
        server = model.bind(port=args.port)
        # shutdown() waits for serve_forever() to return, so it cannot run on this thread.
        signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
        sys.stdout.write(model.base_url + "\n")
        sys.stdout.flush()
        try:
            server.serve_forever(_POLL_INTERVAL)
        except KeyboardInterrupt:
            return 130
        finally:
            model.release_hanging()
            server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
