"""Queries cannot freeze the server: the LIKE query of the security review is answered at once,
a heavy query is evaluated off the event loop (``/health`` keeps answering), and the number and
length of conditions are bounded with a clear error."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
from fixtures.server import RunningServer, ServerFactory
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from vmexec.db.models_inventory import KIND_SOCKET_DIR, HostRow, VmRow

VMS = "/zstack/v1/vm-instances"
HOST_UUID = "ab" * 16
#: Stored VMs with long descriptions: every LIKE condition scans each one in full.
HEAVY_VMS = 15
DESCRIPTION_CHARS = 100_000
#: A pattern with "_" that is found only at the very end of each description.
HEAVY_LIKE = "%" + "a_" * 30 + "b%"


def _store_vms(db_file: Path) -> list[str]:
    # Real rows through the ORM, on a host that does not answer: its VMs are kept (Unknown).
    engine = create_engine(f"sqlite:///{db_file}")
    uuids = [f"{i:032x}" for i in range(1, HEAVY_VMS + 1)]
    with Session(engine) as session, session.begin():
        session.add(HostRow(uuid=HOST_UUID, name="stored", uri="unix:///nonexistent/vmexec-dos",
                            kind=KIND_SOCKET_DIR, state="Enabled", status="Disconnected"))
        session.flush()
        session.add_all(VmRow(uuid=uuid, host_uuid=HOST_UUID, name=f"dos-{i}", state="Unknown",
                              description="a" * DESCRIPTION_CHARS + "b")
                        for i, uuid in enumerate(uuids))
    engine.dispose()
    return uuids


@pytest.fixture
def stored_server(server_factory: ServerFactory, tmp_path: Path) -> tuple[RunningServer,
                                                                           list[str]]:
    db_file = tmp_path / "dos.db"
    server_factory(db_file=db_file).stop()  # creates the schema
    uuids = _store_vms(db_file)
    return server_factory(db_file=db_file), uuids


@pytest.mark.timeout(120)  # a hang guard: this query took 48.6 s with the backtracking matcher
def test_the_like_query_of_the_review_is_answered(
        stored_server: tuple[RunningServer, list[str]]) -> None:
    server, uuids = stored_server
    with server.client() as client:
        reply = client.get(VMS, params=[("q", "uuid~=%%%%%%%%%%!"), ("fields", "uuid")])
        assert reply.status_code == 200, reply.text
        assert reply.json()["inventories"] == []
        reply = client.get(VMS, params=[("q", "uuid~=%%%%%%%%%%f"), ("q", "name~=dos-%"),
                                        ("fields", "uuid")])
        assert [vm["uuid"] for vm in reply.json()["inventories"]] == [uuids[14]]


@pytest.mark.slow
def test_health_answers_while_a_heavy_query_runs(
        stored_server: tuple[RunningServer, list[str]]) -> None:
    server, uuids = stored_server
    params = [("q", f"hostUuid={HOST_UUID}"), ("fields", "uuid"), ("sort", "+name")]
    params += [("q", f"description~={HEAVY_LIKE}")] * 19
    replies: list[httpx.Response] = []

    def query() -> None:
        with server.client(timeout=600) as client:
            replies.append(client.get(VMS, params=params))

    worker = threading.Thread(target=query)
    worker.start()
    health_answers = 0
    with server.client(authenticated=False) as client:
        while worker.is_alive():
            assert client.get("/health").json()["status"] == "ok"
            health_answers += 1
    worker.join()
    [reply] = replies
    assert reply.status_code == 200, reply.text
    assert sorted(vm["uuid"] for vm in reply.json()["inventories"]) == uuids
    # On the event loop the evaluation would hold every /health sent after it began until it
    # ended; only the few sent before it started would be answered.
    assert health_answers >= 20, health_answers


@pytest.mark.parametrize(("params", "fragment"), [
    ([("q", "name=x")] * 21, "at most 20 'q' parameters"),
    ([("q", "name~=" + "%" * 2000)], "at most 1024 are allowed"),
])
def test_too_many_or_too_long_conditions(vmexec_server: RunningServer,
                                         params: list[tuple[str, str]], fragment: str) -> None:
    with vmexec_server.client() as client:
        reply = client.get(VMS, params=params)
    assert reply.status_code == 503, reply.text
    error = reply.json()["error"]
    assert error["code"] == "SYS.1007"
    assert fragment in error["details"]
