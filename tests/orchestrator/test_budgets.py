"""Usage, budgets and the runaway governor, through the real CLI and dispatcher.

Usage figures here are recorded on real runs with `spending.record`, as a dispatcher records
what a runtime's meter read (the meters themselves are tested against the real agents in
tests/worker and tests/e2e).
"""

from __future__ import annotations

import json
import re
import textwrap
import time
from pathlib import Path

import pytest
import sqlite_utils
from support.board_kit import claim, new, worker
from support.world import Kanban

from board import errors, records, runs, spending, tasks
from board.states import Outcome
from orchestrator import config


def use(db: sqlite_utils.Database, task_id: int, tokens: tuple[int, int], **fields) -> int:
    """One run of `task_id` that used `tokens` (input, output), settled as completed."""
    claimed = claim(db, task_id)
    spending.record(
        db,
        claimed.run_id,
        records.Usage(input_tokens=tokens[0], output_tokens=tokens[1], **fields),
        cost_source="agent" if fields.get("cost_usd") is not None else None,
    )
    runs.settle(db, claimed.run_id, Outcome.CRASHED, retry_at=time.time())
    return claimed.run_id


def write_config(home: Path, text: str) -> None:
    path = home / ".kanban" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def test_usage_json_sums_match_the_runs_in_every_grouping(kb: Kanban) -> None:
    first, second = new(kb.db, "one", max_attempts=5), new(kb.db, "two")
    use(kb.db, first, (1000, 200), model="m1", cached_input_tokens=400)
    use(kb.db, first, (3000, 50), model="m2", cost_usd=0.25)
    use(kb.db, second, (7, 3), model="m1", reasoning_tokens=2)

    totals = None
    for by in spending.GROUPINGS:
        report = json.loads(kb.run("usage", "--json", "--by", by).stdout)
        total = report["total"]
        assert sum(row["tokens"] for row in report["rows"]) == total["tokens"] == 4260
        assert (total["input_tokens"], total["output_tokens"]) == (4007, 253)
        assert (total["cached_input_tokens"], total["reasoning_tokens"]) == (400, 2)
        assert total["cost_usd"] == pytest.approx(0.25)
        assert total["runs"] == 3 and total["unpriced"] == 2
        totals = totals or total
        assert total == totals
    by_task = json.loads(kb.run("usage", "--json", "--by", "task").stdout)["rows"]
    assert {row["key"]: row["tokens"] for row in by_task} == {f"t_{first}": 4250, f"t_{second}": 10}
    by_model = json.loads(kb.run("usage", "--json", "--by", "model").stdout)["rows"]
    assert {row["key"]: row["tokens"] for row in by_model} == {"m1": 1210, "m2": 3050}
    tomorrow = time.strftime("%Y-%m-%d", time.localtime(time.time() + 86400))
    later = json.loads(kb.run("usage", "--json", "--since", tomorrow).stdout)
    assert later["rows"] == [] and later["total"]["tokens"] == 0
    # The same figures per task in list and show.
    listed = {o["id"]: o["usage"] for o in json.loads(kb.run("list", "--json").stdout)}
    assert listed[f"t_{first}"]["tokens"] == 4250 and listed[f"t_{first}"]["cost_usd"] == 0.25
    shown = kb.run("show", f"t_{first}").stdout
    assert "4,250 tokens" in shown and "1,200 tokens (1,000 in of which 400 cached" in shown


def test_usage_refuses_a_bad_since_or_grouping(kb: Kanban) -> None:
    new(kb.db, "one")
    bad = kb.run("usage", "--since", "last tuesday", check=False)
    assert bad.returncode == 1 and "--since 'last tuesday'" in bad.stderr and "7d" in bad.stderr
    assert kb.run("usage", "--by", "color", check=False).returncode == 2


def test_a_task_over_its_budget_is_blocked_not_started_until_a_person_raises_it(
    kb: Kanban,
) -> None:
    task_id = int(
        kb.run("create", "spendthrift", "--command", "true", "--budget", "1k").stdout.strip()[2:]
    )
    assert kb.task(task_id).budget == records.Budget(tokens=1000)
    use(kb.db, task_id, (900, 150))  # 1,050 of 1,000

    assert runs.claim(kb.db, task_id=task_id) == []
    task = kb.task(task_id)
    assert task.status == "blocked"
    assert task.block_reason.startswith("budget exceeded: used 1,050 of 1,000 tokens")
    assert len(kb.runs(task_id)) == 1

    # Neither unblock nor retry lets it go on as it is.
    for command in ("unblock", "retry"):
        refused = kb.run(command, f"t_{task_id}", check=False)
        assert refused.returncode == 1
        assert "would stop again at once" in refused.stderr and "--budget" in refused.stderr
        assert kb.status(task_id) == "blocked"
    too_small = kb.run("retry", f"t_{task_id}", "--budget", "1050", check=False)
    assert too_small.returncode == 1 and kb.status(task_id) == "blocked"

    kb.run("retry", f"t_{task_id}", "--budget", "5k")
    assert kb.status(task_id) == "ready"
    assert kb.task(task_id).budget == records.Budget(tokens=5000)
    kb.dispatch("--until-idle").wait()
    assert kb.status(task_id) == "done"


def test_budgets_are_checked_where_they_are_given(kb: Kanban, tmp_path: Path) -> None:
    bad = kb.run("create", "x", "--budget", "lots", check=False)
    assert bad.returncode == 1 and "'lots' is not a budget" in bad.stderr
    assert json.loads(kb.run("list", "--json").stdout) == []
    batch = tmp_path / "b.toml"
    batch.write_text('budget = "-3"\n[tasks.a]\ntitle = "a"\ncommand = "true"\n')
    refused = kb.run("run", str(batch), check=False)
    assert refused.returncode == 1 and "b.toml:1:" in refused.stderr
    assert "must be positive" in refused.stderr


def test_a_batch_over_its_budget_stops_its_remaining_tasks(kb: Kanban, tmp_path: Path) -> None:
    batch = tmp_path / "b.toml"
    batch.write_text(
        'budget = "1k"\n'
        '[tasks.first]\ntitle = "first"\ncommand = "true"\n'
        '[tasks.second]\ntitle = "second"\ncommand = "true"\nbudget = "$3"\n'
    )
    submitted = kb.run("run", str(batch), "--json", check=False)
    report = json.loads(submitted.stdout)
    assert report["ok"] is True and report["usage"] is None
    assert kb.task(2).budget == records.Budget(usd=3.0)
    # Spending recorded against the batch's first task makes its second stop at its start.
    batch_id = report["batch"]
    kb.run("reopen", "t_2", "--comment", "once more")
    claimed = claim(kb.db, 2)
    spending.record(kb.db, claimed.run_id, records.Usage(input_tokens=1500), cost_source=None)
    runs.settle(kb.db, claimed.run_id, Outcome.CRASHED, retry_at=time.time())
    assert runs.claim(kb.db, task_id=2) == []
    assert kb.task(2).block_reason == (
        f"the budget of batch {batch_id} is exceeded: used 1,500 of 1,000 tokens"
    )


def test_the_daily_budget_starts_nothing_new_and_says_why(kb: Kanban, isolated_home: Path) -> None:
    write_config(isolated_home, "[limits]\ndaily_tokens = 1000\n")
    spent = new(kb.db, "earlier today", max_attempts=5)
    use(kb.db, spent, (1200, 0))
    waiting = kb.create("waits for tomorrow", "print('ran')")

    dispatcher = kb.dispatch("--until-idle")
    assert dispatcher.wait() == 0
    output = dispatcher.output()
    assert "the board's daily budget is spent (used 1,200 of 1,000 tokens today)" in output
    assert kb.status(waiting) == "ready" and kb.runs(waiting) == []
    listed = kb.run("list")
    assert "daily budget is spent" in listed.stderr

    # Raised in the config: the next dispatcher starts it.
    write_config(isolated_home, "[limits]\ndaily_tokens = 100000\n")
    second = kb.dispatch("--until-idle")
    assert second.wait() == 0
    assert kb.status(waiting) == "done"
    assert kb.task(waiting).summary == "ran"  # a command's output, once
    assert f"t_{waiting}: done: ran\n" in second.output()  # each ending is said
    assert "daily budget" not in kb.run("list").stderr


def test_the_respawn_governor_blocks_a_task_that_keeps_dying(
    kb: Kanban, isolated_home: Path
) -> None:
    write_config(isolated_home, "[limits]\nruns_per_hour = 3\n")
    task_id = kb.create("dies", "import sys; sys.exit(3)", max_attempts=50)

    dispatcher = kb.dispatch()
    task = kb.wait_status(task_id, "blocked")
    dispatcher.proc.terminate()
    dispatcher.wait()
    assert len(kb.runs(task_id)) == 3
    assert task.block_reason.startswith("respawn governor: 3 runs started in the last hour")
    assert f"t_{task_id}: blocked: respawn governor" in dispatcher.output()


WORKER_CREATES = """
import subprocess, sys
for n in range(3):
    # Plain subtasks: without --command they would run this very script, and create more.
    made = subprocess.run(
        [sys.argv[1], "create", f"sub {n}", "--command", "true"], capture_output=True, text=True
    )
    print(n, made.returncode, made.stdout.strip(), made.stderr.strip(), flush=True)
"""


def test_the_fan_out_governor_blocks_a_worker_that_creates_too_many(
    kb: Kanban, isolated_home: Path
) -> None:
    from support.cli import KANBAN

    write_config(isolated_home, "[limits]\nmax_created_per_run = 2\n")
    task_id = kb.create("creates", WORKER_CREATES, KANBAN)
    dispatcher = kb.dispatch("--until-idle")
    assert dispatcher.wait() == 0
    task = kb.task(task_id)
    assert task.status == "blocked"
    assert task.block_reason.startswith("fan-out governor: run 1 already created 2 tasks")
    children = [t for t in tasks.list_tasks(kb.db) if t.parent_id == task_id]
    assert len(children) == 2
    assert kb.runs(task_id)[0].outcome == "blocked"


def test_a_worker_over_the_fan_out_bound_is_refused_and_its_task_blocked(kb: Kanban) -> None:
    tasks.store_limits(kb.db, tasks.Limits(max_created_per_run=5, max_subtree=3))
    parent = new(kb.db, "parent")
    claimed = claim(kb.db, parent)
    me = worker(claimed)
    tasks.create(kb.db, tasks.NewTask("one"), me)
    tasks.create(kb.db, tasks.NewTask("two"), me)
    with pytest.raises(spending.OverBudget, match=r"t_1 already has 3 tasks under it"):
        tasks.create(kb.db, tasks.NewTask("three"), me)
    assert kb.status(parent) == "blocked"
    assert [t.title for t in tasks.list_tasks(kb.db)].count("three") == 0
    # An operator is not governed.
    tasks.create(kb.db, tasks.NewTask("three", parent=parent))


def test_prices_give_a_cost_to_agents_that_report_only_tokens(isolated_home: Path) -> None:
    write_config(
        isolated_home,
        """
        [prices."gpt-test"]
        input = 2.0
        cached_input = 0.5
        output = 8.0
        """,
    )
    prices = config.load().prices
    used = records.Usage(
        input_tokens=1_000_000, cached_input_tokens=400_000, output_tokens=100_000, model="gpt-test"
    )
    priced, source = config.priced(used, prices)
    assert source == "prices"
    assert priced.cost_usd == pytest.approx(0.6 * 2.0 + 0.4 * 0.5 + 0.1 * 8.0)
    reported = records.Usage(input_tokens=10, cost_usd=0.01, model="gpt-test")
    assert config.priced(reported, prices) == (reported, "agent")
    unknown = records.Usage(input_tokens=10, model="other")
    assert config.priced(unknown, prices) == (unknown, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[prices."m"]\ninput = 1\n', "needs input and output"),
        ('[prices."m"]\ninput = 1\noutput = -2\n', "cannot be negative"),
        ('[prices."m"]\ninput = 1\noutput = 2\nextra = 3\n', 'in [prices."m"]: extra'),
        ("[limits]\nruns_per_hour = 0\n", "runs_per_hour must be at least 1"),
        ("[limits]\ndaily_usd = -1.0\n", "a budget in dollars must be a positive"),
    ],
)
def test_bad_prices_and_limits_are_refused_with_the_key(
    isolated_home: Path, text: str, message: str
) -> None:
    write_config(isolated_home, text)
    with pytest.raises(errors.InvalidInput, match=re.escape(message)):
        config.load()


def test_a_tasks_budget_covers_its_subtasks(kb: Kanban) -> None:
    parent = new(kb.db, "orchestrates", budget=records.Budget(tokens=1000))
    first, second, third = (new(kb.db, f"part {n}", parent=parent) for n in range(3))
    use(kb.db, first, (400, 200))
    assert runs.claim(kb.db, task_id=second)  # 600 of 1,000 spent: it may run
    spending.record(kb.db, kb.runs(second)[0].id, records.Usage(input_tokens=500), cost_source=None)

    assert runs.claim(kb.db, task_id=third) == []  # 1,100 of 1,000 by its siblings
    reason = kb.task(third).block_reason
    assert reason.startswith(
        f"the budget of t_{parent} (its subtasks included) is exceeded: used 1,100 of 1,000"
    )
    live = spending.task_over_budget(kb.db, second)  # its live run would be stopped
    assert live is not None and live.split(";")[0] == reason.split(";")[0]
    refused = kb.run("retry", f"t_{third}", check=False)
    assert refused.returncode == 1
    assert f"raise it with `kanban budget t_{parent} ...`, then `kanban retry t_{third}`" in (
        refused.stderr
    )
    # The parent is not blocked itself (its subtasks run): `kanban budget` raises it.
    assert (
        kb.run("budget", f"t_{parent}", "5k").stdout.strip() == f"t_{parent}: budget 5,000 tokens"
    )
    kb.run("retry", f"t_{third}")
    assert kb.status(third) == "ready"
    worker_says = kb.run(
        "budget",
        f"t_{third}",
        "1M",
        check=False,
        HERMES_KANBAN_TASK=f"t_{second}",
        HERMES_KANBAN_RUN_ID=str(kb.runs(second)[0].id),
        HERMES_KANBAN_TOKEN="whatever",
    )
    assert worker_says.returncode == 1 and "a worker cannot change a budget" in worker_says.stderr
