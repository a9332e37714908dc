"""UpdateAccount on the wire."""

from __future__ import annotations

from pydantic import Field

from vmexec.api.schemas.common import WireModel

_SHA512_EXAMPLE = ("b109f3bbbc244eb82441917ed06d618b9008dd09b3befd1b5e07394c706a8bb980b1d7785e5976"
                   "ec049b46df5f1326af5a2ea6d103fd07c95385ffab0cacbc86")


class UpdateAccountParams(WireModel):
    password: str | None = Field(
        default=None, min_length=1, max_length=255,
        description="SHA-512 hex digest of the new password, as ZStack clients send",
        examples=[_SHA512_EXAMPLE])
    old_password: str | None = Field(
        default=None, min_length=1, max_length=255,
        description="SHA-512 hex digest of the current password (required with password)",
        examples=[_SHA512_EXAMPLE])
    name: str | None = Field(default=None, max_length=255,
                             description="not supported: must be the account's own name")
    description: str | None = Field(default=None, max_length=2048,
                                    description="not supported: must be absent")


class UpdateAccountRequest(WireModel):
    update_account: UpdateAccountParams


class AccountInventory(WireModel):
    uuid: str
    name: str
    type: str = Field(examples=["SystemAdmin"])
    create_date: str = Field(examples=["Oct 17, 2024 5:43:35 AM"])
    last_op_date: str = Field(examples=["Oct 17, 2024 5:43:35 AM"])


class AccountReply(WireModel):
    inventory: AccountInventory
