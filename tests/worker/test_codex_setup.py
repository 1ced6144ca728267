"""Codex's config block: byte-exact, idempotent, refusing, migrating, and harmless to Codex."""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import tempfile
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import REPO_ROOT, cli
from support.agents import USER_FEATURES

from testing import scripted_model
from worker import env
from worker.setup import codex

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

# The server table an earlier `kanban setup codex` wrote inside its block: a stdio server run by
# the absolute path of kanban's interpreter, required. Here that interpreter is gone, as after
# `make clean` deleted kanban's virtualenv.
GONE_PYTHON = "/nonexistent/kanban/.venv/bin/python"
OLD_SERVER = (
    "[mcp_servers.kanban]\n"
    f'command = "{GONE_PYTHON}"\n'
    'args = ["-P", "-m", "worker.mcp_server"]\n'
    "env_vars = [\n" + "".join(f'    "{name}",\n' for name in env.ALL) + "]\n"
    'default_tools_approval_mode = "approve"\n'
    "required = true\n"
    "startup_timeout_sec = 30\n"
    "tool_timeout_sec = 120\n"
)
OLD_BLOCK = "\n".join([codex.START, *codex.NOTE, OLD_SERVER + codex.END + "\n"])


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


def _made_old(text: str, *, with_provider: bool) -> str:
    """`text` with its (current) block turned into the block an earlier kanban wrote there:
    the same place and line break, plus the stdio server table (and the provider or not)."""
    body_start = text.index(codex.NOTE[-1]) + len(codex.NOTE[-1]) + 1
    body_end = text.index(codex.END)
    provider = text[body_start:body_end] + "\n" if with_provider else ""
    return text[:body_start] + provider + OLD_SERVER + text[body_end:]


def _comparable(value):
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if v != {}}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "<nan>"
    return value


def _user_part(data: dict) -> dict:
    """The parsed file minus what kanban's block defines (today's or an earlier one's)."""
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
@given(doc=documents())
def test_install_keeps_every_byte_outside_the_block_and_remove_restores_the_file(
    doc: str,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        path = _write(home, doc)
        codex.install(home, model_provider=PROVIDER)
        installed = path.read_bytes().decode("utf-8")
        assert installed.count(codex.START) == 1
        assert _without_block(installed) == doc

        data = tomllib.loads(installed)
        assert "kanban" not in data.get("mcp_servers", {})  # no server: workers get it per run
        assert _user_part(data) == _user_meaning(doc)
        assert data["model"] == "scripted"
        assert data["model_provider"] == "kanban"
        assert data["model_providers"]["kanban"]["wire_api"] == "responses"

        assert codex.install(home, model_provider=PROVIDER).changed is False
        assert path.read_bytes().decode("utf-8") == installed
        assert codex.status(home).state is codex.State.CURRENT
        assert codex.conflict(home) is None

        assert codex.remove(home).changed is True
        assert path.read_bytes() == doc.encode("utf-8")
        assert codex.remove(home).changed is False


@PROPERTY
@given(doc=documents())
def test_install_without_a_provider_leaves_any_file_exactly_as_it_was(doc: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        path = _write(home, doc)
        before = _snapshot(path)
        assert codex.install(home) == codex.Change(path, changed=False)
        assert _snapshot(path) == before  # bytes, mtime, and no backup or temp file
        assert codex.status(home).state is codex.State.CURRENT
        assert codex.conflict(home) is None


@PROPERTY
@given(doc=documents(), old_provider=st.booleans(), new_provider=st.booleans())
def test_an_old_block_is_migrated_and_every_byte_of_the_users_file_is_kept(
    doc: str, old_provider: bool, new_provider: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        path = _write(home, doc)
        codex.install(home, model_provider=PROVIDER)
        old = _made_old(path.read_bytes().decode("utf-8"), with_provider=old_provider)
        path.write_bytes(old.encode("utf-8"))
        assert tomllib.loads(old)["mcp_servers"]["kanban"]["command"] == GONE_PYTHON
        assert codex.status(home).state is codex.State.STALE
        assert "`kanban setup codex" in (codex.conflict(home) or "")

        change = codex.install(home, model_provider=PROVIDER if new_provider else None)
        assert change.changed and change.backup is not None
        assert change.backup.read_bytes() == old.encode("utf-8")
        migrated = path.read_bytes().decode("utf-8")
        if new_provider:
            assert _without_block(migrated) == doc
            assert tomllib.loads(migrated)["model_providers"]["kanban"]["name"] == (
                codex.PROVIDER_NAME
            )
        else:
            assert migrated == doc
        assert "kanban" not in tomllib.loads(migrated).get("mcp_servers", {})
        assert codex.status(home).state is codex.State.CURRENT
        assert codex.conflict(home) is None


@PROPERTY
@given(doc=documents())
def test_user_edits_around_the_block_survive_reinstall_and_stay_out_of_our_tables(
    doc: str,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        path = _write(home, doc)
        codex.install(home, model_provider=PROVIDER)
        # The user prepends a top-level key and appends a table, as people do.
        edited = "user_top = 1\n" + path.read_text() + "\n[user.appended]\nk = 2\n"
        path.write_text(edited)
        other = codex.ModelProvider("http://127.0.0.1:8/v1", "other")
        codex.install(home, model_provider=other)
        reinstalled = path.read_text()
        assert _without_block(reinstalled) == _without_block(edited)
        data = tomllib.loads(reinstalled)
        assert data["user_top"] == 1
        assert data["user"]["appended"] == {"k": 2}
        assert data["model_providers"]["kanban"]["base_url"] == "http://127.0.0.1:8/v1"
        assert data["model"] == "other"
        codex.remove(home)
        assert path.read_text() == _without_block(edited)


@PROPERTY
@given(doc=documents(), breakage=st.sampled_from(["= broken\n", "a = [1,\n", "[t1]\n[t1]\n"]))
def test_a_file_that_is_not_toml_is_refused_and_never_rewritten(doc: str, breakage: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        path = _write(home, doc + "\n" + breakage)
        before = _snapshot(path)
        for provider in (None, PROVIDER):
            with pytest.raises(codex.SetupError, match="not valid TOML") as raised:
                codex.install(home, model_provider=provider)
            assert str(path) in str(raised.value)
        with pytest.raises(codex.SetupError):
            codex.remove(home)
        assert _snapshot(path) == before  # bytes, mtime, and no backup or temp file
        assert codex.status(home).state is codex.State.BROKEN
        assert "not valid TOML" in (codex.conflict(home) or "")


# --- examples ---------------------------------------------------------------------------


def test_without_a_provider_no_file_and_no_directory_is_created(tmp_path: Path) -> None:
    home = tmp_path / "new" / "codex"
    assert codex.install(home).changed is False
    assert not (tmp_path / "new").exists()
    assert codex.status(home).ok and codex.conflict(home) is None


def test_a_missing_config_is_created_private_with_only_the_block(tmp_path: Path) -> None:
    home = tmp_path / "new" / "codex"
    change = codex.install(home, model_provider=PROVIDER)
    assert change.changed and change.backup is None
    path = home / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert text.startswith(codex.START) and text.endswith(codex.END + "\n")
    assert os.listdir(home) == ["config.toml"]


def test_install_uses_codex_home_from_the_environment(isolated_home: Path) -> None:
    codex.install(model_provider=PROVIDER)
    assert (isolated_home / ".codex" / "config.toml").exists()  # conftest's CODEX_HOME


def test_the_previous_file_is_backed_up_with_its_mode_and_the_mode_is_kept(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, "# mine\n")
    path.chmod(0o640)
    change = codex.install(tmp_path, model_provider=PROVIDER)
    assert change.backup == tmp_path / "config.toml.kanban-backup"
    assert change.backup.read_text() == "# mine\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE(change.backup.stat().st_mode) == 0o640
    backed_up = change.backup.stat().st_mtime_ns
    assert codex.install(tmp_path, model_provider=PROVIDER).backup is None
    assert change.backup.stat().st_mtime_ns == backed_up  # no change, no new backup


def test_a_symlinked_config_stays_a_symlink(tmp_path: Path) -> None:
    target = _write(tmp_path / "dotfiles", "# mine\n")
    home = tmp_path / "codex"
    home.mkdir()
    (home / "config.toml").symlink_to(target)
    codex.install(home, model_provider=PROVIDER)
    assert (home / "config.toml").is_symlink()
    assert codex.START in target.read_text()
    codex.install(home)
    assert (home / "config.toml").is_symlink() and target.read_text() == "# mine\n"


def test_the_block_goes_before_the_first_table_and_its_glued_comments(tmp_path: Path) -> None:
    doc = 'approval_policy = "on-request"\n\n# my servers\n[mcp_servers.docs]\ncommand = "d"\n'
    path = _write(tmp_path, doc)
    codex.install(tmp_path, model_provider=PROVIDER)
    text = path.read_text()
    assert text.index('approval_policy = "on-request"') < text.index(codex.START)
    assert text.index(codex.END) < text.index("# my servers")
    data = tomllib.loads(text)
    assert data["model"] == "scripted"  # top level, not inside anybody's table
    assert data["mcp_servers"] == {"docs": {"command": "d"}}


def test_setup_migrates_an_old_block_and_leaves_the_users_settings_untouched(
    tmp_path: Path,
) -> None:
    mine = (
        '# my settings\napproval_policy = "on-request"\n\n'
        '[mcp_servers.docs]\ncommand = "d"  # my docs server\n\n[features]\nplugins = false\n'
    )
    split = mine.index("[mcp_servers.docs]")
    path = _write(tmp_path, mine[:split] + OLD_BLOCK + mine[split:])  # where it used to go
    stale = codex.status(tmp_path)
    assert stale.state is codex.State.STALE
    assert "stdio MCP server of an older kanban" in stale.detail
    assert stale.fix == "run `kanban setup codex`"
    assert codex.install(tmp_path).changed is True
    assert path.read_text() == mine
    assert codex.status(tmp_path).ok
    assert codex.install(tmp_path).changed is False


def test_the_stale_status_of_an_old_block_with_a_provider_says_how_to_keep_it(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, "")
    codex.install(tmp_path, model_provider=PROVIDER)
    path.write_text(_made_old(path.read_text(), with_provider=True))
    stale = codex.status(tmp_path)
    assert stale.state is codex.State.STALE
    assert stale.fix == (
        "run `kanban setup codex --model-provider-url http://127.0.0.1:9/v1 --model scripted`"
    )


@pytest.mark.parametrize(
    "table",
    [
        'command = "my-own-kanban"\n',
        'command = "my-own-kanban"\nenabled = false\n',  # disabled, yet Codex still refuses
        'url = "http://127.0.0.1:7000/mcp"\n',
    ],
)
def test_a_users_own_kanban_server_is_reported_refused_and_kept(tmp_path: Path, table: str) -> None:
    path = _write(tmp_path, "[mcp_servers.kanban]\n" + table)
    before = _snapshot(path)
    found = codex.conflict(tmp_path)
    assert found is not None
    assert r"own [mcp_servers.kanban]" in found and "rename" in found
    for provider in (None, PROVIDER):
        with pytest.raises(codex.SetupError, match=r"own \[mcp_servers.kanban\].*rename"):
            codex.install(tmp_path, model_provider=provider)
    with pytest.raises(codex.SetupError, match=r"own \[mcp_servers.kanban\]"):
        codex.install(tmp_path, repair=True)
    assert _snapshot(path) == before
    status = codex.status(tmp_path)
    assert status.state is codex.State.BROKEN and "rename" in status.fix


def test_conflict_says_what_to_run_for_each_kind_of_kanban_table(tmp_path: Path) -> None:
    assert codex.conflict(tmp_path) is None  # no file
    _write(tmp_path, '[mcp_servers.docs]\ncommand = "d"\n')
    assert codex.conflict(tmp_path) is None
    _write(tmp_path, OLD_BLOCK)
    assert (codex.conflict(tmp_path) or "").endswith("run `kanban setup codex` to migrate")
    _write(tmp_path, OLD_SERVER)  # its marker lines dropped by `codex mcp add`
    assert (codex.conflict(tmp_path) or "").endswith("run `kanban setup codex --repair`")
    _write(tmp_path, "mcp_servers = 3\n")
    assert "not a table" in (codex.conflict(tmp_path) or "")


@pytest.mark.parametrize(
    "doc",
    ['model = "o3"\n', 'model_provider = "openai"\n', '[model_providers.kanban]\nname = "x"\n'],
)
def test_a_users_own_model_settings_are_never_overridden(tmp_path: Path, doc: str) -> None:
    path = _write(tmp_path, doc)
    with pytest.raises(codex.SetupError, match="will not override your model"):
        codex.install(tmp_path, model_provider=PROVIDER)
    assert path.read_text() == doc
    codex.install(tmp_path)  # without a provider there is nothing to clash
    assert path.read_text() == doc


def test_keys_written_after_the_end_marker_are_refused_not_swallowed(tmp_path: Path) -> None:
    path = _write(tmp_path, 'approval_policy = "on-request"\n')
    codex.install(tmp_path, model_provider=PROVIDER)
    path.write_text(path.read_text() + "sandbox_mode = 'workspace-write'\n")
    before = _snapshot(path)
    attempts = (
        lambda: codex.install(tmp_path, model_provider=PROVIDER),
        lambda: codex.install(tmp_path),
        lambda: codex.remove(tmp_path),
    )
    for attempt in attempts:
        with pytest.raises(codex.SetupError, match="move them above"):
            attempt()
    assert _snapshot(path) == before
    assert codex.status(tmp_path).state is codex.State.BROKEN


def test_a_damaged_block_is_refused_until_repair_removes_only_our_leftovers(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, "# top\n[mcp_servers.other]\ncommand = 'x'\n")
    codex.install(tmp_path, model_provider=PROVIDER)
    # What `codex mcp add` leaves: the end marker line is gone.
    damaged = path.read_text().replace(codex.END + "\n", "")
    path.write_text(damaged)
    with pytest.raises(codex.SetupError, match="--repair"):
        codex.install(tmp_path, model_provider=PROVIDER)
    assert path.read_text() == damaged
    assert codex.status(tmp_path).fix == "run `kanban setup codex --repair`"

    codex.install(tmp_path, model_provider=PROVIDER, repair=True)
    data = tomllib.loads(path.read_text())
    assert data["mcp_servers"]["other"] == {"command": "x"}
    assert data["model_providers"]["kanban"]["base_url"] == PROVIDER.base_url  # a fresh block
    assert codex.status(tmp_path).state is codex.State.CURRENT
    codex.remove(tmp_path)
    assert tomllib.loads(path.read_text()) == {"mcp_servers": {"other": {"command": "x"}}}


def test_repair_removes_an_old_server_table_whose_markers_are_gone(tmp_path: Path) -> None:
    # An old block after `codex mcp add`: the server and a provider of ours, no markers.
    path = _write(tmp_path, "")
    codex.install(tmp_path, model_provider=PROVIDER)
    old = _made_old(path.read_text(), with_provider=True)
    markerless = "".join(
        line
        for line in old.splitlines(keepends=True)
        if line.rstrip("\n") not in (codex.START, codex.END, *codex.NOTE)
    )
    path.write_text(markerless + '\n[mcp_servers.extra]\ncommand = "/bin/echo"\n')
    assert codex.status(tmp_path).fix == "run `kanban setup codex --repair`"
    with pytest.raises(codex.SetupError, match="--repair"):
        codex.install(tmp_path)
    assert codex.install(tmp_path, repair=True).changed is True
    assert tomllib.loads(path.read_text()) == {"mcp_servers": {"extra": {"command": "/bin/echo"}}}
    assert codex.status(tmp_path).ok and codex.conflict(tmp_path) is None


def test_an_inline_table_that_our_header_cannot_extend_is_refused_untouched(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, 'model_providers = { mine = { name = "m" } }\n')
    before = _snapshot(path)
    with pytest.raises(codex.SetupError, match="inline table"):
        codex.install(tmp_path, model_provider=PROVIDER)
    assert _snapshot(path) == before


def test_remove_without_a_block_writes_nothing(tmp_path: Path) -> None:
    path = _write(tmp_path, "a = 1\n")
    before = _snapshot(path)
    assert codex.remove(tmp_path).changed is False
    assert _snapshot(path) == before
    assert codex.remove(tmp_path / "nowhere").changed is False


def test_status_is_current_with_or_without_a_block(tmp_path: Path) -> None:
    assert codex.status(tmp_path).state is codex.State.CURRENT  # no file: nothing needed
    _write(tmp_path, "a = 1\n")
    assert codex.status(tmp_path).state is codex.State.CURRENT
    codex.install(tmp_path, model_provider=PROVIDER)
    current = codex.status(tmp_path)
    assert current.ok and PROVIDER.base_url in current.detail


# --- the real Codex ---------------------------------------------------------------------


def _codex_bin() -> str:
    explicit = os.environ.get("KANBAN_CODEX_BIN")
    path = Path(explicit) if explicit else REPO_ROOT / ".tools" / "node_modules" / ".bin" / "codex"
    assert path.exists(), f"codex is not installed at {path}: run `make tools`"
    return str(path)


def _run_codex(home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_codex_bin(), *args],
        env={**os.environ, "CODEX_HOME": str(home)},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# What a worker's Codex gets on its command line instead of a table in config.toml.
PER_RUN = ("-c", 'mcp_servers.kanban.url="http://127.0.0.1:9/mcp"')


@pytest.mark.e2e
def test_real_codex_reads_the_block_and_sees_no_kanban_server_of_ours(tmp_path: Path) -> None:
    home = tmp_path / "codex"
    _write(home, '# mine\napproval_policy = "on-request"\n[mcp_servers.docs]\ncommand = "d"\n')
    codex.install(home, model_provider=PROVIDER)
    listed = _run_codex(home, "mcp", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {s["name"] for s in json.loads(listed.stdout)} == {"docs"}


@pytest.mark.e2e
@pytest.mark.parametrize(
    "config",
    [
        "",
        OLD_BLOCK,
        '[mcp_servers.kanban]\ncommand = "mine"\nenabled = false\n',
        '[mcp_servers.docs]\ncommand = "d"\n',
    ],
    ids=["empty", "old-block", "users-disabled-table", "other-server"],
)
def test_conflict_is_none_exactly_when_real_codex_takes_the_per_run_server(
    tmp_path: Path, config: str
) -> None:
    home = tmp_path / "codex"
    _write(home, config)
    got = _run_codex(home, *PER_RUN, "mcp", "get", "kanban", "--json")
    assert (got.returncode == 0) == (codex.conflict(home) is None), got.stderr
    if got.returncode == 0:
        assert json.loads(got.stdout)["transport"]["url"] == "http://127.0.0.1:9/mcp"
    else:
        assert "url is not supported for stdio" in got.stderr
    if config == OLD_BLOCK:  # and after the migration, Codex takes it
        codex.install(home)
        assert _run_codex(home, *PER_RUN, "mcp", "get", "kanban").returncode == 0


@pytest.mark.e2e
def test_plain_codex_works_after_setup_once_kanbans_virtualenv_is_gone(tmp_path: Path) -> None:
    """The bug this layout fixes: an old block names kanban's interpreter, which is deleted."""
    script = {"scenarios": [{"match": "", "turns": [[{"message": "plain codex works"}]]}]}
    with scripted_model.serve(script) as server:
        home = tmp_path / "codex"
        # The user's own model provider and settings, and the block an older kanban added.
        mine = (
            f'model = "{scripted_model.MODEL_NAME}"\nmodel_provider = "mine"\n\n'
            f'[model_providers.mine]\nname = "mine"\nbase_url = "{server.base_url}"\n'
            f'wire_api = "responses"\n\n{USER_FEATURES}'
        )
        split = mine.index("[model_providers.mine]")
        path = _write(home, mine[:split] + OLD_BLOCK + mine[split:])

        def plain_codex() -> subprocess.CompletedProcess[str]:
            return _run_codex(home, "exec", "--skip-git-repo-check", "say hi", cwd=tmp_path)

        broken = plain_codex()
        assert broken.returncode != 0
        assert "required MCP servers failed to initialize: kanban" in broken.stderr

        setup = cli.kanban("setup", "codex", "--codex-home", str(home))
        assert "Removed kanban's old block" in setup.stdout
        assert path.read_text() == mine

        fixed = plain_codex()
        assert fixed.returncode == 0, fixed.stderr
        assert "plain codex works" in fixed.stdout


@pytest.mark.e2e
def test_repair_recovers_after_codex_mcp_add_rewrites_the_file(tmp_path: Path) -> None:
    home = tmp_path / "codex"
    _write(home, "# mine\n[mcp_servers.docs]\ncommand = 'd'\n")
    codex.install(home, model_provider=PROVIDER)
    added = _run_codex(home, "mcp", "add", "extra", "--", "/bin/echo", "hi")
    assert added.returncode == 0, added.stderr
    assert codex.status(home).state is codex.State.BROKEN  # it dropped our end marker
    codex.install(home, model_provider=PROVIDER, repair=True)
    assert codex.status(home).ok
    listed = json.loads(_run_codex(home, "mcp", "list", "--json").stdout)
    assert {s["name"] for s in listed} == {"docs", "extra"}
