"""Imports go one way: orchestrator -> worker -> board, and the board stays a plain SQLite store.

None of the three imports what lives beside the product (testing/, tests/, bench/).

Checked twice: statically (every import statement of every module, including imports inside
functions) and dynamically (importing every module of a layer in a fresh interpreter must not
load a higher layer, whatever the import statements look like).
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO_ROOT

# What lives beside the product and is not in the wheel (tests/test_packaging.py): the demo
# and the scripted model, the tests, the benchmarks. The product never needs any of them.
BESIDE = {"testing", "tests", "bench"}
# What each layer must never import, directly or through anything it imports.
FORBIDDEN = {
    "board": {"worker", "orchestrator", "git", "subprocess", "anyio", "click", *BESIDE},
    "worker": {"orchestrator", *BESIDE},
    "orchestrator": BESIDE,
}
# `click` arrives with sqlite_utils and `subprocess` with parts of the standard library, so at
# run time only the layers and the libraries no dependency of the board pulls in are checked.
FORBIDDEN_LOADED = {
    "board": {"worker", "orchestrator", "git", "anyio", *BESIDE},
    "worker": {"orchestrator", *BESIDE},
    "orchestrator": BESIDE,
}


def modules(package: str) -> dict[str, Path]:
    """{dotted module name: file} for every module of `package`."""
    found = {}
    for path in sorted((REPO_ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imported_roots(module: str, path: Path) -> dict[str, int]:
    """{top-level package imported: first line}, relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    roots: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: within the importing module's own package
                names = [module]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            roots.setdefault(name.split(".")[0], node.lineno)
    return roots


def test_the_import_scanner_sees_imports_at_any_depth() -> None:
    board_connection = modules("board")["board.connection"]
    roots = imported_roots("board.connection", board_connection)
    assert {"sqlite3", "sqlite_utils", "board", "contextlib"} <= set(roots)
    commands = modules("orchestrator")["orchestrator.cli.commands"]
    assert "orchestrator" in imported_roots("orchestrator.cli.commands", commands)
    assert len(modules("board")) >= 10


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_module_imports_a_forbidden_package(layer: str) -> None:
    offences = [
        f"{path.relative_to(REPO_ROOT)}:{line} imports {root}"
        for module, path in modules(layer).items()
        for root, line in imported_roots(module, path).items()
        if root in FORBIDDEN[layer]
    ]
    assert offences == []


@pytest.mark.parametrize("layer", sorted(FORBIDDEN_LOADED))
def test_importing_every_module_of_a_layer_loads_no_higher_layer(layer: str) -> None:
    names = sorted(modules(layer))
    script = (
        "import importlib, json, sys\n"
        "for name in sys.argv[2:]:\n"
        "    importlib.import_module(name)\n"
        "forbidden = set(json.loads(sys.argv[1]))\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in forbidden)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps(sorted(FORBIDDEN_LOADED[layer])), *names],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # A module that fails to import fails this test too: the layer must import cleanly.
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|PRAGMA\s)")


@pytest.mark.parametrize("layer", ["worker", "orchestrator"])
def test_sql_lives_only_in_the_board(layer: str) -> None:
    """Nothing outside `board/` may assume SQLite (the design's way to PostgreSQL)."""
    offences = [
        f"{path.relative_to(REPO_ROOT)}:{number}"
        for path in modules(layer).values()
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if SQL.search(line)
    ]
    assert offences == []
