"""testing.scripted_model driven by plain HTTP requests, and by the real `codex exec`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from support import REPO_ROOT

from testing import scripted_model

SCRIPT = {
    "scenarios": [
        {
            "match": "TASK-A",
            "turns": [
                [{"shell": "echo a > a.txt"}],
                [{"tool": "kanban_complete", "args": {"summary": "a done"}}],
                [{"message": "A finished."}],
            ],
        },
        {"match": "TASK-B", "turns": [[{"message": "B finished."}]]},
    ]
}


def post(url: str, body: dict[str, Any], timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


def events(raw: bytes) -> list[Any]:
    found = []
    for block in raw.decode().split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                data = line[len("data: ") :]
                found.append(data if data == "[DONE]" else json.loads(data))
    return found


def responses_request(prompt: str, history: list[dict[str, Any]] = ()) -> dict[str, Any]:
    """What Codex sends: developer text, an environment block, the prompt, then the history."""
    return {
        "model": "scripted",
        "stream": True,
        "input": [
            {
                "type": "message",
                "role": "developer",
                "content": [{"type": "input_text", "text": "You are Codex. TASK-B"}],
            },
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "<environment_context/>"}],
            },
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": prompt}],
            },
            *history,
        ],
        "tools": [
            {"type": "function", "name": "exec_command", "parameters": {}},
            {
                "type": "namespace",
                "name": "mcp__kanban",
                "tools": [{"type": "function", "name": "kanban_complete", "parameters": {}}],
            },
        ],
    }


def output_items(raw: bytes) -> list[dict[str, Any]]:
    found = events(raw)
    assert found[-1]["type"] == "response.completed", found
    return [e["item"] for e in found if e["type"] == "response.output_item.done"]


def echo_back(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The history an agent sends after running the calls in `items` (as Codex does)."""
    history = []
    for item in items:
        history.append(item)
        if item["type"] == "function_call":
            history.append(
                {"type": "function_call_output", "call_id": item["call_id"], "output": "ok"}
            )
    return history


def test_models_endpoint_lists_the_scripted_model() -> None:
    with scripted_model.serve(SCRIPT) as server:
        with urllib.request.urlopen(server.base_url + "/models", timeout=10) as response:
            listing = json.load(response)
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    assert [m["id"] for m in listing["data"]] == ["scripted"]
    assert server.requests[0].method == "GET"
    assert server.requests[0].answer == "models"


def test_responses_follow_the_turns_from_the_call_ids_echoed_back() -> None:
    with scripted_model.serve(SCRIPT) as server:
        url = server.base_url + "/responses"
        status, headers, raw = post(url, responses_request("Please do TASK-A"))
        assert status == 200
        assert headers["Content-Type"] == "text/event-stream"
        first = output_items(raw)
        assert first == [
            {
                "type": "function_call",
                "name": "exec_command",
                "call_id": first[0]["call_id"],
                "arguments": json.dumps({"cmd": "echo a > a.txt"}),
            }
        ]

        history = echo_back(first)
        second = output_items(post(url, responses_request("Please do TASK-A", history))[2])
        assert len(second) == 1
        assert second[0]["namespace"] == "mcp__kanban"
        assert second[0]["name"] == "kanban_complete"
        assert json.loads(second[0]["arguments"]) == {"summary": "a done"}

        history += echo_back(second)
        third = output_items(post(url, responses_request("Please do TASK-A", history))[2])
        assert third[0]["type"] == "message"
        assert third[0]["content"][0]["text"] == "A finished."

        history += third
        fourth = output_items(post(url, responses_request("Please do TASK-A", history))[2])
        assert "has no turn 3" in fourth[0]["content"][0]["text"]

    assert [(r.scenario, r.turn, r.answer) for r in server.requests] == [
        ("TASK-A", 0, "calls"),
        ("TASK-A", 1, "calls"),
        ("TASK-A", 2, "message"),
        ("TASK-A", 3, "script exhausted"),
    ]


def test_a_retried_request_gets_the_same_answer_again() -> None:
    with scripted_model.serve(SCRIPT) as server:
        url = server.base_url + "/responses"
        history = echo_back(output_items(post(url, responses_request("TASK-A"))[2]))
        again = [output_items(post(url, responses_request("TASK-A", history))[2]) for _ in range(2)]
    assert again[0] == again[1]
    assert again[0][0]["name"] == "kanban_complete"
    assert [r.turn for r in server.requests] == [0, 1, 1]


def test_each_request_follows_the_scenario_its_marker_selects() -> None:
    with scripted_model.serve(SCRIPT) as server:
        url = server.base_url + "/responses"
        b = output_items(post(url, responses_request("Now TASK-B"))[2])
        a = output_items(post(url, responses_request("Now TASK-A"))[2])
    assert b[0]["content"][0]["text"] == "B finished."
    assert a[0]["name"] == "exec_command"
    # The marker in the developer (system) text of the TASK-A request did not count.
    assert [r.scenario for r in server.requests] == ["TASK-B", "TASK-A"]


def test_a_list_of_markers_matches_only_when_all_occur_and_wins_when_listed_first() -> None:
    script = {
        "scenarios": [
            {"match": ["being resumed", "TASK-A"], "turns": [[{"message": "resumed A"}]]},
            {"match": "TASK-A", "turns": [[{"message": "first A"}]]},
        ]
    }
    with scripted_model.serve(script) as server:
        url = server.base_url + "/responses"
        first = output_items(post(url, responses_request("Do TASK-A"))[2])
        resumed = output_items(post(url, responses_request("TASK-A: you are being resumed"))[2])
    assert first[0]["content"][0]["text"] == "first A"
    assert resumed[0]["content"][0]["text"] == "resumed A"
    assert [r.scenario for r in server.requests] == ["TASK-A", "being resumed & TASK-A"]
    assert scripted_model.Script.from_data(script).to_data() == script


def test_a_request_matching_no_scenario_gets_a_message_saying_so() -> None:
    with scripted_model.serve(SCRIPT) as server:
        items = output_items(post(server.base_url + "/responses", responses_request("TASK-Z"))[2])
    text = items[0]["content"][0]["text"]
    assert "no scenario matches" in text
    assert "'TASK-A'" in text
    assert server.requests[0].answer == "no scenario"
    assert server.requests[0].scenario is None


def test_requests_are_recorded_with_prompt_offered_tools_scenario_and_turn() -> None:
    with scripted_model.serve(SCRIPT) as server:
        post(server.base_url + "/responses", responses_request("Please do TASK-A carefully"))
    recorded = server.requests[0]
    assert (recorded.method, recorded.path) == ("POST", "/v1/responses")
    assert "Please do TASK-A carefully" in recorded.user_text
    assert "You are Codex" not in recorded.user_text
    assert recorded.tool_names == ["exec_command", "mcp__kanban.kanban_complete"]
    assert recorded.body["model"] == "scripted"
    assert (recorded.scenario, recorded.turn) == ("TASK-A", 0)
    assert server.wait_for(lambda r: r.scenario == "TASK-A", timeout=1) is recorded


def test_a_tool_call_names_the_namespace_the_request_offers_it_in() -> None:
    request = responses_request("TASK-A", [])
    request["tools"][1]["name"] = "mcp__kanban_board"
    script = {"scenarios": [{"turns": [[{"tool": "kanban_complete"}]]}]}
    with scripted_model.serve(script) as server:
        items = output_items(post(server.base_url + "/responses", request)[2])
    assert items[0]["namespace"] == "mcp__kanban_board"


def test_status_action_answers_an_http_error_for_its_first_times() -> None:
    script = {
        "scenarios": [
            {"turns": [[{"status": 429, "times": 2, "retry_after": 3}, {"message": "back"}]]}
        ]
    }
    with scripted_model.serve(script) as server:
        url = server.base_url + "/responses"
        answers = [post(url, responses_request("anything")) for _ in range(3)]
    assert [status for status, _, _ in answers[:2]] == [429, 429]
    assert answers[0][1]["Retry-After"] == "3"
    assert json.loads(answers[0][2])["error"]["type"] == "rate_limit_exceeded"
    assert answers[2][0] == 200
    assert output_items(answers[2][2])[0]["content"][0]["text"] == "back"
    assert [r.answer for r in server.requests] == ["status 429", "status 429", "message"]


def test_status_action_without_times_fails_every_time() -> None:
    script = {"scenarios": [{"turns": [[{"status": 500}]]}]}
    with scripted_model.serve(script) as server:
        statuses = [
            post(server.base_url + "/responses", responses_request("x"))[0] for _ in range(3)
        ]
    assert statuses == [500, 500, 500]


def test_hang_action_never_answers_and_shutdown_still_returns() -> None:
    script = {"scenarios": [{"turns": [[{"hang": True}]]}]}
    with scripted_model.serve(script) as server:
        with pytest.raises(TimeoutError):
            post(server.base_url + "/responses", responses_request("x"), timeout=0.5)
        assert server.wait_for(lambda r: r.answer == "hang", timeout=5).turn == 0


def test_hang_stream_action_starts_the_stream_then_stalls() -> None:
    script = {"scenarios": [{"turns": [[{"hang": "stream"}]]}]}
    with scripted_model.serve(script) as server:
        host, port = "127.0.0.1", server.port
        body = json.dumps(responses_request("x")).encode()
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(
                b"POST /v1/responses HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            received = b""
            while b"response.created" not in received:
                received += sock.recv(65536)
            assert received.startswith(b"HTTP/1.1 200")
            sock.settimeout(0.5)
            with pytest.raises(TimeoutError):
                sock.recv(65536)


def test_misbehaviour_then_recovery_lets_a_retried_request_through() -> None:
    script = {"scenarios": [{"turns": [[{"hang": True, "times": 1}, {"message": "late"}]]}]}
    with scripted_model.serve(script) as server:
        with pytest.raises(TimeoutError):
            post(server.base_url + "/responses", responses_request("x"), timeout=0.5)
        items = output_items(post(server.base_url + "/responses", responses_request("x"))[2])
    assert items[0]["content"][0]["text"] == "late"


def chat_request(history: list[dict[str, Any]] = (), stream: bool = True) -> dict[str, Any]:
    """What Hermes' default runtime sends, with its own and an MCP `kanban_complete`."""
    return {
        "model": "scripted",
        "stream": stream,
        "messages": [
            {"role": "system", "content": "You are Hermes."},
            {"role": "user", "content": "Do TASK-A"},
            *history,
        ],
        "tools": [
            {"type": "function", "function": {"name": name, "parameters": {}}}
            for name in ("terminal", "kanban_complete", "mcp__kb__kanban_complete")
        ],
    }


def chat_reply(raw: bytes) -> tuple[str, list[dict[str, Any]], str]:
    """(content, tool calls, finish reason) reassembled from streamed chunks."""
    found = events(raw)
    assert found[-1] == "[DONE]"
    content, calls, finish = "", [], None
    for chunk in found[:-1]:
        choice = chunk["choices"][0]
        content += choice["delta"].get("content") or ""
        calls += choice["delta"].get("tool_calls") or []
        finish = choice["finish_reason"] or finish
    return content, calls, finish


def test_chat_completions_stream_terminal_and_mcp_calls_then_a_message() -> None:
    with scripted_model.serve(SCRIPT) as server:
        url = server.base_url + "/chat/completions"
        _, calls, finish = chat_reply(post(url, chat_request())[2])
        assert finish == "tool_calls"
        assert calls[0]["function"]["name"] == "terminal"
        assert json.loads(calls[0]["function"]["arguments"]) == {"command": "echo a > a.txt"}

        def answered(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
            plain = [{k: v for k, v in c.items() if k != "index"} for c in calls]
            return [
                {"role": "assistant", "content": "", "tool_calls": plain},
                *({"role": "tool", "tool_call_id": c["id"], "content": "ok"} for c in plain),
            ]

        history = answered(calls)
        _, calls, _ = chat_reply(post(url, chat_request(history))[2])
        # Hermes offers its native kanban_complete too; the MCP server's tool is the one called.
        assert calls[0]["function"]["name"] == "mcp__kb__kanban_complete"

        history += answered(calls)
        content, calls, finish = chat_reply(post(url, chat_request(history))[2])
        assert (content, calls, finish) == ("A finished.", [], "stop")

        history.append({"role": "assistant", "content": content})
        history.append({"role": "user", "content": "You did not call kanban_complete."})
        content, _, _ = chat_reply(post(url, chat_request(history))[2])
        assert "has no turn 3" in content
    assert [r.turn for r in server.requests] == [0, 1, 2, 3]


def test_chat_completions_answer_without_streaming_when_asked() -> None:
    with scripted_model.serve(SCRIPT) as server:
        status, _, raw = post(server.base_url + "/chat/completions", chat_request(stream=False))
    assert status == 200
    message = json.loads(raw)["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["name"] == "terminal"


def test_script_loads_from_a_json_file(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text(json.dumps(SCRIPT))
    script = scripted_model.Script.load(path)
    assert script == scripted_model.Script.from_data(SCRIPT)
    assert script.to_data()["scenarios"][1] == SCRIPT["scenarios"][1]
    assert scripted_model.Script.from_data(SCRIPT["scenarios"]) == script
    with scripted_model.serve(path) as server:
        assert server.script == script


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ({"scenarios": [{"turns": [[{"shell": "x", "message": "y"}]]}]}, "exactly one of"),
        ({"scenarios": [{"turns": [[{"tool": "t", "argz": {}}]]}]}, "unknown keys ['argz']"),
        ({"scenarios": [{"turns": [[{"status": 200}]]}]}, "malformed status"),
        ({"scenarios": [{"turns": [[]]}]}, "scenario 0 turn 0"),
        ({"scenarios": [{"match": 3, "turns": []}]}, "match must be a string"),
        ({"scenarios": [{"match": [], "turns": []}]}, "non-empty list of strings"),
        ({"scenario": []}, "a script is"),
    ],
)
def test_a_malformed_script_is_refused_with_where_and_why(data: Any, complaint: str) -> None:
    with pytest.raises(scripted_model.ScriptError, match=complaint.replace("[", r"\[")):
        scripted_model.Script.from_data(data)


def test_cli_prints_its_base_url_first_and_serves_until_terminated(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps(SCRIPT))
    record = tmp_path / "requests.jsonl"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "testing.scripted_model",
            "--script",
            str(script),
            "--record",
            str(record),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        items = output_items(post(base_url + "/responses", responses_request("TASK-B"))[2])
        assert items[0]["content"][0]["text"] == "B finished."
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    [line] = record.read_text().splitlines()
    assert json.loads(line)["scenario"] == "TASK-B"


def test_cli_refuses_a_malformed_script_with_usage_exit_code(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text("{not json")
    result = subprocess.run(
        [sys.executable, "-m", "testing.scripted_model", "--script", str(script)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("Error: cannot read script")


def codex_binary() -> Path:
    binary = Path(
        os.environ.get("KANBAN_CODEX_BIN") or REPO_ROOT / ".tools/node_modules/.bin/codex"
    )
    if not binary.exists():
        pytest.fail(f"codex not found at {binary}: run `make tools` or set KANBAN_CODEX_BIN")
    return binary


@pytest.mark.e2e
def test_real_codex_exec_runs_a_scripted_shell_command_in_a_git_repo(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(
        ["git", "-C", str(repo), "commit", "-q", "--allow-empty", "-m", "init"], check=True
    )
    script = {
        "scenarios": [
            {
                "match": "TASK-E2E",
                "turns": [
                    [{"shell": "echo written by codex > out.txt"}],
                    [{"message": "E2E finished."}],
                ],
            }
        ]
    }
    codex_home = Path(os.environ["CODEX_HOME"])
    codex_home.mkdir(parents=True, exist_ok=True)
    with scripted_model.serve(script) as server:
        (codex_home / "config.toml").write_text(
            'model = "scripted"\nmodel_provider = "scripted"\n\n'
            "[model_providers.scripted]\n"
            f'name = "scripted"\nbase_url = "{server.base_url}"\nwire_api = "responses"\n'
        )
        result = subprocess.run(
            [
                str(codex_binary()),
                "exec",
                "--sandbox",
                "workspace-write",
                "--ephemeral",
                "-C",
                str(repo),
                "Please do TASK-E2E",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr
    assert (repo / "out.txt").read_text() == "written by codex\n"
    assert result.stdout.strip() == "E2E finished."
    answered = [r for r in server.requests if r.path == "/v1/responses"]
    assert "Please do TASK-E2E" in answered[0].user_text
    assert "exec_command" in answered[0].tool_names
    assert [(r.turn, r.answer) for r in answered] == [(0, "calls"), (1, "message")]
