"""What job ownership (issue 12's leases) costs in database round trips.

Runs ``--commands`` trivial commands as jobs (ExecuteGuestVmCommand's path:
``ExecutionService.submit``, the job's start, its end and reply) on bare agents (real
``qemu-ga`` processes on unix sockets, ON THE HOST: control-plane load only), in-process, with
a SQLAlchemy ``before_cursor_execute`` listener counting every statement sent to the database
(an ``executemany`` counts once: it is one round trip). Then it counts the statements of an
idle node for ``--idle`` seconds: the lease renewals and the looks for expired leases.

    .venv/bin/python bench/ownership.py --db postgresql://USER@HOST:PORT/DB
    PYTHONPATH=../main/src .venv/bin/python bench/ownership.py --db ...   # the same on main

The same script on a tree without leases gives the baseline; the difference is the cost.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import re
import secrets
import time
from typing import Any

from sqlalchemy import event, select

from vmexec.config import Settings
from vmexec.db.models import Account
from vmexec.execution.models import ExecRequest, Platform
from vmexec.hypervisor.sockets import socket_vm_uuid
from vmexec.lab.bare_agents import BareAgents
from vmexec.server import running_services
from vmexec.services.executions import Caller
from vmexec.zstack.ids import new_uuid


def _kind(statement: str) -> str:
    """``VERB table`` of a statement (``SELECT api_jobs``), for the table of counts."""
    words = statement.split()
    verb = words[0].upper() if words else "?"
    table = re.search(r"\b(?:FROM|INTO|UPDATE)\s+\"?(\w+)", statement, re.IGNORECASE)
    return f"{verb} {table.group(1) if table else ''}".strip()


async def measure(db: str, commands: int, concurrency: int, idle: float,
                  agents: int) -> dict[str, Any]:
    async with BareAgents(agents) as bare:
        settings = Settings(db=db, port=0, libvirt_uri=f"unix://{bare.sockets[0].parent}",
                            secret_key=secrets.token_urlsafe(32), job_lease=30.0)
        vms = [socket_vm_uuid(str(path)) for path in bare.sockets]
        async with running_services(settings) as services:
            engine = services.db.kw["bind"]
            async with services.db() as session:
                admin = await session.scalar(select(Account.uuid).where(
                    Account.name == "admin"))
            assert admin is not None
            caller = Caller(admin, "admin", admin=True)
            counts: collections.Counter[str] = collections.Counter()

            def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
                counts[_kind(statement)] += 1

            def commit(conn: Any) -> None:
                counts["COMMIT"] += 1

            request = ExecRequest(command="echo hi", platform=Platform.LINUX, timeout=30)
            gate = asyncio.Semaphore(concurrency)

            async def one(i: int) -> None:
                async with gate:
                    task = await services.executions.submit(caller, vms[i % len(vms)], request,
                                                            job_uuid=new_uuid())
                    await task

            await one(0)  # warm-up: connections, caches
            listening = (("before_cursor_execute", count), ("commit", commit))
            for name, listener in listening:
                event.listen(engine.sync_engine, name, listener)
            started = time.monotonic()
            await asyncio.gather(*(one(i) for i in range(commands)))
            elapsed = time.monotonic() - started
            busy = dict(counts)
            counts.clear()
            await asyncio.sleep(idle)
            for name, listener in listening:
                event.remove(engine.sync_engine, name, listener)
            return {"commands": commands, "seconds": elapsed, "busy": busy,
                    "idle": dict(counts), "idle_seconds": idle}


def report(result: dict[str, Any]) -> str:
    commands = result["commands"]
    lines = [f"{commands} commands in {result['seconds']:.1f} s",
             "statements per command (while commands ran):"]
    busy = result["busy"]
    for kind, n in sorted(busy.items(), key=lambda item: -item[1]):
        lines.append(f"  {n / commands:6.2f}  {kind}")
    lines.append(f"  {sum(busy.values()) / commands:6.2f}  total")
    idle = result["idle"]
    lines.append(f"an idle node, per second over {result['idle_seconds']:g} s:")
    for kind, n in sorted(idle.items(), key=lambda item: -item[1]):
        lines.append(f"  {n / result['idle_seconds']:6.2f}  {kind}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="an empty database (postgresql://...)")
    parser.add_argument("--commands", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--idle", type=float, default=20.0)
    args = parser.parse_args()
    print(report(asyncio.run(measure(args.db, args.commands, args.concurrency, args.idle,
                                     args.agents))))


if __name__ == "__main__":
    main()
