"""Usage and budgets through the real agents: the figures the model reports reach the board.

The scripted model reports usage figures the test chooses on every response; each real
runtime's run must record exactly their sum (Codex reports a thread's running total, which
the meters read from its own records, mid-run too), and a budget crossed mid-run must stop
the run and block its task.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from support.agents import USER_FEATURES, USER_TMP_EXCLUSIONS, World, board_rows, responses
from support.waiting import wait_for

from testing import scripted_model

FIGURES = {"input_tokens": 1500, "cached_tokens": 600, "output_tokens": 40, "reasoning_tokens": 9}


def script(marker: str, turns: list) -> dict:
    return {"usage": FIGURES, "scenarios": [{"match": marker, "turns": turns}]}


def user_config(runtime: str) -> str:
    return USER_FEATURES + ("\n" + USER_TMP_EXCLUSIONS if runtime == "hermes" else "")


@pytest.mark.e2e
@pytest.mark.parametrize("runtime", ["codex", "hermes"])
def test_each_run_records_exactly_the_usage_its_model_reported(world: World, runtime: str) -> None:
    server = world.start(
        script(
            "E2E-USAGE",
            [
                [{"shell": "printf 'x\\n' > counted.txt"}],
                [{"tool": "kanban_complete", "args": {"summary": "counted"}}],
                [{"message": "Done."}],
            ],
        ),
        user_config=user_config(runtime),
    )
    task = world.create("Count the tokens E2E-USAGE", runtime=runtime)
    result = world.dispatch()

    shown = world.show(task)
    assert shown["status"] == "done", world.logs()
    answered = len(responses(server, "E2E-USAGE"))
    assert answered >= 3
    (run,) = shown["runs"]
    expected = {
        "input_tokens": answered * 1500,
        "cached_input_tokens": answered * 600,
        "output_tokens": answered * 40,
        "reasoning_tokens": answered * 9,
    }
    used = run["usage"]
    assert {key: used[key] for key in expected} == expected, world.logs()
    assert used["model"] == scripted_model.MODEL_NAME
    assert used["cost_usd"] is None and run["cost_source"] is None  # no price configured
    assert shown["usage"]["tokens"] == answered * 1540
    assert f"{task}: done: counted [{shown['usage']['tokens'] / 1000:.1f}k tokens]" in (
        result.stderr
    )


@pytest.mark.e2e
def test_prices_give_the_run_a_cost(world: World) -> None:
    server = world.start(
        script(
            "E2E-PRICED",
            [
                [{"tool": "kanban_complete", "args": {"summary": "priced"}}],
                [{"message": "Done."}],
            ],
        )
    )
    model = scripted_model.MODEL_NAME
    config = world.home / ".kanban" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f'[prices."{model}"]\ninput = 2.0\ncached_input = 1.0\noutput = 10.0\n')
    task = world.create("Priced E2E-PRICED")
    world.dispatch()
    (run,) = world.show(task)["runs"]
    answered = len(responses(server, "E2E-PRICED"))
    expected = answered * (900 * 2.0 + 600 * 1.0 + 40 * 10.0) / 1_000_000
    assert run["usage"]["model"] == model, world.logs()
    assert run["usage"]["cost_usd"] == pytest.approx(expected)
    assert run["cost_source"] == "prices"


@pytest.mark.e2e
@pytest.mark.parametrize("runtime", ["codex", "hermes"])
def test_a_budget_crossed_mid_run_stops_the_run_and_blocks_the_task(
    world: World, runtime: str
) -> None:
    world.start(
        script(
            "E2E-BUDGET",
            [
                [{"shell": "printf 'one\\n' > one.txt"}],
                [{"shell": "printf 'two\\n' > two.txt"}],
                [{"shell": "printf 'three\\n' > three.txt"}],  # this response crosses it
                # Never answered (its cue never comes): only the budget can end the run.
                [{"wait_for": str(world.root / "never")}, {"message": "never reached"}],
            ],
        ),
        user_config=user_config(runtime),
    )
    # Two responses of 1,540 tokens fit; the third crosses the budget.
    task = world.create("Spend E2E-BUDGET", "--budget", "4000", runtime=runtime)
    started = time.monotonic()
    dispatcher = world.dispatch_in_background()
    wait_for(
        lambda: world.show(task)["status"] == "blocked",
        "the task to be blocked by its budget",
        timeout=90,
        on_fail=world.logs,
    )
    assert dispatcher.wait(timeout=60) == 0
    shown = world.show(task)
    assert shown["block_reason"].startswith("budget exceeded: used 4,620 of 4,000 tokens"), shown[
        "block_reason"
    ]
    (run,) = shown["runs"]
    assert run["outcome"] == "blocked" and run["ended_at"] is not None
    assert time.monotonic() - started < 60
    # Its work so far is committed, and nothing of the run is left.
    assert {"one.txt", "two.txt"} <= world.branch_files(task)
    pids = [r["pid"] for r in board_rows(world.db_path, "SELECT pid FROM runs") if r["pid"]]
    assert pids and not [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    # It stays blocked until a person raises its budget.
    refused = world.kanban("retry", task, check=False)
    assert refused.returncode == 1 and "would stop again at once" in refused.stderr


@pytest.mark.e2e
@pytest.mark.parametrize("runtime", ["codex", "hermes"])
def test_an_agent_with_no_login_is_caught_by_doctor_and_by_the_start_up_deadline(
    world: World, runtime: str
) -> None:
    # What a new user has: kanban's setup done, but no Codex login and no model provider.
    world.codex_home.mkdir(parents=True, exist_ok=True)
    (world.codex_home / "config.toml").write_text(user_config(runtime))
    world.kanban("setup", "codex", "--codex-home", str(world.codex_home))
    world.kanban("setup", "hermes", "--hermes-home", str(world.hermes_home))
    doctor = world.kanban("doctor", "--json", check=False)
    assert doctor.returncode == 1
    assert any(
        check["name"] == "codex login" and not check["ok"] for check in json.loads(doctor.stdout)
    ), doctor.stdout

    task = world.create("Never gets going", "--max-attempts", "1", runtime=runtime)
    started = time.monotonic()
    world.dispatch(KANBAN_STARTUP_TIMEOUT="3")
    shown = world.show(task)
    (run,) = shown["runs"]
    assert run["outcome"] == "stalled", world.logs()
    assert run["reason"].startswith("stuck in start-up: no answer from its model in 3 s")
    if runtime == "codex":  # Hermes prints nothing at all meanwhile
        assert "the agent said: " in run["reason"] and "Reconnecting" in run["reason"]
    assert shown["status"] == "failed"
    assert time.monotonic() - started < 60  # not the 15-minute stall timeout
