"""The async client of vmexec's ZStack-compatible API.

    async with AsyncClient("http://127.0.0.1:8080") as client:
        await client.login("admin", "password")
        vm = await client.find_vm("vmexec-lab-1")
        result = await client.exec(vm.uuid, "uname -a")
        print(result.exit_code, result.stdout)

Every method raises :class:`~vmexec.client.errors.ClientError` subclasses only: ``ApiError``
(the server said no, with ZStack's ErrorCode), ``ConnectionFailed`` (no server, or no reply in
time), ``NotLoggedIn`` and ``VmNotFound``. httpx's exceptions are translated once, in ``_send``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from stat import S_ISREG
from types import TracebackType
from typing import Any, BinaryIO, Literal, Self

import httpx

import vmexec
from vmexec.client.errors import ApiError, ClientError, ConnectionFailed, NotLoggedIn, VmNotFound
from vmexec.client.events import (
    ExecutionEvent,
    Result,
    RunEvent,
    RunFinished,
    RunReplay,
    decode_execution_event,
    decode_run_event,
)
from vmexec.client.models import (
    Account,
    ExecResult,
    Execution,
    Host,
    Run,
    Session,
    VmInstance,
)
from vmexec.client.sse import follow_events
from vmexec.zstack.exec import Platform, Shell
from vmexec.zstack.ids import is_uuid, new_uuid
from vmexec.zstack.passwords import sha512_hex

API = "/zstack/v1"
EXEC_PATH = f"{API}/vm-instances/commands/exec"
EXECUTIONS_PATH = f"{API}/vm-instances/commands/executions"
RUNS_PATH = f"{API}/vm-instances/commands/runs"
FILES_PATH = API + "/vm-instances/{}/files"
#: Bytes of a local file read (and sent) at a time by ``push``.
FILE_PIECE = 1024 * 1024
#: Seconds a file transfer may wait for the other side at any one time (not in all).
FILE_TIMEOUT = 300.0
#: ``progress(done, total)`` of a file transfer (total None when not known).
Progress = Callable[[int, int | None], None]
#: Seconds the server may hold an exec request before answering ``202`` (``Prefer: wait=N``):
#: long commands are then polled, so no single HTTP request outlives proxies' idle timeouts.
EXEC_WAIT = 20
#: Seconds between polls of a running job, at most (the first polls come sooner).
POLL_INTERVAL = 1.0
#: Seconds a job may run past the ``apiTimeout`` its ``202`` announced before the client stops.
POLL_SLACK = 30.0

#: Seconds a cancel may take: the server waits up to 20 s for the command to end.
CANCEL_WAIT = 20

QueryApi = Literal["vm-instances", "hosts", "vm-instances/commands/executions",
                   "vm-instances/commands/runs"]


def _size_of(source: BinaryIO) -> int | None:
    """Bytes left in a seekable regular file (None: a pipe, a terminal)."""
    try:
        stat = os.fstat(source.fileno())
        if not S_ISREG(stat.st_mode):
            return None
        return stat.st_size - source.tell()
    except (OSError, ValueError, io.UnsupportedOperation):
        return None


def stdin_params(stdin: str | bytes | None) -> dict[str, str]:
    """ExecuteGuestVmCommand's stdin parameter for ``stdin``: text as ``stdin``, bytes as
    ``stdinBase64`` (any bytes, exactly)."""
    if stdin is None:
        return {}
    if isinstance(stdin, bytes):
        return {"stdinBase64": base64.b64encode(stdin).decode("ascii")}
    return {"stdin": stdin}


def _is_result(event: ExecutionEvent) -> bool:
    return isinstance(event, Result)


def _decode_run_event(event: str, data: str, _id: str) -> RunEvent | None:
    return decode_run_event(event, data)


def _is_run_finished(event: RunEvent) -> bool:
    return isinstance(event, RunFinished)


class AsyncClient:
    """One server, one session (``session``: a session UUID, e.g. from a previous login).

    ``timeout`` bounds each HTTP request but the exec calls, which get ``exec_wait`` more:
    the seconds the server may hold an exec request before it answers ``202`` (then polled).
    ``transport`` is passed to httpx (e.g. a custom TLS or proxy transport).
    """

    def __init__(self, server: str, *, session: str | None = None, timeout: float = 30.0,
                 exec_wait: int = EXEC_WAIT,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.server = server.rstrip("/")
        self.session = session
        self._timeout = timeout
        self._exec_wait = exec_wait
        self._http = httpx.AsyncClient(
            base_url=self.server, timeout=timeout, transport=transport,
            headers={"User-Agent": f"vmexec-client/{vmexec.__version__}"})

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- HTTP ----------------------------------------------------------------------------------
    async def _send(self, method: str, url: str, *, auth: bool = True,
                    headers: Mapping[str, str] | None = None,
                    timeout: float | None = None, **kwargs: Any) -> httpx.Response:
        """One request. Raises NotLoggedIn (``auth`` without a session), ConnectionFailed."""
        all_headers = dict(headers or {})
        if auth:
            all_headers.update(self._auth())
        try:
            return await self._http.request(method, url, headers=all_headers,
                                            timeout=timeout or self._timeout, **kwargs)
        except httpx.TimeoutException:
            raise ConnectionFailed(self.server,
                                   f"no reply within {timeout or self._timeout:g}s") from None
        except httpx.TransportError as exc:
            raise ConnectionFailed(self.server, str(exc) or type(exc).__name__) from None

    def _auth(self) -> dict[str, str]:
        """The session's Authorization header. Raises NotLoggedIn."""
        if not self.session:
            raise NotLoggedIn("not logged in")
        return {"Authorization": f"OAuth {self.session}"}

    @staticmethod
    def _body(response: httpx.Response) -> dict[str, Any]:
        """The JSON object of a ``2xx`` reply. Raises ApiError for any other reply."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success and isinstance(body, dict):
            return body
        if response.is_success:
            raise ApiError(response.status_code, f"HTTP.{response.status_code}",
                           "the reply is not a JSON object", response.text[:500])
        raise ApiError.from_reply(response.status_code, body, response.text)

    async def _call(self, method: str, path: str, *, auth: bool = True,
                    **kwargs: Any) -> dict[str, Any]:
        return self._body(await self._send(method, path, auth=auth, **kwargs))

    # --- sessions ------------------------------------------------------------------------------
    async def login(self, account: str, password: str, *, hashed: bool = False) -> Session:
        """LogInByAccount; the new session becomes this client's. ``password`` is the plain
        password unless ``hashed`` (then it is already its SHA-512 hex).

        Raises ApiError (``ID.1000`` for a wrong name or password), ConnectionFailed.
        """
        reply = await self._call("PUT", f"{API}/accounts/login", auth=False, json={
            "logInByAccount": {"accountName": account,
                               "password": password if hashed else sha512_hex(password)}})
        session = Session.from_wire(reply["inventory"])
        self.session = session.uuid
        return session

    async def logout(self) -> None:
        """LogOut of this client's session (nothing to do without one). Raises ApiError,
        ConnectionFailed."""
        if self.session:
            await self._call("DELETE", f"{API}/accounts/sessions/{self.session}", auth=False)
            self.session = None

    async def validate_session(self, session: str | None = None) -> bool:
        """ValidateSession of ``session`` (default: this client's). Raises NotLoggedIn,
        ApiError, ConnectionFailed."""
        uuid = session or self.session
        if not uuid:
            raise NotLoggedIn("not logged in: no session to validate")
        reply = await self._call("GET", f"{API}/accounts/sessions/{uuid}/valid", auth=False)
        return bool(reply.get("valid"))

    async def update_account(self, account_uuid: str, *, password: str, old_password: str,
                             hashed: bool = False) -> Account:
        """UpdateAccount: set the account's password (its own only), giving the current one.
        Passwords are plain unless ``hashed``. Every other session of the account ends; this
        client's stays.

        Raises ApiError (``SYS.1007`` for a wrong old password, ``ID.1002`` for another
        account, ``ID.1008`` after too many wrong old passwords), NotLoggedIn,
        ConnectionFailed.
        """
        def digest(text: str) -> str:
            return text if hashed else sha512_hex(text)

        reply = await self._call("PUT", f"{API}/accounts/{account_uuid}", json={
            "updateAccount": {"password": digest(password),
                              "oldPassword": digest(old_password)}})
        return Account.from_wire(reply["inventory"])

    async def change_password(self, account: str, old_password: str,
                              new_password: str) -> Session:
        """Log in to ``account`` with ``old_password`` and set ``new_password``. The new
        session becomes this client's, and is the account's only one afterwards.

        Raises ApiError (``ID.1000`` for a wrong account name or old password, ``ID.1008``
        when logins are throttled), ConnectionFailed.
        """
        session = await self.login(account, old_password)
        await self.update_account(session.account_uuid or "", password=new_password,
                                  old_password=old_password)
        return session

    # --- queries -------------------------------------------------------------------------------
    async def query(self, api: QueryApi, conditions: Sequence[str] = (), *,
                    uuid: str | None = None, limit: int | None = None,
                    start: int | None = None, sort: str | None = None,
                    fields: Sequence[str] | None = None, count: bool = False,
                    reply_with_count: bool = False) -> dict[str, Any]:
        """A ZStack query API (QueryVmInstance: ``vm-instances``, QueryHost: ``hosts``), its
        reply as sent (``inventories``, ``total``, ``schema``). ``conditions`` are ``q=``
        strings such as ``name=vm_1`` or ``state?=Running,Paused``.

        Raises ApiError (``SYS.1007`` for unknown fields), NotLoggedIn, ConnectionFailed.
        """
        params: list[tuple[str, str]] = [("q", c) for c in conditions]
        for key, value in (("limit", limit), ("start", start), ("sort", sort)):
            if value is not None:
                params.append((key, str(value)))
        if fields:
            params.append(("fields", ",".join(fields)))
        if count:
            params.append(("count", "true"))
        if reply_with_count:
            params.append(("replyWithCount", "true"))
        path = f"{API}/{api}" + (f"/{uuid}" if uuid else "")
        return await self._call("GET", path, params=params)

    async def query_vms(self, *conditions: str, limit: int | None = None,
                        sort: str | None = None) -> list[VmInstance]:
        """QueryVmInstance with ``q=`` ``conditions`` (all must hold). Raises as ``query``."""
        reply = await self.query("vm-instances", conditions, limit=limit, sort=sort)
        return [VmInstance.from_wire(inv) for inv in reply.get("inventories") or []]

    async def get_vm(self, uuid: str) -> VmInstance:
        """The VM with this UUID. Raises VmNotFound, and as ``query``."""
        reply = await self.query("vm-instances", uuid=uuid)
        inventories = reply.get("inventories") or []
        if not inventories:
            raise VmNotFound(uuid, f"no VM has the uuid {uuid}")
        return VmInstance.from_wire(inventories[0])

    async def find_vm(self, ref: str) -> VmInstance:
        """The VM whose UUID or name is ``ref`` (a UUID wins over a name).

        Raises VmNotFound when none matches or when several VMs share the name, and as
        ``query``.
        """
        if is_uuid(ref):
            found = await self.query("vm-instances", uuid=ref.lower())
            if found.get("inventories"):
                return VmInstance.from_wire(found["inventories"][0])
        named = await self.query_vms(f"name={ref}")
        if not named:
            raise VmNotFound(ref, f"no VM has the uuid or name {ref!r}")
        if len(named) > 1:
            uuids = ", ".join(vm.uuid for vm in named)
            raise VmNotFound(ref, f"{len(named)} VMs are named {ref!r} ({uuids}): "
                                  "give a uuid instead")
        return named[0]

    # --- ExecuteGuestVmCommand -------------------------------------------------------------------
    async def execute(self, params: Mapping[str, Any], *,
                      system_tags: Sequence[str] | None = None,
                      user_tags: Sequence[str] | None = None) -> dict[str, Any]:
        """ExecuteGuestVmCommand with ``params`` as given (ZStack's wire names:
        ``vmInstanceUuid``, ``platform``, ``command``, ``commandTimeout``, and vmexec's
        ``stdin``, ``env``, ``workingDirectory``, ``runAs``, ``shell``, ``maxOutputBytes``);
        the result reply as sent. A ``202`` is polled until the result is there.

        Raises ApiError (CommandTimedOut for ``VM.EXEC.1001``), NotLoggedIn, ConnectionFailed,
        ClientError when a polled job outlives the time the server announced for it.
        """
        body: dict[str, Any] = {"params": dict(params)}
        if system_tags is not None:
            body["systemTags"] = list(system_tags)
        if user_tags is not None:
            body["userTags"] = list(user_tags)
        # Our own job UUID: the server's logs and job records then match what we sent.
        headers = {"X-Job-UUID": new_uuid(), "Prefer": f"wait={self._exec_wait}"}
        response = await self._send("PUT", EXEC_PATH, json=body, headers=headers,
                                    timeout=self._exec_wait + self._timeout)
        if response.status_code != 202:
            return self._body(response)
        accepted = self._body(response)
        return await self._poll(str(accepted["location"]),
                                float(accepted.get("apiTimeout") or 0) / 1000)

    async def _poll(self, location: str, api_timeout: float) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + api_timeout + POLL_SLACK
        delay = 0.1
        while True:
            await asyncio.sleep(delay)
            # Short commands finish soon after the wait window: poll fast first, then 1/s.
            delay = min(delay * 2, POLL_INTERVAL)
            response = await self._send("GET", location)
            if response.status_code != 202:
                return self._body(response)
            if loop.time() > deadline:
                raise ClientError(f"the job at {location} is still running "
                                  f"{api_timeout + POLL_SLACK:g}s after it was accepted")

    async def exec(self, vm_uuid: str, command: str, *, platform: Platform = Platform.LINUX,
                   timeout: int | None = None, stdin: str | bytes | None = None,
                   env: Mapping[str, str] | None = None, working_directory: str | None = None,
                   run_as: str | None = None, shell: Shell | None = None,
                   max_output_bytes: int | None = None,
                   output_base64: bool = False) -> ExecResult:
        """Run ``command`` (a script) in the VM and return its result, whatever its exit code.

        ``stdin``: text, or bytes (any: sent as ``stdinBase64``). The result's
        ``stdout_data``/``stderr_data`` are the exact bytes (``output_base64``: the server
        sends them for UTF-8 output too). ``timeout`` is ``commandTimeout`` in seconds (server
        default when None). Raises
        CommandTimedOut (its ``partial`` has the output so far), ApiError (``VM.EXEC.*`` when
        the guest cannot run it, ``SYS.1007`` for bad arguments or an unknown VM),
        NotLoggedIn, ConnectionFailed.
        """
        optional = {"commandTimeout": timeout, **stdin_params(stdin),
                    "env": dict(env) if env else None, "workingDirectory": working_directory,
                    "runAs": run_as, "shell": shell, "maxOutputBytes": max_output_bytes,
                    "outputEncoding": "base64" if output_base64 else None}
        params = {"vmInstanceUuid": vm_uuid, "platform": platform, "command": command,
                  **{k: v for k, v in optional.items() if v is not None}}
        return ExecResult.from_wire(await self.execute(params))

    # --- executions: live output, cancel, history ---------------------------------------------
    async def submit(self, params: Mapping[str, Any], *, uuid: str | None = None,
                     system_tags: Sequence[str] | None = None,
                     user_tags: Sequence[str] | None = None) -> str:
        """Start ExecuteGuestVmCommand with ``params`` (as ``execute``) and return the
        execution's uuid without waiting for the command: follow it with ``follow``.

        ``uuid`` names the execution (its job); give a fresh one (``new_uuid()``) to know it
        before this call returns, e.g. to cancel it when the call is interrupted.

        Raises ApiError (``SYS.1007`` for bad arguments), NotLoggedIn, ConnectionFailed.
        """
        job_uuid = uuid or new_uuid()
        body: dict[str, Any] = {"params": dict(params)}
        if system_tags is not None:
            body["systemTags"] = list(system_tags)
        if user_tags is not None:
            body["userTags"] = list(user_tags)
        headers = {"X-Job-UUID": job_uuid, "Prefer": "respond-async"}
        # The reply is 202 (or the result when the job ended at once): either way the
        # execution exists, and its end is the last event of ``follow``.
        self._body(await self._send("POST", EXEC_PATH, json=body, headers=headers))
        return job_uuid

    async def follow(self, uuid: str, *, last_event_id: str | int | None = None
                     ) -> AsyncIterator[ExecutionEvent]:
        """The live output of execution ``uuid``: OutputEvents in the order the guest wrote
        them, then its Result, then the iterator ends. ``last_event_id`` (an OutputEvent's
        ``offset``) starts right after that byte; an ended execution gives everything and
        its Result. A dropped connection is resumed where it broke.

        Raises ApiError (``SYS.1003``: no such execution of this account), NotLoggedIn,
        ConnectionFailed, BadEvent.
        """
        events: AsyncIterator[ExecutionEvent] = follow_events(
            self._http, f"{EXECUTIONS_PATH}/{uuid}/output", headers=self._auth(),
            decode=decode_execution_event, is_last=_is_result,
            last_event_id=None if last_event_id is None else str(last_event_id),
            connect_timeout=self._timeout)
        async for event in events:
            yield event

    async def cancel(self, uuid: str) -> Execution:
        """CancelGuestVmCommand: stop execution ``uuid`` and its whole process tree in the
        guest; returns the execution once it ended (``Cancelled``, or how it ended before).
        Idempotent. Raises ApiError (``SYS.1003``: unknown), NotLoggedIn, ConnectionFailed."""
        reply = await self._call("PUT", f"{EXECUTIONS_PATH}/{uuid}/actions",
                                 json={"cancelGuestVmCommand": {}},
                                 timeout=self._timeout + CANCEL_WAIT)
        return Execution.from_wire(reply["inventory"])

    async def query_executions(self, *conditions: str, limit: int | None = None,
                               start: int | None = None,
                               sort: str | None = "-createDate") -> list[Execution]:
        """QueryGuestVmCommandExecution: the account's executions matching all ``q=``
        ``conditions`` (``state=Failed``, ``vmInstanceUuid=...``, ``command~=%apt%``), newest
        first unless ``sort`` says otherwise. Raises as ``query``."""
        reply = await self.query("vm-instances/commands/executions", conditions, limit=limit,
                                 start=start, sort=sort)
        return [Execution.from_wire(inv) for inv in reply.get("inventories") or []]

    async def get_execution(self, uuid: str) -> Execution:
        """Execution ``uuid`` with its stored ``stdout`` and ``stderr``. Raises ApiError
        (``SYS.1003``: unknown), NotLoggedIn, ConnectionFailed."""
        reply = await self._call("GET", f"{EXECUTIONS_PATH}/{uuid}")
        inventories = reply.get("inventories") or []
        if not inventories:
            raise ApiError(404, "SYS.1003", "not found", f"no execution has the uuid {uuid}")
        return Execution.from_wire(inventories[0])

    # --- files in and out of guests ------------------------------------------------------------
    async def push(self, vm_uuid: str, path: str, source: bytes | BinaryIO, *,
                   mode: str | None = None, owner: str | None = None,
                   progress: Progress | None = None) -> int:
        """Write ``source`` (bytes, or a binary file read in pieces: never whole in memory)
        to the absolute ``path`` in the VM's guest, replacing it; the bytes written.
        ``mode`` (octal, "0644") and ``owner`` ("user[:group]") are applied;
        ``progress(done, total)`` is called as the bytes go (total None when unknown).

        Raises ApiError (``VM.EXEC.1020``-``1024`` for the guest's file errors, ``SYS.1007``
        for a path that is not absolute), NotLoggedIn, ConnectionFailed.
        """
        params = {"path": path, **({"mode": mode} if mode else {}),
                  **({"owner": owner} if owner else {})}
        headers = {"Content-Type": "application/octet-stream"}
        total = len(source) if isinstance(source, bytes) else _size_of(source)
        if total is not None:
            headers["Content-Length"] = str(total)

        async def pieces() -> AsyncIterator[bytes]:
            done = 0
            while True:
                if isinstance(source, bytes):
                    piece = source[done:done + FILE_PIECE]
                else:
                    piece = await asyncio.to_thread(source.read, FILE_PIECE)
                if not piece:
                    return
                done += len(piece)
                yield piece
                if progress is not None:
                    progress(done, total)

        reply = await self._call("PUT", FILES_PATH.format(vm_uuid), params=params,
                                 headers=headers, content=pieces(),
                                 timeout=FILE_TIMEOUT)
        return int(reply["inventory"]["size"])

    async def pull_to(self, vm_uuid: str, path: str, target: BinaryIO, *,
                      progress: Progress | None = None) -> int:
        """Write the file at the absolute ``path`` in the VM's guest to ``target`` as it
        comes, piece by piece; the bytes written. ``progress(done, total)`` as they come.

        Raises ApiError (as ``push``), NotLoggedIn, ConnectionFailed (also when the transfer
        broke off: ``target`` then holds what came).
        """
        try:
            async with self._http.stream("GET", FILES_PATH.format(vm_uuid),
                                         params={"path": path}, headers=self._auth(),
                                         timeout=FILE_TIMEOUT) as response:
                if not response.is_success:
                    await response.aread()
                    self._body(response)
                length = response.headers.get("content-length")
                total = int(length) if length is not None and length.isdigit() else None
                done = 0
                async for piece in response.aiter_bytes():
                    await asyncio.to_thread(target.write, piece)
                    done += len(piece)
                    if progress is not None:
                        progress(done, total)
        except httpx.TimeoutException:
            raise ConnectionFailed(self.server, f"no data within {FILE_TIMEOUT:g}s") from None
        except httpx.TransportError as exc:
            raise ConnectionFailed(self.server, str(exc) or type(exc).__name__) from None
        if total is not None and done != total:
            raise ConnectionFailed(self.server, f"{done} of the {total} bytes of {path} came")
        return done

    async def pull(self, vm_uuid: str, path: str) -> bytes:
        """The file at the absolute ``path`` in the VM's guest (in memory: for small files;
        ``pull_to`` streams). Raises as ``pull_to``."""
        buffer = io.BytesIO()
        await self.pull_to(vm_uuid, path, buffer)
        return buffer.getvalue()

    # --- runs: one command, many VMs ------------------------------------------------------------
    async def start_run(self, command: str, *, vm_uuids: Sequence[str] | None = None,
                        conditions: Sequence[str] | None = None,
                        platform: Platform = Platform.LINUX, timeout: int | None = None,
                        max_concurrency: int | str | None = None,
                        max_errors: int | str | None = None, stdin: str | bytes | None = None,
                        env: Mapping[str, str] | None = None,
                        working_directory: str | None = None, run_as: str | None = None,
                        shell: Shell | None = None, uuid: str | None = None) -> str:
        """Start a run of ``command`` on the VMs ``vm_uuids`` or those matching all
        ``conditions`` (QueryVmInstance's ``q=``), and return its uuid at once (``uuid`` if
        given). ``max_concurrency`` / ``max_errors``: a number or a percentage (``"10%"``) of
        the targets. Follow it with ``follow_run``.

        Raises ApiError (``SYS.1007`` for bad arguments, an unknown VM or no target),
        NotLoggedIn, ConnectionFailed.
        """
        if (vm_uuids is None) == (conditions is None):
            raise ValueError("give either vm_uuids or conditions")
        targets = ({"vmInstanceUuids": list(vm_uuids)} if vm_uuids is not None
                   else {"conditions": list(conditions or ())})
        optional = {"commandTimeout": timeout, **stdin_params(stdin),
                    "env": dict(env) if env else None, "workingDirectory": working_directory,
                    "runAs": run_as, "shell": shell, "maxConcurrency": max_concurrency,
                    "maxErrors": max_errors}
        params = {"command": command, "platform": platform, "targets": targets,
                  **{k: v for k, v in optional.items() if v is not None}}
        run_uuid = uuid or new_uuid()
        self._body(await self._send("POST", RUNS_PATH, json={"params": params},
                                    headers={"X-Job-UUID": run_uuid}))
        return run_uuid

    async def follow_run(self, uuid: str) -> AsyncIterator[RunEvent]:
        """The events of run ``uuid``: TargetStarted, TargetOutput and TargetFinished as they
        happen, then RunFinished, then the iterator ends. Raises ApiError (``SYS.1003``:
        unknown), NotLoggedIn, ConnectionFailed, BadEvent."""
        # The stream has no event ids: a reconnect gets every event again, and the replay
        # filter passes only what had not come yet.
        replay = RunReplay()
        events: AsyncIterator[RunEvent] = follow_events(
            self._http, f"{RUNS_PATH}/{uuid}/events", headers=self._auth(),
            decode=_decode_run_event, is_last=_is_run_finished, connect_timeout=self._timeout,
            on_connect=replay.connected)
        async for event in events:
            fresh = replay.admit(event)
            if fresh is not None:
                yield fresh

    async def get_run(self, uuid: str) -> Run:
        """Run ``uuid`` with its targets. Raises ApiError (``SYS.1003``: unknown),
        NotLoggedIn, ConnectionFailed."""
        reply = await self._call("GET", f"{RUNS_PATH}/{uuid}")
        inventories = reply.get("inventories") or []
        if not inventories:
            raise ApiError(404, "SYS.1003", "not found", f"no run has the uuid {uuid}")
        return Run.from_wire(inventories[0])

    async def cancel_run(self, uuid: str) -> Run:
        """CancelGuestVmCommandRun: cancel the run's running targets and skip the rest;
        returns the run as it is then. Idempotent. Raises ApiError (``SYS.1003``: unknown),
        NotLoggedIn, ConnectionFailed."""
        reply = await self._call("PUT", f"{RUNS_PATH}/{uuid}/actions",
                                 json={"cancelGuestVmCommandRun": {}},
                                 timeout=self._timeout + CANCEL_WAIT)
        return Run.from_wire(reply["inventory"])

    async def query_runs(self, *conditions: str, limit: int | None = None,
                         start: int | None = None,
                         sort: str | None = "-createDate") -> list[Run]:
        """The account's runs matching all ``q=`` ``conditions``, newest first unless
        ``sort`` says otherwise. Raises as ``query``."""
        reply = await self.query("vm-instances/commands/runs", conditions, limit=limit,
                                 start=start, sort=sort)
        return [Run.from_wire(inv) for inv in reply.get("inventories") or []]

    # --- hosts ---------------------------------------------------------------------------------
    async def add_host(self, name: str, *, management_ip: str | None = None,
                       username: str | None = None, ssh_port: int | None = None,
                       libvirt_uri: str | None = None,
                       description: str | None = None) -> Host:
        """AddKVMHost: reached over SSH as ``username@management_ip`` or by ``libvirt_uri``
        (any libvirt URI, or ``unix:///dir`` of agent sockets). Raises ApiError (``SYS.1006``
        when the host does not answer, ``SYS.1007`` for bad or duplicate URIs), NotLoggedIn,
        ConnectionFailed."""
        optional = {"managementIp": management_ip, "username": username, "sshPort": ssh_port,
                    "libvirtUri": libvirt_uri, "description": description}
        params = {"name": name, **{k: v for k, v in optional.items() if v is not None}}
        # Connecting to a remote libvirt can take a while (SSH, then libvirt's own handshake).
        reply = await self._call("POST", f"{API}/hosts/kvm", json={"params": params},
                                 timeout=max(self._timeout, 120.0))
        return Host.from_wire(reply["inventory"])

    async def query_hosts(self, *conditions: str) -> list[Host]:
        """QueryHost with ``q=`` ``conditions``. Raises as ``query``."""
        reply = await self.query("hosts", conditions)
        return [Host.from_wire(inv) for inv in reply.get("inventories") or []]

    async def delete_host(self, uuid: str) -> None:
        """DeleteHost (its VMs keep running; the server only stops managing them). Raises
        ApiError, NotLoggedIn, ConnectionFailed."""
        await self._call("DELETE", f"{API}/hosts/{uuid}")
