"""Schema-driven fuzzing of the live server (schemathesis over our OpenAPI document): no
``500``, no status outside ZStack's set, every error in ZStack's ``{"error": ErrorCode}`` form.

The server is real (HTTP on loopback, SQLite, the real inventory); only the engine is the
scripted double, so fuzzed commands never run anywhere. AddKVMHost is left out: fuzzed
addresses would make the server try SSH connections to arbitrary hosts.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fixtures.server import RunningServer, ServerFactory
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from api.doubles import FakeGuest, ScriptedExecutor
from vmexec.agent.directory import AgentDirectory
from vmexec.config import Settings
from vmexec.server import create_app

#: Examples per operation and generation mode: the whole run stays around a minute.
EXAMPLES = 60
EXCLUDED = {"AddKVMHost"}
#: The statuses vmexec answers with (ZStack's set); 500 and 422 must never appear.
ALLOWED_STATUSES = {200, 202, 400, 404, 405, 503}
ERROR_CODE_FIELDS = {"code", "description", "details", "elaboration", "location", "cost",
                     "cause", "opaque"}


def _check_error_code(error: Any) -> None:
    assert isinstance(error, dict), error
    assert set(error) <= ERROR_CODE_FIELDS, error
    assert isinstance(error.get("code"), str) and error["code"], error
    assert isinstance(error.get("description"), str) and error["description"], error
    if error.get("cause") is not None:
        _check_error_code(error["cause"])


def zstack_statuses_and_errors(response: Any) -> None:
    """Only ZStack's statuses; a non-2xx body is ``{"error": ErrorCode}``."""
    assert response.status_code in ALLOWED_STATUSES, (response.status_code, response.text)
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}, body
        _check_error_code(body["error"])


@pytest.fixture(scope="module")
def fuzz_server(module_server_factory: ServerFactory) -> RunningServer:
    def executor(agents: AgentDirectory) -> ScriptedExecutor:
        return ScriptedExecutor(agents, FakeGuest())
    return module_server_factory(executor=executor)


@pytest.fixture(scope="module")
def live_schema(fuzz_server: RunningServer) -> Any:
    return schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")


def _operation_ids() -> list[str]:
    # The app's own document, built without starting anything (nothing is opened before the
    # lifespan runs), so that each operation is a test of its own.
    spec = create_app(Settings(db="sqlite://")).openapi()
    return sorted(op["operationId"] for path in spec["paths"].values()
                  for op in path.values() if op["operationId"] not in EXCLUDED)


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("operation_id", _operation_ids())
def test_fuzz_the_live_api(live_schema: Any, fuzz_server: RunningServer, operation_id: str,
                           mode: GenerationMode) -> None:
    operation = live_schema.find_operation_by_id(operation_id)
    # respond-async: a fuzzed commandTimeout may be a day long; the reply is then a 202.
    headers = {**fuzz_server.auth, "Prefer": "respond-async"}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def fuzz(case: Any) -> None:
        response = case.call(base_url=fuzz_server.url, headers=headers, timeout=30)
        zstack_statuses_and_errors(response)

    try:
        fuzz()
    except Unsatisfiable:
        # Nothing can break the schema (e.g. only a string path parameter): no negative case.
        assert mode is GenerationMode.NEGATIVE
        pytest.skip(f"{operation_id} has no input that violates its schema")
