"""A blocking facade over :class:`~vmexec.client.client.AsyncClient`, for scripts.

    with Client("http://127.0.0.1:8080") as client:
        client.login("admin", "password")
        print(client.exec(client.find_vm("vmexec-lab-1").uuid, "hostname").stdout)

Each method runs the async one on the facade's own event loop, so it must not be called from
inside a running loop (use ``AsyncClient`` there). Methods raise what the async ones raise.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, BinaryIO, Self, TypeVar

import httpx

from vmexec.client.client import EXEC_WAIT, AsyncClient, Progress, QueryApi
from vmexec.client.events import ExecutionEvent, RunEvent
from vmexec.client.models import Account, ExecResult, Execution, Host, Run, Session, VmInstance
from vmexec.zstack.exec import Platform, Shell

T = TypeVar("T")


class Client:
    """As :class:`AsyncClient`, blocking. Close it (or use ``with``) to free its loop."""

    def __init__(self, server: str, *, session: str | None = None, timeout: float = 30.0,
                 exec_wait: int = EXEC_WAIT,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        # One loop for the facade's life: httpx's connection pool is bound to the loop it ran on.
        self._runner = asyncio.Runner()
        self._client = AsyncClient(server, session=session, timeout=timeout,
                                   exec_wait=exec_wait, transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._runner.run(self._client.aclose())
        finally:
            self._runner.close()

    @property
    def server(self) -> str:
        return self._client.server

    @property
    def session(self) -> str | None:
        return self._client.session

    def login(self, account: str, password: str, *, hashed: bool = False) -> Session:
        return self._runner.run(self._client.login(account, password, hashed=hashed))

    def logout(self) -> None:
        self._runner.run(self._client.logout())

    def validate_session(self, session: str | None = None) -> bool:
        return self._runner.run(self._client.validate_session(session))

    def update_account(self, account_uuid: str, *, password: str, old_password: str,
                       hashed: bool = False) -> Account:
        return self._runner.run(self._client.update_account(
            account_uuid, password=password, old_password=old_password, hashed=hashed))

    def change_password(self, account: str, old_password: str, new_password: str) -> Session:
        return self._runner.run(self._client.change_password(account, old_password,
                                                             new_password))

    def query(self, api: QueryApi, conditions: Sequence[str] = (), **options: Any
              ) -> dict[str, Any]:
        return self._runner.run(self._client.query(api, conditions, **options))

    def query_vms(self, *conditions: str, limit: int | None = None,
                  sort: str | None = None) -> list[VmInstance]:
        return self._runner.run(self._client.query_vms(*conditions, limit=limit, sort=sort))

    def get_vm(self, uuid: str) -> VmInstance:
        return self._runner.run(self._client.get_vm(uuid))

    def find_vm(self, ref: str) -> VmInstance:
        return self._runner.run(self._client.find_vm(ref))

    def execute(self, params: Mapping[str, Any], *, system_tags: Sequence[str] | None = None,
                user_tags: Sequence[str] | None = None) -> dict[str, Any]:
        return self._runner.run(self._client.execute(params, system_tags=system_tags,
                                                     user_tags=user_tags))

    def exec(self, vm_uuid: str, command: str, *, platform: Platform = Platform.LINUX,
             timeout: int | None = None, stdin: str | None = None,
             env: Mapping[str, str] | None = None, working_directory: str | None = None,
             run_as: str | None = None, shell: Shell | None = None,
             max_output_bytes: int | None = None) -> ExecResult:
        return self._runner.run(self._client.exec(
            vm_uuid, command, platform=platform, timeout=timeout, stdin=stdin, env=env,
            working_directory=working_directory, run_as=run_as, shell=shell,
            max_output_bytes=max_output_bytes))

    def add_host(self, name: str, *, management_ip: str | None = None,
                 username: str | None = None, ssh_port: int | None = None,
                 libvirt_uri: str | None = None, description: str | None = None) -> Host:
        return self._runner.run(self._client.add_host(
            name, management_ip=management_ip, username=username, ssh_port=ssh_port,
            libvirt_uri=libvirt_uri, description=description))

    def query_hosts(self, *conditions: str) -> list[Host]:
        return self._runner.run(self._client.query_hosts(*conditions))

    def delete_host(self, uuid: str) -> None:
        self._runner.run(self._client.delete_host(uuid))

    # --- executions and runs ---------------------------------------------------------------------
    def push(self, vm_uuid: str, path: str, source: bytes | BinaryIO, *,
             mode: str | None = None, owner: str | None = None,
             progress: Progress | None = None) -> int:
        return self._runner.run(self._client.push(vm_uuid, path, source, mode=mode,
                                                  owner=owner, progress=progress))

    def pull_to(self, vm_uuid: str, path: str, target: BinaryIO, *,
                progress: Progress | None = None) -> int:
        return self._runner.run(self._client.pull_to(vm_uuid, path, target,
                                                     progress=progress))

    def pull(self, vm_uuid: str, path: str) -> bytes:
        return self._runner.run(self._client.pull(vm_uuid, path))

    def _iterate(self, events: AsyncIterator[T]) -> Iterator[T]:
        """An async iterator's items, each fetched on the facade's loop."""
        try:
            while True:
                try:
                    yield self._runner.run(anext(events))  # type: ignore[arg-type]
                except StopAsyncIteration:
                    return
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                self._runner.run(close())

    def submit(self, params: Mapping[str, Any], *, uuid: str | None = None,
               system_tags: Sequence[str] | None = None,
               user_tags: Sequence[str] | None = None) -> str:
        return self._runner.run(self._client.submit(params, uuid=uuid,
                                                    system_tags=system_tags,
                                                    user_tags=user_tags))

    def follow(self, uuid: str, *, last_event_id: str | int | None = None
               ) -> Iterator[ExecutionEvent]:
        return self._iterate(self._client.follow(uuid, last_event_id=last_event_id))

    def cancel(self, uuid: str) -> Execution:
        return self._runner.run(self._client.cancel(uuid))

    def query_executions(self, *conditions: str, limit: int | None = None,
                         start: int | None = None,
                         sort: str | None = "-createDate") -> list[Execution]:
        return self._runner.run(self._client.query_executions(*conditions, limit=limit,
                                                              start=start, sort=sort))

    def get_execution(self, uuid: str) -> Execution:
        return self._runner.run(self._client.get_execution(uuid))

    def start_run(self, command: str, **options: Any) -> str:
        return self._runner.run(self._client.start_run(command, **options))

    def follow_run(self, uuid: str) -> Iterator[RunEvent]:
        return self._iterate(self._client.follow_run(uuid))

    def get_run(self, uuid: str) -> Run:
        return self._runner.run(self._client.get_run(uuid))

    def cancel_run(self, uuid: str) -> Run:
        return self._runner.run(self._client.cancel_run(uuid))

    def query_runs(self, *conditions: str, limit: int | None = None, start: int | None = None,
                   sort: str | None = "-createDate") -> list[Run]:
        return self._runner.run(self._client.query_runs(*conditions, limit=limit, start=start,
                                                        sort=sort))
