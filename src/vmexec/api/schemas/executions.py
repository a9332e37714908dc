"""Executions on the wire: QueryGuestVmCommandExecution's inventory, the cancel action's
body, and the output stream's events (documentation; the replies are built by the service)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Header, Path, Query
from pydantic import ConfigDict, Field, WithJsonSchema, create_model
from pydantic.alias_generators import to_snake

from vmexec.api.schemas.common import WireModel
from vmexec.api.schemas.exec import OutputEncoding
from vmexec.api.schemas.inventory import Tags
from vmexec.zstack.inventories import EXECUTION_FIELDS
from vmexec.zstack.query import FieldKind

UUID_PATTERN = r"^[0-9a-fA-F]{32}$"
#: ``Last-Event-ID``: a byte offset.
OFFSET_PATTERN = r"^\s*[0-9]{1,18}\s*$"

ExecutionUuid = Annotated[str, WithJsonSchema({"type": "string", "pattern": UUID_PATTERN}),
                          Path(description="the execution's UUID (32 hex digits)")]
LastEventId = Annotated[str | None, WithJsonSchema({"type": "string",
                                                    "pattern": OFFSET_PATTERN}), Header(
    alias="Last-Event-ID",
    description="Resume after this byte offset (an event's id); not an integer: 400")]

OutputEncodingQuery = Annotated[OutputEncoding | None, Query(
    alias="outputEncoding",
    description="base64: stdoutBase64 and stderrBase64 always, not only for output that is "
                "not UTF-8")]


class _DocModel(WireModel):
    model_config = ConfigDict(extra="allow")


_TYPES: dict[FieldKind, Any] = {FieldKind.STRING: str, FieldKind.NUMBER: int,
                                FieldKind.DATE: str}


def _type_of(name: str, kind: FieldKind) -> Any:
    # Booleans are queried as text (true/false) and sent as JSON booleans.
    return bool if name.endswith("Truncated") else _TYPES[kind]


_INVENTORY_FIELDS: dict[str, Any] = {
    to_snake(wire): (_type_of(wire, f.kind) | None, Field(
        default=None, description=f.description,
        examples=[f.example] if f.example is not None else None))
    for wire, f in EXECUTION_FIELDS.items()}

GuestVmCommandExecutionInventory = create_model(
    "GuestVmCommandExecutionInventory", __base__=_DocModel,
    __doc__="One command on one VM; null fields are left out.", **_INVENTORY_FIELDS)

GuestVmCommandExecutionOutputInventory = create_model(
    "GuestVmCommandExecutionOutputInventory", __base__=GuestVmCommandExecutionInventory,
    __doc__="An execution with the output kept of it (UTF-8 text; the exact bytes as "
            "base64 too when they are not UTF-8).",
    stdout=(str | None, None), stderr=(str | None, None),
    stdout_base64=(str | None, None), stderr_base64=(str | None, None))

QueryGuestVmCommandExecutionReply = create_model(
    "QueryGuestVmCommandExecutionReply", __base__=_DocModel,
    __doc__="A query's reply, plus ZStack's ``schema`` map (JSON path → ZStack class).",
    inventories=(list[GuestVmCommandExecutionInventory] | None,  # type: ignore[valid-type,arg-type]
                 None),
    total=(int | None, Field(default=None,
                             description="with count=true or replyWithCount=true")))

GetGuestVmCommandExecutionReply = create_model(
    "GetGuestVmCommandExecutionReply", __base__=_DocModel,
    inventories=(list[GuestVmCommandExecutionOutputInventory],  # type: ignore[valid-type]
                 ...))

GuestVmCommandExecutionReply = create_model(
    "GuestVmCommandExecutionReply", __base__=WireModel,
    inventory=(GuestVmCommandExecutionInventory, ...))


class CancelGuestVmCommandParams(WireModel):
    pass


def _one_action(schema: dict[str, Any]) -> None:
    # As VmActionRequest: the one action is required, nothing else but tags is accepted; the
    # model stays lenient so that the route answers a missing or unknown action with a 400.
    action = schema["properties"]["cancelGuestVmCommand"]
    schema["properties"]["cancelGuestVmCommand"] = next(
        option for option in action.get("anyOf", [action]) if option.get("type") != "null")
    schema["required"] = ["cancelGuestVmCommand"]
    schema["additionalProperties"] = False


class ExecutionActionRequest(WireModel):
    """``PUT …/executions/{uuid}/actions``: ``{"cancelGuestVmCommand": {}}``."""

    model_config = ConfigDict(extra="allow", json_schema_extra=_one_action)

    cancel_guest_vm_command: CancelGuestVmCommandParams | None = None
    system_tags: Tags | None = None
    user_tags: Tags | None = None


OUTPUT_EVENTS_DOC = """Server-Sent Events: `stdout` and `stderr` events, `data` =
`{"text": "<chunk>"}` (and `"base64": "<the chunk's exact bytes>"` when the chunk is not
UTF-8: `text` then has U+FFFD for the bytes that are not), in the order the guest wrote
them; each `id` is the byte offset in the combined output after the chunk, so
`Last-Event-ID: N` resumes after byte N. Then one
`result` event, `data` = `{"status": <HTTP status>, "body": <the job's reply body>}`, and the
stream ends. Comments keep the connection alive every 15 s."""
