"""The web board's JSON API and its guards, against a real `kanban serve` and the real CLI."""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli import kanban
from support.gitrepo import git, make_repo
from support.waiting import wait_for
from support.web import Served, request

from board import actors, connection, feed, runs, tasks, views
from orchestrator.web import security

WRITE = "import pathlib, sys; pathlib.Path(sys.argv[1]).write_text(sys.argv[2]); print('wrote')"


def cli_error(served: Served, *args: str) -> str:
    """What `kanban ARGS` says on stderr, without its ``Error: `` prefix."""
    result = kanban(*args, env=served.env, check=False)
    assert result.returncode == 1, result
    return result.stderr.strip().removeprefix("Error: ")


def test_reads_give_what_the_cli_prints_with_json(served: Served) -> None:
    created = served.post_json("/api/tasks", {"title": "Read me", "body": "details"})
    assert created.status == 201
    label = created.json()["id"]

    shown = served.get(f"/api/tasks/{label}").json()
    printed = json.loads(kanban("show", label, "--json", env=served.env).stdout)
    assert shown == printed
    board = served.get("/api/board").json()
    assert label in [t["id"] for t in board["columns"]["ready"]["tasks"]]
    assert board["counts"]["ready"] >= 1
    assert label in [t["id"] for t in served.get("/api/tasks?status=ready").json()]
    assert served.get("/api/batches").json() == []
    assert served.get("/api/schedules").json() == []


def test_every_action_goes_through_the_board(served: Served) -> None:
    first = served.post_json("/api/tasks", {"title": "First", "runtime": "hermes"}).json()
    second = served.post_json(
        "/api/tasks", {"title": "Second", "after": [first["id"]], "priority": 3}
    ).json()
    assert second["status"] == "todo" and second["blockers"] == [first["id"]]
    label, number = first["id"], int(first["id"][2:])

    assert served.post_json(f"/api/tasks/{label}/comment", {"text": "a note"}).status == 200
    tasks.block(served.db, number, "Which database?")
    answered = served.post_json(f"/api/tasks/{label}/unblock", {"comment": "PostgreSQL"})
    assert answered.json() == {"task": label, "status": "ready"}
    cancelled = served.post_json(f"/api/tasks/{label}/cancel")
    assert cancelled.json()["cancelled"] == [label]
    assert served.post_json(f"/api/tasks/{label}/retry").json()["status"] == "ready"
    tasks.complete(served.db, number, "did it", actor=actors.OPERATOR)
    reopened = served.post_json(f"/api/tasks/{label}/reopen", {"comment": "also X"})
    assert reopened.json()["status"] == "ready"

    shown = views.show(served.db, number)
    assert [c["body"] for c in shown["comments"]] == ["a note", "PostgreSQL", "also X"]
    reasons = [e["data"]["reason"] for e in shown["events"] if e["kind"] == "status"]
    assert reasons[-5:] == [
        "unblocked",
        "cancelled by an operator",
        "retried",
        "completed by an operator",
        "reopened",
    ]


def test_land_merges_a_done_task_into_its_base(tmp_path: Path) -> None:
    served = Served(tmp_path)  # a board of its own: its dispatcher runs every ready task
    try:
        landed_and_shown(served, make_repo(tmp_path / "app", {"README": "app\n"}))
    finally:
        served.close()


def landed_and_shown(served: Served, repo: Path) -> None:
    created = served.post_json(
        "/api/tasks",
        {
            "title": "Add a file",
            "repo": str(repo),
            "command": [sys.executable, "-c", WRITE, "added.txt", "new\n"],
        },
    ).json()
    number = int(created["id"][2:])
    served.dispatch("--until-idle")
    served.wait_status(number, "done")
    wait_for(lambda: runs.for_task(served.db, number)[-1].ended_at, "the run to be settled")

    landed = served.post_json(f"/api/tasks/{created['id']}/land", {"strategy": "squash"})
    assert landed.status == 200, landed.text
    assert [t["status"] for t in landed.json()["tasks"]] == ["landed"]
    assert git(repo, "show", "main:added.txt") == "new"
    again = served.post_json(f"/api/tasks/{created['id']}/land")
    assert again.json()["tasks"][0]["status"] == "already_landed"

    diff = served.get(f"/api/tasks/{created['id']}/diff").json()
    assert diff["branch"].endswith(created["id"]) and diff["base"] == "main"
    log = served.get(f"/api/tasks/{created['id']}/log").json()
    assert "wrote" in log["text"] and log["run"]["outcome"] == "completed"


@pytest.mark.parametrize(
    ("method", "path", "data", "cli", "status"),
    [
        ("GET", "/api/tasks/t_999", None, ("show", "t_999"), 404),
        ("GET", "/api/tasks/banana", None, ("show", "banana"), 400),
        ("POST", "/api/tasks/t_1/unblock", {}, ("unblock", "t_1"), 409),
        (
            "POST",
            "/api/tasks/t_1/reopen",
            {"comment": "x"},
            ("reopen", "t_1", "--comment", "x"),
            409,
        ),
        ("POST", "/api/tasks", {"title": " "}, ("create", " "), 400),
        (
            "POST",
            "/api/tasks/t_1/retry",
            {"budget": "lots"},
            ("retry", "t_1", "--budget", "lots"),
            400,
        ),
    ],
)
def test_errors_are_json_with_the_cli_messages(
    served: Served, method: str, path: str, data: dict | None, cli: tuple[str, ...], status: int
) -> None:
    if not tasks.list_tasks(served.db):
        served.post_json("/api/tasks", {"title": "t_1 exists"})
    tasks.get(served.db, 1)
    answer = served.get(path) if method == "GET" else served.post_json(path, data)
    assert answer.status == status
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {"error": cli_error(served, *cli)}


def test_cross_site_and_forged_requests_are_refused(served: Served) -> None:
    before = len(tasks.list_tasks(served.db))
    page = served.get("/")
    cookie = page.headers["set-cookie"].split(";")[0]
    csrf = cookie.split("=", 1)[1]
    form = f"title=Forged&csrf={csrf}".encode()

    def post_form(body: bytes, **headers: str):
        return request(
            served.url + "/tasks",
            method="POST",
            body=body,
            headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
        )

    assert post_form(b"title=No+token", Cookie=cookie).status == 403
    assert post_form(form, Cookie="kanban_csrf=another").status == 403
    assert post_form(form, Cookie=cookie, Origin="http://evil.example").status == 403
    assert post_form(form, Cookie=cookie, **{"Sec-Fetch-Site": "cross-site"}).status == 403
    refused = served.post_json("/api/tasks", {"title": "x"}, Origin="http://127.0.0.1:1")
    assert refused.status == 403 and "cross-origin" in refused.json()["error"]
    plain = request(
        served.url + "/api/tasks",
        method="POST",
        body=b'{"title": "x"}',
        headers={"Content-Type": "text/plain"},
    )
    assert plain.status == 415
    rebound = served.get("/api/board", Host="evil.example")
    assert rebound.status == 421
    assert len(tasks.list_tasks(served.db)) == before

    same_origin = post_form(form, Cookie=cookie, Origin=served.url)
    assert same_origin.status == 303 and same_origin.headers["location"].startswith("/#card-t_")
    assert tasks.list_tasks(served.db)[-1].title == "Forged"


def test_pages_show_task_text_as_text(served: Served) -> None:
    title = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    label = served.post_json("/api/tasks", {"title": title, "body": "</pre><b>bold</b>"}).json()
    for path in ("/", f"/tasks/{label['id']}", f"/tasks/{label['id']}/live"):
        text = served.get(path).text
        assert "<script>alert" not in text and "<img src=x" not in text
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    assert "&lt;/pre&gt;&lt;b&gt;bold&lt;/b&gt;" in served.get(f"/tasks/{label['id']}").text
    policy = served.get("/").headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy


def test_a_change_from_another_process_reaches_the_event_stream(served: Served) -> None:
    label = served.post_json("/api/tasks", {"title": "Watched"}).json()["id"]
    # A read waits at most 20 s (the socket's timeout): a missing message fails the test.
    with urllib.request.urlopen(served.url + "/api/events", timeout=20) as stream:

        def messages() -> Iterator[dict]:
            event = None
            for raw in stream:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event:
                    yield {"event": event, **json.loads(line.split(":", 1)[1])}

        received = messages()
        assert next(received)["event"] == "hello"
        kanban("comment", label, "from another process", env=served.env)
        for message in received:
            if message["event"] == "change" and label in [t["id"] for t in message["tasks"]]:
                break
        task = next(t for t in message["tasks"] if t["id"] == label)
        assert task["title"] == "Watched" and message["counts"]["ready"] >= 1


def test_a_server_on_another_address_needs_its_token(tmp_path: Path) -> None:
    served = Served(tmp_path, "--host", "0.0.0.0")
    try:
        lines = served.out.read_text().splitlines()
        token = lines[1].removeprefix("token: ")
        assert lines[1].startswith("token: ") and len(token) >= 40
        local = f"http://127.0.0.1:{served.port}"
        stored = [row["value"] for row in connection.read(served.db, "SELECT value FROM settings")]
        assert feed.token_hash(served.db) == security.hash_token(token)
        assert not any(token in str(value) for value in stored)

        assert request(local + "/api/board").status == 401
        assert request(local + "/api/board", headers={"Authorization": "Bearer nope"}).status == 401
        bearer = {"Authorization": f"Bearer {token}"}
        assert request(local + "/api/board", headers=bearer).status == 200
        made = request(
            local + "/api/tasks",
            method="POST",
            body=b'{"title": "by bearer"}',
            headers={**bearer, "Content-Type": "application/json"},
        )
        assert made.status == 201
        first = request(local + "/tasks/t_1")
        assert first.status == 303 and first.headers["location"] == "/login?next=%2Ftasks%2Ft_1"

        wrong = request(local + "/login", method="POST", body=b"token=nope&next=/")
        assert wrong.status == 401
        login = request(
            local + "/login",
            method="POST",
            body=f"token={token}&next=/tasks/t_1".encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert login.status == 303 and login.headers["location"] == "/tasks/t_1"
        session = login.headers["set-cookie"].split(";")[0]
        assert "HttpOnly" in login.headers["set-cookie"]
        assert "SameSite=strict" in login.headers["set-cookie"]
        page = request(local + "/tasks/t_1", headers={"Cookie": session})
        assert page.status == 200 and "by bearer" in page.text
    finally:
        served.close()

    # A second start on the same board prints no token: it was shown once.
    restarted = Served(tmp_path, "--host", "0.0.0.0")
    try:
        assert "token: the one printed before" in restarted.out.read_text()
        bearer = {"Authorization": f"Bearer {token}"}
        local = f"http://127.0.0.1:{restarted.port}"
        assert request(local + "/api/board", headers=bearer).status == 200
    finally:
        restarted.close()


def test_batches_and_schedules_have_their_pages(served: Served, tmp_path: Path) -> None:
    batch = tmp_path / "nightly.toml"
    batch.write_text(
        'name = "nightly"\n[tasks.check]\ntitle = "Check <it>"\nruntime = "command"\n'
        'command = "true"\n'
    )
    kanban("schedule", "add", "nightly", "--cron", "0 3 * * *", str(batch), env=served.env)
    kanban("schedule", "run-now", "nightly", env=served.env)

    listed = json.loads(kanban("schedule", "list", "--json", env=served.env).stdout)
    assert served.get("/api/schedules").json() == listed
    schedules = served.get("/schedules").text
    assert "nightly" in schedules and "0 3 * * *" in schedules
    batches = served.get("/api/batches").json()
    assert batches[0]["name"] == "nightly (run-now)" and batches[0]["counts"] == {"ready": 1}
    page = served.get("/batches").text
    assert "nightly (run-now)" in page and "ready 1" in page
