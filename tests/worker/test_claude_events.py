"""The `claude` runtime reading Claude Code's stream-json: usage, rendering, rate limits.

The events are shaped as Claude Code 2.1 writes them (fields trimmed to those read here); the
end-to-end tests (tests/e2e/test_claude.py) read the logs of real runs.
"""

from __future__ import annotations

import json
from typing import Any

from worker.runtimes import base, claude

INIT = {"type": "system", "subtype": "init", "model": "claude-opus-5-5", "mcp_servers": []}


def line(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))


def assistant(message_id: str, block: dict[str, Any], **figures: int) -> dict[str, Any]:
    usage = {"input_tokens": 0, "output_tokens": 1, **figures}
    message = {"id": message_id, "model": "claude-opus-5-5", "content": [block], "usage": usage}
    return {"type": "assistant", "message": message}


def text(message_id: str, words: str, **figures: int) -> dict[str, Any]:
    return assistant(message_id, {"type": "text", "text": words}, **figures)


def call(message_id: str, name: str, arguments: dict[str, Any], **figures: int) -> dict:
    block = {"type": "tool_use", "id": f"toolu_{message_id}", "name": name, "input": arguments}
    return assistant(message_id, block, **figures)


def tool_result(output: str, *, error: bool = False) -> dict[str, Any]:
    block = {"type": "tool_result", "tool_use_id": "toolu_1", "content": output, "is_error": error}
    return {"type": "user", "message": {"role": "user", "content": [block]}}


def result(cost: float, *, error_status: int | None = None, **per_model: int) -> dict[str, Any]:
    return {
        "type": "result",
        "subtype": "success",
        "is_error": error_status is not None,
        "num_turns": 2,
        "duration_ms": 1500,
        "result": "API Error: Request rejected (429)" if error_status else "Done.",
        "total_cost_usd": cost,
        "usage": {"input_tokens": 0, "output_tokens": 0},
        "modelUsage": {"claude-opus-5-5": per_model} if per_model else {},
        "api_error_status": error_status,
    }


def fed(lines: list[str]) -> claude.ClaudeMeter:
    meter = claude.ClaudeMeter()
    for one in lines:
        meter.feed(one)
    return meter


def test_the_meter_counts_each_message_once_until_the_result_replaces_the_estimate() -> None:
    figures = {"cache_read_input_tokens": 800, "cache_creation_input_tokens": 100}
    lines = [
        "setup: npm ci",  # a setup's output comes first in a run's log
        line(INIT),
        # One message, two blocks: two events sharing the message's id and usage.
        line(text("m1", "Looking.", input_tokens=200, **figures)),
        line(call("m1", "Bash", {"command": "ls"}, input_tokens=200, **figures)),
        line(tool_result("a b c")),
        line(text("m2", "Done.", input_tokens=50)),
    ]
    early = fed(lines).usage()
    assert (early.input_tokens, early.cached_input_tokens, early.output_tokens) == (1150, 800, 2)
    assert early.cost_usd is None and early.model == "claude-opus-5-5"

    final = {
        "inputTokens": 250,
        "cacheReadInputTokens": 800,
        "cacheCreationInputTokens": 100,
        "outputTokens": 64,
        "thinkingTokens": 12,
    }
    lines.append(line(result(0.0123, **final)))
    done = fed(lines).usage()
    assert (done.input_tokens, done.cached_input_tokens, done.output_tokens) == (1150, 800, 64)
    assert done.reasoning_tokens == 12 and done.cost_usd == 0.0123
    assert fed(lines).usage() == done  # a fresh meter, the same log: the same totals

    # What follows a result adds to it, until a later result (running totals) replaces both.
    lines.append(line(text("m3", "More.", input_tokens=10, cache_read_input_tokens=5)))
    assert fed(lines).usage().input_tokens == 1165
    lines.append(line(result(0.02, **{**final, "inputTokens": 260, "cacheReadInputTokens": 805})))
    assert fed(lines).usage().input_tokens == 1165
    assert fed(lines).usage().cost_usd == 0.02


def test_a_result_without_per_model_figures_falls_back_to_its_usage() -> None:
    event = result(0.5)
    event["usage"] = {
        "input_tokens": 3,
        "cache_read_input_tokens": 4,
        "cache_creation_input_tokens": 5,
        "output_tokens": 6,
    }
    used = fed([line(INIT), line(event)]).usage()
    assert (used.input_tokens, used.cached_input_tokens, used.output_tokens) == (12, 4, 6)


def test_each_event_renders_as_one_readable_line_and_noise_as_none() -> None:
    render = claude.render
    assert render(line(INIT)) == "claude started: model claude-opus-5-5"
    assert (
        render(line(call("m", "Bash", {"command": "make  test\n-k x"}))) == "→ Bash: make test -k x"
    )
    complete = call("m", "mcp__kanban__kanban_complete", {"summary": "Fixed it."})
    assert render(line(complete)) == "→ kanban_complete: Fixed it."
    assert render(line(call("m", "Write", {"file_path": "/w/a.py", "content": "x"}))) == (
        "→ Write: /w/a.py"
    )
    assert render(line(text("m", "x" * 500))).endswith("…")
    assert render(line(tool_result("fine"))) is None
    assert render(line(tool_result("no such file", error=True))) == "tool error: no such file"
    assert render(line({"type": "stream_event", "event": {}})) is None
    finished = result(0.0123, inputTokens=3400, cacheReadInputTokens=9000, outputTokens=830)
    assert render(line(finished)) == (
        "claude finished: 2 turns, 1.5 s, $0.0123, 12,400 in (9,000 cached) / 830 out tokens"
    )
    assert render("npm warn something") == "npm warn something"  # not an event: as it is
    assert render("") is None


RATE_LIMITED = [
    line(INIT),
    line(
        {
            "type": "system",
            "subtype": "api_retry",
            "attempt": 1,
            "max_retries": 1,
            "retry_delay_ms": 562,
            "error_status": 429,
            "error": "rate_limit",
        }
    ),
    line(
        {
            **text("x", "API Error: Request rejected (429) · rate limit"),
            "error": "rate_limit",
            "api_error_status": 429,
        }
    ),
    line(result(0, error_status=429)),
]


def test_a_run_that_ended_on_a_429_is_rate_limited() -> None:
    runtime = claude.ClaudeRuntime()
    assert runtime.rate_limited("\n".join(RATE_LIMITED))
    # Killed while Claude Code waited to retry: no result, the retry says it.
    assert runtime.rate_limited("\n".join(RATE_LIMITED[:2]))
    # Outside stream-json, Claude Code's own words; the run's last activity as the dispatcher
    # adds it to the tail, here for a run killed before its result.
    assert runtime.rate_limited("API Error: Request rejected (429) · slow down")
    activity = fed(RATE_LIMITED[:3]).activity()
    assert activity is not None and runtime.rate_limited("\n".join([line(INIT), activity]))
    # A subscription's limit, as Claude Code announces it.
    limit = {"type": "rate_limit_event", "rate_limit_info": {"status": "rejected"}}
    assert runtime.rate_limited("\n".join([line(INIT), line(limit)]))
    assert claude.render(line(limit)) == "subscription rate limit rejected"
    limit["rate_limit_info"] = {"status": "allowed", "rateLimitType": "five_hour"}
    assert not runtime.rate_limited(line(limit))
    assert claude.render(line(limit)) is None


def test_words_about_rate_limits_in_the_work_itself_are_not_a_rate_limit() -> None:
    tail = "\n".join(
        [
            line(INIT),
            line(call("m1", "Bash", {"command": "grep -r 'rate limit' ."})),
            line(tool_result("client.py: raise RateLimited('429 Too Many Requests')")),
            line(text("m2", "The rate_limit handling returns status 429.")),
            line(result(0.01, inputTokens=5, outputTokens=5)),
        ]
    )
    assert base.looks_rate_limited(tail)  # what a plain search of the text would conclude
    assert not claude.ClaudeRuntime().rate_limited(tail)
    # The last result decides: a rate limit earlier in the run that Claude Code got past.
    assert not claude.ClaudeRuntime().rate_limited("\n".join([*RATE_LIMITED[:3], tail]))
    overloaded = result(0, error_status=529)
    assert not claude.ClaudeRuntime().rate_limited(line(overloaded))
    # Killed after the model wrote about a 429: its text, as the run's last activity, is not one.
    killed = [line(INIT), line(text("m1", "The API answers (429) when called too often."))]
    activity = fed(killed).activity()
    assert activity is not None and "(429)" in activity
    assert not claude.ClaudeRuntime().rate_limited("\n".join([*killed, activity]))
