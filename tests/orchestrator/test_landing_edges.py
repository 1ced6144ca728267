"""Landing and dependency merging at their edges: where the base branch lives, strategies on
branches that hold merges, chains, bases that are not branches, deleted branches, two landers
at once, the check's workspace, odd titles, conflicts resolved by deletion, reopen and cancel.
Each was found failing first (a red-team pass over `kanban land`), then fixed."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from support.cli import KANBAN
from support.gitrepo import git, make_repo
from support.landing import EDIT_README, PY, WRITE, is_ancestor, set_command, task
from support.waiting import wait_for


def dispatch(kb) -> None:
    assert kb.dispatch("--until-idle", "--max-workers", "2").wait() == 0, kb.logs()


def argv_toml(code: str, *args: object) -> str:
    return json.dumps([PY, "-c", code, *(str(a) for a in args)])


def commit_on(repo: Path, branch: str, name: str, text: str | None, message: str) -> str:
    """Commit a change to `name` (None: delete it) on `branch`, which is checked out nowhere."""
    scratch = repo.parent / f"edit-{branch}"
    git(repo, "worktree", "add", "-q", str(scratch), branch)
    if text is None:
        git(scratch, "rm", "-q", name)
    else:
        (scratch / name).write_text(text)
        git(scratch, "add", name)
    git(scratch, "commit", "-q", "-m", message)
    git(repo, "worktree", "remove", str(scratch))
    return git(repo, "rev-parse", branch)


APPEND = (
    "import pathlib, sys; p = pathlib.Path(sys.argv[1]); p.write_text(p.read_text() + 'more\\n')"
)
# Resolves a conflict in README by deleting the file.
DELETE_README_IF_CONFLICTED = """\
import pathlib
readme = pathlib.Path("README")
if readme.exists() and "<<<<<<< " in readme.read_text():
    readme.unlink()
"""


# -- where the base branch lives --------------------------------------------------------------


def test_landing_moves_a_base_checked_out_nowhere_and_fast_forwards_a_linked_worktree(kb, repo):
    one = task(kb, repo, "one", WRITE, "one.txt", "first")
    two = task(kb, repo, "two", WRITE, "two.txt", "second")
    dispatch(kb)
    kb.wait_status(two, "done")
    git(repo, "checkout", "-q", "-b", "elsewhere")  # main is checked out nowhere now
    (repo / "notes.txt").write_text("the user's untracked notes\n")

    landed = kb.run("land", f"t_{one}")
    assert f"t_{one}: landed: main is now" in landed.stdout
    assert git(repo, "show", "main:one.txt") == "first"
    assert git(repo, "symbolic-ref", "--short", "HEAD") == "elsewhere"  # untouched
    assert not (repo / "one.txt").exists()
    assert (repo / "notes.txt").read_text() == "the user's untracked notes\n"

    linked = repo.parent / "main-checkout"
    git(repo, "worktree", "add", "-q", str(linked), "main")
    landed = kb.run("land", f"t_{two}")
    assert f"t_{two}: landed" in landed.stdout
    assert (linked / "two.txt").read_text() == "second\n"  # fast-forwarded there
    assert git(linked, "rev-parse", "HEAD") == git(repo, "rev-parse", "main")
    assert git(linked, "status", "--porcelain") == ""


# -- chains -----------------------------------------------------------------------------------


def test_a_dependent_alone_waits_for_its_blocker_and_a_chain_lands_in_order(kb, repo):
    a = task(kb, repo, "A", WRITE, "a.txt", "from A")
    b = task(kb, repo, "B", APPEND, "a.txt", after=[a])
    dispatch(kb)
    kb.wait_status(b, "done")
    before = git(repo, "rev-parse", "main")

    alone = kb.run("land", f"t_{b}", check=False)
    assert alone.returncode == 1
    assert f"t_{b}: skipped: its blocker t_{a} has not landed: land it first" in alone.stdout
    assert git(repo, "rev-parse", "main") == before

    both = kb.run("land", f"t_{b}", f"t_{a}")  # named in the wrong order: landed in the right
    lines = [line for line in both.stdout.splitlines() if line.startswith("t_")]
    assert [line.split(":")[0:2] for line in lines] == [
        [f"t_{a}", " landed"],
        [f"t_{b}", " landed"],
    ]
    assert git(repo, "show", "main:a.txt") == "from A\nmore"

    assert "no changes against main" in kb.run("diff", f"t_{b}").stdout
    refused = kb.run("reopen", f"t_{a}", "--comment", "more", check=False)
    assert refused.returncode == 1 and "has landed" in refused.stderr
    assert "create a new task" in refused.stderr

    collected = kb.run("gc").stdout  # merged into main, which is HEAD: both branches go
    assert f"deleted branches: {kb.branch(a)}" in collected
    assert f"deleted branches: {kb.branch(b)}" in collected
    assert not Path(kb.task(b).worktree).exists()


def test_a_chain_lands_linear_with_rebase(kb, repo):
    a = task(kb, repo, "A", WRITE, "a.txt", "from A")
    b = task(kb, repo, "B", APPEND, "a.txt", after=[a])
    dispatch(kb)
    kb.wait_status(b, "done")
    git(repo, "commit", "-q", "--allow-empty", "-m", "main moves: A's commit is rewritten")
    landed = kb.run("land", f"t_{a}", f"t_{b}", "--strategy", "rebase", check=False)
    assert landed.returncode == 0, landed.stdout + landed.stderr
    assert git(repo, "rev-list", "--merges", "main") == ""  # no merge commits on main
    assert git(repo, "show", "main:a.txt") == "from A\nmore"


def test_a_chain_lands_with_squash_in_one_command(kb, repo):
    a = task(kb, repo, "A", WRITE, "a.txt", "from A")
    b = task(kb, repo, "B", APPEND, "a.txt", after=[a])
    dispatch(kb)
    kb.wait_status(b, "done")
    landed = kb.run("land", f"t_{a}", f"t_{b}", "--strategy", "squash", check=False)
    assert landed.returncode == 0, landed.stdout + landed.stderr
    assert git(repo, "show", "main:a.txt") == "from A\nmore"
    assert git(repo, "log", "--format=%s", "main").splitlines() == ["B", "A", "first"]


def test_rebase_does_not_replay_the_commits_of_a_blocker_that_landed_squashed(kb, repo):
    a = task(kb, repo, "A", APPEND, "a.txt")
    dispatch(kb)
    kb.wait_status(a, "done")
    kb.run("reopen", f"t_{a}", "--comment", "one more line")
    dispatch(kb)
    kb.wait_status(a, "done")  # A's branch: two commits, both on a.txt
    b = task(kb, repo, "B", WRITE, "b.txt", "from B", after=[a])
    dispatch(kb)
    kb.wait_status(b, "done")

    kb.run("land", f"t_{a}", "--strategy", "squash")
    landed = kb.run("land", f"t_{b}", "--strategy", "rebase", check=False)
    # B's own work (b.txt) applies cleanly; A's work is already on main, squashed.
    assert f"t_{b}: landed" in landed.stdout, landed.stdout
    assert git(repo, "show", "main:a.txt") == "a\nmore\nmore"
    assert git(repo, "show", "main:b.txt") == "from B"


def test_rebase_lands_a_task_whose_agent_resolved_a_landing_conflict(kb, repo):
    first = task(kb, repo, "first", EDIT_README, "hello from first")
    second = task(kb, repo, "second", EDIT_README, "hello from second")
    dispatch(kb)
    kb.wait_status(second, "done")
    kb.wait_status(first, "done")
    landed = kb.run("land", f"t_{first}", f"t_{second}", "--strategy", "rebase", check=False)
    assert f"t_{second}: conflict" in landed.stdout
    dispatch(kb)
    kb.wait_status(second, "done")  # its agent resolved the markers on its branch

    again = kb.run("land", f"t_{second}", "--strategy", "rebase", check=False)
    assert f"t_{second}: landed" in again.stdout, again.stdout
    assert "<<<<<<<" not in git(repo, "show", "main:README")


# -- bases that are not branches, --into ---------------------------------------------------------


def test_a_task_based_on_a_tag_needs_into_and_diff_compares_with_its_base_commit(kb, repo):
    git(repo, "tag", "v1")
    tagged = kb.create(
        "on a tag",
        WRITE,
        "t.txt",
        "tagged",
        repo=repo,
        base_ref=git(repo, "rev-parse", "v1"),
        base_branch=None,
    )
    dispatch(kb)
    kb.wait_status(tagged, "done")
    stat = kb.run("diff", f"t_{tagged}").stdout
    assert "t.txt" in stat and "1 insertion" in stat

    refused = kb.run("land", f"t_{tagged}", check=False)
    assert refused.returncode == 1
    assert "its base is not a branch" in refused.stdout and "--into BRANCH" in refused.stdout

    landed = kb.run("land", f"t_{tagged}", "--into", "main")
    assert f"t_{tagged}: landed" in landed.stdout
    assert git(repo, "show", "main:t.txt") == "tagged"


def test_land_all_into_a_branch_includes_tasks_based_on_a_commit(kb, repo):
    detached = kb.create(
        "on a commit", WRITE, "c.txt", "x", repo=repo, base_ref=git(repo, "rev-parse", "HEAD")
    )
    dispatch(kb)
    kb.wait_status(detached, "done")
    landed = kb.run("land", "--all", "--into", "main", check=False)
    assert f"t_{detached}: landed" in landed.stdout, landed.stdout


def test_landing_into_a_branch_that_does_not_exist_says_what_to_do(kb, repo):
    work = task(kb, repo, "work", WRITE, "w.txt", "w")
    dispatch(kb)
    kb.wait_status(work, "done")
    result = kb.run("land", f"t_{work}", "--into", "relase", check=False)
    assert result.returncode == 1
    assert "relase" in result.stdout and "unexpected" not in result.stderr


def test_land_into_another_branch_with_push_pushes_that_branch(kb, repo, tmp_path):
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo, "branch", "release")
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "origin", "main", "release")
    work = task(kb, repo, "work", WRITE, "r.txt", "for the release")
    dispatch(kb)
    kb.wait_status(work, "done")

    landed = kb.run("land", f"t_{work}", "--into", "release", "--push", check=False)
    assert f"t_{work}: landed: release is now" in landed.stdout
    assert "push: release to origin: done" in landed.stdout, landed.stdout
    assert git(remote, "rev-parse", "release") == git(repo, "rev-parse", "release")


def test_a_conflict_landing_into_another_branch_brings_that_branch_to_the_agent(kb, repo):
    git(repo, "branch", "release")
    release_tip = commit_on(repo, "release", "README", "release's line\nhello\n", "release fix")
    work = task(kb, repo, "work", EDIT_README, "the task's line")
    dispatch(kb)
    kb.wait_status(work, "done")

    landed = kb.run("land", f"t_{work}", "--into", "release", check=False)
    assert f"t_{work}: conflict: conflicts with release in README" in landed.stdout
    comment = json.loads(kb.run("show", f"t_{work}", "--json").stdout)["comments"][-1]["body"]
    assert "kanban has merged release into your branch" in comment
    dispatch(kb)  # its next start is where release is merged in, for its agent to resolve
    kb.wait_status(work, "done", "ready", "failed")
    assert is_ancestor(repo, release_tip, kb.branch(work))


# -- branches that are gone -------------------------------------------------------------------


def test_landing_a_task_whose_branch_gc_force_deleted_says_so(kb, repo):
    work = task(kb, repo, "work", WRITE, "gone.txt", "x")
    dispatch(kb)
    kb.wait_status(work, "done")
    kb.run("gc", "--force")  # unmerged, not landed: --force deletes the branch
    assert git(repo, "branch", "--list", kb.branch(work)) == ""

    result = kb.run("land", f"t_{work}", check=False)
    assert "unexpected" not in result.stderr, result.stderr
    assert result.returncode == 1
    assert f"t_{work}: skipped" in result.stdout and "branch" in result.stdout


def test_diff_of_a_task_whose_branch_is_gone_is_an_error_not_a_crash(kb, repo):
    work = task(kb, repo, "work", WRITE, "gone.txt", "x")
    dispatch(kb)
    kb.wait_status(work, "done")
    kb.run("gc", "--force")
    result = kb.run("diff", f"t_{work}", check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ") and "unexpected" not in result.stderr


def test_a_dependent_reopened_after_its_blocker_landed_and_was_collected_starts(kb, repo):
    a = task(kb, repo, "A", WRITE, "a.txt", "from A")
    b = task(kb, repo, "B", APPEND, "a.txt", after=[a])
    dispatch(kb)
    kb.wait_status(b, "done")
    kb.run("land", f"t_{a}")
    assert f"deleted branches: {kb.branch(a)}" in kb.run("gc").stdout  # A is in main
    kb.run("reopen", f"t_{b}", "--comment", "one more line, please")
    dispatch(kb)
    again = kb.wait_status(b, "done", "ready", "failed")
    assert again.status == "done", (again.failure_reason, [r.reason for r in kb.runs(b)])
    assert git(repo, "show", f"{kb.branch(b)}:a.txt") == "from A\nmore\nmore"


# -- two landers at once ----------------------------------------------------------------------

# The check: holds (when LAND_HOLD names a directory) until the test says go, then fails when
# bad.txt is in the tree it checks.
HOLDING_CHECK = """\
import os, pathlib, sys, time
hold = os.environ.get("LAND_HOLD")
if hold:
    pathlib.Path(hold, "checking").write_text(os.getcwd())
    deadline = time.monotonic() + 30
    while not pathlib.Path(hold, "go").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
sys.exit(1 if os.path.exists("bad.txt") else 0)
"""


def _holds(pid: int, name: str) -> bool:
    """Whether process `pid` has a file called `name` open (waiting on its lock, or past it)."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        return any(os.readlink(fd).endswith(f"/{name}") for fd in fds.iterdir())
    except OSError:
        return False


def test_a_second_lander_waits_and_never_changes_the_tree_under_the_first_ones_check(kb, tmp_path):
    repo = make_repo(
        tmp_path / "app",
        {"README": "hello\n", ".kanban.toml": f"[check]\ncommand = {argv_toml(HOLDING_CHECK)}\n"},
    )
    git(repo, "branch", "side")
    bad = task(kb, repo, "breaks the check", WRITE, "bad.txt", "oops")
    other = task(kb, repo, "harmless", WRITE, "fine.txt", "ok")
    dispatch(kb)
    kb.wait_status(bad, "done")
    kb.wait_status(other, "done")
    before = git(repo, "rev-parse", "main")

    hold = tmp_path / "hold"
    hold.mkdir()

    def lander(*args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [KANBAN, "land", *args],
            env={**kb.env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    first = lander(f"t_{bad}", LAND_HOLD=str(hold))
    second = None
    try:
        wait_for(lambda: (hold / "checking").exists(), "the first lander's check to start")
        # Another lander, into another branch, while the first one's check runs.
        second = lander(f"t_{other}", "--into", "side", "--no-check")
        wait_for(lambda: _holds(second.pid, "land.lock"), "the second lander at the lock")
    finally:
        (hold / "go").write_text("")
        out, _ = first.communicate(timeout=60)
        second_out = second.communicate(timeout=60)[0] if second else ""
    # bad.txt fails the check on the merged result: main does not move.
    assert f"t_{bad}: check_failed" in out, out
    assert git(repo, "rev-parse", "main") == before
    assert f"t_{other}: landed: side is now" in second_out, second_out
    assert git(repo, "show", "side:fine.txt") == "ok"


# -- the check's workspace --------------------------------------------------------------------


def test_the_check_on_the_merged_result_gets_the_repositorys_ports(kb, tmp_path):
    needs_port = "import os, sys; sys.exit(0 if os.environ.get('KANBAN_PORT') else 1)"
    repo = make_repo(
        tmp_path / "app",
        {
            "README": "x\n",
            ".kanban.toml": f"[workspace]\nports = 1\n[check]\ncommand = {argv_toml(needs_port)}\n",
        },
    )
    work = task(kb, repo, "work", WRITE, "w.txt", "w")
    dispatch(kb)
    kb.wait_status(work, "done")
    landed = kb.run("land", f"t_{work}", check=False)
    assert f"t_{work}: landed" in landed.stdout, landed.stdout


# Appends the directory it runs in to the file named by SETUP_LOG (outside the repository).
SETUP = """\
import os, pathlib
log = pathlib.Path(os.environ["SETUP_LOG"])
log.write_text((log.read_text() if log.exists() else "") + os.getcwd() + "\\n")
"""
ENV_CHECK = "import pathlib, sys; sys.exit(pathlib.Path('.env').read_text() != 'SECRET=1\\n')"


def test_the_scratch_worktree_is_set_up_once_with_copied_files_for_the_check(kb, tmp_path):
    toml = (
        f'[workspace]\ncopy = [".env"]\nsetup = [{argv_toml(SETUP)}]\n'
        f"[check]\ncommand = {argv_toml(ENV_CHECK)}\n"
    )
    repo = make_repo(
        tmp_path / "app", {"README": "x\n", ".gitignore": ".env\n", ".kanban.toml": toml}
    )
    (repo / ".env").write_text("SECRET=1\n")
    setup_log = tmp_path / "setup.log"
    kb.env["SETUP_LOG"] = str(setup_log)
    one = task(kb, repo, "one", WRITE, "one.txt", "1")
    two = task(kb, repo, "two", WRITE, "two.txt", "2")
    dispatch(kb)
    kb.wait_status(one, "done")
    kb.wait_status(two, "done")

    assert f"t_{one}: landed" in kb.run("land", f"t_{one}").stdout
    assert f"t_{two}: landed" in kb.run("land", f"t_{two}").stdout
    scratch_setups = [line for line in setup_log.read_text().splitlines() if line.endswith("/land")]
    assert len(scratch_setups) == 1, setup_log.read_text()
    assert git(repo, "ls-files", ".env") == ""  # the copied secret was never committed


FAILS_IN_THE_SCRATCH = (
    "import os, sys; sys.exit(7 if os.path.basename(os.getcwd()) == 'land' else 0)"
)


def test_a_setup_failing_in_the_scratch_worktree_fails_its_task_not_the_queue(kb, tmp_path):
    toml = (
        f"[workspace]\nsetup = [{argv_toml(FAILS_IN_THE_SCRATCH)}]\n"
        f"[check]\ncommand = {argv_toml('pass')}\n"
    )
    broken = make_repo(tmp_path / "broken", {"README": "x\n", ".kanban.toml": toml})
    plain = make_repo(tmp_path / "plain", {"README": "y\n"})
    first = task(kb, broken, "in the broken repository", WRITE, "one.txt", "1")
    second = task(kb, plain, "in another repository", WRITE, "two.txt", "2")
    dispatch(kb)
    kb.wait_status(first, "done")
    kb.wait_status(second, "done")

    result = kb.run("land", f"t_{first}", f"t_{second}", check=False)
    assert result.returncode == 1
    assert "unexpected" not in result.stderr
    assert f"t_{first}: " in result.stdout and "setup" in result.stdout, result.stderr
    assert f"t_{second}: landed" in result.stdout
    assert git(plain, "show", "main:two.txt") == "2"


# -- reopen, cancel and landing ---------------------------------------------------------------


def test_reopen_refuses_a_task_that_is_not_done_and_says_what_to_do(kb, repo, tmp_path):
    go = tmp_path / "go"
    waits = (
        "import pathlib, sys, time\n"
        "while not pathlib.Path(sys.argv[1]).exists(): time.sleep(0.02)\n"
    )
    running = task(kb, repo, "running", waits, go)
    failing = task(kb, repo, "failing", "raise SystemExit(3)", max_attempts=1)
    dispatcher = kb.dispatch("--until-idle", "--max-workers", "2")
    kb.wait_status(running, "running")
    kb.wait_status(failing, "failed")

    for task_id in (running, failing):
        result = kb.run("reopen", f"t_{task_id}", "--comment", "redo it", check=False)
        assert result.returncode == 1
        assert result.stderr.startswith("Error: ") and "only done tasks" in result.stderr
        assert "kanban retry" in result.stderr
    go.write_text("")
    assert dispatcher.wait() == 0
    assert kb.status(running) == "done"
    comments = json.loads(kb.run("show", f"t_{running}", "--json").stdout)["comments"]
    assert not comments  # the refused reopen left nothing behind


def test_a_task_reopened_while_it_is_being_landed_does_not_land(kb, repo, tmp_path):
    work = task(kb, repo, "work", WRITE, "w.txt", "rejected work")
    dispatch(kb)
    kb.wait_status(work, "done")
    before = git(repo, "rev-parse", "main")
    pauses = tmp_path / "pauses"
    pauses.mkdir()
    lander = subprocess.Popen(
        [KANBAN, "land", f"t_{work}"],
        env={**kb.env, "KANBAN_PAUSE": "land.merged", "KANBAN_PAUSE_DIR": str(pauses)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    marker = wait_for(lambda: next(iter(pauses.glob("land.merged.*")), None), "the lander")
    kb.run("reopen", f"t_{work}", "--comment", "No: this is wrong, redo it")
    marker.unlink()
    out, _ = lander.communicate(timeout=60)
    assert "unexpected" not in out
    assert git(repo, "rev-parse", "main") == before, out  # the rejected work stays off main
    assert kb.status(work) == "ready"


def test_a_dependent_of_a_reopened_then_cancelled_blocker_is_not_told_to_land_it(kb, repo):
    a = task(kb, repo, "A", WRITE, "a.txt", "from A")
    b = task(kb, repo, "B", APPEND, "a.txt", after=[a])
    dispatch(kb)
    kb.wait_status(b, "done")
    kb.run("reopen", f"t_{a}", "--comment", "wrong approach")
    kb.run("cancel", f"t_{a}")
    result = kb.run("land", f"t_{b}", check=False)
    assert result.returncode == 1
    assert f"t_{b}: skipped" in result.stdout
    assert "cancelled" in result.stdout and "land it first" not in result.stdout, result.stdout


# -- conflicts --------------------------------------------------------------------------------


def test_a_landing_conflict_resolved_by_deleting_the_file_lands(kb, repo):
    first = task(kb, repo, "first", EDIT_README, "hello from first")
    second = task(kb, repo, "second", EDIT_README, "hello from second")
    dispatch(kb)
    kb.wait_status(first, "done")
    kb.wait_status(second, "done")
    kb.run("land", f"t_{first}", f"t_{second}", check=False)
    assert kb.status(second) == "ready"
    set_command(kb, second, DELETE_README_IF_CONFLICTED)
    dispatch(kb)
    resolved = kb.wait_status(second, "done")
    assert resolved.conflicts == ()
    landed = kb.run("land", f"t_{second}")
    assert f"t_{second}: landed" in landed.stdout
    assert git(repo, "ls-tree", "--name-only", "main", "README") == ""


def test_a_modify_delete_conflict_is_not_resolved_by_a_run_that_ignores_it(kb, repo):
    edit = task(kb, repo, "edit README", EDIT_README, "the task's line", max_attempts=1)
    dispatch(kb)
    kb.wait_status(edit, "done")
    git(repo, "rm", "-q", "README")
    git(repo, "commit", "-q", "-m", "the user deletes README")
    landed = kb.run("land", f"t_{edit}", check=False)
    assert f"t_{edit}: conflict: conflicts with main in README" in landed.stdout
    set_command(kb, edit, "pass")  # its next run does not touch README
    dispatch(kb)
    ended = kb.wait_status(edit, "done", "ready", "failed")
    assert ended.status != "done"  # nobody decided between the edit and the deletion
    assert ended.conflicts == ("README",)


def test_gc_collects_a_subtasks_branch_after_its_parent_landed_squashed(kb, repo):
    from board import tasks

    parent = task(kb, repo, "parent", WRITE, "p.txt", "from the parent")
    argv = [PY, "-c", WRITE, "s.txt", "from the subtask"]
    spec = tasks.NewTask(
        "subtask", repo=str(repo), runtime="command", runtime_options={"argv": argv}, parent=parent
    )
    sub = tasks.create(kb.db, spec)
    dispatch(kb)
    kb.wait_status(parent, "done")
    kb.run("land", f"t_{parent}", "--strategy", "squash")
    assert git(repo, "show", "main:s.txt") == "from the subtask"  # it landed with its parent

    collected = kb.run("gc").stdout
    assert f"deleted branches: {kb.branch(sub)}" in collected, collected


# -- titles -----------------------------------------------------------------------------------

ODD_TITLE = 'Fix `rm -rf "$HOME"`; echo $(id) && exit 1\nsecond line\tand a tab'


def test_a_title_with_shell_characters_and_newlines_makes_a_one_line_subject(kb, repo):
    work = task(kb, repo, ODD_TITLE, WRITE, "odd.txt", "x")
    dispatch(kb)
    kb.wait_status(work, "done")
    kb.run("land", f"t_{work}", "--strategy", "squash")
    subject = git(repo, "log", "-1", "--format=%s", "main")
    assert subject == " ".join(ODD_TITLE.split())
    body = git(repo, "log", "-1", "--format=%B", "main")
    assert f"Kanban-Task: t_{work}" in body
    trailers = git(repo, "log", "-1", "--format=%(trailers:key=Kanban-Task,valueonly)", "main")
    assert trailers == f"t_{work}"


# A stand-in for GitHub's CLI: records its arguments and prints a pull request's URL.
FAKE_GH = """\
#!{python}
import json, pathlib, sys
pathlib.Path({record!r}).write_text(json.dumps(sys.argv[1:]))
print("https://github.invalid/o/r/pull/7")
"""


def test_pr_hands_the_title_to_gh_as_one_argument_and_records_the_url(kb, repo, tmp_path):
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "gh.json"
    gh = bin_dir / "gh"
    gh.write_text(FAKE_GH.format(python=PY, record=str(record)))
    gh.chmod(0o755)
    work = task(kb, repo, ODD_TITLE, WRITE, "pr.txt", "x")
    dispatch(kb)
    kb.wait_status(work, "done")

    path = f"{bin_dir}:{kb.env['PATH']}"
    result = kb.run("land", f"t_{work}", "--pr", "--json", PATH=path)
    argv = json.loads(record.read_text())
    assert argv[argv.index("--title") + 1].startswith('Fix `rm -rf "$HOME"`; echo $(id) && exit')
    assert f"Kanban task t_{work}" in argv[argv.index("--body") + 1]
    assert json.loads(result.stdout)[0]["url"] == "https://github.invalid/o/r/pull/7"
    assert git(remote, "rev-parse", kb.branch(work)) == git(repo, "rev-parse", kb.branch(work))
    assert git(repo, "rev-parse", "main") != git(repo, "rev-parse", kb.branch(work))
