"""Runs on the wire: StartGuestVmCommandRun's body, the run inventory, the cancel action."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, StrictInt, StrictStr, model_validator

from vmexec.api.schemas.common import WireModel
from vmexec.api.schemas.exec import MAX_BODY_BYTES as EXEC_MAX_BODY_BYTES
from vmexec.api.schemas.exec import CommandParams, Tags
from vmexec.api.schemas.inventory import inventory_model, query_reply_model
from vmexec.zstack.inventories import RUN_FIELDS
from vmexec.zstack.query import CONDITION_PATTERN, MAX_CONDITIONS, MAX_PARAMETER_CHARS
from vmexec.zstack.runs import (
    CANCEL_ACTION,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_ERRORS,
    MAX_TARGETS,
)

#: The largest valid body: an exec body's, and the longest UUID list (each UUID as at most 12
#: bytes a character when JSON-escaped, with quotes and a comma).
MAX_BODY_BYTES = EXEC_MAX_BODY_BYTES + MAX_TARGETS * (32 * 12 + 3)

#: A count or a percentage ("10%"); checked by the service (503 SYS.1007 when out of range).
Limit = StrictInt | Annotated[StrictStr, Field(max_length=16)]


#: A QueryVmInstance condition, as ``q=`` takes it.
Condition = Annotated[str, Field(min_length=1, max_length=MAX_PARAMETER_CHARS,
                                 pattern=CONDITION_PATTERN)]


class RunTargets(WireModel):
    """Exactly one of the two."""

    vm_instance_uuids: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None, max_length=MAX_TARGETS,
        description=f"The VMs, in the order they start (at most {MAX_TARGETS}; a VM listed "
                    "twice runs the command twice). Every one must exist, or nothing starts.")
    conditions: list[Condition] | None = Field(
        default=None, min_length=1, max_length=MAX_CONDITIONS,
        description="QueryVmInstance conditions (q= syntax, all must hold): every VM "
                    "they select, by name, is a target (at most "
                    f"{MAX_TARGETS}).",
        examples=[["name~=web-%", "state=Running"]])

    @model_validator(mode="after")
    def _exactly_one(self) -> RunTargets:
        if (self.vm_instance_uuids is None) == (self.conditions is None):
            raise ValueError("targets must have exactly one of vmInstanceUuids and conditions")
        return self


class StartGuestVmCommandRunParams(CommandParams):
    targets: RunTargets
    max_concurrency: Limit = Field(
        default=DEFAULT_MAX_CONCURRENCY,
        description="Targets running at once: a count (at least 1) or a percentage of the "
                    "targets (\"10%\", rounded up, at least 1).", examples=[10, "10%"])
    max_errors: Limit = Field(
        default=DEFAULT_MAX_ERRORS,
        description="Failed targets tolerated (exit code not 0, timed out, or not run): one "
                    "more and no further target starts (they end Skipped) and the run ends "
                    "Failed. A count or a percentage of the targets (rounded down).",
        examples=[0, "5%"])


class StartGuestVmCommandRunRequest(WireModel):
    params: StartGuestVmCommandRunParams
    system_tags: Tags | None = None
    user_tags: Tags | None = None


RunInventory = inventory_model(
    "GuestVmCommandRunInventory",
    "A run: one command on many VMs. Replies add ``targetCounts`` (targets per state) and, "
    "for one run, ``targets``.", RUN_FIELDS)
QueryGuestVmCommandRunReply = query_reply_model("QueryGuestVmCommandRunReply", RunInventory)


class RunTarget(WireModel):
    vm_instance_uuid: str
    vm_instance_name: str
    state: str = Field(description="Pending, Running, Succeeded, Failed, TimedOut, Cancelled, "
                                   "Skipped")
    execution_uuid: str | None = Field(default=None, description="once started: its output "
                                       "is the execution's")
    exit_code: int | None = None
    error_code: str | None = None
    stdout_bytes: int | None = None
    stderr_bytes: int | None = None


class RunReply(WireModel):
    """A run's inventory (the run's job reply, and the cancel action's)."""

    inventory: dict[str, Any]


def _one_action(schema: dict[str, Any]) -> None:
    action = schema["properties"][CANCEL_ACTION]
    schema["properties"][CANCEL_ACTION] = next(
        option for option in action.get("anyOf", [action]) if option.get("type") != "null")
    schema["required"] = [CANCEL_ACTION]
    schema["additionalProperties"] = False


class CancelParams(WireModel):
    pass


class RunActionRequest(WireModel):
    """``PUT /vm-instances/commands/runs/{uuid}/actions``: ``{"cancelGuestVmCommandRun": {}}``
    (a missing or unknown action is ``400``)."""

    model_config = ConfigDict(extra="allow", json_schema_extra=_one_action)

    cancel_guest_vm_command_run: CancelParams | None = None
    system_tags: Tags | None = None
    user_tags: Tags | None = None
