"""Files into and out of a VM's guest (vmexec extension; Proxmox's ``agent/file-write`` and
``agent/file-read``, Incus's ``file push/pull``): ``PUT`` streams the request body to a file,
``GET`` streams a file back. Who may run commands on a VM may copy its files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.requests import ClientDisconnect

from vmexec.api.deps import AuthDep, ServicesDep, caller_of
from vmexec.api.errors import bad_request
from vmexec.api.observe import note
from vmexec.api.schemas.common import ERROR_RESPONSES, WireModel
from vmexec.execution.files import MAX_FILE_BYTES, READ_CHUNK, WRITE_CHUNK
from vmexec.zstack.ids import is_uuid

PATH = "/zstack/v1/vm-instances/{uuid}/files"
#: Where the body limit lets a body stream through unread (see vmexec.api.limits).
PATH_PATTERN = r"^/zstack/v1/vm-instances/[^/]+/files$"

router = APIRouter(tags=["vm-instances"])

FilePath = Annotated[str, Query(description="The file's absolute path in the guest.",
                                examples=["/etc/motd"])]
_LIMITS = (f"Files of up to {MAX_FILE_BYTES} bytes; they go to the guest in pieces of "
           f"{WRITE_CHUNK} bytes and come back in pieces of {READ_CHUNK} (one agent call "
           "each): vmexec holds a piece or two at a time, never the file.")
_ERRORS = """Errors (`503`): `VM.EXEC.1020` no such file or directory, `VM.EXEC.1021` permission
denied (or a read-only file system), `VM.EXEC.1022` the guest's disk is full,
`VM.EXEC.1023` the path is a directory, `VM.EXEC.1024` otherwise (e.g. a Windows guest);
`SYS.1007` a path that is not absolute, a bad mode or owner; and the exec errors of a VM or
agent that cannot be used (`VM.EXEC.1002`, `1003`, `1004`, ...)."""


class GuestFileInventory(WireModel):
    vm_instance_uuid: str
    path: str
    size: int


class PutGuestFileReply(WireModel):
    inventory: GuestFileInventory


def _vm_uuid(http: Request, uuid: str) -> str:
    uuid = uuid.strip().lower()
    if is_uuid(uuid):
        note(http.scope, resource_uuid=uuid)
    return uuid


@router.put(PATH, operation_id="PutGuestFile", response_model=PutGuestFileReply,
            responses=ERROR_RESPONSES, summary="Write a file in the VM's guest",
            description=f"""The request body (raw bytes) becomes the file at `path`, replacing
it when it exists: written to a temporary file in the same directory and renamed over `path`
once complete, so an upload that fails or is interrupted leaves nothing (the temporary file
is removed). `mode` (octal; default: the replaced file's, else 0644) and `owner`
(`user[:group]`; default: the agent's user, root) are applied before the rename. {_LIMITS}

{_ERRORS}""",
            openapi_extra={"requestBody": {"required": True, "content": {
                "application/octet-stream": {"schema": {"type": "string",
                                                        "format": "binary"}}}}})
async def put_file(http: Request, uuid: str, path: FilePath, services: ServicesDep,
                   session: AuthDep,
                   mode: Annotated[str | None, Query(examples=["0644"])] = None,
                   owner: Annotated[str | None, Query(examples=["app:app"])] = None
                   ) -> JSONResponse:
    vm_uuid = _vm_uuid(http, uuid)
    size = await services.files.push(caller_of(session), vm_uuid, path, _body(http),
                                     mode=mode, owner=owner)
    inventory = GuestFileInventory(vm_instance_uuid=vm_uuid, path=path, size=size)
    return JSONResponse(PutGuestFileReply(inventory=inventory).wire())


async def _body(http: Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in http.stream():
            if chunk:
                yield chunk
    except ClientDisconnect:
        # The upload is abandoned (its temporary file removed); nobody reads this answer.
        raise bad_request("the client went away before the end of the body") from None


@router.get(PATH, operation_id="GetGuestFile", summary="Read a file in the VM's guest",
            response_class=StreamingResponse,
            description=f"""The file at `path`, as raw bytes (`application/octet-stream`),
streamed as it is read from the guest; `Content-Length` when the guest knows the size (not
for files such as those in /proc, which say they are empty). {_LIMITS}

{_ERRORS}""",
            responses={200: {"content": {"application/octet-stream": {
                "schema": {"type": "string", "format": "binary"}}},
                "description": "the file's bytes"}, **ERROR_RESPONSES})
async def get_file(http: Request, uuid: str, path: FilePath, services: ServicesDep,
                   session: AuthDep) -> StreamingResponse:
    download = await services.files.pull(caller_of(session), _vm_uuid(http, uuid), path)
    headers: dict[str, Any] = {}
    if download.size is not None:
        headers["Content-Length"] = str(download.size)
    return StreamingResponse(download.chunks, media_type="application/octet-stream",
                             headers=headers)
