"""A task run to the end by the real agents: `codex exec`, and Hermes on Codex's app-server.

The scripted model asks for a shell command that edits a file, a heartbeat and a completion;
everything in between is real: the dispatcher, the worktree, the agent, its sandbox, and our
MCP server reached through the Codex config that `kanban setup codex` wrote.
"""

from __future__ import annotations

import tomllib

import pytest
from support.agents import (
    USER_FEATURES,
    USER_TMP_EXCLUSIONS,
    World,
    block_removed,
    responses,
)
from support.gitrepo import git

KANBAN_TOOLS = (
    "kanban_show",
    "kanban_list",
    "kanban_complete",
    "kanban_block",
    "kanban_comment",
    "kanban_heartbeat",
    "kanban_create",
    "kanban_unblock",
    "kanban_link",
)

GREET = {
    "scenarios": [
        {
            "match": "E2E-GREET",
            "turns": [
                [{"shell": "printf 'hello from the agent\\n' > greeting.txt"}],
                [{"tool": "kanban_heartbeat", "args": {"note": "greeting written"}}],
                [
                    {
                        "tool": "kanban_complete",
                        "args": {"summary": "Wrote greeting.txt; checked it with cat."},
                    }
                ],
                [{"message": "Done."}],
            ],
        }
    ]
}


@pytest.mark.e2e
@pytest.mark.parametrize("runtime", ["codex", "hermes"])
def test_agent_edits_its_worktree_heartbeats_and_completes_through_the_kanban_tools(
    world: World, runtime: str
) -> None:
    # The board is in a temporary directory. `codex exec` gets /tmp taken out of its sandbox
    # on its command line; Hermes starts Codex itself, so the user's config must say it.
    user_config = USER_FEATURES + ("\n" + USER_TMP_EXCLUSIONS if runtime == "hermes" else "")
    server = world.start(GREET, user_config=user_config)
    task = world.create(
        "Greet the reader E2E-GREET",
        "--body",
        "Write greeting.txt with a friendly line.",
        runtime=runtime,
    )

    world.dispatch()

    shown = world.show(task)
    assert shown["status"] == "done", world.logs()
    assert shown["summary"] == "Wrote greeting.txt; checked it with cat."
    (run,) = shown["runs"]
    assert run["outcome"] == "completed"
    assert run["note"] == "greeting written"
    assert run["heartbeat_at"] is not None
    greeting = git(world.repo, "show", f"{world.branch(task)}:greeting.txt", strip=False)
    assert greeting == "hello from the agent\n"
    assert git(world.repo, "status", "--porcelain") == ""  # the user's checkout is untouched

    turns = responses(server, "E2E-GREET")
    # Every model turn went through Codex (the Responses API), Hermes' included: Hermes' own
    # runtime would have asked for chat completions.
    assert not [r for r in server.requests if r.path == "/v1/chat/completions"]
    assert [(r.turn, r.answer) for r in turns] == [
        (0, "calls"),
        (1, "calls"),
        (2, "calls"),
        (3, "message"),
    ]
    prompt = turns[0].user_text
    assert "Greet the reader E2E-GREET" in prompt
    assert "Write greeting.txt with a friendly line." in prompt
    assert f"Your task id is {task}." in prompt
    assert shown["worktree"] in prompt
    for tool in ("kanban_heartbeat", "kanban_complete", "kanban_block"):
        assert f"`{tool}`" in prompt
    # Offered from the very first turn, in our server's namespace.
    assert {f"mcp__kanban.{tool}" for tool in KANBAN_TOOLS} <= set(turns[0].tool_names)

    # The user's own settings are kept byte for byte. Codex's app-server (under Hermes) marks
    # the repository as trusted in the same file, after them: that table is Codex's own.
    outside = block_removed((world.codex_home / "config.toml").read_text())
    assert outside.startswith(user_config)
    added = tomllib.loads(outside[len(user_config) :])
    assert added in ({}, {"projects": {str(world.repo): {"trust_level": "trusted"}}})
