"""The scripted model's Anthropic mode: the Messages API that Claude Code speaks.

`testing.scripted_model` serves it beside the OpenAI APIs, from the same scripts; point Claude
Code at the server's root with ``ANTHROPIC_BASE_URL=http://127.0.0.1:PORT`` (no ``/v1``: Claude
Code adds it) and any ``ANTHROPIC_API_KEY``. It answers:

- ``POST /v1/messages`` with ``"stream": true`` (Claude Code's turns; it adds ``?beta=true``):
  server-sent events, each with its ``event:`` line (Anthropic's SDK dispatches on it):
  ``message_start`` (the message, its ``usage``: ``input_tokens``,
  ``cache_read_input_tokens``, ``cache_creation_input_tokens``, and 1 output token so far, as
  the real API reports it), ``ping``, then for each content block ``content_block_start`` /
  ``content_block_delta`` / ``content_block_stop`` (``text_delta`` for text,
  ``input_json_delta`` in two pieces for a ``tool_use``'s input), ``message_delta``
  (``stop_reason`` ``tool_use`` or ``end_turn``; ``usage.output_tokens``) and
  ``message_stop``.
- ``POST /v1/messages`` without streaming: the same message as one JSON body.
- ``POST /v1/messages/count_tokens``: ``{"input_tokens": N}``, about a token per four
  characters of the request.
- A request that offers no tools is a side request (a title, a summary): it gets the turn's
  message, or a short text, and never a call.

A script's actions become content blocks of one assistant message:

    {"message": "..."}         a text block; a turn without calls ends the agent's turn
    {"shell": "cmd"}           a ``Bash`` call, ``{"command": "cmd", "description": ...}``
                               (``workdir`` becomes a leading ``cd``; ``args`` are merged in)
    {"tool": "kanban_complete", "args": {...}}
                               a call of ``mcp__kanban__kanban_complete``: an offered tool
                               named ``mcp__<server>__<tool>`` if there is one, else
                               ``<namespace>__<tool>`` (``namespace`` defaults to
                               ``mcp__kanban``); ``name`` gives the exact name instead (e.g.
                               ``{"tool": "write", "name": "Write"}`` for a native tool)
    {"usage": {...}}           the figures this response reports (below)
    {"status": 429}            an HTTP error with Anthropic's body, ``{"type": "error",
                               "error": {"type": "rate_limit_error", "message": ...}}``;
                               ``times``, ``retry_after`` and ``body`` as for the other APIs

**Lazy MCP tools.** Claude Code 2.x does not offer MCP tools in its first request: it names them
in a system message and loads them through its ``ToolSearch`` tool, after which they are in
the request's ``tools``. So when a turn calls a tool the request does not offer, this mode
first answers a ``ToolSearch`` call, ``{"query": "select:mcp__kanban__kanban_complete,..."}``
(id ``ks-S-T-load``, which does not advance the turn); the next request, with the tools
loaded, gets the turn's calls. A turn whose tools a search already failed to load gets its
calls anyway, and Claude Code answers them with an error, as it would a model's bad call.

**Usage.** The figures follow the script's convention (`worker.usage`'s too): ``input_tokens``
counts every input token, cached ones included. This mode splits them as Anthropic reports
them: ``cache_read_input_tokens`` = ``cached_tokens``, ``cache_creation_input_tokens`` =
``cache_write_tokens``, ``input_tokens`` = the rest; ``output_tokens`` as given. So a meter
that adds Anthropic's three input figures back up reads the script's own numbers. The
``ToolSearch`` answer reports no usage: a run's totals are the sum of its scripted turns.

Turns are recognised as for the other APIs: every call id names its scenario and turn
(``ks-S-T-A``); Claude Code sends them back as ``tool_use`` ids in the assistant messages of
the next request, and a message turn is recognised by its text.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterator, Mapping
from typing import Any

from testing import scripted_model

TOOL_SEARCH = "ToolSearch"
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_SIDE_REPLY = "Scripted reply."


def _blocks(message: Any) -> list[dict[str, Any]]:
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content or () if isinstance(b, dict)]


def _assistant_blocks(body: Any) -> Iterator[list[dict[str, Any]]]:
    messages = body.get("messages") if isinstance(body, dict) else None
    for message in messages if isinstance(messages, list) else ():
        if isinstance(message, dict) and message.get("role") == "assistant":
            yield _blocks(message)


def turn_of(body: Any, index: int, scenario: scripted_model.Scenario) -> int:
    """One past the latest turn of this scenario that the request's conversation holds."""
    last = -1
    for blocks in _assistant_blocks(body):
        for block in blocks:
            if block.get("type") != "tool_use":
                continue
            found = scripted_model._CALL_ID.match(str(block.get("id")))
            if found and int(found.group(1)) == index:
                last = max(last, int(found.group(2)))
        text = "".join(b["text"] for b in blocks if isinstance(b.get("text"), str))
        if text:
            later = [
                t
                for t, turn in enumerate(scenario.turns)
                if t > last and any(a.get("message") == text for a in turn)
            ]
            last = later[0] if later else last
    return last + 1


def _load_id(index: int, turn: int) -> str:
    """The id of the ToolSearch call that loads a turn's tools (not a ``ks-S-T-A`` call id)."""
    return f"ks-{index}-{turn}-load"


def _searched(body: Any, load_id: str) -> bool:
    """Has the conversation already asked ToolSearch to load this turn's tools?"""
    return any(
        b.get("type") == "tool_use" and b.get("id") == load_id
        for blocks in _assistant_blocks(body)
        for b in blocks
    )


def _offered(body: Any) -> list[str]:
    tools = body.get("tools") if isinstance(body, dict) else None
    return [str(t["name"]) for t in tools or () if isinstance(t, dict) and "name" in t]


def _tool_name(offered: list[str], action: scripted_model.Action) -> str:
    if "name" in action:
        return str(action["name"])
    tool = action["tool"]
    namespace = action.get("namespace")
    prefix = f"{namespace}__" if namespace else "mcp__"
    mcp = [n for n in offered if n.startswith(prefix) and n.endswith(f"__{tool}")]
    if mcp:
        return mcp[0]
    return f"{namespace or scripted_model.DEFAULT_NAMESPACE}__{tool}"


def _call(offered: list[str], call_id: str, action: scripted_model.Action) -> dict[str, Any]:
    if "shell" in action:
        command = action["shell"]
        if "workdir" in action:
            command = f"cd {shlex.quote(action['workdir'])} && {command}"
        arguments = {"command": command, "description": "Run a scripted command"}
        return _tool_use(call_id, "Bash", {**arguments, **action.get("args", {})})
    return _tool_use(call_id, _tool_name(offered, action), dict(action.get("args", {})))


def _tool_use(call_id: str, name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": dict(arguments)}


def _content(
    body: Any, index: int, turn: int, actions: list[scripted_model.Action]
) -> list[dict[str, Any]]:
    """The content blocks answering this turn: its texts, then its calls (or a tool search)."""
    texts = [{"type": "text", "text": a["message"]} for a in actions if "message" in a]
    offered = _offered(body)
    if not offered:  # a side request: text only
        return texts or [{"type": "text", "text": _SIDE_REPLY}]
    calls = [
        _call(offered, f"ks-{index}-{turn}-{a}", action)
        for a, action in enumerate(actions)
        if "shell" in action or "tool" in action
    ]
    load_id = _load_id(index, turn)
    missing = [c["name"] for c in calls if c["name"] not in offered]
    if missing and TOOL_SEARCH in offered and not _searched(body, load_id):
        query = "select:" + ",".join(dict.fromkeys(missing))
        return [_tool_use(load_id, TOOL_SEARCH, {"query": query})]
    return texts + calls


def anthropic_usage(figures: Mapping[str, int]) -> dict[str, int]:
    """The script's figures (input counts cached input) as Anthropic's ``usage`` has them."""
    cached = figures.get("cached_tokens", 0)
    written = figures.get("cache_write_tokens", 0)
    return {
        "input_tokens": max(0, figures.get("input_tokens", 0) - cached - written),
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": written,
        "output_tokens": figures.get("output_tokens", 0),
    }


def answer(
    body: Any,
    index: int,
    turn: int,
    actions: list[scripted_model.Action],
    stream: bool,
    usage: Mapping[str, int] | None = None,
) -> dict[str, Any] | list[Any]:
    """A Messages API answer: the events to stream, or the message as one JSON body."""
    content = _content(body, index, turn, actions)
    calls = any(block["type"] == "tool_use" for block in content)
    # A tool search is not a turn of the script: the turn's figures go with the turn's calls.
    searching = content[0].get("id") == _load_id(index, turn)
    reported = anthropic_usage({} if searching else usage or {})
    message = {
        "id": f"msg_ks-{index}-{turn}-{time.monotonic_ns()}",  # unique, as the real API's
        "type": "message",
        "role": "assistant",
        "model": body.get("model") or scripted_model.MODEL_NAME,
        "content": content,
        "stop_reason": "tool_use" if calls else "end_turn",
        "stop_sequence": None,
        "usage": reported,
    }
    if not stream:
        return message
    started = {
        **message,
        "content": [],
        "stop_reason": None,
        "usage": {**reported, "output_tokens": min(1, reported["output_tokens"])},
    }
    events: list[Any] = [{"type": "message_start", "message": started}, {"type": "ping"}]
    for i, block in enumerate(content):
        empty: dict[str, Any]
        if block["type"] == "text":
            empty = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": block["text"]}
            deltas = [delta]
        else:
            empty = {**block, "input": {}}
            arguments = json.dumps(block["input"])
            half = len(arguments) // 2  # in two pieces, as a real stream may cut it anywhere
            deltas = [
                {"type": "input_json_delta", "partial_json": part}
                for part in (arguments[:half], arguments[half:])
            ]
        events.append({"type": "content_block_start", "index": i, "content_block": empty})
        events += [{"type": "content_block_delta", "index": i, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": i})
    events += [
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": reported["output_tokens"]},
        },
        {"type": "message_stop"},
    ]
    return events


def error(status: int) -> dict[str, Any]:
    """Anthropic's error body for an HTTP status."""
    kind = _ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": f"scripted model: HTTP {status}"}}


def count_tokens(body: Any) -> dict[str, int]:
    """``/v1/messages/count_tokens``: about one token per four characters of the request."""
    return {"input_tokens": max(1, len(json.dumps(body)) // 4)}
