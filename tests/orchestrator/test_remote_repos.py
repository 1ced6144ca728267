"""Tasks of a remote repository (a URL) through every command that names a repository: gc,
diff, land --push and --pr, batch files, the web board's create form, doctor --repo.

The remote is a ``git init --bare`` in tmp, named by its ``file://`` URL; "hosts" are one
machine's `kanban` processes with a name (``KANBAN_HOST``) and a clones root of their own, on
one SQLite board: what a host sees of another's work comes only through the board and the
remote.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from support.gitrepo import git, make_repo
from support.world import Kanban

from board import connection, errors, tasks
from orchestrator import batch, remotes
from orchestrator.cli import setup
from orchestrator.web import actions

PY = sys.executable

WRITE = "import sys; open(sys.argv[1], 'w').write(sys.argv[2])"

# A teardown writing to a file outside the worktree, named by a variable of the gc process.
MARK = "import os; open(os.environ['TEARDOWN_MARKS'], 'a').write(os.getcwd() + '\\n')"

# A stand-in for GitHub's CLI: records its arguments and where it ran, prints a PR's URL.
FAKE_GH = """\
#!{python}
import json, os, pathlib, sys
pathlib.Path({record!r}).write_text(json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd()}}))
print("https://github.invalid/o/r/pull/9")
"""


def _remote(tmp: Path, files: dict[str, str] | None = None) -> Path:
    """A bare repository with a branch main (and develop), as a shared remote would be."""
    remote = tmp / "remote.git"
    git(tmp, "init", "-q", "--bare", "-b", "main", str(remote))
    seed = make_repo(tmp / "seed", files or {"README": "shared\n"})
    git(seed, "branch", "develop")
    git(seed, "push", "-q", str(remote), "main:main", "develop:develop")
    return remote


def _host(kb: Kanban, name: str, *, clones: str | None = None) -> dict[str, str]:
    """A host's name and clones root (its worktrees go under the world's worktree root)."""
    return {"KANBAN_HOST": name, "KANBAN_CLONES_ROOT": str(kb.tmp / f"clones-{clones or name}")}


def _task(kb: Kanban, remote: Path, name: str, text: str) -> int:
    """A task of the remote that writes `name` in its worktree."""
    return tasks.create(
        kb.db,
        tasks.NewTask(
            f"write {name}",
            repo=remote.as_uri(),
            base_ref=git(remote, "rev-parse", "main"),
            base_branch="main",
            runtime="command",
            runtime_options={"argv": [PY, "-c", WRITE, name, text]},
        ),
    )


def _run_all(kb: Kanban, host: dict[str, str]) -> None:
    assert kb.dispatch("--until-idle", **host).wait() == 0, kb.logs()


def _push_to_main(kb: Kanban, remote: Path, name: str) -> str:
    """Someone else's commit on the remote's main; returns it."""
    other = kb.tmp / f"other-{name}"
    git(kb.tmp, "clone", "-q", str(remote), str(other))
    (other / name).write_text("pushed by someone else\n")
    git(other, "add", "-A")
    git(other, "commit", "-q", "-m", f"add {name}")
    git(other, "push", "-q", "origin", "main")
    return git(other, "rev-parse", "HEAD")


def _gc(kb: Kanban, host: dict[str, str], **env: str) -> tuple[int, dict[str, list[str]]]:
    result = kb.run("gc", "--json", check=False, **host, **env)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def _fake_gh(kb: Kanban) -> tuple[str, Path]:
    """A PATH with the fake gh first, and the file it records to."""
    bin_dir = kb.tmp / "gh-bin"
    bin_dir.mkdir()
    record = kb.tmp / "gh.json"
    gh = bin_dir / "gh"
    gh.write_text(FAKE_GH.format(python=PY, record=str(record)))
    gh.chmod(0o755)
    return f"{bin_dir}:{kb.env['PATH']}", record


def _path_without_gh(kb: Kanban) -> str:
    """A PATH holding only what kanban runs besides gh (git, and what git itself runs)."""
    bin_dir = kb.tmp / "no-gh-bin"
    bin_dir.mkdir()
    for name in ("git", "sh", "env"):
        found = shutil.which(name)
        assert found is not None, name
        (bin_dir / name).symlink_to(found)
    return str(bin_dir)


# --- gc ----------------------------------------------------------------------------------


def test_gc_collects_a_remote_tasks_worktree_and_clone_branch_on_its_own_host_only(kb):
    teardown = json.dumps([PY, "-c", MARK])
    remote = _remote(
        kb.tmp, {"README": "x\n", ".kanban.toml": f"[workspace]\nteardown = [{teardown}]\n"}
    )
    task_id = _task(kb, remote, "a.txt", "work of a")
    host_a = _host(kb, "host-a")
    _run_all(kb, host_a)
    task = kb.task(task_id)
    tree, branch = Path(task.worktree), kb.branch(task_id)
    clone = remotes.clone_dir(remote.as_uri(), host_a["KANBAN_CLONES_ROOT"])
    assert task.status == "done" and tree.is_dir() and git(clone, "branch", "--list", branch)
    marks = kb.tmp / "marks"

    # Another host has no clone of it: nothing of the task is on its disk, nothing is gone.
    code, report = _gc(kb, _host(kb, "host-b"), TEARDOWN_MARKS=str(marks))
    assert code == 0 and not any(report.values()), report
    # Another host sharing host-a's disk (its clones root) leaves host-a's runs alone.
    code, report = _gc(kb, _host(kb, "host-b", clones="host-a"), TEARDOWN_MARKS=str(marks))
    assert code == 0 and not any(report.values()), report
    assert tree.is_dir() and not marks.exists()

    code, report = _gc(kb, host_a, TEARDOWN_MARKS=str(marks))

    assert code == 0, report
    assert report["removed_worktrees"] == [str(tree)] and report["deleted_branches"] == [branch]
    assert not tree.exists() and git(clone, "branch", "--list", branch) == ""
    assert marks.read_text().splitlines() == [str(tree)]  # its teardown ran there first
    assert git(remote, "show", f"{branch}:a.txt") == "work of a"  # the remote keeps the work
    code, report = _gc(kb, host_a, TEARDOWN_MARKS=str(marks))
    assert code == 0 and not any(report.values()), report


def test_gc_keeps_a_remote_tasks_work_that_only_this_host_has_and_says_how_to_push_it(kb):
    remote = _remote(kb.tmp)
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'no pushes today' >&2\nexit 1\n")
    hook.chmod(0o755)
    task_id = _task(kb, remote, "u.txt", "unpushed")
    host = _host(kb, "solo")
    _run_all(kb, host)
    tree, branch = Path(kb.task(task_id).worktree), kb.branch(task_id)
    assert git(remote, "branch", "--list", branch) == ""  # its push failed

    code, report = _gc(kb, host)

    assert code == 1
    assert report["kept_worktrees"] == [str(tree)] and report["kept_branches"] == [branch]
    [problem] = report["problems"]
    assert "on no branch of the remote" in problem and f"git -C {tree} push origin HEAD" in problem
    assert (tree / "u.txt").read_text() == "unpushed"

    # Pushes work again: `kanban land --pr` pushes this host's branch (then gh opens the PR).
    hook.unlink()
    path, _ = _fake_gh(kb)
    opened = kb.run("land", f"t_{task_id}", "--pr", "--json", PATH=path, **host)
    assert json.loads(opened.stdout)[0]["url"] == "https://github.invalid/o/r/pull/9"
    assert git(remote, "show", f"{branch}:u.txt") == "unpushed"

    code, report = _gc(kb, host)
    assert code == 0 and report["removed_worktrees"] == [str(tree)], report
    assert report["deleted_branches"] == [branch]


def test_gc_of_a_remote_it_cannot_fetch_collects_nothing_and_says_why(kb):
    remote = _remote(kb.tmp)
    task_id = _task(kb, remote, "f.txt", "x")
    host = _host(kb, "solo")
    _run_all(kb, host)
    tree = Path(kb.task(task_id).worktree)
    remote.rename(kb.tmp / "moved.git")

    code, report = _gc(kb, host)

    assert code == 1 and tree.is_dir()
    assert report["kept_worktrees"] == [str(tree)] and report["removed_worktrees"] == []
    [problem] = report["problems"]
    assert "cannot fetch" in problem and "repository is gone" not in problem


# --- diff, land --push, land --pr ---------------------------------------------------------


def test_diff_and_land_of_remote_tasks_from_a_host_that_never_ran_them(kb):
    remote = _remote(kb.tmp)
    diffed = _task(kb, remote, "d.txt", "to review")
    with_gh = _task(kb, remote, "g.txt", "for a pull request")
    without_gh = _task(kb, remote, "n.txt", "no gh here")
    _run_all(kb, _host(kb, "host-a"))
    _push_to_main(kb, remote, "meanwhile.txt")
    host_b = _host(kb, "host-b")
    clone_b = remotes.clone_dir(remote.as_uri(), host_b["KANBAN_CLONES_ROOT"])
    assert not clone_b.exists()

    # diff: host-b clones, fetches, and shows the task's own changes against main as it is.
    shown = kb.run("diff", f"t_{diffed}", "--patch", **host_b).stdout
    assert "d.txt" in shown and "+to review" in shown and "meanwhile.txt" not in shown
    assert (clone_b / ".git").is_dir()
    refused = kb.run("diff", f"t_{diffed}", "--into", "nosuch", check=False, **host_b)
    assert refused.returncode == 1 and "has no branch nosuch" in refused.stderr

    # --pr: gh runs in host-b's clone, against the remote's base and the task's branch.
    path, record = _fake_gh(kb)
    opened = kb.run("land", f"t_{with_gh}", "--pr", "--json", PATH=path, **host_b)
    assert json.loads(opened.stdout)[0]["ok"] is True
    called = json.loads(record.read_text())
    assert Path(called["cwd"]) == clone_b
    argv = called["argv"]
    assert argv[:2] == ["pr", "create"] and argv[argv.index("--base") + 1] == "main"
    assert argv[argv.index("--head") + 1] == kb.branch(with_gh)
    assert kb.task(with_gh).pr_url == "https://github.invalid/o/r/pull/9"
    # Without gh: today's message, the branch being on the remote already.
    missing = kb.run(
        "land", f"t_{without_gh}", "--pr", check=False, PATH=_path_without_gh(kb), **host_b
    )
    assert missing.returncode == 1 and "gh (GitHub's CLI) is not installed" in missing.stdout
    assert f"pushed {kb.branch(without_gh)} to {remote.as_uri()}" in missing.stdout

    # --push: landing a remote task is pushing its base; said so, no error.
    landed = kb.run("land", f"t_{diffed}", "--push", "--json", **host_b)
    report = json.loads(landed.stdout)
    assert report["pushed"] == [
        {"ok": True, "text": f"push: main to {remote.as_uri()}: done as it landed"}
    ]
    assert git(remote, "show", "main:d.txt") == "to review"
    assert git(remote, "show", "main:meanwhile.txt") == "pushed by someone else"


# --- batch files and the web board's create form ------------------------------------------


def test_a_batch_file_takes_a_remote_url_or_a_bare_path_relative_to_itself(
    kb, tmp_path, monkeypatch
):
    remote = _remote(tmp_path)
    checkout = make_repo(tmp_path / "batches" / "app")
    path = tmp_path / "batches" / "nightly.toml"
    path.write_text(
        f'[tasks.by_url]\nrepo = "{remote.as_uri()}"\nbase = "develop"\ncommand = "true"\n'
        '[tasks.by_bare_path]\nrepo = "../remote.git"\ncommand = "true"\n'
        '[tasks.by_checkout]\nrepo = "app"\ncommand = "true"\n'
    )
    monkeypatch.chdir(tmp_path / "seed")  # relative paths are the batch file's, not the caller's

    entries = {entry.key: entry.task for entry in batch.load(path).entries}

    main, develop = git(remote, "rev-parse", "main"), git(remote, "rev-parse", "develop")
    url = entries["by_url"]
    assert (url.repo, url.base_ref, url.base_branch) == (remote.as_uri(), develop, "develop")
    bare = entries["by_bare_path"]
    assert (bare.repo, bare.base_ref, bare.base_branch) == (remote.as_uri(), main, "main")
    local = entries["by_checkout"]
    assert local.repo == str(checkout) and local.base_branch == "main"

    path.write_text('[tasks.bad]\ncommand = "true"\nrepo = "https://me:pw@example.com/r.git"\n')
    with pytest.raises(batch.BatchError) as refused:
        batch.load(path)
    assert "password" in str(refused.value) and ":3:" in str(refused.value)


def test_the_web_boards_create_form_takes_a_remote_url(kb, tmp_path):
    remote = _remote(tmp_path)
    develop = git(remote, "rev-parse", "develop")

    made = actions.create(
        kb.db, {"title": "fix", "repo": f" {remote.as_uri()} ", "base": "develop"}
    )

    task = tasks.get(kb.db, int(made["id"].removeprefix("t_")))
    assert (task.repo, task.base_ref, task.base_branch) == (remote.as_uri(), develop, "develop")
    by_path = actions.create(kb.db, {"title": "fix", "repo": str(remote)})
    assert tasks.get(kb.db, int(by_path["id"].removeprefix("t_"))).repo == remote.as_uri()
    with pytest.raises(remotes.InvalidURL):
        actions.create(kb.db, {"title": "bad", "repo": "ext::sh -c id"})
    assert len(connection.read(kb.db, "SELECT id FROM tasks")) == 2


# --- doctor --repo ------------------------------------------------------------------------

# A stand-in ssh that records its arguments and fails the way ssh fails without a key.
FAKE_SSH = """\
#!{python}
import pathlib, sys
pathlib.Path({record!r}).write_text(" ".join(sys.argv[1:]))
print("git@git.invalid: Permission denied (publickey).", file=sys.stderr)
sys.exit(255)
"""

# One that never answers (a host dropping packets); it gives up on its own after a while.
SILENT_SSH = """\
#!{python}
import time
time.sleep(4)
"""


def _doctor_remote(kb: Kanban, repo: str, **env: str) -> tuple[int, dict[str, object]]:
    """`kanban doctor --repo REPO`'s remote check (the agents' checks fail fast here)."""
    result = kb.run(
        "doctor",
        "--repo",
        repo,
        "--json",
        check=False,
        KANBAN_HERMES_BIN="/nonexistent/hermes",
        KANBAN_CODEX_BIN="/nonexistent/codex",
        **env,
    )
    return result.returncode, next(c for c in json.loads(result.stdout) if c["name"] == "remote")


def test_doctor_checks_that_a_remote_answers_and_says_how_to_fix_it_when_not(kb, tmp_path):
    remote = _remote(tmp_path)
    _, found = _doctor_remote(kb, remote.as_uri())
    assert found["ok"] is True and "2 branch(es)" in str(found["detail"])
    _, by_path = _doctor_remote(kb, str(remote))  # a bare repository's path is its remote
    assert by_path["ok"] is True and remote.as_uri() in str(by_path["detail"])

    code, missing = _doctor_remote(kb, (tmp_path / "nowhere.git").as_uri())
    assert code == 1 and missing["ok"] is False and "check the URL" in str(missing["fix"])

    empty = tmp_path / "empty.git"
    git(tmp_path, "init", "-q", "--bare", str(empty))
    _, bare = _doctor_remote(kb, empty.as_uri())
    assert bare["ok"] is False and "push a branch" in str(bare["fix"])

    _, refused = _doctor_remote(kb, "https://me:secret@example.com/r.git")
    assert refused["ok"] is False and "password" in str(refused["detail"])
    assert "secret" not in json.dumps(refused)

    record = tmp_path / "ssh-args"
    ssh = tmp_path / "ssh-bin" / "ssh"
    ssh.parent.mkdir()
    ssh.write_text(FAKE_SSH.format(python=PY, record=str(record)))
    ssh.chmod(0o755)
    _, denied = _doctor_remote(
        kb, "ssh://git@git.invalid/team/app.git", GIT_SSH_COMMAND=f"{ssh} -i key"
    )
    assert denied["ok"] is False and "Permission denied" in str(denied["detail"])
    assert "ssh-agent" in str(denied["fix"]) and "credential helper" in str(denied["fix"])
    # The user's own ssh command, made unable to prompt: a dispatcher has no one to answer.
    assert record.read_text().startswith("-i key -o BatchMode=yes")


def test_a_remote_that_does_not_answer_is_given_up_on_after_the_timeout(tmp_path, monkeypatch):
    ssh = tmp_path / "ssh"
    ssh.write_text(SILENT_SSH.format(python=PY))
    ssh.chmod(0o755)
    monkeypatch.setenv("GIT_SSH_COMMAND", str(ssh))

    with pytest.raises(errors.KanbanError, match="did not answer within 1 s") as raised:
        remotes.probe("ssh://git.invalid/team/app.git", timeout=1)

    check = setup._remote_fix(str(raised.value), "ssh://git.invalid/team/app.git")
    assert "reaches it" in check
