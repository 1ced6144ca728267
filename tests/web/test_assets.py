"""The web board's assets ship inside the package and are served from it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from support import REPO_ROOT
from support.web import Served


def test_the_wheel_holds_the_stylesheet_and_the_script(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "--target", "wheel", "-d", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("kanban-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"orchestrator/web/static/board.css", "orchestrator/web/static/board.js"} <= names


def test_pages_load_only_assets_of_the_server(tmp_path: Path) -> None:
    served = Served(tmp_path)
    try:
        page = served.get("/").text
        assert "http://" not in page.split("<body", 1)[0]  # no CDN, nothing from elsewhere
        script = served.get("/static/board.js")
        assert script.status == 200 and "EventSource" in script.text
        assert script.headers["cache-control"] == "max-age=86400"
        assert served.get("/").headers["cache-control"] == "no-store"
    finally:
        served.close()
