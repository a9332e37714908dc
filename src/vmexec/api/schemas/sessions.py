"""LogInByAccount, LogOut, ValidateSession on the wire."""

from __future__ import annotations

from pydantic import Field

from vmexec.api.schemas.common import WireModel


class LogInByAccountParams(WireModel):
    account_name: str = Field(min_length=1, max_length=255, examples=["admin"])
    password: str = Field(min_length=1, max_length=1024,
                          description="SHA-512 hex digest of the password, as ZStack clients send",
                          examples=["b109f3bbbc244eb82441917ed06d618b9008dd09b3befd1b5e07394c706a8"
                                    "bb980b1d7785e5976ec049b46df5f1326af5a2ea6d103fd07c95385ffab0c"
                                    "acbc86"])


class LogInByAccountRequest(WireModel):
    log_in_by_account: LogInByAccountParams


class SessionInventory(WireModel):
    uuid: str
    account_uuid: str
    user_uuid: str
    expired_date: str = Field(examples=["Oct 17, 2024 7:43:35 AM"])
    create_date: str = Field(examples=["Oct 17, 2024 5:43:35 AM"])


class LogInReply(WireModel):
    inventory: SessionInventory


class ValidateSessionReply(WireModel):
    valid: bool
