"""A task that cannot start fails alone; the dispatcher and the other tasks carry on."""

from __future__ import annotations

import json
import os

from support.cli import kanban
from support.gitrepo import make_repo


def test_a_task_whose_directory_cannot_be_made_fails_and_the_others_still_run(tmp_path):
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("scratch directories cannot live under a file")
    repo = make_repo(tmp_path / "repo", {})
    env = {**os.environ, "KANBAN_SCRATCH_ROOT": str(not_a_dir / "scratch")}

    kanban("create", "No place to run", "--command", "true", env=env)
    kanban("create", "Runs in a worktree", "--repo", str(repo), "--command", "true", env=env)
    kanban("dispatch", "--until-idle", "-q", env=env, timeout=120)
    shown = {t["title"]: t for t in json.loads(kanban("list", "--json", env=env).stdout)}
    assert shown["No place to run"]["status"] == "failed"
    assert "cannot start" in shown["No place to run"]["failure_reason"]
    assert shown["Runs in a worktree"]["status"] == "done"
