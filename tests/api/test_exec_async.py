"""Sync/async ExecuteGuestVmCommand over real HTTP (scripted engine): wait windows, Prefer,
polling, X-Job-UUID, webhooks to a real loopback server, restarts, and the execution record."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from fixtures.server import RunningServer

from api.conftest import VM_1, scripted
from api.doubles import FakeGuest
from api.test_exec import EXEC, body, error_of

JOBS = "/zstack/v1/api-jobs/"


def poll(client: httpx.Client, location: str, timeout: float = 30.0) -> httpx.Response:
    """Poll ``location`` as ZStack's SDKs do until it is no longer 202."""
    deadline = time.monotonic() + timeout
    while True:
        reply = client.get(location)
        if reply.status_code != 202:
            return reply
        assert reply.json() == {}
        assert time.monotonic() < deadline, "job did not finish"
        time.sleep(0.05)


def accepted(reply: httpx.Response) -> str:
    assert reply.status_code == 202, reply.text
    assert set(reply.json()) == {"location", "apiTimeout"}
    assert isinstance(reply.json()["apiTimeout"], int)
    location: str = reply.json()["location"]
    assert JOBS in location
    return location


#: Webhook receivers of these tests listen on loopback, which the default policy refuses.
LOOPBACK_WEBHOOKS = ["127.0.0.1/32"]


@pytest.fixture(scope="module")
def short_window(module_server_factory) -> RunningServer:
    """A scripted server whose POST window is 0.5 s (webhooks to loopback allowed)."""
    return scripted(module_server_factory, FakeGuest())(post_wait=0.5,
                                                        webhook_allow=LOOPBACK_WEBHOOKS)


@pytest.fixture
def client(short_window: RunningServer) -> Iterator[httpx.Client]:
    with short_window.client() as client:
        yield client


def test_post_of_a_short_command_is_200_with_the_put_body(client: httpx.Client) -> None:
    post = client.post(EXEC, json=body("echo hi"))
    put = client.put(EXEC, json=body("echo hi"))
    assert post.status_code == put.status_code == 200
    drop = {"durationMs"}
    assert {k: v for k, v in post.json().items() if k not in drop} == \
        {k: v for k, v in put.json().items() if k not in drop}


def test_post_longer_than_its_window_is_202_then_the_result(client: httpx.Client) -> None:
    location = accepted(client.post(EXEC, json=body("sleep 1.5\necho done")))
    running = client.get(location)
    assert running.status_code == 202 and running.json() == {}
    result = poll(client, location)
    assert result.status_code == 200
    assert result.json()["stream"] == "standardStream: done, errorStream: "
    assert result.json()["vmInstance"]["uuid"] == VM_1.uuid
    # The result stays there for later polls.
    assert client.get(location).json() == result.json()


def test_put_waits_for_the_whole_command(client: httpx.Client) -> None:
    reply = client.put(EXEC, json=body("sleep 1.2\necho done"))
    assert reply.status_code == 200 and reply.json()["stdout"] == "done\n"


def test_location_is_built_from_the_host_header(client: httpx.Client) -> None:
    reply = client.post(EXEC, json=body("echo x"),
                        headers={"Host": "zstack.example:8080", "Prefer": "respond-async"})
    assert accepted(reply).startswith("http://zstack.example:8080/zstack/v1/api-jobs/")


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_prefer_respond_async(client: httpx.Client, method: str) -> None:
    reply = client.request(method, EXEC, json=body("echo x"),
                           headers={"Prefer": "respond-async"})
    location = accepted(reply)
    assert reply.headers["Preference-Applied"] == "respond-async"
    assert poll(client, location).json()["stdout"] == "x\n"


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_prefer_wait(client: httpx.Client, method: str) -> None:
    # wait=3 outlasts the POST window; wait=0 is shorter than any command.
    long = client.request(method, EXEC, json=body("sleep 1\necho x"),
                          headers={"Prefer": "wait=3"})
    assert long.status_code == 200, long.text
    assert long.headers["Preference-Applied"] == "wait=3"
    assert client.request(method, EXEC, json=body("sleep 0.3"),
                          headers={"Prefer": "wait=0"}).status_code == 202
    # RFC 7240: with respond-async, wait=N is how long a synchronous answer may take.
    both = client.request(method, EXEC, json=body("echo y"),
                          headers={"Prefer": "respond-async, wait=5"})
    assert both.status_code == 200
    # Preferences it does not know (or malformed ones) are ignored.
    assert client.request(method, EXEC, json=body("echo z"),
                          headers={"Prefer": "handling=lenient, wait=soon"}).status_code == 200


def test_x_job_uuid_names_the_job_and_cannot_be_reused(client: httpx.Client) -> None:
    job = uuid.uuid4().hex
    first = client.post(EXEC, json=body("echo once"), headers={"X-Job-UUID": job})
    assert first.status_code == 200
    assert client.get(JOBS + job).json() == first.json()
    again = client.post(EXEC, json=body("echo twice"), headers={"X-Job-UUID": job})
    assert "X-Job-UUID" in error_of(again, 503, "SYS.1007")["details"]
    upper = client.post(EXEC, json=body("echo twice"), headers={"X-Job-UUID": job.upper()})
    error_of(upper, 503, "SYS.1007")
    async_job = uuid.uuid4().hex
    location = accepted(client.post(EXEC, json=body("echo a"), headers={
        "X-Job-UUID": async_job, "Prefer": "respond-async"}))
    assert location.endswith(JOBS + async_job)


@pytest.mark.parametrize("job", ["abc", "g" * 32, str(uuid.uuid4())])
def test_malformed_x_job_uuid_is_sys_1007(client: httpx.Client, job: str) -> None:
    error_of(client.post(EXEC, json=body(), headers={"X-Job-UUID": job}), 503, "SYS.1007")


def test_failures_come_back_through_polling_too(client: httpx.Client) -> None:
    location = accepted(client.post(EXEC, json=body("raise unavailable"),
                                    headers={"Prefer": "respond-async"}))
    error_of(poll(client, location), 503, "VM.EXEC.1003")
    location = accepted(client.post(EXEC, json=body("echo a\nsleep 3", commandTimeout=1),
                                    headers={"Prefer": "respond-async"}))
    assert error_of(poll(client, location), 503, "VM.EXEC.1001")["opaque"]["stdout"] == "a\n"


def test_unknown_job_is_404(client: httpx.Client) -> None:
    error_of(client.get(JOBS + uuid.uuid4().hex), 404, "SYS.1003")


def test_expired_job_is_404(start_scripted) -> None:
    server: RunningServer = start_scripted(job_retention=1.0)
    with server.client() as client:
        job = accepted(client.post(EXEC, json=body("echo y"),
                                   headers={"Prefer": "respond-async"}))
        assert poll(client, job).status_code == 200
        time.sleep(1.2)
        error_of(client.get(job), 404, "SYS.1003")


def test_jobs_belong_to_the_account_that_started_them(client: httpx.Client,
                                                      short_window: RunningServer) -> None:
    location = accepted(client.post(EXEC, json=body("echo mine"),
                                    headers={"Prefer": "respond-async"}))
    poll(client, location)
    # Another session of the same account sees it.
    other = short_window.login()
    assert client.get(location, headers={"Authorization": f"OAuth {other}"}).status_code == 200


# --- webhooks ---------------------------------------------------------------------------------
class WebhookReceiver:
    """A real HTTP server on loopback recording the POSTs it receives."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.received: list[tuple[dict[str, str], Any]] = []
        self.paths: list[str] = []
        self.statuses = list(statuses or [])
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                data = json.loads(self.rfile.read(length))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == 200:
                    receiver.received.append((dict(self.headers), data))
                    receiver.paths.append(self.path)
                    receiver.arrived.set()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/callback"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


def test_webhook_gets_the_result(client: httpx.Client, receiver: WebhookReceiver) -> None:
    job = uuid.uuid4().hex
    reply = client.put(EXEC, json=body("echo hooked"),
                       headers={"X-Web-Hook": receiver.url, "X-Job-UUID": job})
    location = accepted(reply)
    assert receiver.arrived.wait(10)
    headers, delivered = receiver.received[0]
    assert headers["X-Job-UUID"] == job
    assert headers["X-Job-Success"] == "true"
    assert delivered == client.get(location).json()
    assert delivered["stream"] == "standardStream: hooked, errorStream: "


def test_webhook_gets_failures_and_is_retried(start_scripted) -> None:
    receiver = WebhookReceiver(statuses=[500, 503])
    try:
        server: RunningServer = start_scripted(webhook_backoff=0.1,
                                               webhook_allow=LOOPBACK_WEBHOOKS)
        with server.client() as client:
            accepted(client.post(EXEC, json=body("raise lost"),
                                 headers={"X-Web-Hook": receiver.url}))
            assert receiver.arrived.wait(10)
        headers, delivered = receiver.received[0]
        assert headers["X-Job-Success"] == "false"
        assert delivered["error"]["code"] == "VM.EXEC.1007"
    finally:
        receiver.close()


@pytest.mark.parametrize("url", ["ftp://x/y", "not a url", "http://"])
def test_bad_webhook_url_is_sys_1007(client: httpx.Client, url: str) -> None:
    error_of(client.post(EXEC, json=body(), headers={"X-Web-Hook": url}), 503, "SYS.1007")


# --- restart ----------------------------------------------------------------------------------
def test_a_job_survives_a_restart(start_scripted, fake_guest: FakeGuest) -> None:
    first: RunningServer = start_scripted()
    session = first.session
    with first.client() as client:
        location = accepted(client.post(EXEC, json=body("echo a\nsleep 60\necho b"),
                                        headers={"Prefer": "respond-async"}))
    job = location.rsplit("/", 1)[1]
    fake_guest.wait_started(job)
    first.stop()  # the command still "runs in the guest"; vmexec goes away

    second: RunningServer = start_scripted()  # same database file
    with httpx.Client(base_url=second.url, timeout=30,
                      headers={"Authorization": f"OAuth {session}"}) as client:
        # Sessions survive too; the job is collected from the guest by its run id.
        result = poll(client, JOBS + job)
    assert result.status_code == 200, result.text
    assert result.json()["stdout"] == "a\nb\n"


# --- execution record -------------------------------------------------------------------------
def _records(server: RunningServer) -> dict[str, sqlite3.Row]:
    path = server.settings.db.split("///", 1)[1]
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return {row["uuid"]: row for row in db.execute("SELECT * FROM executions")}


def test_every_execution_is_recorded(client: httpx.Client, short_window: RunningServer) -> None:
    ok, failing, timed_out, refused = (uuid.uuid4().hex for _ in range(4))
    client.put(EXEC, json=body("echo out\necho err >&2\nexit 3"), headers={"X-Job-UUID": ok})
    client.put(EXEC, json=body("raise setup"), headers={"X-Job-UUID": failing})
    client.put(EXEC, json=body("echo a\nsleep 5", commandTimeout=1),
               headers={"X-Job-UUID": timed_out})
    client.put(EXEC, json=body(vm="0" * 31 + "3"), headers={"X-Job-UUID": refused})
    records = _records(short_window)

    row = records[ok]
    assert (row["account_name"], row["vm_uuid"], row["platform"]) == ("admin", VM_1.uuid,
                                                                      "Linux")
    assert row["command"] == "echo out\necho err >&2\nexit 3"
    assert (row["outcome"], row["exit_code"], row["timeout_seconds"]) == ("exited", 3, 60)
    assert (row["stdout_bytes"], row["stderr_bytes"]) == (4, 4)
    assert row["requested_at"] and row["started_at"] and row["finished_at"]
    assert row["error_code"] is None
    assert (records[failing]["outcome"], records[failing]["error_code"]) == ("failed",
                                                                             "VM.EXEC.1006")
    assert records[timed_out]["outcome"] == "timed_out"
    assert records[timed_out]["stdout_bytes"] == 2
    assert (records[refused]["outcome"], records[refused]["error_code"]) == ("failed",
                                                                             "VM.EXEC.1004")
