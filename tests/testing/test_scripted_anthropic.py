"""The scripted model's Anthropic mode, driven by plain HTTP requests shaped like Claude Code's.

The real Claude Code against it: tests/e2e/test_claude.py.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from testing import scripted_model

SCRIPT = {
    "scenarios": [
        {
            "match": "TASK-C",
            "turns": [
                [
                    {"shell": "make", "workdir": "/w"},
                    {"usage": {"input_tokens": 1500, "cached_tokens": 1000, "output_tokens": 9}},
                ],
                [
                    {"message": "Reporting."},
                    {"tool": "kanban_complete", "args": {"summary": "made"}},
                    {"usage": {"input_tokens": 300, "cache_write_tokens": 100, "output_tokens": 4}},
                ],
                [{"message": "Done."}],
            ],
        }
    ]
}
# What Claude Code offers before any MCP tool is loaded, and once kanban_complete is.
NATIVE = [{"name": "Bash"}, {"name": "ToolSearch"}, {"name": "Read"}]
LOADED = [*NATIVE, {"name": "mcp__kanban__kanban_complete", "defer_loading": True}]


def post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


def sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of every server-sent event."""
    found = []
    for block in raw.decode().strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        found.append((fields["event"], json.loads(fields["data"])))
    return found


def assembled(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The message a client builds from the stream, as Anthropic's SDK does."""
    (name, start), *rest = events
    assert name == "message_start"
    message = start["message"]
    partial: dict[int, str] = {}
    for name, data in rest:
        assert name == data["type"]
        if name == "content_block_start":
            message["content"].append(data["content_block"])
        elif name == "content_block_delta":
            block, delta = message["content"][data["index"]], data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            else:
                partial[data["index"]] = partial.get(data["index"], "") + delta["partial_json"]
        elif name == "content_block_stop" and data["index"] in partial:
            message["content"][data["index"]]["input"] = json.loads(partial[data["index"]])
        elif name == "message_delta":
            message["stop_reason"] = data["delta"]["stop_reason"]
            message["usage"]["output_tokens"] = data["usage"]["output_tokens"]
    assert events[-1][0] == "message_stop"
    return message


def request(
    prompt: str, history: list[dict[str, Any]] = (), *, tools: list = NATIVE, stream: bool = True
) -> dict[str, Any]:
    return {
        "model": "claude-opus-5-5",
        "stream": stream,
        "system": [{"type": "text", "text": "You are Claude Code. TASK-B"}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": prompt}]},
            *history,
        ],
        "tools": tools,
    }


def answered(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The assistant message, then a user message with a result for each of its calls."""
    results = [
        {"type": "tool_result", "tool_use_id": block["id"], "content": "ok"}
        for block in message["content"]
        if block["type"] == "tool_use"
    ]
    return [
        {"role": "assistant", "content": message["content"]},
        {"role": "user", "content": results},
    ]


def test_a_conversation_loads_the_mcp_tool_with_tool_search_then_calls_it() -> None:
    with scripted_model.serve(SCRIPT) as server:
        url = server.base_url + "/messages?beta=true"
        status, headers, raw = post(url, request("Please do TASK-C"))
        assert (status, headers["Content-Type"]) == (200, "text/event-stream")
        first = assembled(sse(raw))
        assert first["content"] == [
            {
                "type": "tool_use",
                "id": "ks-0-0-0",
                "name": "Bash",
                "input": {"command": "cd /w && make", "description": "Run a scripted command"},
            }
        ]
        assert first["stop_reason"] == "tool_use"
        # Input as the script counts it, split as Anthropic reports it.
        assert first["usage"] == {
            "input_tokens": 500,
            "cache_read_input_tokens": 1000,
            "cache_creation_input_tokens": 0,
            "output_tokens": 9,
        }

        history = answered(first)
        search = assembled(sse(post(url, request("Please do TASK-C", history))[2]))
        assert search["content"] == [
            {
                "type": "tool_use",
                "id": "ks-0-1-load",
                "name": "ToolSearch",
                "input": {"query": "select:mcp__kanban__kanban_complete"},
            }
        ]
        assert search["usage"]["input_tokens"] == search["usage"]["output_tokens"] == 0

        history += answered(search)
        second = assembled(sse(post(url, request("Please do TASK-C", history, tools=LOADED))[2]))
        assert [b["type"] for b in second["content"]] == ["text", "tool_use"]
        assert second["content"][0]["text"] == "Reporting."
        assert second["content"][1]["name"] == "mcp__kanban__kanban_complete"
        assert second["content"][1]["input"] == {"summary": "made"}
        assert second["usage"]["input_tokens"] == 200
        assert second["usage"]["cache_creation_input_tokens"] == 100

        history += answered(second)
        third = assembled(sse(post(url, request("Please do TASK-C", history, tools=LOADED))[2]))
        assert third["content"] == [{"type": "text", "text": "Done."}]
        assert third["stop_reason"] == "end_turn"
        assert len({first["id"], search["id"], second["id"], third["id"]}) == 4

    assert [(r.turn, r.answer) for r in server.requests] == [
        (0, "calls"),
        (1, "calls"),
        (1, "calls"),
        (2, "message"),
    ]


def test_a_tool_that_a_search_did_not_load_is_called_anyway() -> None:
    with scripted_model.serve(SCRIPT) as server:
        url = server.base_url + "/messages"
        first = assembled(sse(post(url, request("TASK-C"))[2]))
        history = answered(first)
        search = assembled(sse(post(url, request("TASK-C", history))[2]))
        history += answered(search)
        # Still not offered: the search found nothing. No second search; the call goes out.
        second = assembled(sse(post(url, request("TASK-C", history))[2]))
    assert second["content"][1]["name"] == "mcp__kanban__kanban_complete"


def test_without_streaming_the_answer_is_the_message_itself() -> None:
    with scripted_model.serve(SCRIPT) as server:
        status, _, raw = post(server.base_url + "/messages", request("TASK-C", stream=False))
    message = json.loads(raw)
    assert status == 200
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"][0]["name"] == "Bash"
    assert message["usage"]["output_tokens"] == 9


def test_a_side_request_offering_no_tools_gets_text_and_never_a_call() -> None:
    with scripted_model.serve(SCRIPT) as server:
        body = request("Write a title for: TASK-C", tools=[], stream=False)
        message = json.loads(post(server.base_url + "/messages", body)[2])
    assert message["content"] == [{"type": "text", "text": "Scripted reply."}]
    assert message["stop_reason"] == "end_turn"


def test_count_tokens_answers_a_count() -> None:
    with scripted_model.serve(SCRIPT) as server:
        status, _, raw = post(server.base_url + "/messages/count_tokens", request("TASK-C"))
    assert status == 200 and json.loads(raw)["input_tokens"] > 0
    assert server.requests[0].answer == "count tokens"


def test_a_429_has_anthropics_error_body_then_the_turn_is_answered() -> None:
    script = {
        "scenarios": [
            {"turns": [[{"status": 429, "times": 1, "retry_after": 2}, {"message": "back"}]]}
        ]
    }
    with scripted_model.serve(script) as server:
        url = server.base_url + "/messages"
        status, headers, raw = post(url, request("x"))
        again = assembled(sse(post(url, request("x"))[2]))
    assert (status, headers["Retry-After"]) == (429, "2")
    assert json.loads(raw) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "scripted model: HTTP 429"},
    }
    assert again["content"] == [{"type": "text", "text": "back"}]
