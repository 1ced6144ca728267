"""What happens around a real agent's run: a question, a silent exit, a model that never answers."""

from __future__ import annotations

import psutil
import pytest
from support.agents import DEADLINE, World, board_rows, responses
from support.gitrepo import git
from support.waiting import wait_for

ANSWER = "ANSWER-7F3: use SQLite, the board is local"


@pytest.mark.e2e
def test_blocked_worker_gets_the_answer_in_its_next_prompt_after_unblock(world: World) -> None:
    question = "Which database should the cache use: Postgres or SQLite?"
    server = world.start(
        {
            "scenarios": [
                # After `unblock --comment`, the answer is in the prompt: this scenario wins.
                {
                    "match": "ANSWER-7F3",
                    "turns": [
                        [{"shell": "echo sqlite > database.txt"}],
                        [
                            {
                                "tool": "kanban_complete",
                                "args": {"summary": "Chose SQLite as answered."},
                            }
                        ],
                        [{"message": "Done."}],
                    ],
                },
                {
                    "match": "E2E-BLOCK",
                    "turns": [
                        [{"tool": "kanban_block", "args": {"reason": question}}],
                        [{"message": "Waiting for an answer."}],
                    ],
                },
            ]
        }
    )
    task = world.create("Pick a cache database E2E-BLOCK")

    world.dispatch()

    shown = world.show(task)
    assert shown["status"] == "blocked", world.logs()
    assert shown["block_reason"] == question
    assert [r["outcome"] for r in shown["runs"]] == ["blocked"]
    assert all(ANSWER not in r.user_text for r in responses(server))

    world.kanban("unblock", task, "--comment", ANSWER)
    world.dispatch()

    shown = world.show(task)
    assert shown["status"] == "done", world.logs()
    assert shown["summary"] == "Chose SQLite as answered."
    assert [r["outcome"] for r in shown["runs"]] == ["blocked", "completed"]
    resumed = responses(server, "ANSWER-7F3")[0]
    assert "Comments on this task" in resumed.user_text
    assert ANSWER in resumed.user_text
    assert git(world.repo, "show", f"{world.branch(task)}:database.txt", strip=False) == "sqlite\n"


@pytest.mark.e2e
def test_agent_that_exits_without_reporting_is_retried_and_told_why(world: World) -> None:
    server = world.start(
        {
            "scenarios": [
                {
                    "match": "This is attempt 2",
                    "turns": [
                        [{"tool": "kanban_complete", "args": {"summary": "Reported this time."}}],
                        [{"message": "Done."}],
                    ],
                },
                {
                    "match": "E2E-SILENT",
                    "turns": [
                        [{"shell": "echo first > first-attempt.txt"}],
                        [{"message": "All done (but I never called kanban_complete)."}],
                    ],
                },
            ]
        }
    )
    task = world.create("Forgetful worker E2E-SILENT", "--max-attempts", "3")

    world.dispatch()

    shown = world.show(task)
    assert shown["status"] == "done", world.logs()
    assert shown["summary"] == "Reported this time."
    assert [r["outcome"] for r in shown["runs"]] == ["exited_without_report", "completed"]
    assert shown["runs"][0]["exit_code"] == 0  # the agent's exit status says nothing
    second = responses(server, "This is attempt 2")[0]
    assert "The previous attempt ended: exited_without_report" in second.user_text
    assert "exited without calling kanban_complete or kanban_block" in second.user_text
    # The first attempt's work was committed to the branch, not lost.
    assert (
        git(world.repo, "show", f"{world.branch(task)}:first-attempt.txt", strip=False) == "first\n"
    )


def _tree(world: World) -> list[psutil.Process]:
    """The live run's shim and everything below it (the agent, Codex, our MCP server)."""
    (run,) = board_rows(world.db_path, "SELECT * FROM runs WHERE ended_at IS NULL")
    root = psutil.Process(run["shim_pid"])
    return [root, *root.children(recursive=True)]


def _gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.e2e
def test_worker_on_a_model_that_never_answers_is_killed_with_its_whole_tree_and_retried(
    world: World,
) -> None:
    server = world.start({"scenarios": [{"match": "E2E-HANG", "turns": [[{"hang": True}]]}]})
    task = world.create("Wait forever E2E-HANG", "--max-attempts", "2")

    dispatcher = world.dispatch_in_background(KANBAN_STALL_TIMEOUT="4")

    trees = []
    for attempt in (1, 2):
        wait_for(
            lambda n=attempt: len([r for r in server.requests if r.answer == "hang"]) >= n,
            f"attempt {attempt} to wait on the model",
            timeout=DEADLINE,
            on_fail=world.logs,
        )
        tree = _tree(world)
        commands = [" ".join(p.cmdline()) for p in tree]
        assert any("worker.shim" in c for c in commands), commands
        assert any("codex" in c and "exec" in c for c in commands), commands
        # The kanban tools come from the board's long-lived server, not a process per worker.
        assert not any("worker.mcp_server" in c for c in commands), commands
        trees.append(tree)
        wait_for(
            lambda t=tree: all(_gone(p) for p in t),
            f"attempt {attempt}'s processes to be killed",
            timeout=DEADLINE,
            on_fail=world.logs,
        )

    assert dispatcher.wait(timeout=60) == 0, world.dispatcher_log.read_text()
    shown = world.show(task)
    assert shown["status"] == "failed"
    assert [r["outcome"] for r in shown["runs"]] == ["stalled", "stalled"]
    assert "no heartbeat and no output for 4 s" in shown["failure_reason"]
    assert "all 2 attempts used" in shown["failure_reason"]
    assert all(_gone(p) for tree in trees for p in tree)
