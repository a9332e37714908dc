"""Where ``X-Web-Hook`` may send a command's output, and that its credentials stay secret
(issue 10, B12). Real HTTP both ways: the server, and receivers on loopback that the tests
allow explicitly (``webhook_allow``) where delivery is expected."""

from __future__ import annotations

import base64
import logging
import sqlite3
import time
import uuid
from collections.abc import Iterator

import pytest
from fixtures.server import RunningServer

from api.doubles import FakeGuest
from api.test_exec import EXEC, body, error_of
from api.test_exec_async import LOOPBACK_WEBHOOKS, WebhookReceiver, accepted

JOBS = "/zstack/v1/api-jobs/"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


def _port(receiver: WebhookReceiver) -> int:
    return int(receiver.server.server_address[1])


#: Destinations refused by default; ``{port}`` is a live receiver's. The ``offhost`` ones are
#: never contacted by a server that works (they are refused before any packet is sent).
REFUSED = {
    "loopback": "http://127.0.0.1:{port}/cb",
    "loopback-name": "http://localhost:{port}/cb",
    "loopback-other": "http://127.1.2.3:{port}/cb",
    "loopback-v6": "http://[::1]:{port}/cb",
    "loopback-v4-mapped": "http://[::ffff:127.0.0.1]:{port}/cb",
    "unspecified": "http://0.0.0.0:{port}/cb",
    "credentials": "http://hook:s3cret-pw@127.0.0.1:{port}/cb",
    "offhost-metadata": "http://169.254.169.254/latest/meta-data/iam/",
    "offhost-metadata-v6": "http://[fd00:ec2::254]/latest/meta-data/",
    "offhost-link-local": "http://169.254.10.1/",
}


@pytest.mark.parametrize("url", list(REFUSED.values()), ids=list(REFUSED))
def test_webhooks_to_this_machine_and_metadata_are_refused_by_default(
        server: RunningServer, receiver: WebhookReceiver, url: str) -> None:
    url = url.format(port=_port(receiver))
    job = uuid.uuid4().hex
    with server.client() as client:
        reply = client.post(EXEC, json=body("echo secret output"),
                            headers={"X-Web-Hook": url, "X-Job-UUID": job})
        error = error_of(reply, 503, "SYS.1007")
        assert "refused" in error["details"] and "webhook_allow" in error["details"]
        assert "s3cret-pw" not in reply.text
        # Refused up front: no job, nothing run, nothing sent.
        assert client.get(JOBS + job).status_code == 404
    time.sleep(0.3)
    assert receiver.received == []


def test_the_allow_list_opens_a_destination_and_nothing_else(
        start_scripted, receiver: WebhookReceiver) -> None:
    server: RunningServer = start_scripted(webhook_allow=["localhost"])
    with server.client() as client:
        accepted(client.post(EXEC, json=body("echo named"), headers={
            "X-Web-Hook": f"http://localhost:{_port(receiver)}/cb"}))
        assert receiver.arrived.wait(10)
        headers, delivered = receiver.received[0]
        # Sent to the checked address, with the URL's own host in the Host header.
        assert headers["Host"] == f"localhost:{_port(receiver)}"
        assert delivered["stream"] == "standardStream: named, errorStream: "
        # The name is allowed, not loopback in general, nor metadata addresses.
        for url in (f"http://127.0.0.1:{_port(receiver)}/cb", REFUSED["offhost-metadata"]):
            error_of(client.post(EXEC, json=body(), headers={"X-Web-Hook": url}), 503,
                     "SYS.1007")


def test_webhook_credentials_are_delivered_but_never_logged_or_kept(
        start_scripted, caplog: pytest.LogCaptureFixture) -> None:
    receiver = WebhookReceiver(statuses=[500])  # the first attempt fails, and is logged
    try:
        server: RunningServer = start_scripted(webhook_allow=LOOPBACK_WEBHOOKS,
                                               webhook_backoff=0.05)
        url = f"http://hook:s3cret-pw@127.0.0.1:{_port(receiver)}/cb?token=qs-secret"
        job = uuid.uuid4().hex
        with caplog.at_level(logging.DEBUG), server.client() as client:
            reply = client.post(EXEC, json=body("echo hooked"),
                                headers={"X-Web-Hook": url, "X-Job-UUID": job})
            location = accepted(reply)
            assert receiver.arrived.wait(10)
            state = _webhook_state(server, job)
            result = client.get(location)
        headers, _ = receiver.received[0]
        assert headers["Authorization"] == "Basic " + base64.b64encode(
            b"hook:s3cret-pw").decode()
        assert receiver.paths == ["/cb?token=qs-secret"]
        assert "***@127.0.0.1" in caplog.text  # the failed attempt was logged, redacted
        for secret in ("s3cret-pw", "qs-secret"):
            assert secret not in caplog.text
            assert secret not in reply.text and secret not in result.text
            assert secret not in str(state)  # delivered: the database forgets them
        assert state[0] == "delivered"
    finally:
        receiver.close()


def _webhook_state(server: RunningServer, job: str) -> tuple[str, str]:
    """``(webhook_state, webhook)`` of ``job`` once its delivery has ended."""
    path = server.settings.db.split("///", 1)[1]
    deadline = time.monotonic() + 10
    while True:
        with sqlite3.connect(path) as db:
            row = db.execute("SELECT webhook_state, webhook FROM api_jobs WHERE uuid = ?",
                             (job,)).fetchone()
        if row is not None and row[0] != "pending":
            return str(row[0]), str(row[1])
        assert time.monotonic() < deadline, "the delivery did not end"
        time.sleep(0.05)


def test_webhook_urls_that_are_not_http_are_refused_without_echoing_secrets(
        server: RunningServer) -> None:
    with server.client() as client:
        reply = client.post(EXEC, json=body(), headers={
            "X-Web-Hook": "ftp://user:s3cret-pw@files.example.com/x"})
    error_of(reply, 503, "SYS.1007")
    assert "s3cret-pw" not in reply.text


def test_the_destination_is_checked_again_at_delivery(
        start_scripted, fake_guest: FakeGuest, receiver: WebhookReceiver) -> None:
    """A destination allowed when the job started and refused when its result is ready (here
    the policy changed over a restart; a DNS name that rebinds takes the same path) gets
    nothing."""
    first: RunningServer = start_scripted(webhook_allow=LOOPBACK_WEBHOOKS)
    with first.client() as client:
        location = accepted(client.post(EXEC, json=body("echo a\nsleep 60\necho b"),
                                        headers={"X-Web-Hook": receiver.url}))
    job = location.rsplit("/", 1)[1]
    fake_guest.wait_started(job)
    first.stop()

    second: RunningServer = start_scripted()  # same database, default policy
    assert _webhook_state(second, job)[0] == "failed"
    with second.client() as client:
        assert client.get(JOBS + job).status_code == 200  # the result itself is there
    assert receiver.received == []
