"""Shared wire pieces: the camelCase base model, strict-ish integers, ZStack's ErrorCode."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError


class WireModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are ignored (as Gson does)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def wire(self) -> dict[str, Any]:
        """The JSON object to send: aliases, null fields left out (as ZStack's writer does)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _not_bool(value: Any) -> Any:
    # pydantic's lax mode reads true as 1; for ZStack's integer fields a boolean is a wrong type.
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


#: An integer field: 5, 5.0 and "5" are read, true / 1.5 / "x" are wrong types.
Int = Annotated[int, BeforeValidator(_not_bool)]


class ErrorCode(WireModel):
    """ZStack's ErrorCode (documentation of the error body; built by ``vmexec.api.errors``)."""

    code: str
    description: str
    details: str | None = None
    elaboration: str | None = None
    location: str | None = None
    cost: str | None = None
    cause: ErrorCode | None = None
    opaque: dict[str, Any] | None = None


class ErrorReply(WireModel):
    error: ErrorCode


class EmptyReply(WireModel):
    """``{}``: LogOut's reply, and an async job still running."""


#: ``responses=`` for routes: the error statuses every authenticated API may answer.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorReply, "description": "unreadable request, or no Authorization header"},
    503: {"model": ErrorReply, "description": "the API failed (ZStack ErrorCode)"},
}
