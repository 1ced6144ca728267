"""`worker.startup.startup_error`: the agent's own error, found in what the real agents print.

The logs below were captured from the real programs run offline (Codex 0.169, Hermes 0.19 on
Codex's app-server as kanban configures it, Claude Code 2.1.197), stdout and stderr together
as a run's log holds them, shortened where they repeat; the e2e tests run Codex again.
Claude Code was captured with a scratch install (npm's @anthropic-ai/claude-code 2.1.197).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from support import REPO_ROOT
from support.waiting import wait_for

from worker import startup

# `codex exec` with no auth.json and no model provider, where OpenAI's API cannot be resolved:
# it never exits.
CODEX_NO_LOGIN_OFFLINE = """\
WARNING: proceeding, even though we could not create PATH aliases: Refusing to create helper \
binaries under temporary dir "/tmp" (codex_home: AbsolutePathBuf("/tmp/repro/home/.codex"))
Reading additional input from stdin...
OpenAI Codex v0.169.0
--------
workdir: /tmp/repro/ws
model: gpt-6.1-sol
provider: openai
approval: never
sandbox: workspace-write [workdir, /tmp, $TMPDIR]
--------
user
say hi
2026-12-07T10:36:48.697294Z ERROR codex_api::endpoint::responses_websocket: failed to connect \
to Responses WebSocket stage=Unknown
ERROR: Reconnecting... 2/5
ERROR: Reconnecting... 5/5
warning: Falling back from WebSockets to HTTPS transport. stream disconnected before \
completion: failed to lookup address information: Name does not resolve
ERROR: Reconnecting... waiting for network
ERROR: Reconnecting... waiting for network
"""

# The same with --json (events on stdout, tracing on stderr).
CODEX_NO_LOGIN_OFFLINE_JSON = """\
Reading additional input from stdin...
{"type":"thread.started","thread_id":"01a25016-168e-75d1-a73e-6874d754189c"}
{"type":"turn.started"}
{"type":"error","message":"Reconnecting... 2/5 (stream disconnected before completion: \
failed to lookup address information: Name does not resolve)"}
{"type":"item.completed","item":{"id":"item_0","type":"error","message":"Falling back from \
WebSockets to HTTPS transport. stream disconnected before completion: failed to lookup \
address information: Name does not resolve"}}
{"type":"error","message":"Reconnecting... waiting for network (Connection failed: error \
sending request)"}
"""

# No login, with OpenAI's API answering (a server standing in for it): exit 1 after ~13 s.
CODEX_NO_LOGIN_401 = """\
--------
user
say hi
ERROR: Reconnecting... 4/5
ERROR: Reconnecting... 5/5
ERROR: unexpected status 401 Unauthorized: Missing bearer or basic authentication in header, \
url: http://127.0.0.1:43923/v1/responses
ERROR: unexpected status 401 Unauthorized: Missing bearer or basic authentication in header, \
url: http://127.0.0.1:43923/v1/responses
"""
CODEX_NO_LOGIN_401_JSON = """\
{"type":"turn.started"}
{"type":"error","message":"Reconnecting... 5/5 (unexpected status 404 Not Found: scripted \
model: no /v1/responses here, url: ws://127.0.0.1:43923/v1/responses)"}
{"type":"error","message":"Reconnecting... 1/5 (unexpected status 401 Unauthorized: Missing \
bearer or basic authentication in header, url: http://127.0.0.1:43923/v1/responses)"}
{"type":"error","message":"unexpected status 401 Unauthorized: Missing bearer or basic \
authentication in header, url: http://127.0.0.1:43923/v1/responses"}
{"type":"turn.failed","error":{"message":"unexpected status 401 Unauthorized: Missing bearer \
or basic authentication in header, url: http://127.0.0.1:43923/v1/responses"}}
"""

# A configured provider whose server is down.
CODEX_DEAD_SERVER = """\
warning: Model metadata for `scripted` not found. Defaulting to fallback metadata; this can \
degrade performance and cause issues.
ERROR: Reconnecting... waiting for network
ERROR: Reconnecting... waiting for network
"""

CODEX_BAD_TOML = """\
Error loading config.toml:
/tmp/repro/badtoml/config.toml:1:12: invalid basic string, expected `"`
  |
1 | model = "o3
  |            ^
"""
CODEX_CHAT_WIRE_API = """\
Error loading config.toml: `wire_api = "chat"` is no longer supported.
How to fix: set `wire_api = "responses"` in your provider config.
More info: https://github.com/openai/codex/discussions/7782
in `model_providers.p.wire_api`
"""
CODEX_UNKNOWN_PROVIDER = """\
Error: Model provider `nosuch` not found

Stack backtrace:
   0: <unknown>
"""
CODEX_MISSING_KEY_JSON = """\
{"type":"thread.started","thread_id":"01a25023-5a70-7353-889d-3731794b2b94"}
{"type":"item.completed","item":{"id":"item_0","type":"error","message":"Model metadata for \
`m` not found. Defaulting to fallback metadata; this can degrade performance and cause issues."}}
{"type":"turn.started"}
{"type":"error","message":"Missing environment variable: `MY_KEY_XYZ`."}
{"type":"turn.failed","error":{"message":"Missing environment variable: `MY_KEY_XYZ`."}}
"""
CODEX_NO_HOME = """\
WARNING: proceeding, even though we could not create PATH aliases: CODEX_HOME points to \
"/tmp/repro/home/.codex", but that path does not exist
Error finding codex home: CODEX_HOME points to "/tmp/repro/home/.codex", but that path does \
not exist
"""

# Hermes on Codex's app-server with no Codex login: nothing at all for 600 s, then this.
ESC = "\x1b"
HERMES_NO_LOGIN = f"""\
Error: turn timed out after 600.0s
codex stderr (last 12 lines):
{ESC}[2m2026-12-07T10:49:04.128135Z{ESC}[0m {ESC}[33m WARN{ESC}[0m \
{ESC}[2mcodex_core::responses_retry{ESC}[0m{ESC}[2m:{ESC}[0m stream connection failed; waiting \
to retry {ESC}[3mturn_id{ESC}[0m{ESC}[2m={ESC}[0m01a25016-e402-7ca3-94b5-118d43abf516 \
{ESC}[3merror{ESC}[0m{ESC}[2m={ESC}[0mConnection failed: error sending request \
{ESC}[3mretry_delay{ESC}[0m{ESC}[2m={ESC}[0m60s

session_id: 20261207_104004_dc29fd
"""
HERMES_NO_CODEX = """\

session_id: 20261207_104811_7841f5
Codex app-server turn failed: [Errno 2] No such file or directory: 'codex'. Fall back to \
default runtime with `/codex-runtime auto`.
"""
HERMES_NO_CODEX_HOME = """\
Error: codex app-server startup failed: codex app-server method 'initialize' timed out after 10.0s
codex stderr (last 12 lines):
Error: CODEX_HOME points to "/tmp/repro/nonexistent-codex", but that path does not exist
Stack backtrace:
   0: <unknown>

session_id: 20261207_104818_70102e
"""
HERMES_NO_BASE_URL = """\

⚠️  Provider resolver returned an empty API key. Set OPENROUTER_API_KEY or run: hermes setup
"""
HERMES_NO_CONFIG = """\

It looks like Hermes isn't configured yet -- no API keys or providers found.

  Run:  hermes setup

"""
HERMES_OWN_RUNTIME_DEAD_SERVER = """\

session_id: 20261207_104842_1783e1
API call failed after 3 retries: Connection error.
"""
HERMES_OPENAI_CODEX_PROVIDER = """\
No Codex credentials stored. Run `hermes auth` to authenticate. Run `hermes
model` to re-authenticate.
"""
CLAUDE_NO_LOGIN = "Not logged in · Please run /login\n"
CLAUDE_DEAD_SERVER = "API Error: Unable to connect to API (ConnectionRefused)\n"
# The same with --output-format stream-json --verbose (events shortened: fewer tools, no usage).
CLAUDE_NO_LOGIN_STREAM = """\
{"type":"system","subtype":"init","cwd":"/tmp/repro/ws2","session_id":"56904866-6c12-4aa9-8054-\
f2a3d72acc98","tools":["Task","Bash"],"mcp_servers":[],"model":"claude-opus-4-8[1m]"}
{"type":"assistant","message":{"id":"5d79596e-6a26-4326-b469-056abfca2241","model":"<synthetic>",\
"role":"assistant","stop_reason":"stop_sequence","type":"message","content":[{"type":"text",\
"text":"Not logged in · Please run /login"}]}}
{"type":"result","subtype":"success","is_error":true,"api_error_status":null,"duration_ms":187,\
"num_turns":1,"result":"Not logged in · Please run /login","stop_reason":"stop_sequence"}
"""
CLAUDE_RETRYING_STREAM = """\
{"type":"system","subtype":"init","cwd":"/tmp/repro/ws2","tools":["Task","Bash"]}
{"type":"system","subtype":"api_retry","attempt":1,"max_retries":10,"retry_delay_ms":547.5929629\
362779,"error_status":null,"error":"unknown","session_id":"4e450b86-343d-4aee-9a4a-4b992edcb98e"}
{"type":"system","subtype":"api_retry","attempt":2,"max_retries":10,"retry_delay_ms":1179.512372\
517813,"error_status":null,"error":"unknown","session_id":"4e450b86-343d-4aee-9a4a-4b992edcb98e"}
"""
CLAUDE_DEAD_SERVER_STREAM = (
    CLAUDE_RETRYING_STREAM
    + """\
{"type":"result","subtype":"success","is_error":true,"api_error_status":null,"duration_ms":176431,\
"num_turns":1,"result":"API Error: Unable to connect to API (ConnectionRefused)"}
"""
)

URL = "url: http://127.0.0.1:43923/v1/responses"
MISSING_BEARER = f"Missing bearer or basic authentication in header, {URL}"


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        (CODEX_NO_LOGIN_OFFLINE, "ERROR: Reconnecting... waiting for network"),
        (
            CODEX_NO_LOGIN_OFFLINE_JSON,
            "Reconnecting... waiting for network (Connection failed: error sending request)",
        ),
        (CODEX_NO_LOGIN_401, f"ERROR: unexpected status 401 Unauthorized: {MISSING_BEARER}"),
        (CODEX_NO_LOGIN_401_JSON, f"unexpected status 401 Unauthorized: {MISSING_BEARER}"),
        (CODEX_DEAD_SERVER, "ERROR: Reconnecting... waiting for network"),
        (
            CODEX_BAD_TOML,
            "Error loading config.toml: /tmp/repro/badtoml/config.toml:1:12: invalid basic "
            'string, expected `"`',
        ),
        (
            CODEX_CHAT_WIRE_API,
            'Error loading config.toml: `wire_api = "chat"` is no longer supported.',
        ),
        (CODEX_UNKNOWN_PROVIDER, "Error: Model provider `nosuch` not found"),
        (CODEX_MISSING_KEY_JSON, "Missing environment variable: `MY_KEY_XYZ`."),
        (
            CODEX_NO_HOME,
            'Error finding codex home: CODEX_HOME points to "/tmp/repro/home/.codex", but that '
            "path does not exist",
        ),
        (
            HERMES_NO_LOGIN,
            "codex_core::responses_retry: stream connection failed; waiting to retry "
            "turn_id=01a25016-e402-7ca3-94b5-118d43abf516 error=Connection failed: error "
            "sending request retry_delay=60s",
        ),
        (
            HERMES_NO_CODEX,
            "Codex app-server turn failed: [Errno 2] No such file or directory: 'codex'. Fall "
            "back to default runtime with `/codex-runtime auto`.",
        ),
        (
            HERMES_NO_CODEX_HOME,
            'Error: CODEX_HOME points to "/tmp/repro/nonexistent-codex", but that path does '
            "not exist",
        ),
        (
            HERMES_NO_BASE_URL,
            "⚠️  Provider resolver returned an empty API key. Set OPENROUTER_API_KEY or run: "
            "hermes setup",
        ),
        (
            HERMES_NO_CONFIG,
            "It looks like Hermes isn't configured yet -- no API keys or providers found.",
        ),
        (HERMES_OWN_RUNTIME_DEAD_SERVER, "API call failed after 3 retries: Connection error."),
        (
            HERMES_OPENAI_CODEX_PROVIDER,
            "No Codex credentials stored. Run `hermes auth` to authenticate. Run `hermes",
        ),
        (CLAUDE_NO_LOGIN, "Not logged in · Please run /login"),
        (CLAUDE_DEAD_SERVER, "API Error: Unable to connect to API (ConnectionRefused)"),
        (CLAUDE_NO_LOGIN_STREAM, "Not logged in · Please run /login"),
        (CLAUDE_RETRYING_STREAM, "API retry 2/10: error unknown"),
        (CLAUDE_DEAD_SERVER_STREAM, "API Error: Unable to connect to API (ConnectionRefused)"),
    ],
)
def test_the_agents_own_error_is_found_in_what_it_printed(log: str, expected: str) -> None:
    assert startup.startup_error(log) == expected


def test_a_login_or_config_error_beats_retries_and_generic_failures() -> None:
    log = HERMES_NO_CODEX_HOME + HERMES_NO_LOGIN
    assert "CODEX_HOME points to" in (startup.startup_error(log) or "")


def test_a_log_without_a_known_error_gives_none() -> None:
    assert startup.startup_error("") is None
    assert startup.startup_error("hello\nReading additional input from stdin...\n") is None
    # A warning Codex prints on every run with a scripted model is not an error.
    assert startup.startup_error(CODEX_MISSING_KEY_JSON.splitlines()[1]) is None
    assert startup.startup_error("{not json\n[1, 2]\n") is None


def test_a_long_error_is_cut_to_one_short_line() -> None:
    found = startup.startup_error("Error loading config.toml: " + "x" * 1000)
    assert found is not None and len(found) == startup.MAX_LENGTH and found.endswith("…")


# -- the real Codex, to keep the captured texts honest -----------------------------------------


def _codex() -> str:
    binary = Path(
        os.environ.get("KANBAN_CODEX_BIN") or REPO_ROOT / ".tools/node_modules/.bin/codex"
    )
    if not os.access(binary, os.X_OK):
        pytest.fail(f"{binary} is not an executable: run `make tools`, or set KANBAN_CODEX_BIN")
    return str(binary)


def _codex_home(tmp_path: Path, config: str) -> dict[str, str]:
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(
        config + "[features]\nplugins = false\napps = false\nremote_plugin = false\n"
    )
    return {**os.environ, "CODEX_HOME": str(home)}


@pytest.mark.e2e
def test_real_codex_with_a_refused_config_says_so_at_once(tmp_path: Path) -> None:
    environ = _codex_home(
        tmp_path,
        'model = "m"\nmodel_provider = "p"\n[model_providers.p]\nname = "p"\n'
        'base_url = "http://127.0.0.1:9/v1"\nwire_api = "chat"\n',
    )
    done = subprocess.run(
        [_codex(), "exec", "--skip-git-repo-check", "say hi"],
        env=environ,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert startup.startup_error(done.stdout + done.stderr) == (
        'Error loading config.toml: `wire_api = "chat"` is no longer supported.'
    )


@pytest.mark.e2e
def test_real_codex_with_its_model_server_down_says_it_is_waiting_for_the_network(
    tmp_path: Path,
) -> None:
    environ = _codex_home(
        tmp_path,
        'model = "m"\nmodel_provider = "p"\n[model_providers.p]\nname = "p"\n'
        'base_url = "http://127.0.0.1:9/v1"\nwire_api = "responses"\n',
    )
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        # Both streams in one file, as a run's log holds them.
        proc = subprocess.Popen(
            [_codex(), "exec", "--json", "--skip-git-repo-check", "say hi"],
            env=environ,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        found = wait_for(
            lambda: startup.startup_error(log.read_text(errors="replace")),
            "codex's first retry",
            timeout=60,
            on_fail=lambda: log.read_text(errors="replace"),
        )
        assert proc.poll() is None  # it retries; it does not give up
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # npm's codex and the native program it starts
        proc.wait()
    assert found == "Reconnecting... waiting for network (Connection failed: error sending request)"
