"""What ships and how it installs.

The wheel holds board, worker and orchestrator, and nothing beside: the demo and the scripted
model (testing/), the tests and the benchmarks stay in the checkout. The wheel is built for
real, by the build backend pyproject names, into a temporary directory (a fraction of a
second), so a change to the package list or to hatchling's defaults shows here.

The constraints files `make` installs from are up to date with pyproject and the Makefile, and
the install steps in the docs name the versions the Makefile pins.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from support import REPO_ROOT

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


def makefile_pins() -> dict[str, str]:
    text = (REPO_ROOT / "Makefile").read_text()
    found = re.findall(r"^(HERMES_VERSION|HERMES_MCP_VERSION|CODEX_VERSION) := (\S+)$", text, re.M)
    assert len(found) == 3
    return dict(found)


def locked(name: str) -> dict[str, Version]:
    """{canonical package name: version} of a constraints file."""
    pins = {}
    for line in (REPO_ROOT / name).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            [spec] = requirement.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(requirement.name)] = Version(spec.version)
    return pins


def test_the_lock_pins_every_dependency_within_what_pyproject_asks() -> None:
    """`make lock` was run after the last change to pyproject's dependencies."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    pins = locked("constraints.txt")
    assert "kanban" not in pins
    for line in [*project["dependencies"], *project["optional-dependencies"]["test"]]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in constraints.txt: run make lock"
        assert pins[name] in requirement.specifier, f"{name}=={pins[name]}: run make lock"


def test_the_hermes_lock_holds_the_versions_the_makefile_pins() -> None:
    pins, hermes = makefile_pins(), locked("constraints-hermes.txt")
    assert str(hermes["hermes-agent"]) == pins["HERMES_VERSION"]
    assert str(hermes["mcp"]) == pins["HERMES_MCP_VERSION"]


@pytest.mark.parametrize("doc", ["README.md", "docs/guide.md"])
def test_install_steps_name_the_versions_the_makefile_pins(doc: str) -> None:
    pins, text = makefile_pins(), (REPO_ROOT / doc).read_text()
    assert set(re.findall(r"hermes-agent==([\w.]+)", text)) == {pins["HERMES_VERSION"]}
    assert set(re.findall(r"\bmcp==([\w.]+)", text)) == {pins["HERMES_MCP_VERSION"]}
    assert set(re.findall(r"@openai/codex@([\w.]+)", text)) == {pins["CODEX_VERSION"]}
    assert "constraints-hermes.txt" in text
