"""The permission matrix (issue 13): every route of the OpenAPI document by every kind of
caller → the expected status and code, on a real server.

The callers: ``admin``; ``owner``, a Normal account that owns the VM the request names;
``other``, a Normal account that owns nothing; ``no session``; an ``expired session``; a
``valid key`` (the owner's access key: it acts as the owner); a ``disabled key``; a ``bad
signature``; a ``stale Date``; the owner's ``console cookie`` (with its CSRF token: it acts as
the owner) and a ``cookie without CSRF`` token (the owner's, for reads; every change it asks
is ``403 ID.1002``). The five refused ones are refused alike by every route that needs
credentials (``400`` without any, ``503 ID.1001`` otherwise); the others get what the
route's rule says. A route without a rule (or a rule without its route) fails
:func:`test_every_route_has_a_rule`: a new route must say who may call it.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes.hosts import MemoryHosts, seen
from fixtures.server import RunningServer, ServerFactory, sha512_hex
from fixtures.zstack_sdk import URL_PREFIX, sdk_date, signed_headers

from api.accounts_helpers import Account, Key, create_account, create_key, give, set_key_state
from api.conftest import LOCAL, with_sources
from api.doubles import FakeGuest, ScriptedExecutor
from api.openapi_document import openapi_document
from vmexec.agent.directory import AgentDirectory
from vmexec.api.cookies import CSRF_HEADER, SAFE_METHODS, SESSION_COOKIE, csrf_token
from vmexec.services.access_keys import sign

OWNED = seen("owned", "0a" * 16)
ADMINS = seen("admins", "0b" * 16)
#: Hosts AddKVMHost and DeleteHost may use.
SPARE_TO_ADD, SPARE_TO_DELETE = "memory://spare-add", "memory://spare-delete"

PRINCIPALS = ("admin", "owner", "other", "no session", "expired session", "valid key",
              "disabled key", "bad signature", "stale Date", "console cookie",
              "cookie without CSRF")
#: Callers whose credentials are refused, and how.
REFUSED: Mapping[str, tuple[int, str]] = {
    "no session": (400, "SYS.1007"), "expired session": (503, "ID.1001"),
    "disabled key": (503, "ID.1001"), "bad signature": (503, "ID.1001"),
    "stale Date": (503, "ID.1001"),
}
#: Callers that act as an account: who they are to the rules.
ACTS_AS = {"admin": "admin", "owner": "owner", "valid key": "owner", "other": "other",
           "console cookie": "owner", "cookie without CSRF": "owner"}
#: What a cookie without its CSRF token gets from a route that may change state.
NO_CSRF = (403, "ID.1002")


def _operations() -> dict[str, tuple[str, str, bool]]:
    """operationId -> (method, path template, needs credentials)."""
    return {op["operationId"]: (method.upper(), path, "security" in op)
            for path, ops in openapi_document()["paths"].items() for method, op in ops.items()}


# --- the world the requests run in -----------------------------------------------------------
@dataclass
class World:
    server: RunningServer
    owner: Account
    other: Account
    owner_key: Key
    disabled_key: Key
    expired_session: str
    owner_job: str
    owner_run: str
    admin_uuid: str
    #: A console session of the owner's (the cookie's token).
    owner_cookie: str
    #: What a request made for a cell, for its checks (e.g. the key it deleted).
    made: dict[str, str] = field(default_factory=dict)


def _expire(server: RunningServer, session: str) -> None:
    # A session that ended by time, as the clock would end it: its expiry is in the past.
    db_file = Path(server.settings.db.split("///", 1)[1])
    token_hash = hashlib.sha256(session.lower().encode()).hexdigest()
    with sqlite3.connect(db_file) as conn:
        conn.execute("UPDATE sessions SET expired_date = '2000-01-01 00:00:00.000000' "
                     "WHERE token_hash = ?", (token_hash,))
    conn.close()


def _ended(server: RunningServer, owner: Account, path: str, body: dict[str, Any],
           headers: dict[str, str]) -> str:
    """An async call of the owner's (an exec or a run) waited for until its job ends; its
    uuid."""
    with server.client(authenticated=False) as client:
        reply = client.post(f"{URL_PREFIX}{path}", headers={**owner.auth, **headers}, json=body)
        assert reply.status_code == 202, reply.text
        job = str(reply.json()["location"]).rsplit("/", 1)[-1]
        for _ in range(200):
            if client.get(f"{URL_PREFIX}/api-jobs/{job}", headers=owner.auth
                          ).status_code != 202:
                return job
            time.sleep(0.05)
    raise AssertionError(f"the owner's {path} did not end")


@pytest.fixture(scope="module")
def world(module_server_factory: ServerFactory) -> World:
    hosts = MemoryHosts()
    hosts.add(LOCAL, OWNED, ADMINS)
    hosts.add(SPARE_TO_ADD)
    hosts.add(SPARE_TO_DELETE)

    def executor(agents: AgentDirectory) -> ScriptedExecutor:
        return ScriptedExecutor(agents, FakeGuest())

    server = module_server_factory(executor=executor, inventory=with_sources(hosts),
                                   libvirt_uri=LOCAL)
    with server.client() as client:
        added = client.post(f"{URL_PREFIX}/hosts/kvm", json={"params": {
            "name": "spare", "libvirtUri": SPARE_TO_DELETE}})
        assert added.status_code == 200, added.text
        admin_uuid = client.get(f"{URL_PREFIX}/accounts", params={"q": "name=admin"}
                                ).json()["inventories"][0]["uuid"]
    owner, other = create_account(server, "owner"), create_account(server, "other")
    give(server, owner.uuid, OWNED.uuid)
    owner_key = create_key(server, owner.uuid)
    disabled_key = create_key(server, owner.uuid)
    set_key_state(server, disabled_key.uuid, "disable")
    expired = server.login("owner", owner.password)
    _expire(server, expired)
    return World(server=server, owner=owner, other=other, owner_key=owner_key,
                 disabled_key=disabled_key, expired_session=expired,
                 owner_job=_ended(server, owner, "/vm-instances/commands/exec", _EXEC,
                                  {"Prefer": "respond-async"}),
                 owner_run=_ended(server, owner, "/vm-instances/commands/runs", _RUN, {}),
                 admin_uuid=admin_uuid, owner_cookie=_console_session(server, owner))


def _signed(method: str, url_path: str, key_id: str, secret: str, *,
            date: str | None = None) -> dict[str, str]:
    """An access key's headers for ``url_path``: as the SDK signs its APIs; a path outside
    ZStack's API (the console's session) is signed whole, as the server checks it."""
    if url_path.startswith(URL_PREFIX):
        return signed_headers(method, url_path.removeprefix(URL_PREFIX), key_id, secret,
                              date=date)
    date = date or sdk_date()
    return {"Date": date,
            "Authorization": f"ZStack {key_id}:{sign(secret, method, date, url_path)}"}


def _console_session(server: RunningServer, owner: Account) -> str:
    with server.client(authenticated=False) as client:
        reply = client.post("/console/session", json={"accountName": owner.name,
                                                      "password": owner.password})
    assert reply.status_code == 200, reply.text
    return str(reply.cookies[SESSION_COOKIE])


def _credentials(world: World, principal: str, method: str, url_path: str,
                 operation_id: str) -> dict[str, str]:
    key = world.owner_key
    if principal in ("console cookie", "cookie without CSRF"):
        # The console's logout ends the session it is sent: it gets one of its own.
        token = (_console_session(world.server, world.owner)
                 if operation_id == "LogOutOfConsole" else world.owner_cookie)
        headers = {"Cookie": f"{SESSION_COOKIE}={token}"}
        if principal == "console cookie":
            headers[CSRF_HEADER] = csrf_token(token)
        return headers
    match principal:
        case "admin":
            return world.server.auth
        case "owner":
            return world.owner.auth
        case "other":
            return world.other.auth
        case "no session":
            return {}
        case "expired session":
            return {"Authorization": f"OAuth {world.expired_session}"}
        case "valid key":
            return _signed(method, url_path, key.key_id, key.secret)
        case "disabled key":
            return _signed(method, url_path, world.disabled_key.key_id,
                                  world.disabled_key.secret)
        case "bad signature":
            return _signed(method, url_path, key.key_id, key.secret[::-1])
        case "stale Date":
            return _signed(method, url_path, key.key_id, key.secret,
                                  date=sdk_date(datetime.now(UTC) - timedelta(minutes=20)))
    raise AssertionError(principal)


# --- what each route is asked, and what each caller gets ------------------------------------
@dataclass(frozen=True)
class Outcome:
    status: int
    code: str | None = None
    #: A further check of the reply body (and the world, e.g. that nothing was deleted).
    check: Callable[[World, dict[str, Any]], bool] | None = None


OK = Outcome(200)
DENIED = Outcome(503, "ID.1002")
NOT_FOUND = Outcome(503, "SYS.1007")
JOB_NOT_FOUND = Outcome(404, "SYS.1003")


def _listed(*names: str, key: str = "name") -> Outcome:
    return Outcome(200, check=lambda _w, body: sorted(
        item[key] for item in body["inventories"]) == sorted(names))


def _named(account: str) -> Outcome:
    return Outcome(200, check=lambda _w, body: body["inventory"]["accountName"] == account)


def _keys_of_owner(world: World, body: dict[str, Any]) -> bool:
    return {k["accountUuid"] for k in body["inventories"]} == {world.owner.uuid}


def _key_kept(world: World, _body: dict[str, Any]) -> bool:
    with world.server.client() as client:
        return bool(client.get(f"{URL_PREFIX}/accesskeys/{world.made['key']}"
                               ).json()["inventories"])


def _key_gone(world: World, body: dict[str, Any]) -> bool:
    return not _key_kept(world, body)


Request = tuple[dict[str, str], dict[str, Any] | None, dict[str, str]]


def _fresh_key(world: World) -> str:
    world.made["key"] = create_key(world.server, world.owner.uuid).uuid
    return world.made["key"]


def _fresh_account(world: World) -> str:
    with world.server.client() as client:
        reply = client.post(f"{URL_PREFIX}/accounts", json={"params": {
            "name": f"doomed-{time.monotonic_ns()}", "password": sha512_hex("x")}})
    return str(reply.json()["inventory"]["uuid"])


def _spare_host(world: World) -> str:
    with world.server.client() as client:
        hosts = client.get(f"{URL_PREFIX}/hosts", params={"q": f"libvirtUri={SPARE_TO_DELETE}"}
                           ).json()["inventories"]
    return str(hosts[0]["uuid"]) if hosts else "0" * 32


_EXEC = {"params": {"vmInstanceUuid": OWNED.uuid, "platform": "Linux", "command": "echo m"}}
_RUN = {"params": {"command": "echo m", "platform": "Linux",
                   "targets": {"vmInstanceUuids": [OWNED.uuid]}}}
ACCEPTED = Outcome(202)


def _lists(made: Callable[[World], str], *, included: bool) -> Outcome:
    """A query whose reply lists (or leaves out) what ``made`` names."""
    return Outcome(200, check=lambda w, body: (made(w) in {
        item["uuid"] for item in body["inventories"]}) == included)


def _job(world: World) -> str:
    return world.owner_job


def _run(world: World) -> str:
    return world.owner_run


def _owners(made: Callable[[World], str], action: dict[str, Any] | None = None) -> Rule:
    """A route on one of the owner's executions or runs: to another account it does not
    exist (executions and runs are their account's; admins see all)."""
    return owner_and_admin(lambda w: ({"uuid": made(w)}, action, {}), other=JOB_NOT_FOUND)


@dataclass(frozen=True)
class Rule:
    """What a route is asked (path parameters, body, query) and what each caller gets."""

    request: Callable[[World], Request]
    admin: Outcome = OK
    owner: Outcome = DENIED
    other: Outcome = DENIED
    #: A route anyone may call, with or without credentials: all get ``admin``.
    public: bool = False
    #: Whether the route checks a console cookie's CSRF token (every route with credentials
    #: does; of the public ones, the console's logout).
    cookie_checked: bool | None = None


def _plain(world: World) -> Request:
    return {}, None, {}


def _on_vm(world: World) -> Request:
    return {"uuid": OWNED.uuid}, None, {}


def admin_only(request: Callable[[World], Request] = _plain) -> Rule:
    return Rule(request)


def owner_and_admin(request: Callable[[World], Request], other: Outcome = NOT_FOUND) -> Rule:
    return Rule(request, owner=OK, other=other)


RULES: Mapping[str, Rule] = {
    # No credentials needed.
    "GetHealth": Rule(_plain, public=True),
    "GetLiveness": Rule(_plain, public=True),
    "GetReadiness": Rule(_plain, public=True),
    # Open to the machine itself (the test's client is on loopback); see test_metrics.py.
    "GetMetrics": Rule(_plain, public=True),
    # The audit trail: admins.
    "QueryAudit": admin_only(),
    "QueryAuditByUuid": admin_only(lambda w: ({"uuid": "0" * 32}, None, {})),
    "LogInByAccount": Rule(lambda w: ({}, {"logInByAccount": {
        "accountName": "other", "password": sha512_hex(w.other.password)}}, {}), public=True),
    "LogOut": Rule(lambda w: ({"session_uuid": "0" * 32}, None, {}), public=True),
    "ValidateSession": Rule(lambda w: ({"session_uuid": "0" * 32}, None, {}), public=True),
    # The web console's session: log in and out (anyone), who am I (any account).
    "LogInToConsole": Rule(lambda w: ({}, {"accountName": "other",
                                           "password": w.other.password}, {}), public=True),
    "LogOutOfConsole": Rule(_plain, public=True, cookie_checked=True),
    "GetConsoleSession": Rule(_plain, admin=_named("admin"), owner=_named("owner"),
                              other=_named("other")),
    # Accounts: admins; an account's own password is tested in test_account_admin.py.
    "CreateAccount": admin_only(lambda w: ({}, {"params": {
        "name": f"new-{time.monotonic_ns()}", "password": sha512_hex("x")}}, {})),
    "QueryAccount": admin_only(),
    "QueryAccountByUuid": admin_only(lambda w: ({"uuid": w.owner.uuid}, None, {})),
    "UpdateAccount": admin_only(lambda w: ({"account_uuid": w.owner.uuid}, {
        "updateAccount": {"description": "matrix"}}, {})),
    "DeleteAccount": admin_only(lambda w: ({"uuid": _fresh_account(w)}, None, {})),
    "QueryAccountResourceRef": Rule(
        _plain, admin=_listed(OWNED.uuid, ADMINS.uuid, key="resourceUuid"),
        owner=_listed(OWNED.uuid, key="resourceUuid"), other=_listed()),
    "ChangeResourceOwner": admin_only(lambda w: ({"account_uuid": w.owner.uuid}, {
        "params": {"resourceUuid": OWNED.uuid}}, {})),
    # Hosts and the agent switch: admins.
    "AddKVMHost": admin_only(lambda w: ({}, {"params": {
        "name": "added", "libvirtUri": SPARE_TO_ADD}}, {})),
    "QueryHost": admin_only(),
    "QueryHostByUuid": admin_only(lambda w: ({"uuid": "0" * 32}, None, {})),
    "DeleteHost": admin_only(lambda w: ({"uuid": _spare_host(w)}, None, {})),
    "VmInstanceAction": admin_only(lambda w: ({"uuid": OWNED.uuid}, {
        "setVmQga": {"enable": True}}, {})),
    # VMs: the owner's and admin's; to anyone else the VM does not exist.
    "QueryVmInstance": Rule(_plain, admin=_listed("owned", "admins"), owner=_listed("owned"),
                            other=_listed()),
    "QueryVmInstanceByUuid": Rule(_on_vm, admin=_listed("owned"), owner=_listed("owned"),
                                  other=_listed()),
    "GetVmQga": owner_and_admin(_on_vm),
    "GetVmGuestToolsInfo": owner_and_admin(_on_vm),
    "ExecuteGuestVmCommand": owner_and_admin(lambda w: ({}, _EXEC, {})),
    "ExecuteGuestVmCommandAsync": owner_and_admin(lambda w: ({}, _EXEC, {})),
    # Files: whoever may run commands on the VM.
    "PutGuestFile": owner_and_admin(lambda w: ({"uuid": OWNED.uuid}, None,
                                               {"path": "/tmp/matrix"})),
    "GetGuestFile": owner_and_admin(lambda w: ({"uuid": OWNED.uuid}, None,
                                               {"path": "/etc/hostname"})),
    # Executions and runs: their account's (admins: all); to anyone else they do not exist.
    "QueryGuestVmCommandExecution": Rule(_plain, admin=_lists(_job, included=True),
                                         owner=_lists(_job, included=True),
                                         other=_lists(_job, included=False)),
    "GetGuestVmCommandExecution": _owners(_job),
    "GetGuestVmCommandExecutionOutput": _owners(_job),
    "GuestVmCommandExecutionAction": _owners(_job, {"cancelGuestVmCommand": {}}),
    "StartGuestVmCommandRun": Rule(lambda w: ({}, _RUN, {}), admin=ACCEPTED, owner=ACCEPTED,
                                   other=NOT_FOUND),
    "QueryGuestVmCommandRun": Rule(_plain, admin=_lists(_run, included=True),
                                   owner=_lists(_run, included=True),
                                   other=_lists(_run, included=False)),
    "GetGuestVmCommandRun": _owners(_run),
    "GetGuestVmCommandRunEvents": _owners(_run),
    "CancelGuestVmCommandRun": _owners(_run, {"cancelGuestVmCommandRun": {}}),
    # A job is its account's (admin's included: jobs are not shared).
    "GetApiJob": Rule(lambda w: ({"job_uuid": w.owner_job}, None, {}), admin=JOB_NOT_FOUND,
                      owner=OK, other=JOB_NOT_FOUND),
    # Access keys: one's own (admins: all); another account's key does not exist to one.
    "CreateAccessKey": owner_and_admin(lambda w: ({}, {"params": {
        "accountUuid": w.owner.uuid}}, {}), other=DENIED),
    "QueryAccessKey": Rule(_plain, admin=Outcome(200, check=_keys_of_owner),
                           owner=Outcome(200, check=_keys_of_owner), other=_listed()),
    "QueryAccessKeyByUuid": Rule(
        lambda w: ({"uuid": w.owner_key.uuid}, None, {}), admin=_listed("Enabled", key="state"),
        owner=_listed("Enabled", key="state"), other=_listed()),
    "DeleteAccessKey": Rule(lambda w: ({"uuid": _fresh_key(w)}, None, {}),
                            admin=Outcome(200, check=_key_gone),
                            owner=Outcome(200, check=_key_gone),
                            other=Outcome(200, check=_key_kept)),
    "ChangeAccessKeyState": owner_and_admin(lambda w: ({"uuid": _fresh_key(w)}, {
        "changeAccessKeyState": {"stateEvent": "disable"}}, {})),
}


# --- the tests ----------------------------------------------------------------------------------
def test_every_route_has_a_rule() -> None:
    operations = _operations()
    assert set(operations) - set(RULES) == set(), "routes without a rule: add them to RULES"
    assert set(RULES) - set(operations) == set(), "rules of routes that do not exist"
    for operation_id, (_method, _path, needs_credentials) in operations.items():
        # What the document tells clients agrees with the rule.
        assert needs_credentials != RULES[operation_id].public, operation_id


def _expected(rule: Rule, principal: str, method: str) -> Outcome:
    cookie_checked = not rule.public if rule.cookie_checked is None else rule.cookie_checked
    if principal == "cookie without CSRF" and cookie_checked and method not in SAFE_METHODS:
        return Outcome(*NO_CSRF)
    if rule.public:
        return rule.admin
    if principal in REFUSED:
        status, code = REFUSED[principal]
        return Outcome(status, code)
    return {"admin": rule.admin, "owner": rule.owner, "other": rule.other}[ACTS_AS[principal]]


@pytest.mark.parametrize("principal", PRINCIPALS)
@pytest.mark.parametrize("operation_id", sorted(_operations()))
def test_permission_matrix(world: World, operation_id: str, principal: str) -> None:
    method, template, _ = _operations()[operation_id]
    rule = RULES[operation_id]
    path_params, body, query = rule.request(world)
    url_path = template.format(**path_params)
    headers = _credentials(world, principal, method, url_path, operation_id)
    with httpx.Client(base_url=world.server.url, timeout=60) as client:
        reply = client.request(method, url_path, headers=headers, json=body, params=query)
    expected = _expected(rule, principal, method)
    cell = f"{operation_id} as {principal}"
    assert reply.status_code == expected.status, (cell, reply.text)
    if expected.code is not None:
        assert reply.json()["error"]["code"] == expected.code, (cell, reply.text)
    if expected.check is not None:
        assert expected.check(world, reply.json()), (cell, reply.text)
