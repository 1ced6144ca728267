"""A Hermes home of kanban's own, for the `hermes` runtime (``kanban setup hermes``).

Workers run ``hermes chat`` on Hermes' Codex app-server runtime. That needs a ``config.yaml``
selecting it (``model.provider: custom`` with ``model.api_mode: codex_app_server``: the
documented ``model.openai_runtime`` switch applies only to the ChatGPT-login provider) and an
existing ``$HERMES_HOME/kanban`` directory (Hermes makes it a writable root of Codex's sandbox,
and bwrap fails every sandboxed command when a bind-mount source is missing). Example::

    from worker.setup import hermes
    hermes.install()                                  # ~/.kanban/hermes
    hermes.runtime_env(codex_bin="/opt/codex/bin/codex")  # HERMES_HOME=..., CODEX_HOME=...

Why a separate HERMES_HOME and not a Hermes profile: a profile is just a HERMES_HOME under the
user's Hermes root (``~/.hermes/profiles/<name>``, what ``hermes -p NAME`` selects), so it
would live inside the user's own Hermes tree, appear in their ``hermes profile list``, get
wrapper scripts in ``~/.local/bin`` and bundled skills on ``hermes profile create``, and above
all share Hermes' own kanban board with the user: Hermes anchors ``kanban.db`` at the *root*
of its profiles (``kanban_home()`` -> ``~/.hermes``), and our workers set
``HERMES_KANBAN_TASK``, which switches that board on. A HERMES_HOME outside ``~/.hermes`` is
its own root: sessions, logs, memories and Hermes' board all stay in it, and nothing of the
user's Hermes is read or written. We also pin ``HERMES_KANBAN_HOME`` to it so Hermes' board
location never depends on that path heuristic.

Hermes must be given an endpoint of its own even though on this runtime every model turn goes
through Codex (whose model and provider come from ``$CODEX_HOME/config.toml`` or its login):
without one it resolves to OpenRouter and stops for lack of a key. Unless a model provider URL
is given (offline runs), that endpoint is the discard port on loopback, so Hermes' side calls
(model metadata lookups) fail at once, locally, instead of reaching a real provider.

The config is written as JSON, which is YAML (Hermes reads it with PyYAML), so kanban needs no
YAML library. Only the ``model`` keys listed in `OWNED_MODEL_KEYS` are ours; anything else a
user adds to the file survives re-runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from pathlib import Path
from typing import Any

from worker.setup import codex

HOME_ENV = "KANBAN_HERMES_HOME"  # not HERMES_HOME: that one names the user's own Hermes home
OFFLINE_API_KEY = "kanban-unused"  # Hermes insists on a non-empty key for a custom endpoint
PLACEHOLDER_BASE_URL = "http://127.0.0.1:9/v1"  # discard port: nothing listens, fails at once
OWNED_MODEL_KEYS = ("provider", "api_mode", "base_url", "default", "api_key")
# Inherited, these would point Hermes at the user's own board, and the sandbox's writable root
# at that board's directory (Hermes derives it from HERMES_KANBAN_DB): a worker blanks them.
BLANKED_VARIABLES = ("HERMES_KANBAN_DB", "HERMES_KANBAN_BOARD", "HERMES_KANBAN_WORKSPACES_ROOT")


@dataclasses.dataclass(frozen=True)
class Status:
    home: Path
    state: codex.State
    detail: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.state is codex.State.CURRENT


def hermes_home(override: str | os.PathLike[str] | None = None) -> Path:
    """`override`, else ``$KANBAN_HERMES_HOME``, else ``~/.kanban/hermes``."""
    raw = override if override is not None else os.environ.get(HOME_ENV) or "~/.kanban/hermes"
    return Path(os.path.abspath(Path(raw).expanduser()))


def config_path(home: str | os.PathLike[str] | None = None) -> Path:
    return hermes_home(home) / "config.yaml"


def model_settings(model_provider: codex.ModelProvider | None = None) -> dict[str, str]:
    """The ``model`` keys kanban owns in the config."""
    settings = {"provider": "custom", "api_mode": "codex_app_server"}
    if model_provider is None:
        settings |= {"base_url": PLACEHOLDER_BASE_URL, "api_key": OFFLINE_API_KEY}
    else:
        settings |= {
            "base_url": model_provider.base_url,
            "default": model_provider.model,
            "api_key": OFFLINE_API_KEY,
        }
    return settings


def install(
    home: str | os.PathLike[str] | None = None,
    *,
    model_provider: codex.ModelProvider | None = None,
) -> codex.Change:
    """Create the home, its ``kanban`` directory and the config; a no-op when current."""
    home_path = hermes_home(home)
    _refuse_users_hermes(home_path)
    path = home_path / "config.yaml"
    before = _read(path)
    config = _parse(path, before) if before is not None else {}
    model = config.get("model")
    if model is not None and not isinstance(model, dict):
        raise codex.SetupError(
            f"{path}: `model` is {model!r}, not a mapping; delete the file and run "
            "`kanban setup hermes` again"
        )
    try:
        home_path.mkdir(mode=0o700, parents=True, exist_ok=True)
        (home_path / "kanban").mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        raise codex.SetupError(f"cannot create {home_path / 'kanban'}: {exc.strerror}") from exc
    model = {k: v for k, v in (model or {}).items() if k not in OWNED_MODEL_KEYS}
    config["model"] = model_settings(model_provider) | model
    # Tirith screens Hermes' own terminal tool, which never runs here (Codex's sandbox runs the
    # commands); left on, it tries a download at every start and prints a warning on stdout.
    security = config.get("security")
    if security is None or isinstance(security, dict):
        config["security"] = {"tirith_enabled": False} | (security or {})
    text = json.dumps(config, indent=2) + "\n"
    if text == before:
        return codex.Change(path, changed=False)
    backup = None
    if before is not None:
        mode = stat.S_IMODE(path.stat().st_mode)
        backup = path.with_name(path.name + codex.BACKUP_SUFFIX)
        codex.write_atomically(backup, before.encode("utf-8"), mode=mode)
    else:
        mode = codex.NEW_FILE_MODE
    previous = before.encode("utf-8") if before is not None else None
    codex.write_atomically(path, text.encode("utf-8"), mode=mode, previous=previous)
    return codex.Change(path, changed=True, backup=backup)


def status(home: str | os.PathLike[str] | None = None, *, max_workers: int | None = None) -> Status:
    """Does the home exist with a config selecting the Codex runtime, whose model settings
    can work (a ``base_url``; room for `max_workers` sessions at once)? For `doctor` and the
    runtime."""
    home_path = hermes_home(home)
    path = home_path / "config.yaml"
    try:
        _refuse_users_hermes(home_path)
        text = _read(path)
        config = _parse(path, text) if text is not None else None
    except codex.SetupError as exc:
        return Status(home_path, codex.State.BROKEN, str(exc), fix="see the detail")
    if config is None:
        return Status(home_path, codex.State.MISSING, f"no {path}", fix="run `kanban setup hermes`")
    model = config.get("model")
    if not isinstance(model, dict):
        model = {}
    wrong = [
        f"model.{key} is {model.get(key)!r}, not {value!r}"
        for key, value in model_settings().items()
        if key in ("provider", "api_mode") and model.get(key) != value
    ]
    endpoint = model.get("base_url")
    if not (isinstance(endpoint, str) and endpoint.strip()):
        # Measured with Hermes 0.19: it then looks for an OpenRouter key and exits 1.
        wrong.append(
            'model.base_url is missing: Hermes then stops at once ("Provider resolver '
            'returned an empty API key")'
        )
    if not (home_path / "kanban").is_dir():
        wrong.append(f"{home_path / 'kanban'} is missing (Codex's sandbox needs it)")
    if wrong:
        return Status(
            home_path, codex.State.STALE, "; ".join(wrong), fix="run `kanban setup hermes`"
        )
    limit = session_limit(config)
    if limit is not None and max_workers is not None and limit < max_workers:
        return Status(
            home_path,
            codex.State.BROKEN,
            f"{path} sets max_concurrent_sessions to {limit}, but the dispatcher runs up to "
            f'{max_workers} workers: Hermes refuses the others ("Hermes is at the active '
            'session limit")',
            fix=f"remove max_concurrent_sessions from {path} (or set it to at least "
            f"{max_workers}), or lower the dispatcher's max_workers",
        )
    offline = endpoint != PLACEHOLDER_BASE_URL
    detail = f"{home_path}; Codex runtime" + (f"; model endpoint {endpoint}" if offline else "")
    return Status(home_path, codex.State.CURRENT, detail)


def session_limit(config: dict[str, Any]) -> int | None:
    """Hermes' cap on sessions running at once in this home (None: no cap), read as Hermes
    0.19 reads it: ``max_concurrent_sessions``, else ``gateway.max_concurrent_sessions``; a
    positive whole number, anything else meaning no cap."""
    raw = config.get("max_concurrent_sessions")
    if "max_concurrent_sessions" not in config and isinstance(config.get("gateway"), dict):
        raw = config["gateway"].get("max_concurrent_sessions")
    if isinstance(raw, bool) or raw is None:
        return None
    try:
        if isinstance(raw, float) and not raw.is_integer():
            return None
        limit = int(raw.strip(), 10) if isinstance(raw, str) else int(raw)
    except (TypeError, ValueError):
        return None
    return limit if limit > 0 else None


def runtime_env(
    home: str | os.PathLike[str] | None = None,
    *,
    codex_home: str | os.PathLike[str] | None = None,
    codex_bin: str | os.PathLike[str] | None = None,
    path: str | None = None,
) -> dict[str, str]:
    """The variables the `hermes` runtime must set in every worker's environment.

    Only assignments, so they can be laid over any inherited environment: variables that would
    point Hermes at another board are set blank (Hermes reads blank as unset). ``CODEX_HOME`` is
    explicit because Hermes may give its subprocesses a HOME of its own (in containers), which
    would hide ``~/.codex`` and our MCP server with it. Hermes starts ``codex`` from PATH, so
    `codex_bin` puts that program's directory first (before `path`, default ``$PATH``). The
    worker's own variables (`worker.env`) are the runtime's to add. Example::

        launch_env = hermes.runtime_env(codex_bin=settings.codex_bin) | worker_variables
    """
    home_path = hermes_home(home)
    variables = {
        "HERMES_HOME": str(home_path),
        # Hermes' own board (switched on by HERMES_KANBAN_TASK) stays in this home.
        "HERMES_KANBAN_HOME": str(home_path),
        # The one extra writable root of Codex's sandbox; never an inherited board's directory.
        "HERMES_KANBAN_ROOT": str(home_path / "kanban"),
        **dict.fromkeys(BLANKED_VARIABLES, ""),
        "CODEX_HOME": str(codex.codex_home(codex_home)),
        # Hermes' re-prompting looks for its own kanban tools, which never run here.
        "HERMES_KANBAN_STOP_NUDGE": "0",
    }
    if codex_bin is not None:
        directory = os.path.dirname(os.path.abspath(codex_bin))
        inherited = os.environ.get("PATH", "") if path is None else path
        variables["PATH"] = os.pathsep.join(p for p in (directory, inherited) if p)
    return variables


def _refuse_users_hermes(home: Path) -> None:
    # Hermes treats anything under its default root, or under a directory named `profiles`,
    # as a profile of another root, and anchors its own board at that root.
    users = Path(os.path.abspath(Path("~/.hermes").expanduser()))
    own = os.environ.get("HERMES_HOME")
    roots = [users] + ([Path(os.path.abspath(Path(own).expanduser()))] if own else [])
    for root in roots:
        if home == root or home.is_relative_to(root):
            raise codex.SetupError(
                f"{home} is inside your own Hermes home {root}; kanban's workers need a home "
                "of their own: pass --hermes-home (or set KANBAN_HERMES_HOME to) another path"
            )
    if home.parent.name == "profiles":
        raise codex.SetupError(
            f"{home} sits in a directory named `profiles`, which Hermes takes for a profile of "
            f"{home.parent.parent}; pick another --hermes-home"
        )


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise codex.SetupError(f"cannot read {path}: {exc}") from exc


def _parse(path: Path, text: str) -> dict[str, Any]:
    try:
        config = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise codex.SetupError(
            f"{path} is not in the JSON form kanban writes ({exc}); kanban left it untouched. "
            "Delete it (or move it aside) and run `kanban setup hermes` again, or set "
            "`model.provider: custom` and `model.api_mode: codex_app_server` in it yourself"
        ) from exc
    if not isinstance(config, dict):
        raise codex.SetupError(f"{path} does not hold a mapping; delete it and run again")
    return config
