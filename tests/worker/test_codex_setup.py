"""Codex's config block: byte-exact, idempotent, refusing, and valid for the real Codex."""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import REPO_ROOT

from worker import env
from worker.setup import codex

PYTHON = os.path.abspath(sys.executable)
PROVIDER = codex.ModelProvider("http://127.0.0.1:9/v1", "scripted")

# --- random user documents --------------------------------------------------------------

_WORDS = st.text(alphabet="abcxyz []#=.'-", max_size=12)
_MULTILINE_BODY = st.lists(
    st.sampled_from(["[fake.table]", "[[fake.array]]", "# not a comment", "k = 1", "", "  [x]"]),
    max_size=4,
).map(lambda lines: "\n".join(lines))
_SCALARS = st.one_of(
    st.integers(-(2**40), 2**40).map(str),
    _WORDS.map(lambda t: json.dumps(t)),
    st.text(alphabet='abc []#="', max_size=10).map(lambda t: f"'{t}'"),
    _MULTILINE_BODY.map(lambda t: f'"""\n{t}\n"""'),
    _MULTILINE_BODY.map(lambda t: f"'''\n{t}'''"),
    st.sampled_from(["true", "false", "1.5", "-0.0", "nan", "inf", "1979-05-27T07:32:00Z"]),
)
_VALUES = st.one_of(
    _SCALARS,
    st.lists(st.integers(0, 9).map(str), max_size=3).map(lambda v: f"[{', '.join(v)}]"),
    # a multi-line array whose lines start with "[": no table headers, though they look it
    st.lists(st.integers(0, 9).map(str), min_size=1, max_size=3).map(
        lambda v: "[\n" + ",\n".join(f"[{x}]" for x in v) + "\n]"
    ),
    st.lists(_SCALARS, max_size=2).map(
        lambda v: "{ " + ", ".join(f"k{i} = {x}" for i, x in enumerate(v) if "\n" not in x) + " }"
    ),
)
_KEYS = st.sampled_from(
    ["a", "b", "name", "x-y", "_k", '"quoted key"', "n1", "dotted.k", "mcp_servers.dot.command"]
)
_COMMENTS = st.sampled_from(["# a comment", "#", "  # indented [not.a.table]", "# [mcp_servers.x]"])


@st.composite
def _lines(draw: st.DrawFn) -> list[str]:
    keys = draw(st.lists(_KEYS, unique=True, max_size=4))
    lines = [f"{key} = {draw(_VALUES)}" + draw(st.sampled_from(["", " # why"])) for key in keys]
    for _ in range(draw(st.integers(0, 3))):
        extra = draw(st.one_of(_COMMENTS, st.just("")))
        lines.insert(draw(st.integers(0, len(lines))), extra)
    return lines


_HEADERS = [
    "[t1]",
    "[t2.sub]",
    "[t2]",
    '[t3."quoted.part"]',
    "[[arr]]",
    "[mcp_servers.other]",
    "[mcp_servers.other.env]",
    "[model_providers.mine]",
    "[profiles.fast]",
    "  [indented]",
]


@st.composite
def documents(draw: st.DrawFn) -> str:
    """A valid TOML document of the kinds users write, comments and oddities included."""
    lines = draw(_lines())
    headers = draw(st.lists(st.sampled_from(_HEADERS), unique=True, max_size=5))
    for header in headers:
        lines += draw(st.lists(_COMMENTS, max_size=1))
        lines.append(header + draw(st.sampled_from(["", "  # trailing"])))
        lines += draw(_lines())
        if header == "[[arr]]" and draw(st.booleans()):
            lines += ["[[arr]]", "again = 1"]
    text = "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n"]))
    if draw(st.booleans()):
        text = text.replace("\n", "\r\n")
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        from hypothesis import assume

        assume(False)
    return text


PROPERTY = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.filter_too_much]
)


# --- helpers ----------------------------------------------------------------------------


def _write(home: Path, text: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "config.toml"
    path.write_bytes(text.encode("utf-8"))
    return path


def _without_block(text: str) -> str:
    """The file minus kanban's block, found by its markers (and the line break it owns)."""
    start = text.index(codex.START)
    end = text.index(codex.END) + len(codex.END) + 1
    noted = text.startswith(codex.START + "\n" + codex.LINE_BREAK_NOTE, start)
    if noted and (end == len(text) or text[end] in "\r\n"):
        start -= 1
    return text[:start] + text[end:]


def _comparable(value):
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if v != {}}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "<nan>"
    return value


def _user_part(data: dict) -> dict:
    """The parsed file minus what kanban's block defines."""
    data = json.loads(json.dumps(data, default=str).replace("NaN", '"<nan>"'))
    servers = data.get("mcp_servers", {})
    servers.pop("kanban", None)
    for key in ("model", "model_provider"):
        data.pop(key, None)
    data.get("model_providers", {}).pop(PROVIDER.provider_id, None)
    return _comparable(data)


def _user_meaning(text: str) -> dict:
    return _user_part(tomllib.loads(text))


def _snapshot(path: Path) -> tuple[bytes, int, list[str]]:
    return path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(path.parent))


# --- properties -------------------------------------------------------------------------


@PROPERTY
@given(doc=documents(), with_provider=st.booleans())
def test_install_keeps_every_byte_outside_the_block_and_remove_restores_the_file(
    doc: str, with_provider: bool
) -> None:
    provider = PROVIDER if with_provider else None
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        path = _write(home, doc)
        codex.install(home, python=PYTHON, model_provider=provider)
        installed = path.read_bytes().decode("utf-8")
        assert installed.count(codex.START) == 1
        assert _without_block(installed) == doc

        data = tomllib.loads(installed)
        server = data["mcp_servers"]["kanban"]
        assert server["command"] == PYTHON
        assert server["args"] == list(codex.ARGS)
        assert server["env_vars"] == list(env.ALL)
        assert server["default_tools_approval_mode"] == "approve"
        assert _user_part(data) == _user_meaning(doc)
        if provider:
            assert data["model"] == "scripted"
            assert data["model_provider"] == "kanban"
            assert data["model_providers"]["kanban"]["wire_api"] == "responses"

        assert codex.install(home, python=PYTHON, model_provider=provider).changed is False
        assert path.read_bytes().decode("utf-8") == installed
        assert codex.status(home, python=PYTHON).state is codex.State.CURRENT

        assert codex.remove(home).changed is True
        assert path.read_bytes() == doc.encode("utf-8")
        assert codex.remove(home).changed is False


@PROPERTY
@given(doc=documents(), with_provider=st.booleans())
def test_user_edits_around_the_block_survive_reinstall_and_stay_out_of_our_tables(
    doc: str, with_provider: bool
) -> None:
    provider = PROVIDER if with_provider else None
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        path = _write(home, doc)
        codex.install(home, python=PYTHON, model_provider=provider)
        # The user prepends a top-level key and appends a table, as people do.
        edited = "user_top = 1\n" + path.read_text() + "\n[user.appended]\nk = 2\n"
        path.write_text(edited)
        codex.install(home, python=PYTHON, startup_timeout_sec=45, model_provider=provider)
        reinstalled = path.read_text()
        assert _without_block(reinstalled) == _without_block(edited)
        data = tomllib.loads(reinstalled)
        assert data["user_top"] == 1
        assert data["user"]["appended"] == {"k": 2}
        assert data["mcp_servers"]["kanban"]["startup_timeout_sec"] == 45
        codex.remove(home)
        assert path.read_text() == _without_block(edited)


@PROPERTY
@given(doc=documents(), breakage=st.sampled_from(["= broken\n", "a = [1,\n", "[t1]\n[t1]\n"]))
def test_a_file_that_is_not_toml_is_refused_and_never_rewritten(doc: str, breakage: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        path = _write(home, doc + "\n" + breakage)
        before = _snapshot(path)
        with pytest.raises(codex.SetupError, match="not valid TOML") as raised:
            codex.install(home, python=PYTHON)
        assert str(path) in str(raised.value)
        with pytest.raises(codex.SetupError):
            codex.remove(home)
        assert _snapshot(path) == before  # bytes, mtime, and no backup or temp file
        assert codex.status(home).state is codex.State.BROKEN


# --- examples ---------------------------------------------------------------------------


def test_a_missing_config_is_created_private_with_only_the_block(tmp_path: Path) -> None:
    home = tmp_path / "new" / "codex"
    change = codex.install(home, python=PYTHON)
    assert change.changed and change.backup is None
    path = home / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert text.startswith(codex.START) and text.endswith(codex.END + "\n")
    assert os.listdir(home) == ["config.toml"]


def test_install_uses_codex_home_from_the_environment(isolated_home: Path) -> None:
    codex.install(python=PYTHON)
    assert (isolated_home / ".codex" / "config.toml").exists()  # conftest's CODEX_HOME


def test_the_previous_file_is_backed_up_with_its_mode_and_the_mode_is_kept(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, 'model = "o3"\n')
    path.chmod(0o640)
    change = codex.install(tmp_path, python=PYTHON)
    assert change.backup == tmp_path / "config.toml.kanban-backup"
    assert change.backup.read_text() == 'model = "o3"\n'
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE(change.backup.stat().st_mode) == 0o640
    backed_up = change.backup.stat().st_mtime_ns
    assert codex.install(tmp_path, python=PYTHON).backup is None
    assert change.backup.stat().st_mtime_ns == backed_up  # no change, no new backup


def test_a_symlinked_config_stays_a_symlink(tmp_path: Path) -> None:
    target = _write(tmp_path / "dotfiles", "# mine\n")
    home = tmp_path / "codex"
    home.mkdir()
    (home / "config.toml").symlink_to(target)
    codex.install(home, python=PYTHON)
    assert (home / "config.toml").is_symlink()
    assert codex.START in target.read_text()


def test_the_block_goes_before_the_first_table_and_its_glued_comments(tmp_path: Path) -> None:
    doc = 'approval_policy = "on-request"\n\n# my servers\n[mcp_servers.docs]\ncommand = "d"\n'
    path = _write(tmp_path, doc)
    codex.install(tmp_path, python=PYTHON, model_provider=PROVIDER)
    text = path.read_text()
    assert text.index('approval_policy = "on-request"') < text.index(codex.START)
    assert text.index(codex.END) < text.index("# my servers")
    data = tomllib.loads(text)
    assert data["model"] == "scripted"  # top level, not inside anybody's table
    assert data["mcp_servers"]["docs"] == {"command": "d"}


def test_a_users_own_kanban_server_is_refused_and_kept(tmp_path: Path) -> None:
    path = _write(tmp_path, '[mcp_servers.kanban]\ncommand = "my-own-kanban"\n')
    before = _snapshot(path)
    with pytest.raises(codex.SetupError, match=r"own \[mcp_servers.kanban\]"):
        codex.install(tmp_path, python=PYTHON)
    with pytest.raises(codex.SetupError, match=r"own \[mcp_servers.kanban\]"):
        codex.install(tmp_path, python=PYTHON, repair=True)
    assert _snapshot(path) == before
    assert codex.status(tmp_path).state is codex.State.BROKEN


@pytest.mark.parametrize(
    "doc",
    ['model = "o3"\n', 'model_provider = "openai"\n', '[model_providers.kanban]\nname = "x"\n'],
)
def test_a_users_own_model_settings_are_never_overridden(tmp_path: Path, doc: str) -> None:
    path = _write(tmp_path, doc)
    with pytest.raises(codex.SetupError, match="will not override your model"):
        codex.install(tmp_path, python=PYTHON, model_provider=PROVIDER)
    assert path.read_text() == doc
    codex.install(tmp_path, python=PYTHON)  # without a provider there is nothing to clash


def test_keys_written_after_the_end_marker_are_refused_not_swallowed(tmp_path: Path) -> None:
    path = _write(tmp_path, 'model = "o3"\n')
    codex.install(tmp_path, python=PYTHON)
    path.write_text(path.read_text() + "sandbox_mode = 'workspace-write'\n")
    before = _snapshot(path)
    for attempt in (lambda: codex.install(tmp_path, python=PYTHON), lambda: codex.remove(tmp_path)):
        with pytest.raises(codex.SetupError, match="move them above"):
            attempt()
    assert _snapshot(path) == before
    assert codex.status(tmp_path, python=PYTHON).state is codex.State.BROKEN


def test_a_damaged_block_is_refused_until_repair_removes_only_our_leftovers(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, "# top\n[mcp_servers.other]\ncommand = 'x'\n")
    codex.install(tmp_path, python=PYTHON, model_provider=PROVIDER)
    # What `codex mcp add` leaves: the marker lines around [mcp_servers] are gone.
    damaged = path.read_text().replace(codex.END + "\n", "")
    path.write_text(damaged)
    with pytest.raises(codex.SetupError, match="--repair"):
        codex.install(tmp_path, python=PYTHON)
    assert path.read_text() == damaged
    assert codex.status(tmp_path).fix == "run `kanban setup codex --repair`"

    codex.install(tmp_path, python=PYTHON, repair=True)
    data = tomllib.loads(path.read_text())
    assert data["mcp_servers"]["other"] == {"command": "x"}
    assert "model" not in data and "model_providers" not in data  # the old provider went too
    assert codex.status(tmp_path, python=PYTHON).state is codex.State.CURRENT
    codex.remove(tmp_path)
    assert tomllib.loads(path.read_text()) == {"mcp_servers": {"other": {"command": "x"}}}


def test_an_inline_table_that_our_header_cannot_extend_is_refused_untouched(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, 'mcp_servers = { docs = { command = "d" } }\n')
    before = _snapshot(path)
    with pytest.raises(codex.SetupError, match="inline table"):
        codex.install(tmp_path, python=PYTHON)
    assert _snapshot(path) == before


def test_remove_without_a_block_writes_nothing(tmp_path: Path) -> None:
    path = _write(tmp_path, "a = 1\n")
    before = _snapshot(path)
    assert codex.remove(tmp_path).changed is False
    assert _snapshot(path) == before
    assert codex.remove(tmp_path / "nowhere").changed is False


def test_status_reports_missing_current_and_stale(tmp_path: Path) -> None:
    assert codex.status(tmp_path).state is codex.State.MISSING
    _write(tmp_path, "a = 1\n")
    assert codex.status(tmp_path).state is codex.State.MISSING
    codex.install(tmp_path, python=PYTHON)
    current = codex.status(tmp_path, python=PYTHON)
    assert current.ok and current.command == PYTHON
    other = tmp_path / "venv2" / "bin" / "python"
    other.parent.mkdir(parents=True)
    other.symlink_to(PYTHON)
    stale = codex.status(tmp_path, python=str(other))
    assert stale.state is codex.State.STALE
    assert "this kanban runs" in stale.detail and "kanban setup codex" in stale.fix


def test_an_interpreter_that_is_not_executable_is_refused(tmp_path: Path) -> None:
    with pytest.raises(codex.SetupError, match="not an executable"):
        codex.install(tmp_path, python=str(tmp_path / "missing-python"))
    assert not (tmp_path / "config.toml").exists()


def test_the_registered_interpreter_imports_kanban_from_any_directory(tmp_path: Path) -> None:
    # Codex starts the server in the worker's worktree: `worker` must come from the install.
    fake = tmp_path / "worker"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise SystemExit('imported the worktree copy')\n")
    done = subprocess.run(
        [PYTHON, *codex.ARGS[:-2], "-c", "import worker.env; print(worker.env.__file__)"],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "HOME": os.environ["HOME"]},  # scrubbed, as Codex does
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(done.stdout.strip()).is_relative_to(REPO_ROOT)


# --- the real Codex ---------------------------------------------------------------------


def _codex_bin() -> str:
    explicit = os.environ.get("KANBAN_CODEX_BIN")
    path = Path(explicit) if explicit else REPO_ROOT / ".tools" / "node_modules" / ".bin" / "codex"
    assert path.exists(), f"codex is not installed at {path}: run `make tools`"
    return str(path)


def _run_codex(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_codex_bin(), *args],
        env={**os.environ, "CODEX_HOME": str(home)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.e2e
def test_real_codex_accepts_the_block_and_sees_our_server_and_its_variables(
    tmp_path: Path,
) -> None:
    home = tmp_path / "codex"
    _write(home, '# mine\napproval_policy = "on-request"\n[mcp_servers.docs]\ncommand = "d"\n')
    codex.install(home, python=PYTHON, model_provider=PROVIDER)
    got = _run_codex(home, "mcp", "get", "kanban", "--json")
    assert got.returncode == 0, got.stderr
    server = json.loads(got.stdout)
    assert server["enabled"] is True
    assert server["transport"]["command"] == PYTHON
    assert server["transport"]["args"] == list(codex.ARGS)
    assert server["transport"]["env_vars"] == list(env.ALL)
    text = _run_codex(home, "mcp", "get", "kanban")
    assert "default_tools_approval_mode: approve" in text.stdout
    listed = _run_codex(home, "mcp", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {s["name"] for s in json.loads(listed.stdout)} == {"docs", "kanban"}


@pytest.mark.e2e
def test_repair_recovers_after_codex_mcp_add_rewrites_the_servers(tmp_path: Path) -> None:
    home = tmp_path / "codex"
    _write(home, "# mine\n[mcp_servers.docs]\ncommand = 'd'\n")
    codex.install(home, python=PYTHON)
    added = _run_codex(home, "mcp", "add", "extra", "--", "/bin/echo", "hi")
    assert added.returncode == 0, added.stderr
    assert codex.status(home, python=PYTHON).state is codex.State.BROKEN
    codex.install(home, python=PYTHON, repair=True)
    assert codex.status(home, python=PYTHON).ok
    listed = json.loads(_run_codex(home, "mcp", "list", "--json").stdout)
    assert {s["name"] for s in listed} == {"docs", "extra", "kanban"}
