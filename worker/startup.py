"""The agent's own words for why a worker never got going: `startup_error(log_text)`.

An agent that cannot reach a model says so in its own way, and often does not exit. Measured
offline with Codex 0.169, Hermes 0.19 (on Codex's app-server, as kanban runs it) and Claude
Code 2.1 (stdout is "out", stderr is "err"):

- No login and no model provider: ``codex exec`` never exits; it retries OpenAI's API,
  printing ``ERROR: Reconnecting... waiting for network`` (err; with ``--json`` an
  ``{"type":"error","message":"Reconnecting... waiting for network (...)"}`` event on out)
  with back-off growing to a minute. Where OpenAI's API answers, it fails after about 13 s
  with ``ERROR: unexpected status 401 Unauthorized: Missing bearer or basic authentication in
  header, url: ...`` and exits 1. Hermes prints **nothing** for 600 s, then
  ``Error: turn timed out after 600.0s`` and the tail of Codex's stderr (err), and exits 0:
  the 0-byte log of a new user's first task. Claude Code prints ``Not logged in · Please run
  /login`` (out) and exits 1 within 2 s.
- A model server that does not answer: Codex as above (``Reconnecting... waiting for network
  (Connection failed: error sending request)``), forever; Claude Code retries for 180 s, then
  ``API Error: Unable to connect to API (ConnectionRefused)`` (out), exit 1 (with
  ``--output-format stream-json``, as kanban runs it: ``system``/``api_retry`` events with
  ``"error":"unknown"`` meanwhile, then that text as the ``result``); Hermes on its own
  runtime ``API call failed after 3 retries: Connection error.`` (out) after 30 s.
- A configuration that cannot work, each at once: Codex's ``Error loading config.toml: ...``
  (err, the detail on the next line for a TOML error), ``Error: Model provider `x` not
  found``, ``Missing environment variable: `KEY`.`` (a provider's ``env_key``), and ``Error
  finding codex home: CODEX_HOME points to "...", but that path does not exist``; Hermes'
  ``Codex app-server turn failed: [Errno 2] No such file or directory: 'codex'. ...`` (out,
  exit 0), ``⚠️  Provider resolver returned an empty API key. ...`` (a ``custom`` provider
  without ``base_url``; out, exit 1) and ``It looks like Hermes isn't configured yet -- no API
  keys or providers found.`` (no config; out, exit 1).

`startup_error` finds the most telling such line in a run's log (both streams), for a
dispatcher that reports a worker stuck in start-up: a line that names a login or a
configuration beats one about an unreachable server, which beats a generic failure; among
equals the last one wins (the final error after its retries). None when nothing is recognised.
"""

from __future__ import annotations

import json
import re

MAX_LENGTH = 300  # characters of the line returned

# (weight, pattern): what each agent prints, as listed above; the heaviest match wins.
_LOGIN_OR_CONFIG = 3
_UNREACHABLE = 2
_GENERIC = 1
_PATTERNS = tuple(
    (weight, re.compile(pattern))
    for weight, pattern in (
        # Not logged in, no provider, no key.
        (_LOGIN_OR_CONFIG, r"Please run /login"),  # Claude Code
        (_LOGIN_OR_CONFIG, r"unexpected status 40[13] "),  # Codex: refused by the API
        (_LOGIN_OR_CONFIG, r"Codex authentication failed"),  # Hermes, from Codex's stderr
        (_LOGIN_OR_CONFIG, r"No Codex credentials stored"),  # Hermes' openai-codex provider
        (_LOGIN_OR_CONFIG, r"Provider resolver returned an empty API key"),  # Hermes
        (_LOGIN_OR_CONFIG, r"Hermes isn't configured yet"),
        (_LOGIN_OR_CONFIG, r"Missing environment variable: `"),  # Codex: a provider's env_key
        # A configuration that cannot work.
        (_LOGIN_OR_CONFIG, r"Error loading config\.toml:|Error loading configuration:"),
        (_LOGIN_OR_CONFIG, r"Model provider `[^`]*` not found"),
        (_LOGIN_OR_CONFIG, r"CODEX_HOME points to .* does not exist"),
        (_LOGIN_OR_CONFIG, r"Codex app-server turn failed: "),  # e.g. no `codex` on PATH
        (_LOGIN_OR_CONFIG, r"Hermes is at the active session limit"),
        # A model server that cannot be reached.
        (_UNREACHABLE, r"Reconnecting\.\.\. waiting for network"),  # Codex
        (_UNREACHABLE, r"failed to lookup address information"),  # Codex
        (_UNREACHABLE, r"stream connection failed; waiting to retry"),  # Codex's log, in Hermes'
        (_UNREACHABLE, r"Unable to connect to API|^API retry \d+/\d+: "),  # Claude Code
        (_UNREACHABLE, r"API call failed after \d+ retries"),  # Hermes' own runtime
        # Hermes giving up on Codex, when nothing more telling was said.
        (_GENERIC, r"codex app-server startup failed|turn timed out after [\d.]+s"),
    )
)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
# The timestamp and level of Codex's tracing lines (``2026-...Z  WARN codex_core::...: ``).
_TRACING = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z\s+(?:ERROR|WARN|INFO|DEBUG|TRACE)\s+")


def startup_error(log_text: str) -> str | None:
    """The agent's own error in `log_text` (a run's log), as one line; None if none is known.

    Example::

        >>> startup_error("user\\nsay hi\\nERROR: Reconnecting... waiting for network\\n")
        'ERROR: Reconnecting... waiting for network'
    """
    lines = [_tidy(line) for line in log_text.splitlines()]
    best: tuple[int, int] | None = None  # (weight, line index)
    for index, line in enumerate(lines):
        weight = max((w for w, pattern in _PATTERNS if pattern.search(line)), default=0)
        if weight and (best is None or weight >= best[0]):
            best = (weight, index)
    if best is None:
        return None
    found = lines[best[1]]
    # Codex puts a TOML error's place and reason on the line after "Error loading config.toml:".
    if found.endswith(":"):
        following = next((line for line in lines[best[1] + 1 :] if line), "")
        found = f"{found} {following}".rstrip()
    return found if len(found) <= MAX_LENGTH else found[: MAX_LENGTH - 1] + "…"


def _tidy(line: str) -> str:
    """One log line as words: colours and tracing prefixes dropped, an event's message taken
    out of its JSON (Codex's ``--json``, Claude Code's ``stream-json``)."""
    line = _ANSI.sub("", line).strip()
    if line.startswith("{"):
        message = _event_message(line)
        if message is not None:
            return message.strip()
    return _TRACING.sub("", line)


def _event_message(line: str) -> str | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict):
        return None
    if event.get("type") == "system" and event.get("subtype") == "api_retry":  # Claude Code
        status = event.get("error_status")
        return f"API retry {event.get('attempt')}/{event.get('max_retries')}: error " + (
            f"{event.get('error')} (status {status})" if status else f"{event.get('error')}"
        )
    for holder in (event, event.get("error"), event.get("item")):
        if isinstance(holder, dict):
            for key in ("message", "result"):
                if isinstance(holder.get(key), str):
                    return holder[key]
    # Claude Code's assistant message (its errors come as one): the text of its parts.
    message = event.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):
        texts = [
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        ]
        return " ".join(texts) if texts else None
    return None
