"""Accounts, VM owners and access keys for API tests, through the API as a client does."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from fixtures.server import RunningServer, sha512_hex


@dataclass(frozen=True)
class Account:
    uuid: str
    name: str
    password: str
    session: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"OAuth {self.session}"}


@dataclass(frozen=True)
class Key:
    uuid: str
    key_id: str
    secret: str


def ok(reply: httpx.Response) -> dict[str, object]:
    assert reply.status_code == 200, reply.text
    body: dict[str, object] = reply.json()
    return body


def error_code(reply: httpx.Response, status: int = 503) -> str:
    assert reply.status_code == status, reply.text
    return str(reply.json()["error"]["code"])


def create_account(server: RunningServer, name: str, *, type: str = "Normal",
                   password: str = "s3cret pass", description: str | None = None) -> Account:
    """A new account, created by admin, and a session of it."""
    params: dict[str, object] = {"name": name, "password": sha512_hex(password), "type": type}
    if description is not None:
        params["description"] = description
    with server.client() as client:
        inventory = ok(client.post("/zstack/v1/accounts", json={"params": params}))["inventory"]
    assert isinstance(inventory, dict)
    return Account(uuid=str(inventory["uuid"]), name=name, password=password,
                   session=server.login(name, password))


def give(server: RunningServer, account_uuid: str, vm_uuid: str) -> None:
    """ChangeResourceOwner, by admin."""
    with server.client() as client:
        ok(client.post(f"/zstack/v1/account/{account_uuid}/resources",
                       json={"params": {"resourceUuid": vm_uuid}}))


def create_key(server: RunningServer, account_uuid: str, *,
               auth: dict[str, str] | None = None, **params: str) -> Key:
    """CreateAccessKey (by admin unless ``auth`` says who)."""
    with server.client() as client:
        reply = client.post("/zstack/v1/accesskeys", headers=auth or server.auth,
                            json={"params": {"accountUuid": account_uuid, **params}})
    inventory = ok(reply)["inventory"]
    assert isinstance(inventory, dict)
    return Key(uuid=str(inventory["uuid"]), key_id=str(inventory["AccessKeyID"]),
               secret=str(inventory["AccessKeySecret"]))


def set_key_state(server: RunningServer, key_uuid: str, event: str) -> None:
    with server.client() as client:
        ok(client.put(f"/zstack/v1/accesskeys/{key_uuid}/actions",
                      json={"changeAccessKeyState": {"stateEvent": event}}))
