"""What ships is the product: the wheel holds board, worker and orchestrator, and nothing beside.

The demo and the scripted model (testing/), the tests and the benchmarks stay in the checkout.
The wheel is built for real, by the build backend pyproject names, into a temporary directory
(a fraction of a second), so a change to the package list or to hatchling's defaults shows here.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PRODUCT = {"board", "worker", "orchestrator"}


def test_pyproject_packages_only_the_product() -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert set(pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]) == PRODUCT


def test_the_wheel_holds_the_product_and_no_tooling(tmp_path: Path) -> None:
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
    names = zipfile.ZipFile(wheel).namelist()
    roots = {name.split("/")[0] for name in names}
    assert {root for root in roots if not root.endswith(".dist-info")} == PRODUCT
    assert [n for n in names if "demo" in n or "scripted_model" in n] == []
    assert "orchestrator/cli/main.py" in names  # the `kanban` entry point's module
