"""Schema-driven fuzzing of the live server: schemathesis over our OpenAPI document, with a
valid session and every check it has (``--checks all``), for every operation.

What must hold: no 5xx but ZStack's documented ``503`` (a failed API call, with a documented
code other than ``SYS.1000``, an internal error); every status is one of ZStack's set and every
error is ZStack's ``{"error": ErrorCode}``; data the schema calls valid is accepted (or refused
with a documented 503/404), data it calls invalid is refused; replies match their schemas.

The server is real (HTTP on loopback, SQLite, the real inventory); only the engine is the
scripted double, so fuzzed commands never run anywhere. AddKVMHost is fuzzed too, under a host
URI policy that refuses every libvirt URI (``host_transports = ["unix"]``): nothing connects
anywhere, a fuzzed agent-socket directory is at most read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fixtures.server import RunningServer, ServerFactory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig

from api.doubles import FakeGuest, ScriptedExecutor
from api.openapi_document import openapi_document
from vmexec.agent.directory import AgentDirectory
from vmexec.zstack.errors import Code

#: Examples per operation and generation mode: the whole run stays within a couple of minutes.
EXAMPLES = 60
#: The statuses vmexec answers with (ZStack's set, and 413 for an oversized body).
ALLOWED_STATUSES = {200, 202, 400, 404, 405, 413, 503}
ERROR_CODE_FIELDS = {"code", "description", "details", "elaboration", "location", "cost",
                     "cause", "opaque"}
#: A 503 is a failed API call with a documented code (vmexec.zstack.errors); SYS.1000, an
#: internal error, would be a bug, and the 404 codes are never 503s.
DOCUMENTED_503_CODES = {str(code) for code in Code} - {
    Code.SYS_INTERNAL, Code.SYS_RESOURCE_NOT_FOUND, Code.SYS_UNKNOWN_API}



def _config(session: str) -> SchemathesisConfig:
    """schemathesis' settings: admin's session for the OAuth scheme (so it knows the header is
    the credential), and ZStack's ways of saying "no" for its status checks."""
    return SchemathesisConfig.from_dict({
        "auth": {"openapi": {"OAuth": {"api_key": f"OAuth {session}"}}},
        "checks": {
            "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]},
            "positive_data_acceptance": {"expected-statuses": ["2xx", "404", "503"]},
            "negative_data_rejection": {
                "expected-statuses": ["400", "404", "405", "413", "503"]},
        }})


def _check_error_code(error: Any) -> None:
    assert isinstance(error, dict), error
    assert set(error) <= ERROR_CODE_FIELDS, error
    assert isinstance(error.get("code"), str) and error["code"], error
    assert isinstance(error.get("description"), str) and error["description"], error
    if error.get("cause") is not None:
        _check_error_code(error["cause"])


@schemathesis.check
def zstack_statuses_and_errors(ctx: Any, response: Any, case: Any) -> bool | None:
    """Only ZStack's statuses; a non-2xx body is ``{"error": ErrorCode}``; a 503 has a
    documented code."""
    assert response.status_code in ALLOWED_STATUSES, (response.status_code, response.text)
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}, body
        _check_error_code(body["error"])
        if response.status_code == 503:
            assert body["error"]["code"] in DOCUMENTED_503_CODES, body
    return None


#: Operations whose refusal of missing and unknown sessions was confirmed (once each).
_AUTH_CONFIRMED: set[str] = set()


@schemathesis.check
def zstack_auth_enforced(ctx: Any, response: Any, case: Any) -> bool | None:
    """schemathesis' ``ignored_auth`` with ZStack's statuses (it wants 401/403): an API that
    answered a valid session with success answers the same request ``400`` without an
    ``Authorization`` header and ``503 ID.1001`` with an unknown session."""
    operation = case.operation
    if (not 200 <= response.status_code < 300 or operation.label in _AUTH_CONFIRMED
            or "security" not in operation.definition.raw):
        return None
    sent = response.request
    headers = {k: v for k, v in sent.headers.items() if k.lower() != "authorization"}
    without = httpx.request(sent.method, sent.url, headers=headers, content=sent.body,
                            timeout=30)
    assert without.status_code == 400, (operation.label, without.status_code, without.text)
    assert "Authorization" in without.json()["error"]["details"], without.text
    unknown = httpx.request(sent.method, sent.url, content=sent.body, timeout=30,
                            headers={**headers, "Authorization": "OAuth " + "0" * 32})
    assert unknown.status_code == 503, (operation.label, unknown.status_code, unknown.text)
    assert unknown.json()["error"]["code"] == "ID.1001", unknown.text
    _AUTH_CONFIRMED.add(operation.label)
    return None


@pytest.fixture(scope="module")
def fuzz_server(module_server_factory: ServerFactory,
                tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    def executor(agents: AgentDirectory) -> ScriptedExecutor:
        return ScriptedExecutor(agents, FakeGuest())
    agents = tmp_path_factory.mktemp("agents")
    return module_server_factory(executor=executor, host_transports=["unix"],
                                 libvirt_uri=f"unix://{agents}")


@pytest.fixture(scope="module")
def live_schema(fuzz_server: RunningServer) -> Any:
    return schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json",
                                         config=_config(fuzz_server.session))


def _operation_ids() -> list[str]:
    # From the app's own document, so that each operation is a test of its own.
    spec = openapi_document()
    return sorted(op["operationId"] for path in spec["paths"].values() for op in path.values())


def test_every_operation_is_fuzzed() -> None:
    assert "AddKVMHost" in _operation_ids()
    assert len(_operation_ids()) >= 15


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("operation_id", _operation_ids())
def test_fuzz_the_live_api(live_schema: Any, fuzz_server: RunningServer, operation_id: str,
                           mode: GenerationMode, tmp_path: Path) -> None:
    operation = live_schema.find_operation_by_id(operation_id)
    # respond-async: a fuzzed commandTimeout may be a day long; the reply is then a 202.
    headers = {"Prefer": "respond-async"}
    load_all_checks()  # the OpenAPI checks register themselves when loaded
    # All of them, with ZStack's statuses for refused sessions in place of ignored_auth's.
    every_check = [c for c in CHECKS.get_all() if c.__name__ != "ignored_auth"]
    assert {zstack_statuses_and_errors, zstack_auth_enforced} <= set(every_check)
    assert len(every_check) >= 15, every_check

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def fuzz(case: Any) -> None:
        case.call_and_validate(base_url=fuzz_server.url, headers=headers, checks=every_check,
                               timeout=30)

    try:
        fuzz()
    except Unsatisfiable:
        # Nothing can break the schema (e.g. only a string path parameter): no negative case.
        assert mode is GenerationMode.NEGATIVE
        pytest.skip(f"{operation_id} has no input that violates its schema")


#: Fuzzed URI pieces: no digits, dots or "@", so that no piece can name a host; the hosts are
#: loopback ones only, should a regression ever let a URI through.
_URI_PARTS = st.text(alphabet="ab-_:/?&=[]%;# +", max_size=12)


@st.composite
def host_uris(draw: st.DrawFn) -> str:
    """URI-shaped text: libvirt's and vmexec's schemes with fuzzed users, paths and parameters,
    among them the ones that run programs or name files."""
    scheme = draw(st.sampled_from(["qemu", "qemu+ssh", "qemu+tls", "qemu+tcp", "qemu+ext",
                                   "qemu+unix", "qemu+libssh2", "xen+ssh", "test"]))
    user = draw(st.sampled_from(["", "root@", "-oProxyCommand=x@"])
                | _URI_PARTS.map(lambda part: f"{part}@"))
    host = draw(st.sampled_from(["", "127.0.0.1", "localhost", "[::1]"]))
    port = draw(st.sampled_from(["", ":22", ":16509", ":0"]))
    path = draw(st.sampled_from(["/system", "/session", "/", ""]) | _URI_PARTS)
    parameters = draw(st.lists(st.sampled_from([
        "no_tty=1", "no_verify=1", "mode=direct", "command=/bin/true", "socket=/tmp/x",
        "netcat=/bin/nc", "keyfile=/tmp/k", "name=qemu+ext:///system", "proxy=netcat"])
        | _URI_PARTS, max_size=3))
    query = "?" + "&".join(parameters) if parameters else ""
    return f"{scheme}://{user}{host}{port}{path}{query}"


@pytest.mark.slow
def test_fuzzed_host_uris_never_connect(fuzz_server: RunningServer) -> None:
    # The fuzz server allows only agent-socket directories: any libvirt URI, however shaped,
    # is refused before a connection is tried (a tried one would be SYS.1006).
    with fuzz_server.client() as client:
        @given(uri=host_uris())
        @settings(max_examples=300, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def add(uri: str) -> None:
            reply = client.post("/zstack/v1/hosts/kvm",
                                json={"params": {"name": "fuzzed", "libvirtUri": uri}})
            assert reply.status_code == 503, reply.text
            error = reply.json()["error"]
            assert error["code"] == "SYS.1007", (uri, error)

        add()
