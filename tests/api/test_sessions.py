"""LogInByAccount, LogOut, ValidateSession and the Authorization header, over real HTTP."""

from __future__ import annotations

import re
import time

import httpx
from fixtures.server import RunningServer, sha512_hex

LOGIN = "/zstack/v1/accounts/login"
ZSTACK_DATE = re.compile(r"^[A-Z][a-z]{2} \d{1,2}, \d{4} \d{1,2}:\d{2}:\d{2} [AP]M$")
#: Any API that needs a session will do.
AUTHENTICATED = "/zstack/v1/api-jobs/" + "a" * 32


def _login(client: httpx.Client, account: str, password: str) -> httpx.Response:
    return client.put(LOGIN, json={"logInByAccount": {"accountName": account,
                                                      "password": sha512_hex(password)}})


def test_login_returns_zstack_session_inventory(server: RunningServer) -> None:
    with server.client(authenticated=False) as client:
        reply = _login(client, "admin", "password")
    assert reply.status_code == 200
    inventory = reply.json()["inventory"]
    assert set(inventory) == {"uuid", "accountUuid", "userUuid", "expiredDate", "createDate"}
    assert re.fullmatch(r"[0-9a-f]{32}", inventory["uuid"])
    assert re.fullmatch(r"[0-9a-f]{32}", inventory["accountUuid"])
    assert ZSTACK_DATE.match(inventory["expiredDate"]), inventory["expiredDate"]
    assert ZSTACK_DATE.match(inventory["createDate"]), inventory["createDate"]


def test_login_accepts_uppercase_digest_and_sdk_extra_fields(server: RunningServer) -> None:
    with server.client(authenticated=False) as client:
        reply = client.put(LOGIN, json={"logInByAccount": {
            "accountName": "admin", "password": sha512_hex("password").upper(),
            "systemTags": [], "clientInfo": {"x": 1}}})
    assert reply.status_code == 200, reply.text


def test_wrong_password_or_account_is_id_1000(server: RunningServer) -> None:
    with server.client(authenticated=False) as client:
        for account, password in (("admin", "wrong"), ("nobody", "password")):
            reply = _login(client, account, password)
            assert reply.status_code == 503
            assert reply.json()["error"]["code"] == "ID.1000"


def test_login_body_errors(server: RunningServer) -> None:
    with server.client(authenticated=False) as client:
        missing = client.put(LOGIN, json={"logInByAccount": {"accountName": "admin"}})
        assert missing.status_code == 503
        assert missing.json()["error"]["code"] == "SYS.1007"
        wrong_type = client.put(LOGIN, json={"logInByAccount": {"accountName": 5,
                                                                "password": "x"}})
        assert wrong_type.status_code == 400
        malformed = client.put(LOGIN, content=b"{nope",
                               headers={"Content-Type": "application/json"})
        assert malformed.status_code == 400
        assert malformed.json()["error"]["code"] == "SYS.1007"


def test_validate_and_logout(server: RunningServer) -> None:
    session = server.login()
    with server.client(authenticated=False) as client:
        valid = client.get(f"/zstack/v1/accounts/sessions/{session}/valid")
        assert valid.status_code == 200 and valid.json() == {"valid": True}
        out = client.delete(f"/zstack/v1/accounts/sessions/{session}")
        assert out.status_code == 200 and out.json() == {}
        again = client.get(f"/zstack/v1/accounts/sessions/{session}/valid")
        assert again.json() == {"valid": False}
        # LogOut of an unknown session succeeds, as in ZStack.
        assert client.delete(f"/zstack/v1/accounts/sessions/{'0' * 32}").status_code == 200
        used = client.get(AUTHENTICATED, headers={"Authorization": f"OAuth {session}"})
    assert used.status_code == 503
    assert used.json()["error"]["code"] == "ID.1001"


def test_authorization_header_errors(server: RunningServer) -> None:
    with server.client(authenticated=False) as client:
        missing = client.get(AUTHENTICATED)
        assert missing.status_code == 400
        assert missing.json()["error"]["code"] == "SYS.1007"
        for header in ("Bearer abc", "OAuth", "abc"):
            reply = client.get(AUTHENTICATED, headers={"Authorization": header})
            assert reply.status_code == 400, header
        unknown = client.get(AUTHENTICATED, headers={"Authorization": f"OAuth {'f' * 32}"})
        assert unknown.status_code == 503
        assert unknown.json()["error"]["code"] == "ID.1001"
        # The scheme is case-insensitive, as in ZStack.
        ok = client.get(AUTHENTICATED, headers={"Authorization": f"oauth {server.session}"})
        assert ok.status_code == 404  # authenticated; that job does not exist


def test_sessions_expire_unless_used(start_scripted) -> None:
    server: RunningServer = start_scripted(session_timeout=2)
    idle, used = server.login(), server.login()
    with server.client(authenticated=False) as client:
        for _ in range(4):  # 3 s of use, past the 2 s timeout: each use renews it
            time.sleep(0.75)
            reply = client.get(AUTHENTICATED, headers={"Authorization": f"OAuth {used}"})
            assert reply.status_code == 404, reply.text
        expired = client.get(AUTHENTICATED, headers={"Authorization": f"OAuth {idle}"})
        assert expired.status_code == 503
        assert expired.json()["error"]["code"] == "ID.1001"
        assert client.get(f"/zstack/v1/accounts/sessions/{idle}/valid").json() == {
            "valid": False}


def test_admin_password_is_configurable(start_scripted) -> None:
    server: RunningServer = start_scripted(admin_password="s3cret!")
    with server.client(authenticated=False) as client:
        assert _login(client, "admin", "password").status_code == 503
        assert _login(client, "admin", "s3cret!").status_code == 200


def test_admin_password_from_environment(start_scripted, monkeypatch) -> None:
    monkeypatch.setenv("VMEXEC_ADMIN_PASSWORD", "from-env")
    server: RunningServer = start_scripted()  # the fixture itself logs in with it
    with server.client(authenticated=False) as client:
        assert _login(client, "admin", "password").status_code == 503
        assert _login(client, "admin", "from-env").status_code == 200


# --- issue 10, B9: tokens are not kept in clear -----------------------------------------------
def test_session_tokens_are_not_stored_in_clear(start_scripted, tmp_path) -> None:
    server: RunningServer = start_scripted(db_file=tmp_path / "tokens" / "vmexec.db")
    tokens = [server.session, server.login(), server.login()]
    with server.client(authenticated=False) as client:
        for token in tokens:  # they work ...
            assert client.get(f"/zstack/v1/accounts/sessions/{token}/valid").json() == {
                "valid": True}
    # ... and no byte of the database (file, WAL, shared memory) holds one.
    files = list((tmp_path / "tokens").iterdir())
    assert any(f.name == "vmexec.db" for f in files)
    data = b"".join(f.read_bytes() for f in files)
    for token in tokens:
        assert token.encode() not in data
        assert token.upper().encode() not in data


# --- issue 10, B10: password guessing is throttled --------------------------------------------
def _error(reply: httpx.Response, code: str) -> dict[str, str]:
    assert reply.status_code == 503, reply.text
    error: dict[str, str] = reply.json()["error"]
    assert error["code"] == code, error
    return error


def _retry_after(reply: httpx.Response) -> int:
    error = _error(reply, "ID.1008")
    seconds = int(reply.headers["Retry-After"])
    assert seconds >= 1
    assert f"retry in {seconds}s" in error["details"], error
    return seconds


def test_wrong_logins_of_an_account_are_throttled_then_let_in(start_scripted) -> None:
    server: RunningServer = start_scripted(login_max_failures_per_account=3,
                                           login_failure_window=2)
    with server.client(authenticated=False) as client:
        for _ in range(3):
            _error(_login(client, "admin", "guess"), "ID.1000")
        # Refused now, even with the right password: the guesser learns nothing.
        refused = _login(client, "admin", "password")
        assert "too many failed logins for this account" in _error(refused, "ID.1008")[
            "details"]
        wait = _retry_after(refused)
        # Other accounts are not affected by this account's failures.
        _error(_login(client, "nobody", "guess"), "ID.1000")
        time.sleep(wait + 0.2)
        assert _login(client, "admin", "password").status_code == 200


def test_unknown_accounts_are_throttled_like_known_ones(start_scripted) -> None:
    server: RunningServer = start_scripted(login_max_failures_per_account=2)
    with server.client(authenticated=False) as client:
        for account in ("admin", "nobody"):
            for _ in range(2):
                _error(_login(client, account, "guess"), "ID.1000")
            _retry_after(_login(client, account, "guess"))


def test_wrong_logins_from_an_address_are_throttled(start_scripted) -> None:
    server: RunningServer = start_scripted(login_max_failures_per_address=4,
                                           login_max_failures_per_account=100)
    with server.client(authenticated=False) as client:
        for i in range(4):  # spraying account names from one address
            _error(_login(client, f"user{i}", "guess"), "ID.1000")
        refused = _login(client, "admin", "password")
        assert "from this address" in _error(refused, "ID.1008")["details"]
        _retry_after(refused)
