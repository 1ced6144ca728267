"""Orchestrator workers: fan-out into subtasks and fan-in on resume (issue: orchestrator agents).

The worker here is a real process on the `command` runtime: a script that, on its first run,
creates subtasks with the real `kanban create` inside its worker environment and exits; on
its resume it reads its prompt (`$KANBAN_PROMPT_FILE`), checks the merged files and finishes.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import textwrap
from pathlib import Path

from support.cli import KANBAN, kanban
from support.gitrepo import git, make_repo

from board import connection, runs, tasks

PY = sys.executable


def writer(name: str, text: str) -> str:
    """The --command of a child that writes a file and says so."""
    return shlex.join([PY, "-c", f"open({name!r}, 'w').write({text!r}); print('made {name}')"])


def parent_command(tmp_path: Path, children: list[dict]) -> str:
    """The --command of a parent that creates `children` (title, command, after indexes)."""
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    spec = tmp_path / "children.json"
    spec.write_text(json.dumps(children))
    return shlex.join([PY, str(script), KANBAN, str(spec)])


PARENT = textwrap.dedent("""
    import json, os, subprocess, sys
    from pathlib import Path
    KANBAN, children = sys.argv[1], json.loads(Path(sys.argv[2]).read_text())
    prompt = Path(os.environ["KANBAN_PROMPT_FILE"]).read_text()
    if "You are being resumed" not in prompt:
        Path("plan.txt").write_text("split in three")
        made = []
        for child in children:
            argv = [KANBAN, "create", child["title"], "--command", child["command"],
                    "--max-attempts", "1"]
            for index in child.get("after", []):
                argv += ["--after", made[index]]
            made.append(subprocess.check_output(argv, text=True).strip())
        print("created", *made)
    else:
        present = sorted(p.name for p in Path(".").glob("*.txt"))
        Path("resume-prompt.md").write_text(prompt)
        Path("integrated.txt").write_text(" ".join(present))
        print("integrated", *present)
""")


def dispatch_until_idle(env: dict[str, str] | None = None) -> None:
    kanban("dispatch", "--until-idle", "-q", env=env, timeout=120)


def test_a_worker_fans_out_into_subtasks_and_integrates_them_when_resumed(tmp_path, db_path):
    repo = make_repo(tmp_path / "repo", {"README.md": "project\n"})
    argv = parent_command(
        tmp_path,
        [
            {"title": "part A", "command": writer("a.txt", "A")},
            {"title": "part B", "command": writer("b.txt", "B")},
            {"title": "part C", "command": writer("c.txt", "C"), "after": [0, 1]},
        ],
    )
    parent = kanban(
        "create", "Build it in parts", "--repo", str(repo), "--command", argv
    ).stdout.strip()
    dispatch_until_idle()

    db = connection.connect(db_path)
    shown = {t.title: t for t in tasks.list_tasks(db)}
    assert {title: t.status for title, t in shown.items()} == {
        "Build it in parts": "done",
        "part A": "done",
        "part B": "done",
        "part C": "done",
    }
    parent_row = shown["Build it in parts"]
    assert [r.kind for r in runs.for_task(db, parent_row.id)] == ["first", "resume"]
    for title in ("part A", "part B", "part C"):
        assert shown[title].parent_id == parent_row.id
    # C ran only after both A and B had ended.
    ended = {t: runs.for_task(db, shown[t].id)[-1] for t in ("part A", "part B", "part C")}
    assert ended["part C"].started_at >= max(ended["part A"].ended_at, ended["part B"].ended_at)
    # The children's branches were merged into the parent's, which integrated them.
    branch = parent_row.branch
    assert git(repo, "show", f"{branch}:integrated.txt").split() == [
        "a.txt",
        "b.txt",
        "c.txt",
        "plan.txt",
    ]
    resume_prompt = git(repo, "show", f"{branch}:resume-prompt.md")
    for title, summary in (
        ("part A", "made a.txt"),
        ("part B", "made b.txt"),
        ("part C", "made c.txt"),
    ):
        assert f'"{title}": done: {summary}' in resume_prompt
    assert re.search(r"kanban/[0-9a-f]{8}/t_2: merged", resume_prompt)
    events = json.loads(kanban("show", parent, "--json").stdout)["events"]
    assert any(e["kind"] == "merged" for e in events)


def test_a_failed_subtask_still_wakes_its_parent_which_decides(tmp_path, db_path):
    repo = make_repo(tmp_path / "repo", {"README.md": "project\n"})
    argv = parent_command(
        tmp_path,
        [
            {"title": "works", "command": writer("ok.txt", "ok")},
            {"title": "breaks", "command": shlex.join([PY, "-c", "raise SystemExit(3)"])},
        ],
    )
    kanban("create", "Parent", "--repo", str(repo), "--command", argv)
    dispatch_until_idle()
    db = connection.connect(db_path)
    shown = {t.title: t for t in tasks.list_tasks(db)}
    assert shown["breaks"].status == "failed"
    assert shown["works"].status == "done"
    assert shown["Parent"].status == "done"
    prompt = git(repo, "show", f"{shown['Parent'].branch}:resume-prompt.md")
    assert '"breaks": failed' in prompt and "exit code 3" in prompt


LINGERER = textwrap.dedent("""
    import subprocess, sys, time
    from pathlib import Path
    subprocess.run([sys.argv[1], "complete", "--summary", "reported early"], check=True)
    time.sleep(1)  # an agent still finishing its turn after kanban_complete, as real ones do
    Path("late.txt").write_text("written after the report")
""")


def test_a_parent_resumes_only_after_its_reporting_childrens_work_is_committed(tmp_path, db_path):
    repo = make_repo(tmp_path / "repo", {"README.md": "project\n"})
    child = tmp_path / "lingerer.py"
    child.write_text(LINGERER)
    argv = parent_command(
        tmp_path, [{"title": "linger", "command": shlex.join([PY, str(child), KANBAN])}]
    )
    kanban("create", "Parent", "--repo", str(repo), "--command", argv)
    dispatch_until_idle()
    db = connection.connect(db_path)
    shown = {t.title: t for t in tasks.list_tasks(db)}
    assert shown["linger"].summary == "reported early"
    branch = shown["Parent"].branch
    assert git(repo, "show", f"{branch}:late.txt") == "written after the report"
    assert "late.txt" in git(repo, "show", f"{branch}:integrated.txt").split()


def test_subtask_depth_and_breadth_are_bounded_by_the_configured_limits(tmp_path, db_path):
    config = tmp_path / "config.toml"
    config.write_text("[limits]\nmax_children = 2\n")
    env = {**os.environ, "KANBAN_CONFIG": str(config)}
    flood = shlex.join(
        [
            PY,
            "-c",
            "import subprocess; [subprocess.run(["
            + repr(KANBAN)
            + ", 'create', f'child {i}', '--command', 'true']) for i in range(4)]",
        ]
    )
    kanban("create", "Runaway", "--command", flood, env=env)
    dispatch_until_idle(env)
    db = connection.connect(db_path)
    children = [t for t in tasks.list_tasks(db) if t.parent_id]
    assert len(children) == 2
    log = Path(runs.for_task(db, 1)[0].log_path).read_text()
    assert "already has 2 subtasks, the limit is 2" in log
