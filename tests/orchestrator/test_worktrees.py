"""orchestrator.git, .worktrees and .merging against real repositories made with `git init`."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from support import REPO_ROOT
from support.gitrepo import git, make_repo

import orchestrator.git
from orchestrator import config, merging, worktrees

BOARD = "0b0a4d00"  # a board's id, as board.identity makes them


def commit_file(repo: Path, name: str, text: str, message: str | None = None) -> str:
    (repo / name).parent.mkdir(parents=True, exist_ok=True)
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", message or f"write {name}")
    return git(repo, "rev-parse", "HEAD")


def branches(repo: Path) -> set[str]:
    return set(git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads").split())


def worktree_paths(repo: Path) -> list[Path]:
    out = git(repo, "worktree", "list", "--porcelain")
    return [
        Path(line.split(" ", 1)[1]) for line in out.splitlines() if line.startswith("worktree ")
    ]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "app")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "worktrees"


def placed(repo: Path, root: Path, task_id: str) -> tuple[str, Path]:
    """The task's branch and worktree, named as the supervisor names them."""
    return worktrees.placement(repo, root=root, prefix="kanban/", board_id=BOARD, task_id=task_id)


def new_worktree(repo: Path, root: Path, task_id: str, base: str = "HEAD") -> worktrees.Worktree:
    branch, path = placed(repo, root, task_id)
    return worktrees.ensure_worktree(repo, path, branch, base)


# --- creation ----------------------------------------------------------------------------


def test_worktree_is_created_on_a_new_branch_at_the_base_sha(repo: Path, root: Path) -> None:
    first = git(repo, "rev-parse", "HEAD")
    commit_file(repo, "later.txt", "later\n")

    wt = new_worktree(repo, root, "t_1", base=first)

    assert wt.created is True
    assert wt.branch == f"kanban/{BOARD}/t_1"
    assert wt.head == first
    assert wt.path.parents[2] == root.resolve()
    assert wt.path.name == "t_1"
    assert wt.path.parent.name == BOARD
    assert wt.path.parents[1].name.startswith("app-")
    assert git(repo, "rev-parse", f"kanban/{BOARD}/t_1") == first
    assert git(wt.path, "symbolic-ref", "HEAD") == f"refs/heads/kanban/{BOARD}/t_1"
    assert (wt.path / "README").read_text() == "hello\n"
    assert not (wt.path / "later.txt").exists()
    assert wt.path in worktree_paths(repo)


def test_second_call_reuses_the_worktree_as_it_is(repo: Path, root: Path) -> None:
    first = new_worktree(repo, root, "t_1")
    (first.path / "README").write_text("changed by the worker\n")
    sha = commit_file(first.path, "work.txt", "work\n")
    (first.path / "scratch.txt").write_text("uncommitted\n")

    again = new_worktree(repo, root, "t_1")

    assert again.created is False
    assert again.path == first.path
    assert again.head == sha
    assert (again.path / "README").read_text() == "changed by the worker\n"
    assert (again.path / "scratch.txt").read_text() == "uncommitted\n"


def test_existing_branch_without_worktree_gets_one_without_reset(repo: Path, root: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    branch, _ = placed(repo, root, "t_1")
    git(repo, "checkout", "-q", "-b", branch)
    ahead = commit_file(repo, "done.txt", "earlier work\n")
    git(repo, "checkout", "-q", "main")

    wt = new_worktree(repo, root, "t_1", base=base)

    assert wt.created is True
    assert wt.head == ahead
    assert git(repo, "rev-parse", branch) == ahead
    assert (wt.path / "done.txt").read_text() == "earlier work\n"


def test_worktree_deleted_by_hand_is_recreated_from_its_branch(repo: Path, root: Path) -> None:
    first = new_worktree(repo, root, "t_1")
    sha = commit_file(first.path, "work.txt", "work\n")
    subprocess.run(["rm", "-rf", str(first.path)], check=True)

    again = new_worktree(repo, root, "t_1")

    assert again.created is True
    assert again.head == sha
    assert (again.path / "work.txt").read_text() == "work\n"


def test_worktree_left_half_made_by_a_killed_git_is_rebuilt(repo: Path, root: Path) -> None:
    branch, path = placed(repo, root, "t_1")
    # What a `git worktree add` killed mid-checkout leaves: git's own "initializing" lock.
    locked = ["--lock", "--reason", "initializing"]
    git(repo, "worktree", "add", *locked, "-b", branch, str(path), "HEAD")
    (path / "README").unlink()

    wt = worktrees.ensure_worktree(repo, path, branch, "HEAD")

    assert wt.created is True
    assert (path / "README").read_text() == "hello\n"
    assert "locked" not in git(repo, "worktree", "list", "--porcelain")


def test_branch_checked_out_elsewhere_is_refused(repo: Path, root: Path) -> None:
    wt = new_worktree(repo, root, "t_1")
    with pytest.raises(orchestrator.git.GitError, match="already checked out"):
        worktrees.ensure_worktree(repo, root / "elsewhere", wt.branch, "HEAD")


def test_inherited_git_variables_do_not_redirect_anything(
    repo: Path, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoy = make_repo(tmp_path / "decoy")
    decoy_head = commit_file(decoy, "decoy.txt", "decoy\n")
    decoy_index = (decoy / ".git" / "index").read_bytes()
    monkeypatch.setenv("GIT_DIR", str(decoy / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(decoy))
    monkeypatch.setenv("GIT_INDEX_FILE", str(decoy / ".git" / "index"))
    monkeypatch.setenv("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")

    info = orchestrator.git.open_repo(repo)
    assert info.path == repo
    assert info.head == git(repo, "rev-parse", "HEAD") != decoy_head
    assert orchestrator.git.resolve_base(repo) == info.head
    wt = new_worktree(repo, root, "t_1")
    (wt.path / "new.txt").write_text("new\n")
    sha = worktrees.commit_all(wt.path, "task t_1, run 1")
    assert sha is not None
    assert orchestrator.git.head(wt.path) == sha

    assert git(repo, "rev-parse", f"kanban/{BOARD}/t_1") == sha
    assert branches(decoy) == {"main"}
    assert git(decoy, "rev-parse", "HEAD") == decoy_head
    assert (decoy / ".git" / "index").read_bytes() == decoy_index
    assert git(decoy, "status", "--porcelain") == ""
    env = orchestrator.git.clean_environ()
    assert not {"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"} & env.keys()
    assert env["GIT_SSH_COMMAND"] == "ssh -o BatchMode=yes"
    assert env["HOME"] == os.environ["HOME"]


def test_clean_environ_strips_location_and_identity_but_keeps_transport() -> None:
    env = orchestrator.git.clean_environ(
        {
            "PATH": "/bin",
            "GIT_DIR": "x",
            "GIT_OBJECT_DIRECTORY": "x",
            "GIT_COMMON_DIR": "x",
            "GIT_AUTHOR_DATE": "x",
            "GIT_CONFIG_PARAMETERS": "x",
            "GIT_ASKPASS": "a",
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "k",
            "GIT_CONFIG_VALUE_0": "v",
        }
    )
    assert env == {
        "PATH": "/bin",
        "GIT_ASKPASS": "a",
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "k",
        "GIT_CONFIG_VALUE_0": "v",
    }


# --- failures are cleaned up -----------------------------------------------------------


def assert_nothing_left(repo: Path, path: Path) -> None:
    assert branches(repo) == {"main"}
    assert worktree_paths(repo) == [repo]
    assert not (repo / ".git" / "worktrees").exists() or not any(
        (repo / ".git" / "worktrees").iterdir()
    )


def test_creation_failing_halfway_leaves_no_branch_and_no_directory(repo: Path, root: Path) -> None:
    hook = repo / ".git" / "hooks" / "post-checkout"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text("#!/bin/sh\necho 'checkout hook says no' >&2\nexit 3\n")
    hook.chmod(0o755)
    branch, path = placed(repo, root, "t_1")

    with pytest.raises(orchestrator.git.GitError, match="checkout hook says no"):
        worktrees.ensure_worktree(repo, path, branch, "HEAD")

    assert not path.exists()
    assert_nothing_left(repo, path)


def test_creation_onto_an_existing_file_keeps_the_file_and_leaves_no_branch(
    repo: Path, root: Path
) -> None:
    path = root / "t_1"
    root.mkdir()
    path.write_text("not yours\n")

    with pytest.raises(orchestrator.git.GitError, match="already exists"):
        worktrees.ensure_worktree(repo, path, "kanban/t_1", "HEAD")

    assert path.read_text() == "not yours\n"
    assert_nothing_left(repo, path)


def test_unknown_base_creates_nothing(repo: Path, root: Path) -> None:
    path = root / "t_1"
    with pytest.raises(orchestrator.git.GitError, match="unknown ref 'no-such-branch'"):
        worktrees.ensure_worktree(repo, path, "kanban/t_1", "no-such-branch")
    assert not path.exists()
    assert_nothing_left(repo, path)


# --- concurrency ---------------------------------------------------------------------------


def test_threads_creating_worktrees_in_one_repo_all_succeed(repo: Path, root: Path) -> None:
    ids = [f"t_{i}" for i in range(12)]
    results: dict[str, worktrees.Worktree] = {}
    failures: list[BaseException] = []
    start = threading.Barrier(len(ids))

    def create(task_id: str) -> None:
        try:
            start.wait()
            results[task_id] = new_worktree(repo, root, task_id)
        except BaseException as exc:  # collected and re-raised by the test below
            failures.append(exc)

    threads = [threading.Thread(target=create, args=(task_id,)) for task_id in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert all(results[t].created for t in ids)
    assert branches(repo) == {"main", *(f"kanban/{BOARD}/{t}" for t in ids)}
    assert sorted(worktree_paths(repo)) == sorted([repo, *(results[t].path for t in ids)])


CREATE_IN_CHILD = """
import sys
from pathlib import Path
from orchestrator import worktrees
repo, root = Path(sys.argv[1]), Path(sys.argv[2])
sys.stdin.readline()  # the test writes a line once every child is running
for task_id in sys.argv[4:]:
    branch, path = worktrees.placement(
        repo, root=root, prefix="kanban/", board_id=sys.argv[3], task_id=task_id
    )
    worktrees.ensure_worktree(repo, path, branch, "HEAD")
"""


def test_processes_creating_worktrees_in_one_repo_all_succeed(
    repo: Path, root: Path, tmp_path: Path
) -> None:
    groups = [[f"t_{p}{i}" for i in range(4)] for p in range(4)]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CREATE_IN_CHILD, str(repo), str(root), BOARD, *group],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for group in groups
    ]
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    outputs = [child.communicate(timeout=60)[1] for child in children]

    assert [child.returncode for child in children] == [0] * len(children), outputs
    ids = [task_id for group in groups for task_id in group]
    assert branches(repo) == {"main", *(f"kanban/{BOARD}/{t}" for t in ids)}
    assert len(worktree_paths(repo)) == 1 + len(ids)


HOLD_LOCK = """
import fcntl, sys
fd = open(sys.argv[1], "a")
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.readline()
"""


def test_creation_waits_for_the_lock_held_by_another_process(repo: Path, root: Path) -> None:
    done = threading.Event()
    thread = threading.Thread(target=lambda: (new_worktree(repo, root, "t_1"), done.set()))
    lock_file = repo / ".git" / worktrees.LOCK_NAME
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(lock_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline() == "locked\n"
        thread.start()
        # A bounded wait for something that must not happen while the other process holds it.
        assert not done.wait(0.5)
        assert f"kanban/{BOARD}/t_1" not in branches(repo)
        holder.stdin.write("release\n")
    thread.join(timeout=30)
    assert done.is_set()
    assert f"kanban/{BOARD}/t_1" in branches(repo)


# --- commit_all --------------------------------------------------------------------------


def test_commit_all_captures_modified_new_and_deleted_files(repo: Path, root: Path) -> None:
    commit_file(repo, "gone.txt", "to delete\n")
    wt = new_worktree(repo, root, "t_1")
    (wt.path / "README").write_text("modified\n")
    (wt.path / "gone.txt").unlink()
    (wt.path / "pkg").mkdir()
    (wt.path / "pkg" / "new.py").write_text("x = 1\n")

    sha = worktrees.commit_all(wt.path, "kanban: task t_1, run 3")

    assert sha == git(repo, "rev-parse", f"kanban/{BOARD}/t_1")
    assert git(wt.path, "log", "-1", "--format=%s") == "kanban: task t_1, run 3"
    changes = git(wt.path, "show", "--name-status", "--format=", sha).splitlines()
    assert sorted(changes) == ["A\tpkg/new.py", "D\tgone.txt", "M\tREADME"]
    assert git(wt.path, "status", "--porcelain") == ""
    assert worktrees.commit_all(wt.path, "again") is None
    assert git(repo, "rev-parse", f"kanban/{BOARD}/t_1") == sha


def test_commit_all_leaves_ignored_files_out(repo: Path, root: Path) -> None:
    wt = new_worktree(repo, root, "t_1")
    (wt.path / ".gitignore").write_text("*.log\nbuild/\n")
    (wt.path / "debug.log").write_text("noise\n")
    (wt.path / "build").mkdir()
    (wt.path / "build" / "out.o").write_text("binary\n")

    sha = worktrees.commit_all(wt.path, "task t_1")

    assert git(wt.path, "show", "--name-only", "--format=", sha).splitlines() == [".gitignore"]
    assert (wt.path / "debug.log").exists()


def test_commit_all_uses_the_users_identity(repo: Path, root: Path) -> None:
    wt = new_worktree(repo, root, "t_1")
    (wt.path / "a.txt").write_text("a\n")
    sha = worktrees.commit_all(wt.path, "task t_1")
    assert git(wt.path, "log", "-1", "--format=%an <%ae>|%cn <%ce>", sha) == (
        "Kanban Tests <tests@kanban.invalid>|Kanban Tests <tests@kanban.invalid>"
    )


def test_commit_all_falls_back_to_a_fixed_identity_when_none_is_configured(
    repo: Path, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wt = new_worktree(repo, root, "t_1")
    bare_home = tmp_path / "nobody"
    bare_home.mkdir()
    (bare_home / ".gitconfig").write_text("[commit]\n\tgpgsign = false\n")
    monkeypatch.setenv("HOME", str(bare_home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(bare_home / ".config"))
    (wt.path / "a.txt").write_text("a\n")

    sha = worktrees.commit_all(wt.path, "task t_1")

    assert sha is not None
    assert git(wt.path, "log", "-1", "--format=%an <%ae>|%cn <%ce>", sha) == (
        "kanban <kanban@localhost>|kanban <kanban@localhost>"
    )


def test_commit_all_skips_commit_hooks(repo: Path, root: Path) -> None:
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    wt = new_worktree(repo, root, "t_1")
    (wt.path / "a.txt").write_text("a\n")
    assert worktrees.commit_all(wt.path, "task t_1") is not None


def test_commit_all_concludes_a_conflicted_merge_with_markers(repo: Path, root: Path) -> None:
    other = new_worktree(repo, root, "t_2")
    commit_file(other.path, "README", "theirs\n")
    wt = new_worktree(repo, root, "t_1")
    commit_file(wt.path, "README", "ours\n")
    git(wt.path, "merge", f"kanban/{BOARD}/t_2", check=False)

    sha = worktrees.commit_all(wt.path, "task t_1")

    assert sha is not None
    assert len(git(wt.path, "log", "-1", "--format=%P", sha).split()) == 2
    assert "<<<<<<<" in git(wt.path, "show", f"{sha}:README")
    assert git(wt.path, "status", "--porcelain") == ""


# --- merge_branches ----------------------------------------------------------------------


def test_merge_branches_merges_skips_and_commits_conflicts(repo: Path, root: Path) -> None:
    parent = new_worktree(repo, root, "t_p")
    clean = new_worktree(repo, root, "t_a")
    commit_file(clean.path, "a.txt", "from a\n")
    new_worktree(repo, root, "t_b")  # no commits: already contained in the parent
    conflicting = new_worktree(repo, root, "t_c")
    commit_file(conflicting.path, "README", "from c\n")
    later = new_worktree(repo, root, "t_d")
    commit_file(later.path, "d.txt", "from d\n")
    commit_file(parent.path, "README", "from the parent\n")
    parent_head = orchestrator.git.head(parent.path)

    outcomes = merging.merge_branches(
        parent.path,
        [
            f"kanban/{BOARD}/t_a",
            f"kanban/{BOARD}/t_b",
            f"kanban/{BOARD}/t_c",
            f"kanban/{BOARD}/t_d",
        ],
        lambda branch: f"kanban: integrate {branch} into t_p",
    )

    statuses = [(o.branch, o.status, o.conflicts) for o in outcomes]
    assert statuses == [
        (f"kanban/{BOARD}/t_a", merging.MergeStatus.MERGED, ()),
        (f"kanban/{BOARD}/t_b", merging.MergeStatus.UP_TO_DATE, ()),
        (f"kanban/{BOARD}/t_c", merging.MergeStatus.CONFLICTED, ("README",)),
        (f"kanban/{BOARD}/t_d", merging.MergeStatus.MERGED, ()),
    ]
    assert outcomes[1].sha is None
    first_merge = outcomes[0].sha
    assert git(parent.path, "log", "-1", "--format=%P", first_merge).split() == [
        parent_head,
        git(repo, "rev-parse", f"kanban/{BOARD}/t_a"),
    ]
    assert git(parent.path, "log", "-1", "--format=%s", first_merge) == (
        f"kanban: integrate kanban/{BOARD}/t_a into t_p"
    )
    conflict_merge = outcomes[2].sha
    assert len(git(parent.path, "log", "-1", "--format=%P", conflict_merge).split()) == 2
    readme = (parent.path / "README").read_text()
    assert "<<<<<<<" in readme and "from c" in readme and "from the parent" in readme
    assert "README" in git(parent.path, "log", "-1", "--format=%b", conflict_merge)
    assert (parent.path / "a.txt").read_text() == "from a\n"
    assert (parent.path / "d.txt").read_text() == "from d\n"
    assert outcomes[3].sha == orchestrator.git.head(parent.path)
    assert git(parent.path, "status", "--porcelain") == ""


def test_merge_records_a_merge_commit_even_where_a_fast_forward_would_do(
    repo: Path, root: Path
) -> None:
    parent = new_worktree(repo, root, "t_p")
    child = new_worktree(repo, root, "t_c")
    child_head = commit_file(child.path, "c.txt", "c\n")

    [outcome] = merging.merge_branches(parent.path, [f"kanban/{BOARD}/t_c"], lambda b: f"merge {b}")

    assert outcome.status is merging.MergeStatus.MERGED
    assert outcome.sha != child_head
    assert git(parent.path, "log", "-1", "--format=%P", outcome.sha).split() == [
        parent.head,
        child_head,
    ]


def test_merge_branches_refuses_a_dirty_worktree_and_unknown_branches(
    repo: Path, root: Path
) -> None:
    parent = new_worktree(repo, root, "t_p")
    with pytest.raises(orchestrator.git.GitError, match=f"no branch named kanban/{BOARD}/t_x"):
        merging.merge_branches(parent.path, [f"kanban/{BOARD}/t_x"], str)
    (parent.path / "wip.txt").write_text("wip\n")
    with pytest.raises(orchestrator.git.WorktreeDirty, match=r"wip\.txt"):
        merging.merge_branches(parent.path, ["main"], str)


# --- removal and gc ------------------------------------------------------------------------


def test_gc_removes_what_is_safe_and_keeps_the_rest(repo: Path, root: Path) -> None:
    merged = new_worktree(repo, root, "t_1")  # no commits of its own: merged into main
    dirty = new_worktree(repo, root, "t_2")
    (dirty.path / "unsaved.txt").write_text("work in progress\n")
    unmerged = new_worktree(repo, root, "t_3")
    commit_file(unmerged.path, "feature.txt", "feature\n")

    report = worktrees.gc(
        repo,
        [
            (merged.path, merged.branch),
            (dirty.path, dirty.branch),
            (unmerged.path, unmerged.branch),
        ],
    )

    assert report.removed_worktrees == (merged.path, unmerged.path)
    assert report.kept_worktrees == (dirty.path,)
    assert report.deleted_branches == (f"kanban/{BOARD}/t_1",)
    assert report.kept_branches == (f"kanban/{BOARD}/t_2", f"kanban/{BOARD}/t_3")
    assert report.problems == ()
    assert not merged.path.exists() and not unmerged.path.exists()
    assert (dirty.path / "unsaved.txt").read_text() == "work in progress\n"
    assert branches(repo) == {"main", f"kanban/{BOARD}/t_2", f"kanban/{BOARD}/t_3"}
    assert worktree_paths(repo) == [repo, dirty.path]

    again = worktrees.gc(repo, [(unmerged.path, unmerged.branch)])
    assert again == worktrees.GcReport(kept_branches=(unmerged.branch,))

    forced = worktrees.gc(
        repo, [(dirty.path, dirty.branch), (unmerged.path, unmerged.branch)], force=True
    )
    assert forced.removed_worktrees == (dirty.path,)
    assert forced.deleted_branches == (dirty.branch, unmerged.branch)
    assert branches(repo) == {"main"}
    assert worktree_paths(repo) == [repo]


def test_gc_of_what_is_already_collected_does_nothing(repo: Path, root: Path) -> None:
    wt = new_worktree(repo, root, "t_1")
    first = worktrees.gc(repo, [(wt.path, wt.branch)])
    assert first.removed_worktrees == (wt.path,)
    assert first.deleted_branches == (wt.branch,)
    assert worktrees.gc(repo, [(wt.path, wt.branch)]) == worktrees.GcReport()


def test_dirty_worktree_error_names_every_kind_of_change(repo: Path, root: Path) -> None:
    commit_file(repo, "old name.txt", "x\n")
    wt = new_worktree(repo, root, "t_1")
    (wt.path / "README").write_text("edited\n")
    git(wt.path, "mv", "old name.txt", "new name.txt")
    (wt.path / "staged.txt").write_text("s\n")
    git(wt.path, "add", "staged.txt")
    (wt.path / "untracked file.txt").write_text("u\n")

    with pytest.raises(orchestrator.git.WorktreeDirty, match="uncommitted changes") as caught:
        merging.merge_branches(wt.path, ["main"], str)

    assert sorted(caught.value.entries) == [
        "README",
        "new name.txt",
        "staged.txt",
        "untracked file.txt",
    ]


def test_a_worktree_on_a_detached_head_is_kept(repo: Path, root: Path) -> None:
    wt = new_worktree(repo, root, "t_1")
    git(wt.path, "checkout", "-q", "--detach")
    commit_file(wt.path, "orphan.txt", "on no branch\n")

    report = worktrees.gc(repo, [(wt.path, wt.branch)])

    assert report.kept_worktrees == (wt.path,)
    assert report.kept_branches == (wt.branch,)
    assert "detached HEAD" in report.problems[0]
    assert (wt.path / "orphan.txt").exists()
    with pytest.raises(orchestrator.git.GitError, match="detached HEAD"):
        merging.merge_branches(wt.path, ["main"], str)
    with pytest.raises(orchestrator.git.GitError, match="detached HEAD"):
        worktrees.commit_all(wt.path, "task t_1")
    forced = worktrees.gc(repo, [(wt.path, wt.branch)], force=True)
    assert forced.removed_worktrees == (wt.path,)


def test_a_checked_out_branch_is_never_deleted(repo: Path, root: Path) -> None:
    wt = new_worktree(repo, root, "t_1")
    report = worktrees.gc(repo, [(root / "elsewhere", wt.branch)], force=True)
    assert report.kept_branches == (wt.branch,)
    assert "checked out in" in report.problems[0]
    assert wt.branch in branches(repo) and wt.path.exists()


# --- refusals ----------------------------------------------------------------------------


def test_a_directory_that_is_not_a_repository_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(
        orchestrator.git.NotARepository, match="is not a git repository; pass --repo"
    ):
        orchestrator.git.open_repo(plain)
    with pytest.raises(orchestrator.git.NotARepository, match="no such directory"):
        orchestrator.git.open_repo(tmp_path / "missing")


def test_a_bare_repository_is_refused(tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    with pytest.raises(orchestrator.git.NotARepository, match="bare repository"):
        orchestrator.git.open_repo(bare)


def test_a_repository_without_commits_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    subprocess.run(["git", "init", "-q", str(empty)], check=True)
    with pytest.raises(orchestrator.git.NotARepository, match="has no commits"):
        orchestrator.git.open_repo(empty)
    with pytest.raises(orchestrator.git.NotARepository, match="has no commits"):
        orchestrator.git.resolve_base(empty)


def test_open_repo_and_resolve_base(repo: Path) -> None:
    first = git(repo, "rev-parse", "HEAD")
    second = commit_file(repo, "b.txt", "b\n")
    (repo / "sub").mkdir()

    info = orchestrator.git.open_repo(repo / "sub")

    assert info.path == repo
    assert info.head == second
    assert info.branch == "main"
    assert info.common_dir == repo / ".git"
    assert orchestrator.git.resolve_base(repo) == second
    assert orchestrator.git.resolve_base(repo, "HEAD~1") == first
    assert orchestrator.git.resolve_base(repo, first[:10]) == first
    with pytest.raises(orchestrator.git.GitError, match="unknown ref"):
        orchestrator.git.resolve_base(repo, "nope")
    with pytest.raises(orchestrator.git.InvalidName):
        orchestrator.git.resolve_base(repo, "--output=/tmp/x")


def test_a_worktree_root_inside_the_repository_is_refused(repo: Path) -> None:
    with pytest.raises(orchestrator.git.GitError, match="inside the repository"):
        worktrees.placement(
            repo, root=repo / ".worktrees", prefix="kanban/", board_id=BOARD, task_id="t_1"
        )
    with pytest.raises(orchestrator.git.GitError, match="inside the repository"):
        worktrees.ensure_worktree(repo, repo / "wt" / "t_1", "kanban/t_1", "HEAD")
    assert branches(repo) == {"main"}


def test_the_repositorys_directory_is_named_safely_and_apart(tmp_path: Path) -> None:
    odd = make_repo(tmp_path / "my app (v2)")
    other = make_repo(tmp_path / "elsewhere" / "my app (v2)")
    root = tmp_path / "root"
    branch, path = placed(odd, root, "t_1")
    assert branch == f"kanban/{BOARD}/t_1"
    assert path.relative_to(root).parts[1:] == (BOARD, "t_1")
    first = path.parents[1]
    assert first.parent == root
    assert first.name.startswith("my-app--v2--")
    assert placed(odd, root, "t_1") == (branch, path)
    assert placed(other, root, "t_1")[1].parents[1] != first


def test_the_default_worktree_root_is_under_home(repo: Path, isolated_home: Path) -> None:
    _, path = worktrees.placement(
        repo,
        root=config.Settings().worktree_root,
        prefix=config.Settings().branch_prefix,
        board_id=BOARD,
        task_id="t_1",
    )
    assert path.parents[2] == isolated_home / ".kanban" / "worktrees"


@pytest.mark.parametrize("name", ["../x", "t 1", "", "-t", "t..1", "t.lock", "a/b", "t\n"])
def test_bad_task_and_board_ids_are_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(orchestrator.git.InvalidName, match="invalid task id"):
        worktrees.placement(tmp_path, root=tmp_path, prefix="kanban/", board_id=BOARD, task_id=name)
    with pytest.raises(orchestrator.git.InvalidName, match="invalid board id"):
        worktrees.placement(tmp_path, root=tmp_path, prefix="kanban/", board_id=name, task_id="t_1")


def test_a_prefix_git_refuses_is_refused(repo: Path, root: Path) -> None:
    with pytest.raises(orchestrator.git.InvalidName, match="invalid branch name"):
        worktrees.placement(repo, root=root, prefix="kanban..", board_id=BOARD, task_id="t_1")


@pytest.mark.parametrize("branch", ["kanban/../x", "kanban/t 1", "-b", "kanban/t_1.lock", "a~1"])
def test_bad_branch_names_are_refused(branch: str, repo: Path, root: Path) -> None:
    with pytest.raises(orchestrator.git.InvalidName):
        worktrees.ensure_worktree(repo, root / "t_1", branch, "HEAD")
    assert branches(repo) == {"main"}
