"""``GET /health`` says when ``admin`` still has the default password (issue 10, B11)."""

from __future__ import annotations

import logging

import pytest
from fixtures.server import RunningServer, sha512_hex

from vmexec.config import Settings
from vmexec.server import UnsafeStart, check_default_password


def test_health_reports_the_default_password_until_it_is_changed(
        start_scripted, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="vmexec"):
        server: RunningServer = start_scripted()
    assert "still has the default password" in caplog.text  # logged at start
    with server.client() as client:
        health = client.get("/health").json()
        assert health["status"] == "ok"
        assert health["defaultPassword"] is True
        assert any("default password" in w for w in health["warnings"])
        uuid = client.put("/zstack/v1/accounts/login", json={"logInByAccount": {
            "accountName": "admin", "password": sha512_hex("password")}}).json()[
            "inventory"]["accountUuid"]
        changed = client.put(f"/zstack/v1/accounts/{uuid}", json={"updateAccount": {
            "password": sha512_hex("better"), "oldPassword": sha512_hex("password")}})
        assert changed.status_code == 200, changed.text
        health = client.get("/health").json()
    assert health["defaultPassword"] is False and health["warnings"] == []


def test_health_is_quiet_with_a_configured_password(
        start_scripted, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="vmexec"):
        server: RunningServer = start_scripted(admin_password="configured")
    assert "default password" not in caplog.text
    with server.client(authenticated=False) as client:
        health = client.get("/health").json()
    assert health["defaultPassword"] is False and health["warnings"] == []


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "vmexec.example.com"])
def test_a_server_with_the_default_password_refuses_other_addresses(host: str) -> None:
    with pytest.raises(UnsafeStart, match="default password"):
        check_default_password(Settings(host=host), True)
    # Allowed explicitly, or with another password, or on loopback: no refusal.
    check_default_password(Settings(host=host, allow_default_password=True), True)
    check_default_password(Settings(host=host), False)
    for loopback in ("127.0.0.1", "127.3.4.5", "::1", "localhost", "::ffff:127.0.0.1"):
        check_default_password(Settings(host=loopback), True)
