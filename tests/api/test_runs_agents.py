"""A run at fleet scale through the API: one run over 500 bare agents (real ``qemu-ga``
processes on unix sockets, each with a ``/var/lib/vmexec`` of its own), every target's result
correct and accounted for. Control-plane load only: the commands run on the HOST, so nothing
here is evidence of anything running in a VM. Counts are asserted, never times."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest
from fixtures.server import RunningServer

from api.run_helpers import get_run, start_run, wait_run
from vmexec.lab.bare_agents import BareAgents

pytestmark = [pytest.mark.agents, pytest.mark.slow]

AGENTS = 500
EXECUTIONS = "/zstack/v1/vm-instances/commands/executions"
#: Each target adds a line to a file of its agent's own and prints its run id (the
#: execution's uuid), so both the guest's side and the reply can be counted.
COMMAND = 'echo "$VMEXEC_RUN_ID" >>/var/lib/vmexec/ran; echo "$VMEXEC_RUN_ID"'


def _add_host(client: httpx.Client, agents: BareAgents) -> list[str]:
    """Register the agents' directory as a host; the VM uuid of each agent, in order."""
    directory = agents.sockets[0].parent
    reply = client.post("/zstack/v1/hosts/kvm", json={"params": {
        "name": "fleet", "managementIp": "127.0.0.1", "libvirtUri": f"unix://{directory}"}})
    assert reply.status_code == 200, reply.text
    host = reply.json()["inventory"]["uuid"]
    reply = client.get("/zstack/v1/vm-instances", params={
        "q": f"hostUuid={host}", "limit": "10000", "fields": "uuid,name"})
    by_name = {vm["name"]: vm["uuid"] for vm in reply.json()["inventories"]}
    return [by_name[path.stem] for path in agents.sockets]


def _executions(client: httpx.Client, run: str) -> list[dict[str, Any]]:
    reply = client.get(EXECUTIONS, params={"q": f"runUuid={run}", "limit": "10000"})
    assert reply.status_code == 200, reply.text
    return list(reply.json()["inventories"])


def test_a_run_over_500_agents_runs_every_target_once_and_keeps_every_result(
        vmexec_server: RunningServer, bare_agents: type[BareAgents]) -> None:
    async def started() -> BareAgents:
        return await bare_agents(AGENTS, private_run_dir=True).__aenter__()

    loop = asyncio.new_event_loop()
    agents = loop.run_until_complete(started())
    try:
        with vmexec_server.client(timeout=300) as client:
            vms = _add_host(client, agents)
            # Every agent twice (a VM listed twice runs twice), all of it at once.
            run = start_run(client, COMMAND, uuids=vms + vms, maxConcurrency=2 * AGENTS)
            inventory = wait_run(client, run, timeout=600)
            assert inventory["state"] == "Succeeded", get_run(client, run)
            executions = _executions(client, run)
            assert Counter(e["state"] for e in executions) == {"Succeeded": 2 * AGENTS}
            assert Counter(e["vmInstanceUuid"] for e in executions) == {vm: 2 for vm in vms}
            assert all(e["exitCode"] == 0 and e["stdoutBytes"] == 33 for e in executions)
            # Each reply is its own target's: a sample read back in full.
            for execution in executions[:: AGENTS // 10]:
                reply = client.get(f"{EXECUTIONS}/{execution['uuid']}")
                [full] = reply.json()["inventories"]
                assert full["stdout"] == f"{execution['uuid']}\n"
            # The guest side: each agent ran exactly its two targets' commands, once each.
            ran = {vm: (agents.run_dir(i) / "ran").read_text().split()
                   for i, vm in enumerate(vms)}
            expected: dict[str, list[str]] = {vm: [] for vm in vms}
            for execution in executions:
                expected[execution["vmInstanceUuid"]].append(execution["uuid"])
            assert {vm: sorted(ids) for vm, ids in ran.items()} == {
                vm: sorted(ids) for vm, ids in expected.items()}
    finally:
        loop.run_until_complete(agents.aclose())
        loop.close()
