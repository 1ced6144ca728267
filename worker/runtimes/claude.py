"""The `claude` runtime: Claude Code in print mode, given the board's tool server.

``claude -p PROMPT --output-format stream-json --verbose``: the run's log holds Claude Code's
JSON events, one a line, which `ClaudeMeter` reads for usage and `render` for people. The
kanban tools come from the board's long-lived MCP tool server over streamable HTTP: a private
MCP config (mode 0600, in the run's private directory beside its log, never on the command
line where any local user could read it in the process list) names its URL and the run's
token as the bearer. ``--strict-mcp-config`` keeps every other MCP server out. Claude Code
itself is started without the token in its environment (``env -u``): the model's shell, which
is not sandboxed, inherits Claude Code's environment, and only the tool server needs it.

Claude Code 2.x does not offer MCP tools in its first request: it names them and lets the
model load them with its ``ToolSearch`` tool (allowed here with the kanban tools).

The stream-json events read here, as Claude Code 2.1 writes them:

- ``{"type": "system", "subtype": "init", "model": ..., "mcp_servers": [{"name", "status"}]}``
- ``{"type": "system", "subtype": "api_retry", "attempt", "max_retries", "retry_delay_ms",
  "error_status", "error"}``: a failed model request about to be retried
- ``{"type": "assistant", "message": {"id", "model", "content": [one block], "usage"}}``: one
  event per content block, the blocks of one message sharing its ``id`` and its ``usage`` as
  the stream began (``input_tokens``, ``cache_read_input_tokens``,
  ``cache_creation_input_tokens``, ``output_tokens`` so far: "not final", says Claude Code's
  own schema; the totals "arrive on the result message"). A request that failed for good
  is a synthetic message with ``"error": "rate_limit"`` (or another kind) and
  ``"api_error_status"``.
- ``{"type": "user", "message": {"content": [{"type": "tool_result", "is_error", ...}]}}``
- ``{"type": "result", "subtype", "is_error", "num_turns", "duration_ms", "result",
  "total_cost_usd", "usage", "modelUsage": {model: {"inputTokens", "cacheReadInputTokens",
  "cacheCreationInputTokens", "outputTokens", "thinkingTokens", "costUSD"}},
  "api_error_status"}``: the totals of the whole run so far (every model call, subagents
  included), final output counts included; a later result supersedes an earlier one.
- ``{"type": "rate_limit_event", "rate_limit_info": {"status": "allowed" | "allowed_warning"
  | "rejected", "rateLimitType", "resetsAt"}}``: a subscription's limits changed
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from typing import Any

from worker import env, usage
from worker.runtimes import base

INSTALL_HINT = "install Claude Code (npm install -g @anthropic-ai/claude-code)"
SERVER = "kanban"
ALLOWED_TOOLS = (f"mcp__{SERVER}", "ToolSearch", "Bash", "Edit", "Write", "Read", "Glob", "Grep")
# How Claude Code says "rate limited" in plain text (its stream-json says it in fields): its
# "API Error: Request rejected (429) · ...", or an API error body printed as it came.
PLAIN_RATE_LIMIT = ("Request rejected (429)", "rate_limit_error")
GIST = 160  # characters of a tool's input or a text that a rendered line shows


def mcp_config(ctx: base.Context) -> dict:
    """Claude Code's MCP config for one run: the board's tool server, the token its bearer."""
    if ctx.tool_url is None:
        raise base.RuntimeUnavailable("the board's kanban tool server is not running")
    server = {
        "type": "http",
        "url": ctx.tool_url,
        "headers": {"Authorization": f"Bearer {ctx.token}"},
    }
    return {"mcpServers": {SERVER: server}}


def write_private(data: dict, directory: str) -> str:
    handle, path = tempfile.mkstemp(prefix="claude-mcp-", suffix=".json", dir=directory)
    with os.fdopen(handle, "w") as out:  # mkstemp creates the file with mode 0600
        json.dump(data, out)
    return path


def without_token(db_path: str = "") -> tuple[str, ...]:
    """The start of an argv that runs the rest without the run's token in its environment
    (nor a PostgreSQL board's URL, which may hold a password).

    The shim that starts the agent needs the token itself, so it cannot be left out of the
    worker's environment; ``env -u`` drops it between the shim and Claude Code.
    """
    program = shutil.which("env") or "/usr/bin/env"
    board = ("-u", env.DB) if env.on_postgres(db_path) else ()
    return (program, "-u", env.TOKEN, *board)


class ClaudeRuntime:
    name = "claude"
    reports = True
    uses_tool_server = True

    def launch(self, ctx: base.Context) -> base.Launch:
        binary = base.find_binary(
            ctx.settings.claude_bin, "KANBAN_CLAUDE_BIN", "claude", hint=INSTALL_HINT
        )
        config_file = write_private(mcp_config(ctx), ctx.private_dir)
        argv = (
            *without_token(ctx.db_path),
            binary,
            "-p",
            ctx.prompt,
            "--output-format",
            "stream-json",
            "--verbose",  # stream-json in print mode requires it
            "--mcp-config",
            config_file,
            "--strict-mcp-config",
            "--allowedTools",
            ",".join(ALLOWED_TOOLS),  # one argument: the option takes all that follow
            "--permission-mode",
            "acceptEdits",
            *ctx.settings.extra_args.get(self.name, ()),
        )
        return base.Launch(argv=argv, env={}, cwd=ctx.workspace)

    def rate_limited(self, log_tail: str) -> bool:
        return rate_limited(log_tail)

    def meter(self, metered: base.Metered) -> usage.Meter:
        return ClaudeMeter()

    def render(self, line: str) -> str | None:
        return render(line)


# --- reading the log ------------------------------------------------------------------------


def event(line: str) -> dict[str, Any] | None:
    """One stream-json event, or None for any other line (a setup's output, a warning)."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        found = json.loads(text)
    except ValueError:
        return None
    return found if isinstance(found, dict) and isinstance(found.get("type"), str) else None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def message_usage(figures: Any, model: str | None = None) -> usage.Usage:
    """A message's ``usage`` (Anthropic's names); cache reads and writes join the input."""
    if not isinstance(figures, dict):
        return usage.Usage(model=model)
    cached = _count(figures.get("cache_read_input_tokens"))
    details = figures.get("output_tokens_details")
    thinking = _count(details.get("thinking_tokens")) if isinstance(details, dict) else 0
    return usage.Usage(
        input_tokens=_count(figures.get("input_tokens"))
        + cached
        + _count(figures.get("cache_creation_input_tokens")),
        cached_input_tokens=cached,
        output_tokens=_count(figures.get("output_tokens")),
        reasoning_tokens=thinking,
        model=model,
    )


def result_usage(result: dict[str, Any]) -> usage.Usage:
    """A result's totals: ``modelUsage`` summed over models (every call), else ``usage``."""
    cost = result.get("total_cost_usd")
    cost_usd = float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None
    per_model = result.get("modelUsage")
    if isinstance(per_model, dict) and per_model:
        total = usage.Usage()
        for figures in per_model.values():
            if not isinstance(figures, dict):
                continue
            cached = _count(figures.get("cacheReadInputTokens"))
            total += usage.Usage(
                input_tokens=_count(figures.get("inputTokens"))
                + cached
                + _count(figures.get("cacheCreationInputTokens")),
                cached_input_tokens=cached,
                output_tokens=_count(figures.get("outputTokens")),
                reasoning_tokens=_count(figures.get("thinkingTokens")),
            )
    else:
        total = message_usage(result.get("usage"))
    return usage.Usage(
        input_tokens=total.input_tokens,
        cached_input_tokens=total.cached_input_tokens,
        output_tokens=total.output_tokens,
        reasoning_tokens=total.reasoning_tokens,
        cost_usd=cost_usd,
    )


class ClaudeMeter:
    """A run's usage from Claude Code's stream-json events.

    Until a ``result`` arrives, the totals are the sum of the assistant messages seen, each
    counted once (the events of one message share its id and its usage); their output counts
    are those of the stream's start, so they run low. A ``result`` carries the run's totals so
    far, final counts and cost included: it replaces what the messages before it added up to,
    and messages after it are added to it until the next result.
    """

    def __init__(self) -> None:
        self._model: str | None = None
        self._settled = usage.Usage()  # the latest result's totals
        self._since: dict[str, usage.Usage] = {}  # messages after it, by message id
        self._activity: str | None = None

    def feed(self, line: str) -> None:
        found = event(line)
        shown = render_event(found) if found is not None else _plain(line)
        if shown is not None:
            self._activity = shown
        if found is None:
            return
        kind = found["type"]
        if kind == "system" and found.get("subtype") == "init":
            model = found.get("model")
            self._model = model if isinstance(model, str) else self._model
        elif kind == "assistant":
            message = found.get("message")
            if isinstance(message, dict) and isinstance(message.get("id"), str):
                self._since[message["id"]] = message_usage(message.get("usage"))
        elif kind == "result":
            self._settled = result_usage(found)
            self._since.clear()

    def usage(self) -> usage.Usage:
        total = self._settled
        for used in self._since.values():
            total += used
        return usage.Usage(
            input_tokens=total.input_tokens,
            cached_input_tokens=total.cached_input_tokens,
            output_tokens=total.output_tokens,
            reasoning_tokens=total.reasoning_tokens,
            cost_usd=total.cost_usd,
            model=self._model,
        )

    def activity(self) -> str | None:
        return self._activity


# --- rate limits ----------------------------------------------------------------------------


def rate_limited(log_tail: str) -> bool:
    """Did the run end on a rate limit? Judged from Claude Code's own error reports.

    Read from the end: the last ``result`` decides (``api_error_status`` 429, or a
    ``rate_limit_error``); without one (the run was killed while waiting), a failed or retried
    request with status 429 does. Tool outputs and the model's text are never searched, so a
    task about rate limits is not mistaken for one. A line that is not an event (Claude Code
    outside stream-json, or the run's last activity that the dispatcher adds to the tail) counts
    when it has Claude Code's own words for one: "Request rejected (429)".
    """
    for line in reversed(log_tail.splitlines()):
        found = event(line)
        if found is None:
            if any(marker in line for marker in PLAIN_RATE_LIMIT):
                return True
            continue
        kind, subtype = found["type"], found.get("subtype")
        if kind == "result":
            return _rate_limit_error(found)
        if kind == "assistant" and _rate_limit_error(found):
            return True
        if kind == "system" and subtype == "api_retry" and found.get("error_status") == 429:
            return True
        if kind == "rate_limit_event" and _limit_status(found) == "rejected":
            return True
    return False


def _limit_status(found: dict[str, Any]) -> str | None:
    info = found.get("rate_limit_info")
    return info.get("status") if isinstance(info, dict) else None


def _rate_limit_error(found: dict[str, Any]) -> bool:
    return (
        found.get("api_error_status") == 429
        or found.get("api_error_type") == "rate_limit_error"
        or found.get("error") == "rate_limit"
    )


# --- rendering ------------------------------------------------------------------------------


def render(line: str) -> str | None:
    """One log line as a person reads it: events in words, other lines as they are."""
    found = event(line)
    return render_event(found) if found is not None else _plain(line)


def _plain(line: str) -> str | None:
    return line if line.strip() else None


def _short(text: str, limit: int = GIST) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def render_event(found: dict[str, Any]) -> str | None:
    kind, subtype = found["type"], found.get("subtype")
    if kind == "system" and subtype == "init":
        servers = [s for s in found.get("mcp_servers") or () if isinstance(s, dict)]
        states = ", ".join(f"{s.get('name')} {s.get('status')}" for s in servers)
        return f"claude started: model {found.get('model')}" + (
            f"; MCP: {states}" if states else ""
        )
    if kind == "system" and subtype == "api_retry":
        delay = _count(found.get("retry_delay_ms")) / 1000
        return (
            f"model request failed ({found.get('error_status')}, {found.get('error')}); "
            f"retry {found.get('attempt')}/{found.get('max_retries')} in {delay:g} s"
        )
    if kind == "assistant":
        message = found.get("message")
        blocks = message.get("content") if isinstance(message, dict) else None
        shown = [_block(b) for b in blocks or () if isinstance(b, dict)]
        text = " | ".join(s for s in shown if s)
        return text or None
    if kind == "user":
        message = found.get("message")
        blocks = message.get("content") if isinstance(message, dict) else None
        errors = [b for b in blocks or () if isinstance(b, dict) and b.get("is_error") is True]
        return " | ".join(f"tool error: {_short(_result_text(b))}" for b in errors) or None
    if kind == "result":
        return _result(found)
    if kind == "rate_limit_event" and _limit_status(found) in ("allowed_warning", "rejected"):
        info = found["rate_limit_info"]
        resets = info.get("resetsAt")
        when = (
            f", resets at {time.strftime('%Y-%m-%d %H:%M', time.localtime(resets))}"
            if isinstance(resets, int)
            else ""
        )
        window = info.get("rateLimitType")
        which = f" ({window})" if isinstance(window, str) else ""
        return f"subscription rate limit {info.get('status')}{which}{when}"
    return None


def _block(block: dict[str, Any]) -> str | None:
    if block.get("type") == "text" and isinstance(block.get("text"), str):
        return _short(block["text"]) or None
    if block.get("type") == "tool_use":
        name = str(block.get("name"))
        name = name.removeprefix(f"mcp__{SERVER}__")
        gist = _gist(block.get("input"))
        return f"→ {name}" + (f": {gist}" if gist else "")
    return None  # thinking, and what later versions add


# The input worth showing first, for the tools whose input is best known by one field.
_FIRST = ("command", "file_path", "path", "pattern", "query", "url", "summary", "reason", "note")


def _gist(arguments: Any) -> str:
    if not isinstance(arguments, dict) or not arguments:
        return ""
    for key in _FIRST:
        if isinstance(arguments.get(key), str):
            return _short(arguments[key])
    return _short(json.dumps(arguments, ensure_ascii=False))


def _result_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


def _result(found: dict[str, Any]) -> str:
    seconds = _count(found.get("duration_ms")) / 1000
    turns = found.get("num_turns")
    used = result_usage(found)
    cost = f"${used.cost_usd:.4f}" if used.cost_usd is not None else "cost unknown"
    figures = (
        f"{turns} turns, {seconds:.1f} s, {cost}, {used.input_tokens:,} in "
        f"({used.cached_input_tokens:,} cached) / {used.output_tokens:,} out tokens"
    )
    if found.get("is_error"):
        what = found.get("result") or found.get("subtype") or "error"
        return f"claude ended with an error: {_short(str(what))} ({figures})"
    return f"claude finished: {figures}"
