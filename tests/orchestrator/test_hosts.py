"""Several hosts on one machine: dispatchers sharing a PostgreSQL board and a bare remote.

Each "host" is a `kanban dispatch` with a home, a worktree root, a clones root and a logs
directory of its own, and a name of its own (``KANBAN_HOST``): nothing on its disk is
another's, so what one host's work reaches another does only through the board and the
shared remote (a ``git init --bare`` here), as it would across machines. Leases and the
staleness of another host's dispatcher are seconds here (`KANBAN_LEASE`,
`KANBAN_HOST_STALE_AFTER`), minutes by default.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import sqlite_utils
from support.gitrepo import git, make_repo
from support.processes import kill_tree
from support.waiting import wait_for
from support.world import Dispatcher, Kanban

from board import actors, connection, dispatchers, identity, ids, records, runs, tasks
from board.states import Outcome
from orchestrator import remotes, worktrees
from worker import scope

PY = sys.executable

WRITE_OWN_FILE = ["sh", "-c", 'echo "$HERMES_KANBAN_TASK" > "$HERMES_KANBAN_TASK.txt"']

# Fails its first attempt (its work so far is committed and pushed), hangs in its second
# while the flag file exists, and keeps a copy of its prompt in its worktree.
CRASH_THEN_HANG = """
import os, pathlib, sys, time
progress = pathlib.Path("progress.txt")
done = int(progress.read_text()) if progress.exists() else 0
progress.write_text(str(done + 1))
pathlib.Path("prompt.md").write_text(pathlib.Path(os.environ["KANBAN_PROMPT_FILE"]).read_text())
if done == 0:
    sys.exit(1)
while os.path.exists(sys.argv[1]):
    time.sleep(0.05)
"""


NEEDS_A = """
import os, sys
found = open("a.txt").read() if os.path.exists("a.txt") else ""
if found != "from the blocker":
    sys.exit(3)
open("b.txt", "w").write(found + " and b")
"""


class Hosts:
    """One board on PostgreSQL, one bare remote, and the hosts that share them."""

    def __init__(self, tmp: Path, pg_url: str) -> None:
        self.tmp = tmp
        self.url = pg_url
        self.db: sqlite_utils.Database = connection.connect(pg_url)
        self.remote = tmp / "remote.git"
        git(tmp, "init", "-q", "--bare", "-b", "main", str(self.remote))
        seed = make_repo(tmp / "seed", {"README": "shared\n"})
        git(seed, "push", "-q", str(self.remote), "main:main")
        self.remote_url = self.remote.as_uri()
        self.dispatchers: list[Dispatcher] = []

    def env(self, name: str, **extra: str) -> dict[str, str]:
        """A host's environment: its own home and roots, the shared board, its name."""
        root = self.tmp / "hosts" / name
        home = root / "home"
        if not home.exists():
            home.mkdir(parents=True)
            (home / ".gitconfig").write_text((Path.home() / ".gitconfig").read_text())
        env = dict(os.environ)
        env.update(
            HOME=str(home),
            KANBAN_DB=self.url,
            KANBAN_HOST=name,
            KANBAN_WORKTREE_ROOT=str(root / "worktrees"),
            KANBAN_CLONES_ROOT=str(root / "clones"),
            KANBAN_LOGS_DIR=str(root / "logs"),
            KANBAN_SCRATCH_ROOT=str(root / "scratch"),
            KANBAN_KILL_GRACE="1",
            KANBAN_RETRY_DELAY="0.2",
            KANBAN_STALL_TIMEOUT="60",
            KANBAN_LEASE="3",
            KANBAN_HOST_STALE_AFTER="1.5",
            HERMES_HOME=str(home / ".hermes"),
            CODEX_HOME=str(home / ".codex"),
        )
        env.update(extra)
        return env

    def dispatch(self, name: str, *args: str, **extra: str) -> Dispatcher:
        log = self.tmp / f"dispatcher-{name}-{len(self.dispatchers) + 1}.log"
        dispatcher = Dispatcher(log, self.env(name, **extra), args)
        self.dispatchers.append(dispatcher)
        dispatcher.wait_for_output(f"on host {name}")
        return dispatcher

    def base(self) -> str:
        return git(self.remote, "rev-parse", "main")

    def create(self, title: str, argv: list[str], **options: Any) -> int:
        spec = tasks.NewTask(
            title,
            repo=self.remote_url,
            base_ref=self.base(),
            base_branch="main",
            runtime="command",
            runtime_options={"argv": argv},
            **options,
        )
        return tasks.create(self.db, spec)

    @property
    def board_id(self) -> str:
        return identity.board_id(self.db)

    def branch(self, task_id: int) -> str:
        return f"kanban/{self.board_id}/t_{task_id}"

    def on_remote(self, task_id: int, name: str) -> str:
        """A file of the task's branch as the remote has it."""
        return git(self.remote, "show", f"{self.branch(task_id)}:{name}", strip=False)

    def logs(self) -> str:
        return "\n".join(f"--- {d.log.name}\n{d.output()}" for d in self.dispatchers)

    def wait_status(self, task_id: int, *statuses: str, timeout: float = 30) -> records.Task:
        return wait_for(
            lambda: (t := tasks.get(self.db, task_id)).status in statuses and t,
            f"t_{task_id} to be {' or '.join(statuses)}",
            timeout,
            on_fail=self.logs,
        )

    def kill_runs_of(self, host: str) -> None:
        """End every process of the host's un-ended runs: their cgroups, their trees."""
        for run in runs.unended(self.db):
            if run.host == host:
                _end_run(self.board_id, run)

    def cleanup(self) -> None:
        for dispatcher in self.dispatchers:
            if dispatcher.proc.poll() is None:
                dispatcher.proc.kill()
                dispatcher.proc.wait()
        with contextlib.suppress(Exception):
            board_id = self.board_id
            for row in connection.read(self.db, "SELECT id FROM runs"):
                _end_run(board_id, runs.get(self.db, row["id"]))
        self.db.conn.close()


def _end_run(board_id: str, run: records.Run) -> None:
    kill_tree(run.shim_pid, run.shim_started_at)
    kill_tree(run.pid, run.pid_started_at)
    scope.end(scope.path_for(board_id, run.id), grace=0.1, timeout=5)


@pytest.fixture
def hosts(tmp_path: Path, pg_url: str) -> Iterator[Hosts]:
    world = Hosts(tmp_path, pg_url)
    try:
        yield world
    finally:
        world.cleanup()


def test_sixty_tasks_run_once_each_across_three_hosts_and_all_their_work_is_on_the_remote(
    hosts: Hosts,
) -> None:
    names = ("host-a", "host-b", "host-c")
    for name in names:
        hosts.dispatch(name, KANBAN_MAX_WORKERS="2")
    created = [hosts.create(f"write file {n}", WRITE_OWN_FILE) for n in range(60)]

    wait_for(
        lambda: all(tasks.get(hosts.db, t).status == "done" for t in created),
        "all 60 tasks to be done",
        120,
        on_fail=hosts.logs,
    )
    ran_on: dict[str, int] = {}
    for task_id in created:
        [run] = runs.for_task(hosts.db, task_id)  # once, never twice
        assert run.outcome is Outcome.COMPLETED and not run.refunded
        assert run.host in names
        ran_on[run.host] = ran_on.get(run.host, 0) + 1
        assert run.worktree is not None and f"/hosts/{run.host}/worktrees/" in run.worktree
        assert run.reason is None  # pushed: no push failure noted
        assert hosts.on_remote(task_id, f"t_{task_id}.txt") == f"t_{task_id}\n"
        assert git(hosts.remote, "rev-parse", hosts.branch(task_id)) == run.commit_sha
    assert len(ran_on) >= 2, ran_on  # the hosts shared the work
    # Each host cloned the remote once, into its own clones root.
    for name in ran_on:
        clones = list((hosts.tmp / "hosts" / name / "clones").iterdir())
        assert [c.name for c in clones if not c.name.startswith(".")] == [
            remotes.clone_dir(hosts.remote_url, "/").name
        ]


def test_a_host_killed_mid_run_has_its_tasks_finished_by_another_from_their_pushed_work(
    hosts: Hosts,
) -> None:
    flag = hosts.tmp / "hang"
    flag.write_text("")
    host_a = hosts.dispatch("host-a", KANBAN_MAX_WORKERS="3")
    created = [
        hosts.create(f"long job {n}", [PY, "-c", CRASH_THEN_HANG, str(flag)]) for n in range(3)
    ]

    def hanging() -> bool:
        for task_id in created:
            found = runs.for_task(hosts.db, task_id)
            if len(found) < 2 or found[1].pid is None:
                return False
        return True

    wait_for(hanging, "every task's second attempt to hang on host-a", on_fail=hosts.logs)
    first = {t: runs.for_task(hosts.db, t)[0] for t in created}
    for task_id, run in first.items():  # the first attempt's work was pushed
        assert run.outcome is Outcome.CRASHED and run.host == "host-a"
        assert git(hosts.remote, "rev-parse", hosts.branch(task_id)) == run.commit_sha
    # host-a goes away: its dispatcher and every process of its runs, at once.
    os.kill(host_a.proc.pid, signal.SIGKILL)
    host_a.proc.wait()
    hosts.kill_runs_of("host-a")
    flag.unlink()

    hosts.dispatch("host-b")
    for task_id in created:
        hosts.wait_status(task_id, "done")
    for task_id in created:
        _, lost, finished = runs.for_task(hosts.db, task_id)
        assert lost.host == "host-a" and lost.outcome is Outcome.LOST and lost.refunded
        assert "lost with its host host-a" in (lost.reason or "")
        assert lost.lease_expires_at is not None and lost.ended_at is not None
        assert lost.ended_at >= lost.lease_expires_at  # adopted only once its lease expired
        assert finished.host == "host-b" and finished.outcome is Outcome.COMPLETED
        assert finished.started_at >= lost.ended_at
        # host-b went on from the pushed commit (progress 1), not from scratch, and said so.
        assert hosts.on_remote(task_id, "progress.txt") == "2"
        prompt = hosts.on_remote(task_id, "prompt.md")
        sha = first[task_id].commit_sha
        assert f"continuing from the last pushed commit {sha} made on host host-a" in prompt
        assert "/hosts/host-b/worktrees/" in (tasks.get(hosts.db, task_id).worktree or "")
    assert tasks.get(hosts.db, created[0]).attempts == 2  # the lost attempt was refunded


def test_a_dependent_on_one_host_gets_the_work_of_its_blocker_done_on_another(
    hosts: Hosts,
) -> None:
    host_a = hosts.dispatch("host-a")
    blocker = hosts.create("write a", [PY, "-c", "open('a.txt', 'w').write('from the blocker')"])
    hosts.wait_status(blocker, "done")
    host_a.proc.send_signal(signal.SIGTERM)
    assert host_a.wait() == 0

    dependent = hosts.create("build on a", [PY, "-c", NEEDS_A], after=[blocker], max_attempts=1)
    hosts.dispatch("host-b")
    hosts.wait_status(dependent, "done", "failed")

    [run] = runs.for_task(hosts.db, dependent)
    assert (run.host, run.outcome) == ("host-b", Outcome.COMPLETED), run.reason
    assert hosts.on_remote(dependent, "b.txt") == "from the blocker and b"
    [blocker_run] = runs.for_task(hosts.db, blocker)
    assert blocker_run.host == "host-a"
    # host-b never had the blocker's branch of its own: it merged what host-a pushed.
    clone = remotes.clone_dir(hosts.remote_url, hosts.tmp / "hosts" / "host-b" / "clones")
    assert git(clone, "branch", "--list", hosts.branch(blocker)) == ""


def test_landing_a_remote_task_merges_onto_the_remote_base_and_pushes_it_with_a_lease(
    hosts: Hosts,
) -> None:
    host_a = hosts.dispatch("host-a")
    done = hosts.create("write a", [PY, "-c", "open('a.txt', 'w').write('landed work')"])
    hosts.wait_status(done, "done")
    host_a.proc.send_signal(signal.SIGTERM)
    host_a.wait()

    # Landed from a third host, which has no clone yet; while it has merged and checked,
    # someone pushes to main: the lease refuses the stale push and it merges again.
    pauses = hosts.tmp / "pauses"
    pauses.mkdir()
    env = hosts.env("host-c", KANBAN_PAUSE="land.merged", KANBAN_PAUSE_DIR=str(pauses))
    lander = subprocess.Popen(
        [str(Path(sys.executable).with_name("kanban")), "land", f"t_{done}", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        marker = wait_for(lambda: next(iter(pauses.glob("land.merged.*")), None), "a pause")
        other = hosts.tmp / "other"
        git(hosts.tmp, "clone", "-q", str(hosts.remote), str(other))
        (other / "other.txt").write_text("pushed meanwhile\n")
        git(other, "add", "-A")
        git(other, "commit", "-q", "-m", "meanwhile")
        git(other, "push", "-q", "origin", "main")
        moved = git(other, "rev-parse", "HEAD")
        marker.unlink()
        wait_for(lambda: next(iter(pauses.glob("land.merged.*")), None), "the second pause")
        for second in pauses.glob("land.merged.*"):
            second.unlink()
        _, err = lander.communicate(timeout=60)
    finally:
        if lander.poll() is None:
            lander.kill()
            lander.wait()
    assert lander.returncode == 0, err
    main = git(hosts.remote, "rev-parse", "main")
    assert tasks.get(hosts.db, done).landed_sha == main
    git(hosts.remote, "merge-base", "--is-ancestor", moved, main)  # kept, not overwritten
    assert git(hosts.remote, "show", "main:a.txt") == "landed work"
    assert git(hosts.remote, "show", "main:other.txt") == "pushed meanwhile"


def test_another_hosts_run_is_adopted_only_after_its_lease_and_its_pids_are_never_touched(
    hosts: Hosts,
) -> None:
    # A process of this machine that host-a's records happen to name: host-b must take it for
    # nothing of its own, whatever its pid.
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        started = psutil.Process(bystander.pid).create_time()
        task_id = tasks.create(
            hosts.db,
            tasks.NewTask("elsewhere", runtime="command", runtime_options={"argv": ["true"]}),
        )
        gone = dispatchers.register(
            hosts.db,
            pid=bystander.pid,
            pid_started_at=started,
            host="host-a",
            wake_address=None,
        )
        [claim] = runs.claim(hosts.db, dispatcher_id=gone, lease=3600, host="host-a")
        runs.attach(hosts.db, claim.run_id, shim_pid=bystander.pid, shim_started_at=started)
        runs.started(hosts.db, claim.run_id, claim.token, pid=bystander.pid, pid_started_at=started)
        # Its worker reported completion, but its work never left host-a.
        worker = actors.Worker(task_id=task_id, run_id=claim.run_id, token=claim.token)
        tasks.complete(hosts.db, task_id, "did it", actor=worker)
        with connection.transaction(hosts.db) as tx:  # host-a's dispatcher: long stale
            tx.execute("UPDATE dispatchers SET heartbeat_at = 0 WHERE id = ?", (gone,))

        host_b = hosts.dispatch("host-b")
        [me] = [d for d in dispatchers.all_(hosts.db) if d.host == "host-b"]
        for _ in range(3):  # three of host-b's reaps: its lease holds it back
            beat = dispatchers.all_(hosts.db)
            last = next(d.heartbeat_at for d in beat if d.id == me.id)
            wait_for(
                lambda last=last: (
                    next(d.heartbeat_at for d in dispatchers.all_(hosts.db) if d.id == me.id) > last
                ),
                "a beat of host-b",
                on_fail=hosts.logs,
            )
        run = runs.get(hosts.db, claim.run_id)
        assert run.ended_at is None and run.dispatcher_id == gone

        with connection.transaction(hosts.db) as tx:  # its lease runs out
            tx.execute(
                "UPDATE runs SET lease_expires_at = ? WHERE id = ?", (time.time() - 1, run.id)
            )
        hosts.wait_status(task_id, "done")
        lost, finished = runs.for_task(hosts.db, task_id)
        assert lost.outcome is Outcome.LOST and lost.refunded
        assert "lost with its host host-a" in (lost.reason or "")
        assert finished.host == "host-b" and finished.outcome is Outcome.COMPLETED
        assert bystander.poll() is None  # never watched, never killed
        assert "adopting run" in host_b.output()
    finally:
        bystander.kill()
        bystander.wait()


def test_a_push_that_fails_is_recorded_on_the_run_and_the_work_stays_with_its_outcome(
    kb: Kanban,
) -> None:
    remote = kb.tmp / "remote.git"
    git(kb.tmp, "init", "-q", "--bare", "-b", "main", str(remote))
    seed = make_repo(kb.tmp / "seed", {"README": "x\n"})
    git(seed, "push", "-q", str(remote), "main:main")
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'no pushes today' >&2\nexit 1\n")
    hook.chmod(0o755)
    task_id = tasks.create(
        kb.db,
        tasks.NewTask(
            "write",
            repo=remote.as_uri(),
            base_ref=git(remote, "rev-parse", "main"),
            base_branch="main",
            runtime="command",
            runtime_options={"argv": [PY, "-c", "open('w.txt', 'w').write('kept')"]},
        ),
    )
    kb.dispatch("--until-idle", KANBAN_CLONES_ROOT=str(kb.tmp / "clones")).wait()

    task = kb.task(task_id)
    [run] = kb.runs(task_id)
    assert task.status == "done" and run.outcome is Outcome.COMPLETED
    assert "could not push" in (run.reason or "") and "no pushes today" in (run.reason or "")
    assert task.worktree is not None and (Path(task.worktree) / "w.txt").read_text() == "kept"
    assert git(Path(task.worktree), "rev-parse", "HEAD") == run.commit_sha
    assert git(remote, "branch", "--list", "kanban/*") == ""


def test_a_local_checkout_still_works_as_before_on_sqlite_and_records_its_host(
    kb: Kanban, repo: Path
) -> None:
    task_id = kb.create("write", "open('w.txt', 'w').write('local')", repo=repo)
    clones = kb.tmp / "clones"
    kb.dispatch("--until-idle", KANBAN_HOST="solo", KANBAN_CLONES_ROOT=str(clones)).wait()

    task = kb.task(task_id)
    [run] = kb.runs(task_id)
    assert task.status == "done" and task.repo == str(repo) and run.host == "solo"
    assert git(repo, "show", f"{kb.branch(task_id)}:w.txt") == "local"
    assert not clones.exists()  # a local checkout is never cloned
    assert git(repo, "remote") == ""


def test_kanban_create_takes_a_remote_url_or_a_bare_path_and_refuses_unsafe_ones(
    kb: Kanban,
) -> None:
    remote = kb.tmp / "remote.git"
    git(kb.tmp, "init", "-q", "--bare", "-b", "main", str(remote))
    seed = make_repo(kb.tmp / "seed", {"README": "x\n"})
    git(seed, "checkout", "-q", "-b", "develop")
    git(seed, "push", "-q", str(remote), "main:main", "develop:develop")
    main, develop = git(remote, "rev-parse", "main"), git(remote, "rev-parse", "develop")

    by_path = kb.run("create", "from a bare path", "--repo", str(remote), "--json")
    by_url = kb.run(
        "create", "from a URL", "--repo", remote.as_uri(), "--base", "develop", "--json"
    )
    for made, base, branch in ((by_path, main, "main"), (by_url, develop, "develop")):
        task = tasks.get(kb.db, ids.parse(json.loads(made.stdout)["id"]))
        assert task.repo == remote.as_uri()
        assert (task.base_ref, task.base_branch) == (base, branch)

    for bad, why in (
        ("-oProxyCommand=touch /tmp/pwned", "starts with '-'"),
        ("ssh://-oProxyCommand=x/repo", "not a host name"),
        ("ext::sh -c touch% /tmp/pwned", "white space"),
        ("ext::sh", "transport 'ext'"),
        ("https://me:secret@example.com/r.git", "password"),
        ("http://example.com/r.git", "transport 'http'"),
        ("git@host:-x", "starts with '-'"),
        (remote.as_uri() + "?x=1", "no query"),
    ):
        refused = kb.run("create", "bad", f"--repo={bad}", check=False)
        assert refused.returncode == 1, (bad, refused.stderr)
        assert why in refused.stderr and "Error:" in refused.stderr, (bad, refused.stderr)
        assert "secret" not in refused.stderr
    missing = kb.run(
        "create", "no branch", "--repo", remote.as_uri(), "--base", "nope", check=False
    )
    assert missing.returncode == 1 and "no branch or tag 'nope'" in missing.stderr
    assert not Path("/tmp/pwned").exists()


def test_repository_urls_are_checked_and_clones_named_by_a_hash_never_by_task_text() -> None:
    for good in (
        "https://github.com/me/app.git",
        "https://example.com:8443/team/app",
        "ssh://git@example.com:2222/me/app.git",
        "git@github.com:me/app.git",
        "file:///srv/git/app.git",
    ):
        assert remotes.check_url(good) == good
        assert remotes.url_of(good) == good
    assert remotes.url_of("/home/me/app") is None
    assert remotes.url_of("relative/dir") is None
    first = remotes.clone_dir("https://a.example/me/app.git", "/clones")
    second = remotes.clone_dir("https://b.example/me/app.git", "/clones")
    assert first.parent == Path("/clones") and first != second
    assert first.name.startswith("app-") and second.name.startswith("app-")
    odd = remotes.clone_dir("file:///srv/../..%2F$(rm -rf)/x y.git", "/clones")
    assert odd.parent == Path("/clones") and "/" not in odd.name and "$" not in odd.name


def test_a_worktree_catches_up_with_its_branch_as_another_host_pushed_it_losing_nothing(
    tmp_path: Path,
) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    seed = make_repo(tmp_path / "seed", {"README": "x\n"})
    git(seed, "push", "-q", str(remote), "main:main")
    url, branch = remote.as_uri(), "kanban/b/t_1"
    here = remotes.ensure_clone(url, tmp_path / "here")
    there = remotes.ensure_clone(url, tmp_path / "there")
    assert git(here, "for-each-ref", "refs/heads/") == ""  # no stale copy of its main
    base = git(here, "rev-parse", "origin/main")
    mine = worktrees.ensure_worktree(here, tmp_path / "wt-here", branch, base).path
    (mine / "one.txt").write_text("1\n")
    worktrees.commit_all(mine, "one")
    assert remotes.push(here, branch)
    # Another host takes it from there, and pushes more.
    remotes.fetch(there)
    theirs = worktrees.ensure_worktree(
        there, tmp_path / "wt-there", branch, remotes.pushed(there, branch) or ""
    ).path
    (theirs / "two.txt").write_text("2\n")
    worktrees.commit_all(theirs, "two")
    assert remotes.push(there, branch)

    remotes.fetch(here)
    pushed = remotes.pushed(here, branch)
    assert pushed is not None
    assert remotes.tips(here, [branch]) == {branch: [remotes.remote_ref(branch)]}
    (mine / "left.txt").write_text("left here\n")  # never committed: kept all the same
    assert remotes.catch_up(mine, branch, pushed, "t_1") == []  # a fast-forward
    assert git(mine, "rev-parse", "HEAD") == pushed
    assert (mine / "two.txt").exists() and (mine / "left.txt").read_text() == "left here\n"
    assert remotes.catch_up(mine, branch, pushed, "t_1") is None  # nothing more to take

    # Diverged: this host could not push, the other pushed again. Both are merged.
    (mine / "three.txt").write_text("3\n")
    worktrees.commit_all(mine, "three")
    remotes.fetch(there)
    (theirs / "four.txt").write_text("4\n")
    worktrees.commit_all(theirs, "four")
    assert remotes.push(there, branch)
    remotes.fetch(here)
    assert remotes.tips(here, [branch]) == {
        branch: [remotes.remote_ref(branch), f"refs/heads/{branch}"]
    }
    merged = remotes.catch_up(mine, branch, remotes.pushed(here, branch) or "", "t_1")
    assert merged is not None and [m.status for m in merged] == ["merged"]
    assert {p.name for p in mine.iterdir()} >= {"one.txt", "two.txt", "three.txt", "four.txt"}
    assert remotes.push(here, branch)  # a descendant of what was pushed: accepted
