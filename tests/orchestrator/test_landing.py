"""From branches to main: dependents start with their blockers' code, conflicts are never
done, and `kanban land` moves the base branch only with verified work, never losing an update."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support.gitrepo import git, make_repo
from support.landing import EDIT_README, PY, WRITE, is_ancestor, set_command, task

from worker import pause

# Copies what the blockers wrote (their files must be in this worktree) into its own file.
GATHER = """\
import pathlib, sys
out, names = pathlib.Path(sys.argv[1]), sys.argv[2:]
out.write_text("".join(pathlib.Path(n).read_text() for n in names))
"""
APPEND = """\
import pathlib, sys
chain = pathlib.Path("chain.txt")
chain.write_text((chain.read_text() if chain.exists() else "") + sys.argv[1] + "\\n")
"""


def test_a_dependent_starts_with_its_blockers_work(kb, repo):
    a = task(kb, repo, "A", WRITE, "a.txt", "from A")
    b = task(kb, repo, "B", GATHER, "b.txt", "a.txt", after=[a])
    assert kb.dispatch("--until-idle").wait() == 0
    kb.wait_status(b, "done")
    assert git(repo, "show", f"{kb.branch(b)}:b.txt") == "from A"
    message = git(repo, "log", "-1", "--format=%B", kb.branch(a))
    assert message.startswith("A\n") and f"Kanban-Task: t_{a}" in message


def test_a_diamond_gives_the_last_task_both_sides(kb, repo):
    a = task(kb, repo, "A", WRITE, "left.txt", "left")
    b = task(kb, repo, "B", WRITE, "right.txt", "right")
    c = task(kb, repo, "C", GATHER, "both.txt", "left.txt", "right.txt", after=[a, b])
    assert kb.dispatch("--until-idle", "--max-workers", "2").wait() == 0
    kb.wait_status(c, "done")
    assert git(repo, "show", f"{kb.branch(c)}:both.txt") == "left\nright"


def test_a_chain_of_ten_gives_the_last_all_ten(kb, repo):
    previous: list[int] = []
    for number in range(1, 11):
        previous = [task(kb, repo, f"link {number}", APPEND, number, after=previous)]
    assert kb.dispatch("--until-idle").wait() == 0
    kb.wait_status(previous[0], "done")
    chain = git(repo, "show", f"{kb.branch(previous[0])}:chain.txt")
    assert chain.split() == [str(n) for n in range(1, 11)]


def test_two_conflicting_tasks_land_one_then_the_other_after_its_agent_resolves(kb, repo):
    first = task(kb, repo, "first", EDIT_README, "hello from first")
    second = task(kb, repo, "second", EDIT_README, "hello from second")
    assert kb.dispatch("--until-idle", "--max-workers", "2").wait() == 0
    kb.wait_status(second, "done")

    landed = kb.run("land", f"t_{first}", f"t_{second}", check=False)
    assert landed.returncode == 1, landed.stdout + landed.stderr
    assert f"t_{first}: landed" in landed.stdout
    assert f"t_{second}: conflict: conflicts with main in README" in landed.stdout
    assert git(repo, "show", "main:README").startswith("hello from first")
    after_first = git(repo, "rev-parse", "main")
    reopened = kb.task(second)
    assert reopened.status == "ready" and reopened.catch_up

    assert kb.dispatch("--until-idle").wait() == 0
    resolved = kb.wait_status(second, "done")
    assert resolved.conflicts == ()  # its run removed the markers
    merges = [e for e in kb.events(second) if e["kind"] == "merged"]
    assert json.loads(merges[-1]["data"])["merges"][0]["conflicted_files"] == ["README"]

    landed = kb.run("land", f"t_{second}")
    assert f"t_{second}: landed" in landed.stdout
    assert is_ancestor(repo, after_first, "main")
    assert "<<<<<<<" not in git(repo, "show", "main:README")
    assert kb.task(second).landed_sha == git(repo, "rev-parse", "main")


def test_a_run_that_leaves_conflict_markers_is_not_done(kb, repo):
    first = task(kb, repo, "first", EDIT_README, "one")
    # Completes without touching README: the markers kanban left stay.
    lazy = task(kb, repo, "lazy", WRITE, "other.txt", "x", max_attempts=1)
    assert kb.dispatch("--until-idle", "--max-workers", "2").wait() == 0
    git(repo, "commit", "-q", "-am", "main moves", "--allow-empty")
    (repo / "README").write_text("main's own first line\nhello\n")
    git(repo, "commit", "-q", "-am", "main edits README")
    kb.run("land", f"t_{first}", check=False)  # conflicts with main's edit: reopened
    assert kb.task(first).status == "ready"
    # Make its next run not resolve: replace its command with one that leaves the file alone.
    set_command(kb, first, "pass")
    assert kb.dispatch("--until-idle").wait() == 0
    failed = kb.wait_status(first, "ready", "failed")
    last = kb.runs(first)[-1]
    assert last.outcome == "check_failed"
    assert "conflict markers left in README" in last.reason
    assert failed.conflicts == ("README",)
    assert kb.status(lazy) == "done"


def test_completing_with_unresolved_conflicts_is_refused_through_the_cli(kb, repo):
    first = task(kb, repo, "first", EDIT_README, "one")
    assert kb.dispatch("--until-idle").wait() == 0
    (repo / "README").write_text("main's line\nhello\n")
    git(repo, "commit", "-q", "-am", "main edits README")
    kb.run("land", f"t_{first}", check=False)
    tries_cli = (
        "import subprocess, sys\n"
        f"r = subprocess.run([{str(Path(sys.executable).with_name('kanban'))!r}, 'complete',"
        " '--summary', 'done'], capture_output=True, text=True)\n"
        "open(sys.argv[1], 'w').write(str(r.returncode) + '\\n' + r.stderr)\n"
    )
    set_command(kb, first, tries_cli, kb.tmp / "answer")
    assert kb.dispatch("--until-idle").wait() == 0
    code, message = (kb.tmp / "answer").read_text().split("\n", 1)
    assert code != "0"
    assert f"t_{first} still has merge conflicts in README" in message


def test_a_failing_check_moves_nothing_and_reopens_with_its_output(kb, tmp_path):
    check = json.dumps(
        [
            PY,
            "-c",
            "import os, sys; print('bad.txt found'); "
            "sys.exit(1 if os.path.exists('bad.txt') else 0)",
        ]
    )
    repo = make_repo(
        tmp_path / "app", {"README": "x\n", ".kanban.toml": f"[check]\ncommand = {check}\n"}
    )
    bad = task(kb, repo, "breaks it", WRITE, "bad.txt", "oops")
    assert kb.dispatch("--until-idle").wait() == 0
    kb.wait_status(bad, "done")
    before = git(repo, "rev-parse", "main")

    landed = kb.run("land", f"t_{bad}", check=False)
    assert landed.returncode == 1
    assert "check_failed" in landed.stdout
    assert git(repo, "rev-parse", "main") == before  # nothing moved
    reopened = kb.task(bad)
    assert reopened.status == "ready"
    comments = kb.run("show", f"t_{bad}", "--json")
    assert "bad.txt found" in json.loads(comments.stdout)["comments"][-1]["body"]


def test_the_base_moved_between_queue_steps_is_merged_again_and_nothing_is_lost(kb, repo, tmp_path):
    work = task(kb, repo, "work", WRITE, "work.txt", "the work")
    assert kb.dispatch("--until-idle").wait() == 0
    kb.wait_status(work, "done")
    pauses = tmp_path / "pauses"
    pauses.mkdir()
    from support.cli import KANBAN
    from support.waiting import wait_for

    lander = subprocess.Popen(
        [KANBAN, "land", f"t_{work}"],
        env={**kb.env, "KANBAN_PAUSE": "land.merged", "KANBAN_PAUSE_DIR": str(pauses)},
        stdout=subprocess.PIPE,
        text=True,
    )
    marker = wait_for(lambda: next(iter(pauses.glob("land.merged.*")), None), "the lander to pause")
    (repo / "user.txt").write_text("the user's own commit\n")
    git(repo, "add", "user.txt")
    git(repo, "commit", "-q", "-m", "the user moves main meanwhile")
    users = git(repo, "rev-parse", "main")
    marker.unlink()
    # The retry pauses at the same point again: let it go.
    wait_for(lambda: next(iter(pauses.glob("land.merged.*")), None), "the retry").unlink()
    out, _ = lander.communicate(timeout=60)
    assert lander.returncode == 0, out
    assert is_ancestor(repo, users, "main")
    assert git(repo, "show", "main:user.txt") == "the user's own commit"
    assert git(repo, "show", "main:work.txt") == "the work"
    assert (repo / "work.txt").read_text() == "the work\n"  # the checkout moved with it
    assert pause.POINTS["land.merged"]


def test_a_dirty_checkout_of_the_base_is_never_moved(kb, repo):
    work = task(kb, repo, "work", WRITE, "a.txt", "the work")
    assert kb.dispatch("--until-idle").wait() == 0
    kb.wait_status(work, "done")
    before = git(repo, "rev-parse", "main")
    (repo / "a.txt").write_text("the user's unsaved edit\n")

    landed = kb.run("land", f"t_{work}", check=False)
    assert landed.returncode == 1
    assert "refused" in landed.stdout and "local changes" in landed.stdout
    assert git(repo, "rev-parse", "main") == before
    assert (repo / "a.txt").read_text() == "the user's unsaved edit\n"
    assert kb.task(work).landed_sha is None and kb.status(work) == "done"


def test_land_push_sends_the_moved_base_to_a_bare_remote(kb, repo, tmp_path):
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "origin", "main")
    work = task(kb, repo, "work", WRITE, "pushed.txt", "to the remote")
    assert kb.dispatch("--until-idle").wait() == 0
    kb.wait_status(work, "done")

    landed = kb.run("land", f"t_{work}", "--push")
    assert "push: main to origin: done" in landed.stdout
    assert git(remote, "rev-parse", "main") == git(repo, "rev-parse", "main")
    assert git(remote, "show", "main:pushed.txt") == "to the remote"


def test_reopen_puts_the_review_comment_in_the_next_prompt(kb, repo):
    work = task(kb, repo, "work", WRITE, "a.txt", "v1")
    assert kb.dispatch("--until-idle").wait() == 0
    kb.wait_status(work, "done")
    kb.run("reopen", f"t_{work}", "--comment", "Please also handle the empty case")
    assert kb.status(work) == "ready"
    assert kb.dispatch("--until-idle").wait() == 0
    kb.wait_status(work, "done")
    second = kb.runs(work)[-1]
    prompt_text = Path(second.log_path).with_name(f"prompt-run-{second.id}.md").read_text()
    assert "Please also handle the empty case" in prompt_text
    assert kb.task(work).branch == kb.branch(work)  # same branch


def test_diff_shows_what_would_land(kb, repo):
    work = task(kb, repo, "work", WRITE, "new.txt", "new file")
    assert kb.dispatch("--until-idle").wait() == 0
    kb.wait_status(work, "done")
    stat = kb.run("diff", f"t_{work}").stdout
    assert "new.txt" in stat and "1 insertion" in stat
    patch = kb.run("diff", f"t_{work}", "--patch").stdout
    assert "+new file" in patch


def test_a_squash_landed_task_is_shown_landed_and_collected_by_gc(kb, repo):
    work = task(kb, repo, "work", WRITE, "squashed.txt", "one commit")
    assert kb.dispatch("--until-idle").wait() == 0
    kb.wait_status(work, "done")
    kb.run("land", f"t_{work}", "--strategy", "squash")
    assert git(repo, "rev-list", "--count", "main") == "2"  # one squashed commit on main
    assert git(repo, "log", "-1", "--format=%s", "main") == "work"
    assert "done, landed" in kb.run("list").stdout
    shown = json.loads(kb.run("show", f"t_{work}", "--json").stdout)
    assert shown["landed"] == git(repo, "rev-parse", "main")

    collected = kb.run("gc").stdout
    assert f"deleted branches: {kb.branch(work)}" in collected
    assert git(repo, "branch", "--list", kb.branch(work)) == ""


def test_kanban_run_land_lands_the_batch_and_counts_it_in_the_exit_code(kb, repo, tmp_path):
    batch = tmp_path / "features.toml"
    write = json.dumps([PY, "-c", WRITE, "feature.txt", "from the batch"])
    gather = json.dumps([PY, "-c", GATHER, "docs.txt", "feature.txt"])
    batch.write_text(
        f'[defaults]\nrepo = "{repo}"\n'
        f'[tasks.feature]\ntitle = "feature"\ncommand = {write}\n'
        f'[tasks.docs]\ntitle = "docs"\ncommand = {gather}\nafter = ["feature"]\n'
    )
    result = kb.run("run", str(batch), "--land", "--json", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert [r["status"] for r in report["landing"]] == ["landed", "landed"]
    assert all(t["landed"] for t in report["tasks"])
    assert git(repo, "show", "main:docs.txt") == "from the batch"
