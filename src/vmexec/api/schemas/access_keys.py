"""Access keys on the wire: CreateAccessKey, QueryAccessKey, ChangeAccessKeyState."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from vmexec.api.schemas.common import WireModel
from vmexec.api.schemas.inventory import Tags, inventory_model, query_reply_model
from vmexec.zstack.inventories import ACCESS_KEY_FIELDS

_KEY_PATTERN = r"^[A-Za-z0-9_\-+/=.]{8,128}$"


class CreateAccessKeyParams(WireModel):
    # ZStack spells these two with capitals; the camelCase alias would not.
    model_config = ConfigDict(populate_by_name=True)

    account_uuid: str = Field(min_length=1, max_length=255)
    user_uuid: str | None = Field(default=None, max_length=255,
                                  description="ZStack's IAM user; the account's UUID if absent")
    access_key_id: str | None = Field(
        default=None, alias="AccessKeyID", pattern=_KEY_PATTERN,
        description="generated (20 characters) if absent")
    access_key_secret: str | None = Field(
        default=None, alias="AccessKeySecret", pattern=_KEY_PATTERN,
        description="generated (40 characters) if absent; shown only in this reply")
    description: str | None = Field(default=None, max_length=2048)


class CreateAccessKeyRequest(WireModel):
    params: CreateAccessKeyParams
    system_tags: Tags | None = None
    user_tags: Tags | None = None


QueryAccessKeyInventory = inventory_model(
    "AccessKeyInventory", "ZStack's AccessKeyInventory (``AccessKeySecret`` only when created).",
    {**ACCESS_KEY_FIELDS})
QueryAccessKeyReply = query_reply_model("QueryAccessKeyReply", QueryAccessKeyInventory)


class AccessKeyReply(WireModel):
    inventory: dict[str, object] = Field(
        description="AccessKeyInventory: uuid, description, accountUuid, userUuid, "
                    "AccessKeyID, AccessKeySecret (CreateAccessKey only), state, createDate, "
                    "lastOpDate")


class ChangeAccessKeyStateParams(WireModel):
    state_event: Literal["enable", "disable"]


class AccessKeyActionRequest(WireModel):
    change_access_key_state: ChangeAccessKeyStateParams
    system_tags: Tags | None = None
    user_tags: Tags | None = None
