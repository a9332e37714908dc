"""The web console's HTTP side, without a browser: its pages and files, the cookie login, the
CSRF token that cookie-authenticated changes need, logout, the security headers, and the docs
served from the package (no CDN). Over real HTTP on a real server (scripted engine).

The browser tests are tests/console/test_console_vm.py.
"""

from __future__ import annotations

import re
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pytest
from fixtures.server import RunningServer

from api.conftest import VM_1
from api.test_exec import EXEC, body
from vmexec.api.cookies import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, csrf_token

CONSOLE_SESSION = "/console/session"
VMS = "/zstack/v1/vm-instances"
ACCESS_KEYS = "/zstack/v1/accesskeys"
CONSOLE_CSP = "default-src 'self'"
#: Every file the console's page loads (index.html names them; app.js imports the rest).
CONSOLE_FILES = ["/console/static/app.js", "/console/static/api.js",
                 "/console/static/vms.js", "/console/static/command.js",
                 "/console/static/output.js", "/console/static/history.js",
                 "/console/static/console.css", "/console/static/favicon.svg"]


def _set_cookies(reply: httpx.Response) -> dict[str, Any]:
    """The reply's Set-Cookie headers, by cookie name (morsels)."""
    cookies: dict[str, Any] = {}
    for header in reply.headers.get_list("set-cookie"):
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        cookies.update(jar)
    return cookies


def _log_in(server: RunningServer, password: str = "password",
            headers: dict[str, str] | None = None) -> httpx.Response:
    with server.client(authenticated=False) as client:
        return client.post(CONSOLE_SESSION, headers=headers,
                           json={"accountName": "admin", "password": password})


def _browser(server: RunningServer) -> tuple[httpx.Client, str]:
    """A client holding the console's cookies (as a browser does), and the CSRF token."""
    reply = _log_in(server)
    assert reply.status_code == 200, reply.text
    client = httpx.Client(base_url=server.url, timeout=60)
    client.cookies.update(reply.cookies)
    return client, str(reply.json()["csrfToken"])


def _error(reply: httpx.Response, status: int, code: str) -> str:
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["code"] == code, reply.text
    assert error["description"]
    return str(error["details"])


# --- the login ---------------------------------------------------------------------------------
def test_login_sets_an_httponly_strict_session_cookie_and_a_readable_csrf_cookie(
        server: RunningServer) -> None:
    reply = _log_in(server)
    assert reply.status_code == 200, reply.text
    cookies = _set_cookies(reply)
    session, csrf = cookies[SESSION_COOKIE], cookies[CSRF_COOKIE]
    assert re.fullmatch(r"[0-9a-f]{32}", session.value)
    assert session["httponly"] is True and session["samesite"] == "strict"
    assert session["path"] == "/"
    assert not session["secure"]  # plain http: a Secure cookie would never come back
    assert not session["max-age"] and not session["expires"]  # ends with the browser
    assert not csrf["httponly"] and csrf["samesite"] == "strict" and csrf["path"] == "/"
    assert csrf.value == reply.json()["csrfToken"] == csrf_token(session.value)
    assert reply.json()["inventory"]["accountName"] == "admin"
    # The cookie's session is a normal vmexec session: it works as an OAuth one.
    with server.client(authenticated=False) as client:
        valid = client.get(f"/zstack/v1/accounts/sessions/{session.value}/valid")
    assert valid.json() == {"valid": True}


def test_cookies_are_secure_when_the_request_is_https(server: RunningServer) -> None:
    # Behind a TLS proxy (vmexec serve reads no proxy headers, but this one is harmless).
    reply = _log_in(server, headers={"X-Forwarded-Proto": "https"})
    assert reply.status_code == 200, reply.text
    cookies = _set_cookies(reply)
    assert cookies[SESSION_COOKIE]["secure"] and cookies[CSRF_COOKIE]["secure"]


def test_a_wrong_password_is_the_apis_error_and_sets_no_cookie(server: RunningServer) -> None:
    reply = _log_in(server, password="wrong")
    _error(reply, 503, "ID.1000")
    assert SESSION_COOKIE not in _set_cookies(reply)


def test_the_cookie_authenticates_reads(server: RunningServer) -> None:
    client, _csrf = _browser(server)
    with client:
        vms = client.get(VMS)
        who = client.get(CONSOLE_SESSION)
    assert vms.status_code == 200, vms.text
    assert VM_1.uuid in {vm["uuid"] for vm in vms.json()["inventories"]}
    assert who.json()["inventory"]["accountName"] == "admin"


def test_no_cookie_and_no_header_is_still_400(server: RunningServer) -> None:
    with server.client(authenticated=False) as client:
        _error(client.get(VMS), 400, "SYS.1007")


def test_a_forged_or_ended_cookie_is_an_invalid_session(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url, timeout=60,
                      cookies={SESSION_COOKIE: "1" * 32}) as client:
        _error(client.get(VMS), 503, "ID.1001")


# --- CSRF --------------------------------------------------------------------------------------
def _keys(server: RunningServer) -> set[str]:
    with server.client() as client:
        return {key["uuid"] for key in client.get(ACCESS_KEYS).json()["inventories"]}


def _admin_uuid(server: RunningServer) -> str:
    with server.client() as client:
        return str(client.get("/zstack/v1/accounts", params={"q": "name=admin"}
                              ).json()["inventories"][0]["uuid"])


@pytest.mark.parametrize("token", [None, "", "0" * 64, "forged"])
def test_a_cookie_authenticated_change_without_the_csrf_token_is_refused(
        server: RunningServer, token: str | None) -> None:
    # What a page of another origin could make a browser send: the cookie, not the header.
    client, _csrf = _browser(server)
    before = _keys(server)
    headers = {} if token is None else {CSRF_HEADER: token}
    with client:
        create = client.post(ACCESS_KEYS, headers=headers,
                             json={"params": {"accountUuid": _admin_uuid(server)}})
        run = client.put(EXEC, headers=headers, json=body("echo csrf"))
    assert CSRF_HEADER in _error(create, 403, "ID.1002")
    assert CSRF_HEADER in _error(run, 403, "ID.1002")
    assert _keys(server) == before  # nothing was done


def test_the_csrf_token_of_another_session_is_refused(server: RunningServer) -> None:
    client, _csrf = _browser(server)
    _other_client, other_csrf = _browser(server)
    _other_client.close()
    with client:
        reply = client.put(EXEC, headers={CSRF_HEADER: other_csrf}, json=body("echo csrf"))
    _error(reply, 403, "ID.1002")


def test_a_cookie_authenticated_change_with_the_token_runs(server: RunningServer) -> None:
    client, csrf = _browser(server)
    with client:
        run = client.put(EXEC, headers={CSRF_HEADER: csrf}, json=body("echo console"))
        create = client.post(ACCESS_KEYS, headers={CSRF_HEADER: csrf},
                             json={"params": {"accountUuid": _admin_uuid(server)}})
    assert run.status_code == 200, run.text
    assert create.status_code == 200, create.text


def test_the_authorization_header_needs_no_csrf_token_even_with_a_cookie(
        server: RunningServer) -> None:
    client, _csrf = _browser(server)
    with client:
        reply = client.put(EXEC, headers=server.auth, json=body("echo header"))
    assert reply.status_code == 200, reply.text


# --- logout ------------------------------------------------------------------------------------
def test_logout_ends_the_session_and_clears_the_cookies(server: RunningServer) -> None:
    client, csrf = _browser(server)
    token = client.cookies[SESSION_COOKIE]
    with client:
        refused = client.delete(CONSOLE_SESSION)  # no token: a forged logout changes nothing
        _error(refused, 403, "ID.1002")
        assert client.get(VMS).status_code == 200
        reply = client.delete(CONSOLE_SESSION, headers={CSRF_HEADER: csrf})
        assert reply.status_code == 200, reply.text
        cleared = _set_cookies(reply)
        assert cleared[SESSION_COOKIE]["max-age"] == "0"
        assert cleared[CSRF_COOKIE]["max-age"] == "0"
    with httpx.Client(base_url=server.url, timeout=60,
                      cookies={SESSION_COOKIE: token}) as stale:
        _error(stale.get(VMS), 503, "ID.1001")
        assert stale.get(f"/zstack/v1/accounts/sessions/{token}/valid").json() == {
            "valid": False}


def test_logout_without_a_cookie_is_a_no_op(server: RunningServer) -> None:
    with server.client(authenticated=False) as client:
        assert client.delete(CONSOLE_SESSION).json() == {}


# --- pages, files and headers ------------------------------------------------------------------
def _page_headers(reply: httpx.Response, csp: str) -> None:
    assert reply.headers["content-security-policy"].startswith(csp), reply.headers
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["referrer-policy"] == "no-referrer"


def test_the_console_page_and_its_files_are_served_with_a_strict_csp(
        server: RunningServer) -> None:
    with server.client(authenticated=False) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        _page_headers(page, CONSOLE_CSP)
        # No inline script or style (the CSP would block it), nothing from another host.
        assert "<style" not in page.text and " style=" not in page.text
        assert re.findall(r"<script[^>]*>([^<]*)</script>", page.text) == [""]
        assert not re.search(r"(src|href)=\"(https?:)?//", page.text)
        for path in CONSOLE_FILES:
            reply = client.get(path)
            assert reply.status_code == 200, path
            _page_headers(reply, CONSOLE_CSP)
            assert "//cdn" not in reply.text and "https://" not in reply.text, path
        assert client.get("/console/static/app.js").headers["content-type"].startswith(
            "text/javascript")
        failed = client.put(EXEC, json=body())
    # The API's answers are left as they were.
    assert "content-security-policy" not in failed.headers


@pytest.mark.parametrize(("page", "assets"), [
    ("/docs", ["/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css",
               "/console/static/swagger-init.js"]),
    ("/redoc", ["/docs/assets/redoc.standalone.js", "/console/static/redoc-init.js"]),
])
def test_the_docs_come_from_the_package_not_a_cdn(server: RunningServer, page: str,
                                                  assets: list[str]) -> None:
    with server.client(authenticated=False) as client:
        html = client.get(page)
        assert html.status_code == 200
        _page_headers(html, "default-src 'self'")
        assert not re.search(r"(src|href)=\"(https?:)?//", html.text)
        for asset in assets:
            assert f'"{asset}"' in html.text
            reply = client.get(asset)
            assert reply.status_code == 200, asset
            assert len(reply.content) > 100, asset
