"""The `codex` and `hermes` runtimes' meters and `render`, fed what the real agents wrote.

Real ``codex exec --json`` and real ``hermes chat`` (on Codex's app-server) run against the
scripted model, which reports the token usage each test chooses for each response. A meter
made by the runtime, as the dispatcher makes one, is fed the run's real log (and, for both,
reads the rollout Codex really wrote): its totals must be exactly the figures the model
reported for the requests it answered, with the model's name; mid-run, the figures of the
responses so far. Worlds come from tests/e2e/conftest.py (their own HOME, CODEX_HOME and
Hermes home in tmp_path, and a `kanban setup` of both agents against the scripted model).
"""

from __future__ import annotations

import datetime
import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from e2e import conftest as e2e_fixtures
from support.agents import DEADLINE, USER_FEATURES, USER_TMP_EXCLUSIONS, World
from support.waiting import wait_for

from testing import scripted_model
from worker import runtimes, usage
from worker.runtimes import base, codex_rollout
from worker.setup import hermes as hermes_setup

codex_bin = e2e_fixtures.codex_bin
hermes_bin = e2e_fixtures.hermes_bin
world = e2e_fixtures.world

# What each response reports, by turn: (input, cached input, output, reasoning).
FIGURES = [(1200, 1000, 40, 5), (1300, 1200, 7, 0), (1400, 0, 12, 3), (300, 0, 9, 0)]


def reported(turn: int) -> dict[str, int]:
    given, cached, out, reasoning = FIGURES[turn]
    return {
        "input_tokens": given,
        "cached_tokens": cached,
        "output_tokens": out,
        "reasoning_tokens": reasoning,
    }


def metered_script(cue: Path) -> dict[str, Any]:
    """A shell command, a heartbeat held back until `cue` exists, a completion, a message."""
    return {
        "scenarios": [
            {
                "match": "E2E-METER",
                "turns": [
                    [{"shell": "printf 'metered\\n' > meter.txt"}, {"usage": reported(0)}],
                    [
                        {"wait_for": str(cue)},
                        {"tool": "kanban_heartbeat", "args": {"note": "metering"}},
                        {"usage": reported(1)},
                    ],
                    [
                        {"tool": "kanban_complete", "args": {"summary": "Metered."}},
                        {"usage": reported(2)},
                    ],
                    [{"message": "Done metering.\nA second line."}, {"usage": reported(3)}],
                ],
            }
        ]
    }


def expected(server: scripted_model.ScriptedModel, scenario: str) -> usage.Usage:
    """The sum of what the model reported for every response it gave in `scenario`."""
    total = usage.Usage()
    for request in server.requests:
        if request.scenario == scenario and request.answer in ("calls", "message"):
            assert request.turn is not None
            given, cached, out, reasoning = FIGURES[request.turn]
            total += usage.Usage(
                input_tokens=given,
                cached_input_tokens=cached,
                output_tokens=out,
                reasoning_tokens=reasoning,
            )
    return total


def epoch(text: str) -> float:
    return datetime.datetime.fromisoformat(text).timestamp()


def fresh_meter(world: World, runtime: str, run: dict[str, Any]) -> usage.Meter:
    """The meter the dispatcher would make for `run`."""
    metered = base.Metered(
        workspace=run["worktree"],
        started_at=epoch(run["started_at"]),
        settings=base.Settings(codex_home=str(world.codex_home)),
    )
    return runtimes.get(runtime).meter(metered)


def fed(meter: usage.Meter, log: Path) -> usage.Meter:
    """`meter`, fed every whole line of `log` (a live log's last line may be unfinished)."""
    data = log.read_bytes()
    for line in data[: data.rfind(b"\n") + 1].decode("utf-8", "replace").splitlines():
        meter.feed(line)
    return meter


def user_config(runtime: str) -> str:
    # The board is in tmp_path: Hermes starts Codex itself, so the user's config says it.
    return USER_FEATURES + ("\n" + USER_TMP_EXCLUSIONS if runtime == "hermes" else "")


@pytest.mark.e2e
@pytest.mark.parametrize("runtime", ["codex", "hermes"])
def test_meter_gives_exactly_the_reported_usage_and_model_mid_run_and_at_the_end(
    world: World, runtime: str, tmp_path: Path
) -> None:
    cue = tmp_path / "go-on"
    server = world.start(metered_script(cue), user_config=user_config(runtime))
    task = world.create("Meter this run E2E-METER", runtime=runtime)

    dispatcher = world.dispatch_in_background()
    try:
        run = wait_for(
            lambda: next((r for r in world.show(task)["runs"] if r["log_path"]), None),
            "the run to start",
            timeout=DEADLINE,
        )
        log = Path(run["log_path"])
        first = usage.Usage(
            input_tokens=1200,
            cached_input_tokens=1000,
            output_tokens=40,
            reasoning_tokens=5,
            model=scripted_model.MODEL_NAME,
        )
        # Held at the heartbeat: only the first response has been used, and a fresh meter
        # fed the log so far says so (Codex reports nothing in its log before the turn ends).
        wait_for(
            lambda: fed(fresh_meter(world, runtime, run), log).usage() == first,
            f"the first response's usage ({first}) mid-run",
            timeout=60,
            on_fail=lambda: (
                f"{fed(fresh_meter(world, runtime, run), log).usage()}\n" + world.logs()
            ),
        )
        live = fed(fresh_meter(world, runtime, run), log)
        assert live.activity() == "$ printf 'metered\\n' > meter.txt (exit 0)"
        cue.touch()
        assert dispatcher.wait(timeout=DEADLINE) == 0, world.dispatcher_log.read_text()
    finally:
        cue.touch()

    shown = world.show(task)
    assert shown["status"] == "done", world.logs()
    total = expected(server, "E2E-METER")
    assert total.tokens >= 4200 + 68  # every scripted response was given at least once
    meter = fed(fresh_meter(world, runtime, run), log)
    assert meter.usage() == usage.Usage(
        input_tokens=total.input_tokens,
        cached_input_tokens=total.cached_input_tokens,
        output_tokens=total.output_tokens,
        reasoning_tokens=total.reasoning_tokens,
        model=scripted_model.MODEL_NAME,
    )
    assert meter.usage() == meter.usage()  # reading again adds nothing
    # A dispatcher that restarts reads the log from its first line with a fresh meter.
    assert fed(fresh_meter(world, runtime, run), log).usage() == meter.usage()
    assert meter.activity() == "agent: Done metering. …"


@pytest.mark.e2e
def test_hermes_meter_counts_only_threads_started_in_the_runs_worktree_after_it_began(
    world: World, tmp_path: Path
) -> None:
    cue = tmp_path / "go-on"
    cue.touch()
    world.start(metered_script(cue), user_config=user_config("hermes"))
    task = world.create("Meter this run E2E-METER", runtime="hermes")
    world.dispatch()
    (run,) = world.show(task)["runs"]
    assert fed(fresh_meter(world, "hermes", run), Path(run["log_path"])).usage().tokens > 0

    elsewhere = {**run, "worktree": str(world.repo)}
    later = {**run, "started_at": run["ended_at"]}
    for other in (elsewhere, later):
        meter = fed(fresh_meter(world, "hermes", other), Path(run["log_path"]))
        assert meter.usage() == usage.Usage()


RENDERED = {
    "scenarios": [
        {
            "match": "E2E-RENDER",
            "turns": [
                [{"shell": "echo 'rate limit: none hit'"}],
                [{"tool": "kanban_complete", "args": {"summary": "Rendered."}}],
                [{"message": "No rate limit was hit.\nAll is well."}],
            ],
        }
    ],
    "usage": {"input_tokens": 1000, "cached_tokens": 600, "output_tokens": 20},
}


@pytest.mark.e2e
def test_codex_log_renders_as_commands_tool_calls_messages_and_usage(world: World) -> None:
    world.start(RENDERED)
    task = world.create("Render this run E2E-RENDER")
    world.dispatch()
    (run,) = world.show(task)["runs"]
    assert run["outcome"] == "completed", world.logs()
    text = Path(run["log_path"]).read_text()
    codex = runtimes.get("codex")

    rendered = [shown for line in text.splitlines() if (shown := codex.render(line)) is not None]

    assert "$ echo 'rate limit: none hit' (exit 0)" in rendered
    assert "tool kanban.kanban_complete" in rendered
    assert "agent: No rate limit was hit. …" in rendered
    assert "turn: 3,000 in (1,800 cached) / 60 out tokens" in rendered
    assert not [line for line in rendered if line.startswith("{")]  # every event is read
    assert len(rendered) < len(text.splitlines())  # started items are left out
    # The words are in the command's output and the agent's message, not in Codex's errors.
    assert "rate limit" in text
    assert not codex.rate_limited(text)


RATE_LIMITED = {"scenarios": [{"match": "E2E-429", "turns": [[{"status": 429}]]}]}


def run_directly(world: World, argv: list[str], env: dict[str, str], log: Path) -> None:
    cwd = world.root / "work"
    cwd.mkdir(exist_ok=True)
    with open(log, "wb") as out:
        subprocess.run(
            argv,
            env={**world.env, **env},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=DEADLINE,
            check=False,
        )


@pytest.mark.e2e
@pytest.mark.parametrize("runtime", ["codex", "hermes"])
def test_a_model_answering_429_is_classified_as_rate_limited(
    world: World, runtime: str, tmp_path: Path
) -> None:
    world.start(RATE_LIMITED)
    log = tmp_path / "run.log"
    prompt = "Hit the limit E2E-429"
    codex_path = world.env["KANBAN_CODEX_BIN"]
    if runtime == "codex":
        argv = [codex_path, "exec", "--json", "--skip-git-repo-check", prompt]
        env: dict[str, str] = {}
    else:
        argv = [world.env["KANBAN_HERMES_BIN"], "chat", "-Q", "-q", prompt]
        env = hermes_setup.runtime_env(
            world.hermes_home, codex_home=world.codex_home, codex_bin=codex_path
        )
    run_directly(world, argv, env, log)
    tail = log.read_text()
    chosen = runtimes.get(runtime)

    assert chosen.rate_limited(tail), tail
    rendered = [shown for line in tail.splitlines() if (shown := chosen.render(line))]
    assert any("429 Too Many Requests" in line for line in rendered), rendered
    assert not [line for line in rendered if "\x1b" in line]  # no terminal escapes


@pytest.mark.e2e
def test_hermes_meter_shows_a_failed_turn_that_hermes_does_not_print(
    world: World, tmp_path: Path
) -> None:
    # After the agent's first message, the next request is refused: Hermes prints only the
    # message. The rollout's end of turn says why it ended.
    world.start(
        {
            "scenarios": [
                {
                    "match": "E2E-429",
                    "turns": [
                        [{"message": "Working on it."}, {"shell": "true"}],
                        [{"status": 429}],
                    ],
                }
            ]
        }
    )
    started = time.time()
    log = tmp_path / "run.log"
    codex_path = world.env["KANBAN_CODEX_BIN"]
    env = hermes_setup.runtime_env(
        world.hermes_home, codex_home=world.codex_home, codex_bin=codex_path
    )
    argv = [world.env["KANBAN_HERMES_BIN"], "chat", "-Q", "-q", "Hit the limit E2E-429"]
    run_directly(world, argv, env, log)
    metered = base.Metered(
        workspace=str(world.root / "work"),
        started_at=started,
        settings=base.Settings(codex_home=str(world.codex_home)),
    )

    meter = fed(runtimes.get("hermes").meter(metered), log)

    assert "Working on it." in log.read_text() and "429" not in log.read_text()
    assert meter.activity() == "error: exceeded retry limit, last status: 429 Too Many Requests"


@pytest.mark.e2e
def test_a_rollout_read_as_it_grows_gives_the_totals_of_reading_it_whole(
    world: World, tmp_path: Path
) -> None:
    cue = tmp_path / "go-on"
    cue.touch()
    world.start(metered_script(cue))
    started = time.time()
    log = tmp_path / "run.log"
    argv = [world.env["KANBAN_CODEX_BIN"], "exec", "--json", "--skip-git-repo-check"]
    run_directly(world, [*argv, "Meter this run E2E-METER"], {}, log)
    threads = codex_rollout.WorkspaceThreads(
        codex_rollout.sessions_dir(str(world.codex_home)), str(world.root / "work"), started
    )
    (path,) = threads.new(time.time())
    whole = codex_rollout.Rollout(path)
    whole.read()
    assert whole.usage().tokens > 0 and whole.usage().model == scripted_model.MODEL_NAME

    data = path.read_bytes()
    growing = codex_rollout.Rollout(tmp_path / path.name)
    seen = []
    for start in range(0, len(data), 997):  # cut anywhere, lines included
        with open(growing.path, "ab") as out:
            out.write(data[start : start + 997])
        growing.read()
        seen.append(growing.usage().tokens)

    assert growing.usage() == whole.usage()
    assert seen == sorted(seen)
    assert growing.activity == whole.activity == "agent: Done metering. …"


def test_scripted_usage_is_reported_in_both_apis_and_defaults_to_the_scripts_own() -> None:
    script = {
        "scenarios": [
            {
                "match": "U",
                "turns": [[{"message": "one"}, {"usage": reported(0)}], [{"message": "two"}]],
            }
        ],
        "usage": {"input_tokens": 5, "output_tokens": 2},
    }

    def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps({**body, "stream": False}).encode()
        request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    with scripted_model.serve(script) as server:
        first = post(f"{server.base_url}/responses", {"input": "U"})
        chat = post(
            f"{server.base_url}/chat/completions",
            {"messages": [{"role": "user", "content": "U"}]},
        )
        second = post(
            f"{server.base_url}/responses",
            {
                "input": [
                    {"role": "user", "content": "U"},
                    {"role": "assistant", "content": [{"type": "output_text", "text": "one"}]},
                ]
            },
        )

    assert first["usage"] == {
        "input_tokens": 1200,
        "input_tokens_details": {"cached_tokens": 1000},
        "output_tokens": 40,
        "output_tokens_details": {"reasoning_tokens": 5},
        "total_tokens": 1240,
    }
    assert chat["usage"] == {
        "prompt_tokens": 1200,
        "prompt_tokens_details": {"cached_tokens": 1000},
        "completion_tokens": 40,
        "completion_tokens_details": {"reasoning_tokens": 5},
        "total_tokens": 1240,
    }
    assert second["usage"]["input_tokens"] == 5 and second["usage"]["output_tokens"] == 2
    assert scripted_model.Script.from_data(script).to_data()["usage"]["input_tokens"] == 5
