"""Workers stay in their lane: fenced MCP tools, a sandbox that cannot reach the board, and
parallel tasks on one repository that never see each other's work."""

from __future__ import annotations

import datetime
import re
import shlex

import pytest
from support.agents import World, board_integrity, call_output, responses
from support.gitrepo import git


@pytest.mark.e2e
@pytest.mark.parametrize("layout", ["board_in_a_temporary_directory", "board_in_the_users_home"])
def test_worker_cannot_touch_another_task_nor_write_the_board_from_its_shell(
    request: pytest.FixtureRequest, layout: str
) -> None:
    # Either layout is what a user gets from `kanban setup codex` alone: a board in /tmp (which
    # Codex's sandbox would leave writable unless kanban takes it out), or one in a home.
    world: World = request.getfixturevalue(
        "world" if layout == "board_in_a_temporary_directory" else "user_home_world"
    )
    board = world.db_path
    beside = board.parent / "intruder.txt"
    # Both writes are tried, with the board's checksum around the append (the board has no
    # other writer while this command runs: the dispatcher only reads, the MCP server idles).
    attack = (
        f"sha256sum {shlex.quote(str(board))}; "
        f"printf JUNK >> {shlex.quote(str(board))}; echo append-exit=$?; "
        f"sha256sum {shlex.quote(str(board))}; "
        f"echo JUNK > {shlex.quote(str(beside))}; echo beside-exit=$?"
    )
    server = world.start(
        {
            "scenarios": [
                {
                    "match": "E2E-FENCE",
                    "turns": [
                        [
                            {
                                "tool": "kanban_complete",
                                "args": {"task_id": "t_1", "summary": "Not mine."},
                            }
                        ],
                        [{"shell": attack}],
                        [
                            {
                                "tool": "kanban_complete",
                                "args": {"summary": "Tried to escape; could not."},
                            }
                        ],
                        [{"message": "Done."}],
                    ],
                }
            ]
        }
    )
    other = world.create("Someone else's task E2E-OTHER")
    world.kanban("block", other, "on hold")
    before = world.show(other)
    task = world.create("Stay in your lane E2E-FENCE")

    world.dispatch()

    assert world.show(task)["status"] == "done", world.logs()
    assert world.show(other) == before

    turns = responses(server, "E2E-FENCE")
    refused = call_output(turns[1], turn=0)
    assert f"task {other} is not yours; your task is {task}" in refused

    shell = call_output(turns[2], turn=1)
    assert "append-exit=1" in shell, shell
    assert "beside-exit=1" in shell, shell
    assert shell.count("Read-only file system") == 2, shell
    checksums = [line.split()[0] for line in shell.splitlines() if line.endswith(str(board))]
    assert len(checksums) == 2 and checksums[0] == checksums[1], shell
    assert not beside.exists()
    assert board_integrity(board) == ["ok"]


def _interval(run: dict) -> tuple[datetime.datetime, datetime.datetime]:
    return (
        datetime.datetime.fromisoformat(run["started_at"]),
        datetime.datetime.fromisoformat(run["ended_at"]),
    )


@pytest.mark.e2e
def test_three_tasks_run_in_parallel_on_one_repository_each_on_its_own_branch(
    world: World,
) -> None:
    names = ("alpha", "beta", "gamma")
    server = world.start(
        {
            "scenarios": [
                {
                    "match": f"E2E-PAR-{name}",
                    "turns": [
                        [{"shell": f"echo {name} > {name}.txt && ls"}],
                        [{"tool": "kanban_complete", "args": {"summary": f"Wrote {name}.txt."}}],
                        [{"message": "Done."}],
                    ],
                }
                for name in names
            ]
        }
    )
    tasks = {name: world.create(f"Write {name} E2E-PAR-{name}") for name in names}
    main_before = git(world.repo, "rev-parse", "main")

    world.dispatch("--max-workers", "3")

    shown = {name: world.show(task) for name, task in tasks.items()}
    assert {name: s["status"] for name, s in shown.items()} == dict.fromkeys(names, "done"), (
        world.logs()
    )
    for name, task in tasks.items():
        assert re.fullmatch(rf"kanban/[0-9a-f]{{8}}/{task}", shown[name]["branch"])
        assert world.branch_files(task) == {"README", f"{name}.txt"}
        assert (
            git(world.repo, "show", f"{world.branch(task)}:{name}.txt", strip=False) == f"{name}\n"
        )
        # What the agent's shell saw in its worktree: its own file, nobody else's.
        (listing,) = [r for r in responses(server, f"E2E-PAR-{name}") if r.turn == 1]
        assert "README" in call_output(listing, turn=0)
        assert not {f"{n}.txt" for n in names if n != name} & set(
            call_output(listing, turn=0).split()
        )
    assert len({s["worktree"] for s in shown.values()}) == 3
    # They ran at the same time: every run started before any of them ended.
    intervals = [_interval(s["runs"][0]) for s in shown.values()]
    assert max(start for start, _ in intervals) < min(end for _, end in intervals)
    assert git(world.repo, "rev-parse", "main") == main_before
    assert git(world.repo, "status", "--porcelain") == ""
