#!/usr/bin/env python3
"""What running a command on a host another node owns costs (issue 12): two ``vmexec serve``
nodes on a throwaway PostgreSQL, the lab's libvirtd as a ``qemu+ssh://`` host across a network
namespace, owned by node A; commands on a lab VM through node B, which connects on demand.

    python bench/nodes_connect.py [--samples 3] [--vm vmexec-lab-1]

Prints the time of an exec on the owner, of the first exec on B (its connection opened for
it: ssh handshake + libvirt's), of the next ones (connection reused), and the ``ssh`` processes
(= qemu+ssh connections) of each node. Needs root (network namespace), PostgreSQL and sshd
(scripts/bootstrap.sh), and the lab VM running (``vmexec lab up``). Not part of ``make bench``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fixtures.netns import ssh_namespace
from fixtures.nodes import Node, start_node
from fixtures.postgres import PostgresServer, _bin_dir

EXEC = "/zstack/v1/vm-instances/commands/exec"
IDLE = 1.0


def timed_exec(node: Node, vm_uuid: str) -> float:
    with node.client() as client:
        started = time.perf_counter()
        reply = client.put(EXEC, json={"params": {"vmInstanceUuid": vm_uuid,
                                                  "platform": "Linux", "command": "true"}})
        elapsed = time.perf_counter() - started
    assert reply.status_code == 200, reply.text
    return elapsed


def wait(what: str, predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"not within {timeout:g} s: {what}")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--vm", default="vmexec-lab-1")
    args = parser.parse_args()
    bin_dir = _bin_dir()
    if bin_dir is None:
        raise SystemExit("PostgreSQL is not installed (scripts/bootstrap.sh)")
    work = Path(tempfile.mkdtemp(prefix="vmexec-nodes-bench-"))
    work.chmod(0o755)  # PostgreSQL runs as its own user and must reach its directory
    (work / "pg").mkdir()
    (work / "ssh").mkdir()
    postgres = PostgresServer(bin_dir, work / "pg")
    postgres.start()
    nodes: list[Node] = []
    try:
        db = postgres.create_database()
        with ssh_namespace(work / "ssh") as uri:
            settings = {"libvirt_idle_close": IDLE,
                        "host_uri_parameters": json.dumps(["keyfile"])}
            a = start_node(db, "node-a", work, **settings)
            nodes.append(a)
            b = start_node(db, "node-b", work, **settings)
            nodes.append(b)
            for node in nodes:
                node.login()
            with a.client() as client:
                added = client.post("/zstack/v1/hosts/kvm", json={"params": {
                    "name": "remote", "libvirtUri": uri}})
            assert added.status_code == 200, added.text
            with b.client() as client:
                vms = client.get("/zstack/v1/vm-instances",
                                 params={"q": f"name={args.vm}"}).json()["inventories"]
            if not vms:
                raise SystemExit(f"no VM {args.vm} on the host: `vmexec lab up` first")
            vm = vms[0]["uuid"]
            owner = [timed_exec(a, vm) for _ in range(args.samples)]
            first, reused = [], []
            for _ in range(args.samples):
                # B's connection closes at its resync once idle (IDLE s; resync every 10 s).
                wait("node B's connection closed", lambda: b.ssh_children() == 0, 30)
                first.append(timed_exec(b, vm))
                reused.append(timed_exec(b, vm))
            ssh_a, ssh_b = a.ssh_children(), b.ssh_children()
            for node in nodes:  # while the host still answers
                started = time.perf_counter()
                node.stop()
                print(f"{node.node_id} stopped in {time.perf_counter() - started:.1f} s",
                      flush=True)
    finally:
        for node in nodes:
            node.stop()
        postgres.stop()

    def ms(values: list[float]) -> str:
        return (f"median {statistics.median(values) * 1000:.0f} ms "
                f"(min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f})")
    print(f"exec `true` on the owner (A):                 {ms(owner)}")
    print(f"first exec on B (connects over qemu+ssh):     {ms(first)}")
    print(f"next exec on B (connection reused):           {ms(reused)}")
    print(f"qemu+ssh connections (ssh processes): A {ssh_a}, B {ssh_b} right after B's exec")


if __name__ == "__main__":
    main()
