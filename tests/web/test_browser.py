"""The web board in a real browser: Debian's Chromium driven by Playwright.

One `kanban serve` and one Chromium for the module, one `kanban dispatch` running `command`
tasks on the same board, and a page per test. Nothing waits by sleeping: Playwright waits for
elements (and fails at its timeout), the tests for the board's state with deadlines.
"""

from __future__ import annotations

import http.server
import re
import shlex
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.gitrepo import make_repo
from support.waiting import wait_for
from support.web import Served, not_blank, screenshot

from board import feed, tasks

# Waits for the file argv[1], then writes out.txt in its worktree and says so.
WAIT_THEN_WRITE = """\
import pathlib, sys, time
go = pathlib.Path(sys.argv[1])
while not go.exists():
    time.sleep(0.02)
pathlib.Path("out.txt").write_text("made by the worker\\n")
print("made out.txt")
"""
# First run: block with a question. Next run: copy its prompt to argv[1] and finish.
ASK_THEN_ANSWER = """\
import os, pathlib, subprocess, sys
prompt = pathlib.Path(os.environ["KANBAN_PROMPT_FILE"]).read_text()
if "ANSWER-42" in prompt:
    pathlib.Path(sys.argv[1]).write_text(prompt)
    print("got the answer")
else:
    kanban = str(pathlib.Path(sys.executable).with_name("kanban"))
    task = os.environ["HERMES_KANBAN_TASK"]
    subprocess.run([kanban, "block", task, "Which colour?"], check=True)
"""
HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=1</script> & "quotes"'


@pytest.fixture(scope="module")
def dispatching(served: Served) -> Iterator[Served]:
    served.dispatch()
    yield served


def card(page, label: str, status: str):
    return page.locator(f'.column[data-status="{status}"] #card-{label}')


def test_a_task_made_in_the_page_moves_to_done_live_with_its_log_and_diff(
    dispatching: Served, page, tmp_path: Path
) -> None:
    served = dispatching
    repo = make_repo(tmp_path / "app", {"README": "app\n"})
    go = tmp_path / "go"
    program = tmp_path / "agent.py"  # a form's text field takes one line: the code goes here
    program.write_text(WAIT_THEN_WRITE)
    page.goto(served.url + "/")
    page.click("details.new-task summary")
    page.fill("#new-task [name=title]", "Write out.txt")
    page.fill("#new-task [name=repo]", str(repo))
    page.select_option("#new-task [name=runtime]", "command")
    page.fill("#new-task [name=command]", shlex.join([sys.executable, str(program), str(go)]))
    page.click("#new-task button[type=submit]")
    page.wait_for_url(re.compile(r"/#card-t_\d+$"))
    label = page.url.rsplit("#card-", 1)[1]
    page.evaluate("window.stayed = 'no reload'")

    card(page, label, "running").wait_for()
    go.write_text("go")
    card(page, label, "done").wait_for()
    assert page.evaluate("window.stayed") == "no reload"  # moved live, not by a reload
    assert page.locator(f"#card-{label}").count() == 1
    assert page.locator('.column[data-status="done"] .count').inner_text() != "0"
    board_shot = screenshot(page, tmp_path / "board.png")
    assert not_blank(board_shot), board_shot

    page.click(f"#card-{label} a")
    page.wait_for_url(f"**/tasks/{label}")
    page.locator("#log").filter(has_text="made out.txt").wait_for()
    assert page.locator("#status").inner_text() == "done"
    page.click("#load-diff")
    page.locator("#diff .diff-stat").filter(has_text="out.txt").wait_for()
    assert "+made by the worker" in page.locator("#diff .diff-patch").inner_text()
    task_shot = screenshot(page, tmp_path / "task.png")
    assert not_blank(task_shot), task_shot


def test_an_answer_given_in_the_page_reaches_the_next_prompt(
    dispatching: Served, page, tmp_path: Path
) -> None:
    served = dispatching
    prompt = tmp_path / "prompt.txt"
    number = served.create("Pick a colour", ASK_THEN_ANSWER, prompt)
    label = f"t_{number}"
    served.wait_status(number, "blocked")

    page.goto(f"{served.url}/tasks/{label}")
    assert page.locator("#status").inner_text() == "blocked"
    assert page.locator("form.act-reopen").is_hidden()  # only what applies to a blocked task
    page.fill("form.act-unblock textarea", "Use ANSWER-42, the blue one")
    page.click("form.act-unblock button")
    page.wait_for_url(f"**/tasks/{label}")
    page.locator("#status").filter(has_text="done").wait_for()
    assert "Use ANSWER-42, the blue one" in prompt.read_text()
    assert "Use ANSWER-42" in page.locator("ul.comments").inner_text()


def test_an_error_is_shown_in_the_page_as_the_cli_says_it(dispatching: Served, page) -> None:
    served = dispatching
    page.goto(served.url + "/")
    page.click("details.new-task summary")
    page.fill("#new-task [name=title]", "Needs a command")
    page.select_option("#new-task [name=runtime]", "command")
    page.click("#new-task button[type=submit]")
    error = page.locator("#error")
    error.wait_for()
    assert (
        error.inner_text()
        == "Error: the `command` runtime needs command: the program and its arguments"
    )
    assert page.locator("#new-task [name=title]").input_value() == "Needs a command"


def test_a_title_carrying_html_is_shown_as_text(dispatching: Served, page) -> None:
    served = dispatching
    first = served.create(HOSTILE, "print('hi')", priority=-5)
    page.goto(served.url + "/")
    shown = page.locator(f"#card-t_{first} .title")
    assert shown.inner_text() == HOSTILE
    # Pushed live too: a card that arrives over the event stream is escaped the same way.
    second = served.create(HOSTILE, "print('hi')", priority=-5)
    page.locator(f"#card-t_{second} .title").wait_for()
    assert page.locator(f"#card-t_{second} .title").inner_text() == HOSTILE
    page.goto(f"{served.url}/tasks/t_{second}")
    assert page.locator("#task-live h1 .title").inner_text() == HOSTILE
    assert page.locator("img").count() == 0
    assert page.evaluate("window.pwned") is None


class _Evil(http.server.BaseHTTPRequestHandler):
    target = ""

    def do_GET(self) -> None:
        page = (
            f'<form id="f" method="post" action="{self.target}/tasks">'
            '<input name="title" value="Planted by another site"></form>'
            "<script>document.getElementById('f').submit()</script>"
        )
        body = page.encode() if self.path == "/form" else b"<p>another site</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_request_from_another_site_is_refused(dispatching: Served, page) -> None:
    served = dispatching
    _Evil.target = served.url
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Evil)
    thread = threading.Thread(target=evil.serve_forever, daemon=True)
    thread.start()
    try:
        origin = f"http://localhost:{evil.server_address[1]}"
        page.goto(origin + "/form")
        page.locator("text=cross-site request refused").wait_for()
        page.goto(origin + "/")
        made = page.evaluate(
            """async (url) => {
                try {
                    const answer = await fetch(url + "/api/tasks", {method: "POST",
                        headers: {"Content-Type": "application/json"},
                        body: JSON.stringify({title: "Planted by another site"})});
                    return answer.status;
                } catch (error) { return "blocked"; }
            }""",
            served.url,
        )
        assert made == "blocked"  # no CORS grant: the browser does not even send it
    finally:
        evil.shutdown()
        evil.server_close()
    titles = [t.title for t in tasks.list_tasks(served.db)]
    assert "Planted by another site" not in titles


def test_the_board_pages_its_columns(dispatching: Served, page) -> None:
    served = dispatching
    # Waiting for a cancelled task, they stay todo (no dispatcher takes them) until blocked.
    never = served.create("Never done", "print('x')")
    tasks.cancel(served.db, never)
    made = [served.create(f"Blocked {n}", "print('x')", after=[never]) for n in range(55)]
    for number in made:
        tasks.block(served.db, number, "waiting for a person")
    page.goto(served.url + "/")
    blocked = page.locator('.column[data-status="blocked"]')
    wait_for(lambda: blocked.locator(".card").count() == 50, "a first page of 50")
    assert blocked.locator(".count").inner_text() == str(feed.counts(served.db)["blocked"])
    blocked.locator("a.more").click()
    wait_for(
        lambda: blocked.locator(".card").count() == feed.counts(served.db)["blocked"],
        "the rest of the column",
    )
    assert blocked.locator("a.more").count() == 0
