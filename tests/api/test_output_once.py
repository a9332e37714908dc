"""An execution's output is stored once (issue 15): the job of a single exec keeps its reply
without the output (text, and the bytes of ``stdoutBase64``/``stderrBase64``), which comes back
from the execution's stored output, so that a poll of the job answers the very bytes the direct
reply did. Real HTTP, the scripted engine.

Counted in the database: every table's every value is searched for the output's text.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import httpx
from fixtures.server import RunningServer
from httpx_sse import connect_sse

from api.test_exec import EXEC, body

JOBS = "/zstack/v1/api-jobs"
EXECUTIONS = "/zstack/v1/vm-instances/commands/executions"
#: Output text (from stdin, which the job keeps in base64): stored nowhere but as output.
MARK = "unique-output-" + "x" * 200


def _db_of(server: RunningServer) -> Path:
    return Path(server.settings.db.split("///", 1)[1])


def copies(db: Path, text: str) -> int:
    """How many times ``text`` is stored in ``db``: in any value of any table."""
    needle = text.encode()
    found = 0
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    data = value.encode() if isinstance(value, str) else value
                    if isinstance(data, bytes):
                        found += data.count(needle)
    conn.close()
    return found


def _run(client: httpx.Client, command: str, **params: Any) -> tuple[str, httpx.Response]:
    job = uuid.uuid4().hex
    reply = client.put(EXEC, json=body(command, **params), headers={"X-Job-UUID": job})
    return job, reply


def test_a_commands_output_is_stored_once_and_its_job_answers_the_same_bytes(
        start_scripted) -> None:
    server = start_scripted()
    with server.client() as client:
        job, reply = _run(client, "cat\necho some error >&2", stdin=MARK)
        assert reply.status_code == 200
        assert (reply.json()["stdout"], reply.json()["stderr"]) == (MARK, "some error\n")
        polled = client.get(f"{JOBS}/{job}")
        assert polled.status_code == 200
        assert polled.content == reply.content
        assert polled.headers["content-length"] == reply.headers["content-length"]
        # The execution's result (its SSE result event) is the same reply, key for key.
        result = _result_event(client, job)
        assert json.dumps(result["body"]) == json.dumps(reply.json())
    assert copies(_db_of(server), MARK) == 1


def test_a_timed_out_commands_output_is_stored_once(start_scripted) -> None:
    server = start_scripted()
    with server.client() as client:
        job, reply = _run(client, "cat\nsleep 5", stdin=MARK, commandTimeout=1)
        assert reply.status_code == 503
        assert reply.json()["error"]["opaque"]["stdout"] == MARK
        assert client.get(f"{JOBS}/{job}").content == reply.content
    assert copies(_db_of(server), MARK) == 1


def test_output_beyond_the_cap_is_kept_whole_by_the_job(start_scripted) -> None:
    # The execution keeps 100 bytes of it: the job's reply must still be all of it.
    server = start_scripted(output_cap=100)
    with server.client() as client:
        job, reply = _run(client, "cat", stdin=MARK)
        assert reply.json()["stdout"] == MARK
        assert client.get(f"{JOBS}/{job}").content == reply.content


def test_a_job_kept_longer_than_its_execution_keeps_its_output(start_scripted) -> None:
    server = start_scripted(execution_retention=3600.0, job_retention=7200.0)
    with server.client() as client:
        job, reply = _run(client, "cat", stdin=MARK)
        assert client.get(f"{JOBS}/{job}").content == reply.content
    # The execution's output, and the job's whole reply (its `stdout` and its `stream`).
    assert copies(_db_of(server), MARK) == 3


def _result_event(client: httpx.Client, job: str) -> dict[str, Any]:
    with connect_sse(client, "GET", f"{EXECUTIONS}/{job}/output") as source:
        for sse in source.iter_sse():
            if sse.event == "result":
                return dict(sse.json())
    raise AssertionError("no result event")


def test_a_large_reply_written_in_pieces_is_the_same_bytes(start_scripted) -> None:
    # Over 256 KiB of output: the direct reply is written in pieces from the engine's bytes,
    # the poll's from the whole body read back; both as JSONResponse writes it.
    text = ("line \"quoted\" \\ \u00e9\u20ac\U0001f600 tab\t\u2028 end\r\n" * 12_000)
    server = start_scripted()
    with server.client() as client:
        job, reply = _run(client, "cat\necho err >&2", stdin=text)
        assert reply.status_code == 200
        assert int(reply.headers["content-length"]) == len(reply.content) > 256 * 1024
        assert reply.headers["content-type"] == "application/json"
        assert reply.json()["stdout"] == text
        polled = client.get(f"{JOBS}/{job}")
        assert polled.content == reply.content
        assert polled.headers["content-length"] == reply.headers["content-length"]
        schema = client.put(EXEC, json=body("cat", stdin=text),
                            headers={"X-JSON-Schema": "true"})
        assert schema.json()["schema"] and schema.json()["stdout"] == text


#: Output that is not UTF-8 (its text has U+FFFD; its bytes come as ``stdoutBase64``).
BINARY = MARK.encode() + b"\xff\x00\xfe\x80" + bytes(range(256))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _stdin_b64(data: bytes) -> dict[str, str]:
    return {"stdinBase64": _b64(data)}


def test_a_binary_output_is_stored_once_and_comes_back_exactly(start_scripted) -> None:
    server = start_scripted()
    with server.client() as client:
        job, reply = _run(client, "cat\necho some error >&2", **_stdin_b64(BINARY))
        assert reply.status_code == 200
        assert base64.b64decode(reply.json()["stdoutBase64"]) == BINARY
        assert "stderrBase64" not in reply.json()
        assert client.get(f"{JOBS}/{job}").content == reply.content
        assert json.dumps(_result_event(client, job)["body"]) == json.dumps(reply.json())
    # The output's bytes once (the execution's); its base64 once: the request's stdin.
    assert copies(_db_of(server), MARK) == 1
    assert copies(_db_of(server), _b64(BINARY)) == 1


def test_both_streams_bytes_on_request_are_stored_once(start_scripted) -> None:
    server = start_scripted()
    with server.client() as client:
        job, reply = _run(client, "cat\necho some error >&2", stdin=MARK,
                          outputEncoding="base64")
        assert reply.json()["stdoutBase64"] == _b64(MARK.encode())
        assert reply.json()["stderrBase64"] == _b64(b"some error\n")
        assert client.get(f"{JOBS}/{job}").content == reply.content
        assert json.dumps(_result_event(client, job)["body"]) == json.dumps(reply.json())
    # Its base64 once too: the request's stdin (the job keeps it in base64).
    assert copies(_db_of(server), MARK) == 1
    assert copies(_db_of(server), _b64(MARK.encode())) == 1


def test_a_timed_out_commands_binary_output_is_stored_once(start_scripted) -> None:
    server = start_scripted()
    with server.client() as client:
        job, reply = _run(client, "cat\nsleep 5", commandTimeout=1, **_stdin_b64(BINARY))
        assert reply.status_code == 503
        opaque = reply.json()["error"]["opaque"]
        assert base64.b64decode(opaque["stdoutBase64"]) == BINARY
        assert client.get(f"{JOBS}/{job}").content == reply.content
    assert copies(_db_of(server), MARK) == 1
    assert copies(_db_of(server), _b64(BINARY)) == 1


def test_a_large_binary_reply_written_in_pieces_is_the_same_bytes(start_scripted) -> None:
    data = bytes(range(256)) * 1200 + b"\xe2\x82"  # 300 KiB, a character cut at the end
    server = start_scripted()
    with server.client() as client:
        job, reply = _run(client, "cat", **_stdin_b64(data))
        assert int(reply.headers["content-length"]) == len(reply.content) > 256 * 1024
        assert base64.b64decode(reply.json()["stdoutBase64"]) == data
        assert reply.json()["stdout"] == data.decode(errors="replace")
        polled = client.get(f"{JOBS}/{job}")
        assert polled.content == reply.content
        assert polled.headers["content-length"] == reply.headers["content-length"]
