"""The `claude` runtime with the real Claude Code, through a real dispatcher, on a scripted model.

Claude Code (``make tools`` pins it in .tools/) speaks the Anthropic Messages API to the
scripted model (`testing.scripted_anthropic`), and reaches the kanban tools on the board's
tool server over HTTP, loading them with its ``ToolSearch`` as it does any MCP tool. Its
homes are the test's: HOME, CLAUDE_CONFIG_DIR and CLAUDE_CODE_TMPDIR in tmp_path, no update
checks, no telemetry.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import REPO_ROOT
from support.agents import World
from support.gitrepo import git

from testing import scripted_model
from worker.runtimes import base, claude

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    binary = Path(
        os.environ.get("KANBAN_CLAUDE_BIN") or REPO_ROOT / ".tools/node_modules/.bin/claude"
    )
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.skip(f"Claude Code is not installed at {binary}: run `make tools`")
    return binary.absolute()


class ClaudeWorld:
    """A world (board, repository, `kanban` CLI) whose dispatcher's workers run Claude Code."""

    def __init__(self, world: World, claude_bin: Path) -> None:
        self.world = world
        self.stack = contextlib.ExitStack()
        world.env = {
            name: value
            for name, value in world.env.items()
            if not name.startswith(("CLAUDE", "ANTHROPIC"))  # e.g. tests run inside Claude Code
        }
        scratch = world.root / "claude-tmp"  # its task files and sockets, else in /tmp
        scratch.mkdir(mode=0o700)
        world.env.update(
            KANBAN_CLAUDE_BIN=str(claude_bin),
            CLAUDE_CONFIG_DIR=str(world.home / ".claude"),
            CLAUDE_CODE_TMPDIR=str(scratch),
            ANTHROPIC_API_KEY="scripted",
            DISABLE_AUTOUPDATER="1",
            DISABLE_TELEMETRY="1",
            DISABLE_ERROR_REPORTING="1",
            CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        )

    def start(self, script: dict[str, Any]) -> scripted_model.ScriptedModel:
        server = self.stack.enter_context(scripted_model.serve(script))
        self.world.server = server
        # Claude Code adds /v1/messages itself.
        self.world.env["ANTHROPIC_BASE_URL"] = server.base_url.removesuffix("/v1")
        return server

    def run(self, title: str, **env: str) -> dict[str, Any]:
        """Create a `claude` task, dispatch until idle; the task as `kanban show` has it."""
        task = self.world.create(title, "--body", "Scripted.", runtime="claude")
        self.world.dispatch(**env)
        return self.world.show(task)

    def log(self, run: dict[str, Any]) -> list[str]:
        return Path(run["log_path"]).read_text().splitlines()


@pytest.fixture
def claude_world(tmp_path: Path, isolated_home: Path, claude_bin: Path) -> Iterator[ClaudeWorld]:
    # Claude is the only agent here: the Codex and Hermes settings of the world go unused.
    world = World(tmp_path, isolated_home, Path("codex"), Path("hermes"))
    world.make_repo()
    made = ClaudeWorld(world, claude_bin)
    try:
        yield made
    finally:
        world.close()  # workers first, then the model they talk to
        made.stack.close()


def messages(server: scripted_model.ScriptedModel, scenario: str) -> list:
    return [
        r for r in server.requests if r.path.startswith("/v1/messages") and r.scenario == scenario
    ]


def tool_results(request: scripted_model.RecordedRequest) -> dict[str, dict[str, Any]]:
    """The tool results a request carries, by the id of the call they answer."""
    found = {}
    for message in request.body["messages"]:
        for block in message["content"] if isinstance(message["content"], list) else ():
            if block.get("type") == "tool_result":
                found[block["tool_use_id"]] = block
    return found


COMPLETE = {
    "scenarios": [
        {
            "match": "E2E-CLAUDE-DONE",
            "turns": [
                [
                    {
                        "shell": "printf 'hello from claude\\n' > greeting.txt"
                        " && (printenv HERMES_KANBAN_TOKEN || echo no token) > token.txt"
                    }
                ],
                [{"tool": "kanban_heartbeat", "args": {"note": "greeting written"}}],
                [{"tool": "kanban_complete", "args": {"summary": "Wrote greeting.txt."}}],
                [{"message": "Done."}],
            ],
        }
    ]
}


def test_claude_completes_its_task_through_the_board_tool_server(
    claude_world: ClaudeWorld,
) -> None:
    server = claude_world.start(COMPLETE)

    shown = claude_world.run("Greet E2E-CLAUDE-DONE")

    world = claude_world.world
    assert shown["status"] == "done", world.logs()
    assert shown["summary"] == "Wrote greeting.txt."
    (run,) = shown["runs"]
    assert run["outcome"] == "completed"
    assert run["note"] == "greeting written"
    branch = world.branch(shown["id"])
    assert git(world.repo, "show", f"{branch}:greeting.txt", strip=False) == "hello from claude\n"
    # The model's shell never had the run's token: only the tool server's bearer carries it.
    assert git(world.repo, "show", f"{branch}:token.txt", strip=False) == "no token\n"

    turns = messages(server, "E2E-CLAUDE-DONE")
    # Each kanban tool is loaded with ToolSearch before its call (a second request of that
    # turn), then called under Claude Code's name for it.
    assert [(r.turn, r.answer) for r in turns] == [
        (0, "calls"),
        (1, "calls"),
        (1, "calls"),
        (2, "calls"),
        (2, "calls"),
        (3, "message"),
    ]
    assert "mcp__kanban__kanban_heartbeat" not in turns[1].tool_names
    assert "mcp__kanban__kanban_heartbeat" in turns[2].tool_names
    assert "Greet E2E-CLAUDE-DONE" in turns[0].user_text
    answered = tool_results(turns[-1])
    for call in ("ks-0-0-0", "ks-0-1-load", "ks-0-1-0", "ks-0-2-load", "ks-0-2-0"):
        assert answered[call].get("is_error") is not True, answered[call]

    # The run's log holds Claude Code's events, and each reads as one line.
    lines = claude_world.log(run)
    assert json.loads(lines[0])["type"] == "system"
    assert claude.render(lines[0]).startswith("claude started: model ")
    shown_lines = [claude.render(line) for line in lines]
    assert "→ Bash: printf 'hello from claude\\n' > greeting.txt" in " ".join(
        s for s in shown_lines if s
    )
    assert "→ kanban_complete: Wrote greeting.txt." in shown_lines
    assert shown_lines[-1].startswith("claude finished: 6 turns")  # model requests
    # The token is in the private MCP config only, never on the command line.
    (config,) = Path(run["log_path"]).parent.glob("claude-mcp-*.json")
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    kanban = json.loads(config.read_text())["mcpServers"]["kanban"]
    assert kanban["type"] == "http" and kanban["url"].startswith("http://127.0.0.1:")


def test_claude_blocks_its_task_with_a_question(claude_world: ClaudeWorld) -> None:
    claude_world.start(
        {
            "scenarios": [
                {
                    "match": "E2E-CLAUDE-BLOCK",
                    "turns": [
                        [{"tool": "kanban_block", "args": {"reason": "Which database?"}}],
                        [{"message": "Blocked."}],
                    ],
                }
            ]
        }
    )

    shown = claude_world.run("Ask E2E-CLAUDE-BLOCK")

    assert shown["status"] == "blocked", claude_world.world.logs()
    assert shown["block_reason"] == "Which database?"
    assert [r["outcome"] for r in shown["runs"]] == ["blocked"]


USAGE = [
    {"input_tokens": 1500, "cached_tokens": 1000, "cache_write_tokens": 200, "output_tokens": 40},
    {"input_tokens": 2100, "cached_tokens": 1700, "cache_write_tokens": 0, "output_tokens": 25},
    {"input_tokens": 2300, "cached_tokens": 2000, "cache_write_tokens": 50, "output_tokens": 7},
]


def test_the_meter_reads_the_usage_the_model_reported_from_the_runs_log(
    claude_world: ClaudeWorld,
) -> None:
    turns = [
        [{"shell": "true"}, {"usage": USAGE[0]}],
        [{"tool": "kanban_complete", "args": {"summary": "Metered."}}, {"usage": USAGE[1]}],
        [{"message": "Done."}, {"usage": USAGE[2]}],
    ]
    claude_world.start({"scenarios": [{"match": "E2E-CLAUDE-METER", "turns": turns}]})

    shown = claude_world.run("Meter E2E-CLAUDE-METER")

    assert shown["status"] == "done", claude_world.world.logs()
    lines = claude_world.log(shown["runs"][0])
    (result,) = [json.loads(line) for line in lines if '"type":"result"' in line]
    metered = base.Metered(workspace=shown["worktree"], started_at=0.0, settings=base.Settings())
    meter = claude.ClaudeRuntime().meter(metered)
    for line in lines:
        meter.feed(line)
    used = meter.usage()
    assert used.input_tokens == sum(u["input_tokens"] for u in USAGE)
    assert used.cached_input_tokens == sum(u["cached_tokens"] for u in USAGE)
    assert used.output_tokens == sum(u["output_tokens"] for u in USAGE)
    assert used.cost_usd == result["total_cost_usd"] and used.cost_usd > 0
    assert used.model is not None and used.model == json.loads(lines[0])["model"]

    # Before the result: every input figure already (each message's start states them), the
    # output only as far as the streams had begun; the result then replaces, never adds.
    before = claude.ClaudeMeter()
    for line in lines[: lines.index(next(x for x in lines if '"type":"result"' in x))]:
        before.feed(line)
    early = before.usage()
    assert early.input_tokens == used.input_tokens
    assert early.cached_input_tokens == used.cached_input_tokens
    assert 0 < early.output_tokens < used.output_tokens
    assert early.cost_usd is None

    # The dispatcher followed the log with the same meter: the board has the same figures.
    recorded = shown["runs"][0]["usage"]
    assert recorded is not None, claude_world.world.logs()
    assert {key: recorded[key] for key in ("input_tokens", "cached_input_tokens")} == {
        "input_tokens": used.input_tokens,
        "cached_input_tokens": used.cached_input_tokens,
    }
    assert (recorded["output_tokens"], recorded["cost_usd"]) == (used.output_tokens, used.cost_usd)
    assert recorded["model"] == used.model and shown["runs"][0]["cost_source"] == "agent"

    again = claude.ClaudeMeter()  # a restarted dispatcher reads the log from its start
    for line in lines:
        again.feed(line)
    assert again.usage() == used
    assert meter.activity() is not None and meter.activity().startswith("claude finished")


def test_a_rate_limited_attempt_is_refunded_and_the_retry_completes(
    claude_world: ClaudeWorld,
) -> None:
    server = claude_world.start(
        {
            "scenarios": [
                {
                    "match": "E2E-CLAUDE-429",
                    "turns": [
                        [
                            {"status": 429, "times": 1},
                            {"tool": "kanban_complete", "args": {"summary": "After the wait."}},
                        ],
                        [{"message": "Done."}],
                    ],
                }
            ]
        }
    )

    # Claude Code's own retries are turned off: the first answer, a 429, ends its run.
    shown = claude_world.run(
        "Wait E2E-CLAUDE-429", CLAUDE_CODE_MAX_RETRIES="0", KANBAN_RATE_LIMIT_DELAY="0.2"
    )

    assert shown["status"] == "done", claude_world.world.logs()
    first, second = shown["runs"]
    assert first["outcome"] == "rate_limited"
    assert "rate limited" in first["reason"]
    assert second["outcome"] == "completed"
    assert shown["attempts"] == 1  # the rate-limited attempt was refunded
    answers = [r.answer for r in messages(server, "E2E-CLAUDE-429")]
    assert answers == ["status 429", "calls", "calls", "message"]  # the second: tools loaded
    assert "(429)" in "\n".join(claude_world.log(first))
