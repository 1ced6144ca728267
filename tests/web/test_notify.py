"""Notifications: webhooks to a local receiver and notify-send, once per event, across restarts.

Real dispatchers (`kanban dispatch` subprocesses) on a board served by `kanban serve` (whose
URL the webhooks link to), `command` tasks, and a receiver on 127.0.0.1 that can fail the
first attempt of every delivery, be down, or hold a delivery until the test lets it go.
"""

from __future__ import annotations

import collections
import http.server
import json
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.waiting import wait_for
from support.web import Served

from board import errors, notifications, tasks
from orchestrator import notify

BLOCK = """\
import os, pathlib, subprocess, sys
kanban = str(pathlib.Path(sys.executable).with_name("kanban"))
subprocess.run([kanban, "block", os.environ["HERMES_KANBAN_TASK"], "Which colour?"], check=True)
"""


class Receiver(http.server.ThreadingHTTPServer):
    """A webhook receiver: what it accepted, and how it answers."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.accepted: list[dict[str, Any]] = []
        self.attempts: collections.Counter[str] = collections.Counter()
        self.headers_seen: list[dict[str, str]] = []
        self.fail_first = False  # answer 500 to the first attempt of each delivery
        self.down = False  # answer 503 to everything
        self.hold = threading.Event()  # cleared: hold each request until set
        self.hold.set()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def events(self) -> list[tuple[str, str]]:
        with self.lock:
            return [(body["event"], body["task"]["id"]) for body in self.accepted]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.hold.wait(60)
        with self.server.lock:
            self.server.attempts[body["id"]] += 1
            refuse = self.server.down or (
                self.server.fail_first and self.server.attempts[body["id"]] == 1
            )
            if not refuse:
                self.server.accepted.append(body)
                self.server.headers_seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(503 if self.server.down else 500 if refuse else 204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    thread = threading.Thread(target=made.serve_forever, daemon=True)
    thread.start()
    try:
        yield made
    finally:
        made.hold.set()
        made.shutdown()
        made.server_close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    made = Served(tmp_path)
    try:
        yield made
    finally:
        made.close()


def configure(served: Served, text: str) -> None:
    (served.root / "config.toml").write_text(text)


def test_each_event_is_sent_once_across_dispatcher_restarts(
    served: Served, receiver: Receiver
) -> None:
    configure(
        served,
        f'[notify]\nwebhooks = ["{receiver.url}"]\ndesktop = false\n'
        "retry_delay = 0.2\ntimeout = 5\n",
    )
    receiver.fail_first = True  # every delivery is retried once
    done = served.create("Finishes", "print('ok')")
    failed = served.create("Fails", "raise SystemExit(1)", max_attempts=1)
    asks = served.create("Asks", BLOCK)
    over = served.create("Over budget", "print('never')", after=[asks])
    tasks.block(served.db, over, "budget exceeded: 12,000 tokens of a budget of 10,000")
    first = served.dispatch()
    served.wait_status(done, "done")
    tasks.record_landed(served.db, done, sha="0123456789abcdef0123")
    expected = [
        ("done", f"t_{done}"),
        ("failed", f"t_{failed}"),
        ("blocked", f"t_{asks}"),
        ("budget", f"t_{over}"),
        ("landed", f"t_{done}"),
    ]
    wait_for(
        lambda: sorted(receiver.events()) == sorted(expected),
        "the first five notifications",
        on_fail=lambda: f"{receiver.events()}\n{first.output()}",
    )
    first.proc.terminate()
    assert first.wait() == 0

    # While no dispatcher runs, more happens; the next one is told of it, and a receiver that
    # is down keeps those deliveries pending across another restart.
    later = served.create("Later", "print('later')")
    receiver.down = True
    second = served.dispatch()
    served.wait_status(later, "done")
    wait_for(
        lambda: any(r["error"] for r in notifications.history(served.db)),
        "a failed delivery to be recorded",
    )
    second.proc.terminate()
    assert second.wait() == 0
    receiver.down = False
    third = served.dispatch()
    wait_for(
        lambda: ("done", f"t_{later}") in receiver.events(),
        "the pending notification, after the restart",
        on_fail=third.output,
    )
    third.proc.terminate()
    assert third.wait() == 0

    ids = [body["id"] for body in receiver.accepted]
    assert len(ids) == len(set(ids)) == 6  # each event once
    assert sorted(receiver.events()) == sorted([*expected, ("done", f"t_{later}")])
    body = next(b for b in receiver.accepted if b["event"] == "landed")
    assert body["link"] == f"{served.url}/tasks/t_{done}"
    assert body["reason"] == "landed in 0123456789ab" and body["task"]["title"] == "Finishes"
    budget = next(b for b in receiver.accepted if b["event"] == "budget")
    assert budget["reason"].startswith("budget exceeded")
    for headers, sent in zip(receiver.headers_seen, receiver.accepted, strict=True):
        assert headers["x-kanban-delivery"] == sent["id"]
        assert headers["x-kanban-event"] == sent["event"]
    assert all(count >= 2 for count in receiver.attempts.values())  # retried, sent once


def test_a_receiver_that_hangs_does_not_hold_up_the_dispatcher(
    served: Served, receiver: Receiver
) -> None:
    configure(served, f'[notify]\nwebhooks = ["{receiver.url}"]\ndesktop = false\n')
    receiver.hold.clear()  # every delivery waits until the test lets it through
    first = served.create("First", "print(1)")
    chain = [first]
    for n in range(3):
        chain.append(served.create(f"Then {n}", "print(2)", after=[chain[-1]]))
    dispatcher = served.dispatch()
    for number in chain:
        served.wait_status(number, "done")
    assert receiver.events() == []  # every delivery is still held by the receiver
    receiver.hold.set()
    wait_for(lambda: len(receiver.events()) == 4, "the four notifications")
    dispatcher.proc.terminate()
    assert dispatcher.wait() == 0


def test_desktop_notices_go_through_notify_send_once(served: Served, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shown = tmp_path / "shown.txt"
    fake = bin_dir / "notify-send"
    fake.write_text(
        f"#!{sys.executable}\nimport sys\n"
        f"with open({str(shown)!r}, 'a') as out:\n"
        "    out.write(' | '.join(sys.argv[1:]).replace('\\n', ' / ') + '\\n')\n"
    )
    fake.chmod(0o755)
    configure(served, "[notify]\ndesktop = true\n")
    path = f"{bin_dir}{os.pathsep}{served.env['PATH']}"
    number = served.create("Say hello", "print('hello')")
    first = served.dispatch(PATH=path)
    served.wait_status(number, "done")
    wait_for(lambda: shown.exists() and shown.read_text(), "a desktop notice")
    first.proc.terminate()
    assert first.wait() == 0
    second = served.dispatch(PATH=path)
    second.wait_for_output("started")
    second.proc.terminate()
    assert second.wait() == 0
    assert shown.read_text().splitlines() == [
        f"--app-name=kanban | kanban: t_{number} done | Say hello / hello"
    ]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"webhook": []}, "unknown key(s) webhook"),
        ({"webhooks": ["ftp://x"]}, "is not an http(s) URL"),
        ({"events": ["done", "started"]}, "events: a list of some of"),
        ({"retries": 0}, "retries: must be a positive"),
        ({"desktop": "yes"}, "desktop: true or false"),
    ],
)
def test_a_wrong_notify_table_is_refused_with_its_file_and_key(
    table: dict, message: str, tmp_path: Path
) -> None:
    with pytest.raises(errors.InvalidInput, match=r"config.toml \[notify\]") as caught:
        notify.parse(table, tmp_path / "config.toml")
    assert message in str(caught.value)
