"""Numbered schema migrations, applied in order inside one write transaction.

``PRAGMA user_version`` records the last one applied. Each migration is a function
``mNNN_name(conn)``; add new ones at the end of `MIGRATIONS`, never edit an applied one.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from collections.abc import Callable

from board import states

Migration = Callable[[sqlite3.Connection], None]


def _run(conn: sqlite3.Connection, script: str) -> None:
    # executescript() would COMMIT our transaction; run statement by statement instead.
    for statement in script.split(";\n"):
        if statement.strip():
            conn.execute(statement)


def m001_initial(conn: sqlite3.Connection) -> None:
    statuses = states.sql_list(states.Status)
    outcomes = states.sql_list(states.Outcome)
    _run(
        conn,
        f"""
        CREATE TABLE tasks (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL CHECK (length(trim(title)) BETWEEN 1 AND 500),
            body TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL CHECK (status IN {statuses}),
            priority INTEGER NOT NULL DEFAULT 0,
            parent_id INTEGER REFERENCES tasks (id),
            depth INTEGER NOT NULL DEFAULT 0,
            repo TEXT,
            base_ref TEXT,
            branch TEXT,
            worktree TEXT,
            runtime TEXT NOT NULL,
            runtime_options TEXT NOT NULL DEFAULT '{{}}' CHECK (json_valid(runtime_options)),
            max_attempts INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
            attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            next_attempt_at REAL,
            timeout REAL CHECK (timeout IS NULL OR timeout > 0),
            summary TEXT,
            block_reason TEXT,
            failure_reason TEXT,
            resume INTEGER NOT NULL DEFAULT 0,
            current_run_id INTEGER,
            batch_id TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            ended_at REAL,
            CHECK (status <> 'running' OR current_run_id IS NOT NULL)
        );
        CREATE INDEX tasks_ready ON tasks (priority DESC, id) WHERE status = 'ready';
        CREATE INDEX tasks_retry_at ON tasks (next_attempt_at)
            WHERE status = 'ready' AND next_attempt_at IS NOT NULL;
        CREATE INDEX tasks_status ON tasks (status);
        CREATE INDEX tasks_parent ON tasks (parent_id) WHERE parent_id IS NOT NULL;
        CREATE INDEX tasks_batch ON tasks (batch_id) WHERE batch_id IS NOT NULL;

        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            task_id INTEGER NOT NULL REFERENCES tasks (id),
            attempt INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('first', 'retry', 'resume')),
            token TEXT NOT NULL,
            dispatcher_id INTEGER,
            shim_pid INTEGER,
            shim_started_at REAL,
            pid INTEGER,
            pid_started_at REAL,
            started_at REAL NOT NULL,
            heartbeat_at REAL,
            lease_expires_at REAL,
            note TEXT,
            reported_at REAL,
            exited_at REAL,
            exit_code INTEGER,
            signal INTEGER,
            ended_at REAL,
            outcome TEXT CHECK (outcome IS NULL OR outcome IN {outcomes}),
            settled_by TEXT,
            reason TEXT,
            summary TEXT,
            log_path TEXT,
            worktree TEXT,
            branch TEXT,
            commit_sha TEXT
        );
        -- One process at a time per task: a run is un-ended until the dispatcher has settled it.
        CREATE UNIQUE INDEX runs_one_unended ON runs (task_id) WHERE ended_at IS NULL;
        CREATE INDEX runs_task ON runs (task_id, id);

        CREATE TABLE deps (
            blocker_id INTEGER NOT NULL REFERENCES tasks (id),
            blocked_id INTEGER NOT NULL REFERENCES tasks (id),
            created_at REAL NOT NULL,
            PRIMARY KEY (blocker_id, blocked_id),
            CHECK (blocker_id <> blocked_id)
        ) WITHOUT ROWID;
        CREATE INDEX deps_blocked ON deps (blocked_id, blocker_id);

        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            task_id INTEGER NOT NULL REFERENCES tasks (id),
            run_id INTEGER,
            at REAL NOT NULL,
            kind TEXT NOT NULL,
            from_status TEXT,
            to_status TEXT,
            actor TEXT NOT NULL,
            data TEXT CHECK (data IS NULL OR json_valid(data))
        );
        CREATE INDEX events_task ON events (task_id, id);
        CREATE TRIGGER events_no_update BEFORE UPDATE ON events
            BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
        CREATE TRIGGER events_no_delete BEFORE DELETE ON events
            BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;

        CREATE TABLE comments (
            id INTEGER PRIMARY KEY,
            task_id INTEGER NOT NULL REFERENCES tasks (id),
            run_id INTEGER,
            author TEXT NOT NULL,
            body TEXT NOT NULL CHECK (length(body) > 0),
            at REAL NOT NULL
        );
        CREATE INDEX comments_task ON comments (task_id, id);

        CREATE TABLE dispatchers (
            id INTEGER PRIMARY KEY,
            pid INTEGER NOT NULL,
            pid_started_at REAL,
            host TEXT NOT NULL,
            wake_address TEXT,
            started_at REAL NOT NULL,
            heartbeat_at REAL NOT NULL
        )
        """,
    )


def m002_batches_and_schedules(conn: sqlite3.Connection) -> None:
    _run(
        conn,
        """
        CREATE TABLE batches (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            idempotency_key TEXT UNIQUE,
            source TEXT,
            schedule TEXT,
            fire_at REAL,
            created_at REAL NOT NULL
        );
        CREATE TABLE schedules (
            name TEXT PRIMARY KEY,
            cron TEXT NOT NULL,
            batch_path TEXT NOT NULL,
            enabled INTEGER NOT NULL DEFAULT 1,
            created_at REAL NOT NULL,
            last_fire_at REAL
        );
        -- Exactly once per fire time: the primary key is the claim.
        CREATE TABLE schedule_fires (
            schedule TEXT NOT NULL,
            fire_at REAL NOT NULL,
            fired_at REAL NOT NULL,
            batch_id INTEGER REFERENCES batches (id),
            error TEXT,
            PRIMARY KEY (schedule, fire_at)
        ) WITHOUT ROWID;
        ALTER TABLE tasks ADD COLUMN batch_key TEXT
        """,
    )


def m003_settings(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL"
        " CHECK (json_valid(value)), updated_at REAL NOT NULL)"
    )


def m004_identities(conn: sqlite3.Connection) -> None:
    """Identities that are never reused: dispatcher ids (AUTOINCREMENT) and the board's own id.

    A dispatcher id reused after a crash made the next dispatcher count the dead one's runs as
    its own and never adopt them. The board id goes into branch, worktree and log names, so two
    boards on one repository (or a board recreated after deletion) never share them.
    """
    _run(
        conn,
        """
        CREATE TABLE dispatchers_new (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            pid INTEGER NOT NULL,
            pid_started_at REAL,
            host TEXT NOT NULL,
            wake_address TEXT,
            started_at REAL NOT NULL,
            heartbeat_at REAL NOT NULL
        );
        INSERT INTO dispatchers_new SELECT * FROM dispatchers;
        DROP TABLE dispatchers;
        ALTER TABLE dispatchers_new RENAME TO dispatchers
        """,
    )
    # Ids handed out before this migration (runs still name them) stay below every new one.
    highest = conn.execute("SELECT max(dispatcher_id) FROM runs").fetchone()[0] or 0
    conn.execute(
        "INSERT INTO sqlite_sequence (name, seq) SELECT 'dispatchers', ?"
        " WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'dispatchers')",
        (highest,),
    )
    conn.execute(
        "UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'dispatchers'", (highest,)
    )
    # Attempts given back to a task (a run lost to the orchestrator's failure, a rate limit)
    # are counted, so that refunds stop somewhere.
    conn.execute("ALTER TABLE runs ADD COLUMN refunded INTEGER NOT NULL DEFAULT 0")
    conn.execute(
        "INSERT OR IGNORE INTO settings (key, value, updated_at) VALUES ('board_id', ?, 0)",
        (json.dumps(secrets.token_hex(4)),),
    )


def m005_workspaces(conn: sqlite3.Connection) -> None:
    """What a repository's workspace gives a run, what its check found; tokens hashed.

    Runs gain the ports they held (``ports``: a JSON list) and the result of the repository's
    check after they completed (``check_result``: JSON, see `board.runs.CheckResult`); their
    outcome may now be ``check_failed``, so the table is rebuilt with the new CHECK. Tasks
    gain ``workspace``: a batch file's overrides of the repository's ``setup`` and ``check``.
    A run's token is kept only as its SHA-256 (``token_hash``): whoever reads the board file
    gets no token a tool server would accept.
    """
    outcomes = states.sql_list(states.Outcome)
    conn.create_function(
        "kanban_token_hash",
        1,
        lambda token: hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest(),
        deterministic=True,
    )
    _run(
        conn,
        f"""
        CREATE TABLE runs_new (
            id INTEGER PRIMARY KEY,
            task_id INTEGER NOT NULL REFERENCES tasks (id),
            attempt INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('first', 'retry', 'resume')),
            token_hash TEXT NOT NULL,
            dispatcher_id INTEGER,
            shim_pid INTEGER,
            shim_started_at REAL,
            pid INTEGER,
            pid_started_at REAL,
            started_at REAL NOT NULL,
            heartbeat_at REAL,
            lease_expires_at REAL,
            note TEXT,
            reported_at REAL,
            exited_at REAL,
            exit_code INTEGER,
            signal INTEGER,
            ended_at REAL,
            outcome TEXT CHECK (outcome IS NULL OR outcome IN {outcomes}),
            settled_by TEXT,
            reason TEXT,
            summary TEXT,
            log_path TEXT,
            worktree TEXT,
            branch TEXT,
            commit_sha TEXT,
            refunded INTEGER NOT NULL DEFAULT 0,
            ports TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(ports)),
            check_result TEXT CHECK (check_result IS NULL OR json_valid(check_result))
        );
        INSERT INTO runs_new (
            id, task_id, attempt, kind, token_hash, dispatcher_id, shim_pid, shim_started_at, pid,
            pid_started_at, started_at, heartbeat_at, lease_expires_at, note, reported_at,
            exited_at, exit_code, signal, ended_at, outcome, settled_by, reason, summary,
            log_path, worktree, branch, commit_sha, refunded
        ) SELECT
            id, task_id, attempt, kind, kanban_token_hash(token), dispatcher_id, shim_pid,
            shim_started_at, pid,
            pid_started_at, started_at, heartbeat_at, lease_expires_at, note, reported_at,
            exited_at, exit_code, signal, ended_at, outcome, settled_by, reason, summary,
            log_path, worktree, branch, commit_sha, refunded
        FROM runs;
        DROP TABLE runs;
        ALTER TABLE runs_new RENAME TO runs;
        CREATE UNIQUE INDEX runs_one_unended ON runs (task_id) WHERE ended_at IS NULL;
        CREATE INDEX runs_task ON runs (task_id, id);
        CREATE UNIQUE INDEX runs_token_hash ON runs (token_hash);
        ALTER TABLE tasks ADD COLUMN workspace TEXT NOT NULL DEFAULT '{{}}'
            CHECK (json_valid(workspace))
        """,
    )


def m006_landing(conn: sqlite3.Connection) -> None:
    """What landing needs: the branch a task lands into, where it landed, what is unresolved.

    ``base_branch``: the branch its base was taken from (``base_ref`` pins the commit).
    ``conflicts``: files a merge kanban made left with conflict markers, until resolved.
    ``landed_sha`` / ``landed_at``: the commit of the base branch that holds its work.
    ``landed_from``: its branch's tip when it landed (`kanban gc` may delete that branch).
    ``pr_url``: the pull request opened for it, if any.
    ``catch_up``: a commit of its base branch to merge at its next start (a landing that
    conflicted reopened it: the conflict is then in its worktree, for its agent to resolve).
    """
    _run(
        conn,
        """
        ALTER TABLE tasks ADD COLUMN base_branch TEXT;
        ALTER TABLE tasks ADD COLUMN conflicts TEXT NOT NULL DEFAULT '[]'
            CHECK (json_valid(conflicts));
        ALTER TABLE tasks ADD COLUMN landed_sha TEXT;
        ALTER TABLE tasks ADD COLUMN landed_at REAL;
        ALTER TABLE tasks ADD COLUMN landed_from TEXT;
        ALTER TABLE tasks ADD COLUMN pr_url TEXT;
        ALTER TABLE tasks ADD COLUMN catch_up TEXT
        """,
    )


def m007_usage(conn: sqlite3.Connection) -> None:
    """What runs use, and the bounds on it.

    A run's usage as its agent reported it (``model``, the token columns, ``cost_usd``), and
    where its cost came from (``cost_source``: ``agent``, or ``prices`` for the configured
    price table); ``usage_at`` is when it was last recorded. Budgets in tokens or dollars on
    tasks and batches. ``created_by_run``: the run whose worker created a task (the fan-out
    governor counts them).
    """
    _run(
        conn,
        """
        ALTER TABLE runs ADD COLUMN model TEXT;
        ALTER TABLE runs ADD COLUMN input_tokens INTEGER NOT NULL DEFAULT 0
            CHECK (input_tokens >= 0);
        ALTER TABLE runs ADD COLUMN cached_input_tokens INTEGER NOT NULL DEFAULT 0
            CHECK (cached_input_tokens >= 0);
        ALTER TABLE runs ADD COLUMN output_tokens INTEGER NOT NULL DEFAULT 0
            CHECK (output_tokens >= 0);
        ALTER TABLE runs ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0
            CHECK (reasoning_tokens >= 0);
        ALTER TABLE runs ADD COLUMN cost_usd REAL CHECK (cost_usd IS NULL OR cost_usd >= 0);
        ALTER TABLE runs ADD COLUMN cost_source TEXT
            CHECK (cost_source IS NULL OR cost_source IN ('agent', 'prices'));
        ALTER TABLE runs ADD COLUMN usage_at REAL;
        CREATE INDEX runs_started ON runs (started_at);
        ALTER TABLE tasks ADD COLUMN budget_tokens INTEGER CHECK (budget_tokens > 0);
        ALTER TABLE tasks ADD COLUMN budget_usd REAL CHECK (budget_usd > 0);
        ALTER TABLE tasks ADD COLUMN created_by_run INTEGER;
        CREATE INDEX tasks_created_by_run ON tasks (created_by_run)
            WHERE created_by_run IS NOT NULL;
        ALTER TABLE batches ADD COLUMN budget_tokens INTEGER CHECK (budget_tokens > 0);
        ALTER TABLE batches ADD COLUMN budget_usd REAL CHECK (budget_usd > 0)
        """,
    )


def m008_notifications(conn: sqlite3.Connection) -> None:
    """Notifications sent once: an outbox of (event, sink) deliveries.

    A dispatcher that notifies copies the events worth a notification (blocked, failed, done,
    landed, budget) into ``notifications``, one row per event and sink, in the transaction
    that advances its cursor (``notify_cursor`` in ``settings``: the last event looked at,
    starting after the board's history when this migration runs). A row is claimed for a
    while (``claimed_until``) before it is sent, and marked ``sent_at`` or ``gave_up_at``
    after, so a restart, or a second dispatcher, never sends one twice. ``sink`` names a
    webhook by the hash of its URL (a URL may carry a secret), or ``desktop``.

    ``tasks_ended``: the web board's ended columns, most recently ended first, a page at a
    time without sorting every done task (a page of 50 done tasks of 100,000: 42 ms without
    it, 1 ms with it). Only ended tasks are in it: claims and heartbeats pay nothing for it.
    """
    _run(
        conn,
        """
        CREATE TABLE notifications (
            id INTEGER PRIMARY KEY,
            event_id INTEGER NOT NULL REFERENCES events (id),
            task_id INTEGER NOT NULL REFERENCES tasks (id),
            sink TEXT NOT NULL,
            kind TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            next_at REAL NOT NULL,
            claimed_by TEXT,
            claimed_until REAL,
            sent_at REAL,
            gave_up_at REAL,
            error TEXT,
            created_at REAL NOT NULL,
            UNIQUE (event_id, sink)
        );
        CREATE INDEX notifications_due ON notifications (next_at)
            WHERE sent_at IS NULL AND gave_up_at IS NULL;
        CREATE INDEX tasks_ended ON tasks (status, ended_at DESC, id DESC)
            WHERE ended_at IS NOT NULL;
        INSERT OR IGNORE INTO settings (key, value, updated_at)
            SELECT 'notify_cursor', coalesce(max(id), 0), 0 FROM events
        """,
    )


def m009_hosts(conn: sqlite3.Connection) -> None:
    """Which host each run ran on (``runs.host``), for dispatchers on several hosts.

    A dispatcher watches and kills only the processes of runs of its own host; a run of
    another host is adopted only once that host's dispatcher is stale and the run's lease has
    expired, and then settled as lost there. Runs from before this migration have no host:
    they are taken as this host's, as every run was then.
    """
    conn.execute("ALTER TABLE runs ADD COLUMN host TEXT")


MIGRATIONS: list[Migration] = [
    m001_initial,
    m002_batches_and_schedules,
    m003_settings,
    m004_identities,
    m005_workspaces,
    m006_landing,
    m007_usage,
    m008_notifications,
    m009_hosts,
]


def latest() -> int:
    return len(MIGRATIONS)


def pending(conn: sqlite3.Connection) -> list[tuple[int, Migration]]:
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    return [(n, m) for n, m in enumerate(MIGRATIONS, start=1) if n > current]


def apply(conn: sqlite3.Connection) -> None:
    """Apply every pending migration. The caller holds the write transaction."""
    for number, migration in pending(conn):
        migration(conn)
        conn.execute(f"PRAGMA user_version = {number:d}")
