"""``GET /health`` says when ``admin`` still has the default password (issue 10, B11)."""

from __future__ import annotations

import logging

import pytest
from fixtures.server import RunningServer, sha512_hex


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
