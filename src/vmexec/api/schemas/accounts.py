"""Accounts on the wire: CreateAccount, QueryAccount, UpdateAccount, DeleteAccount,
ChangeResourceOwner."""

from __future__ import annotations

from pydantic import Field

from vmexec.api.schemas.common import WireModel
from vmexec.api.schemas.inventory import Tags, inventory_model, query_reply_model
from vmexec.zstack.inventories import ACCOUNT_FIELDS, ACCOUNT_RESOURCE_REF_FIELDS, AccountType

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
    name: str | None = Field(default=None, min_length=1, max_length=255,
                             description="a new name (admins only; not of 'admin')")
    description: str | None = Field(default=None, max_length=2048,
                                    description="a new description (admins only)")


class UpdateAccountRequest(WireModel):
    update_account: UpdateAccountParams


class AccountInventory(WireModel):
    uuid: str
    name: str
    description: str | None = None
    type: str = Field(examples=["SystemAdmin"])
    create_date: str = Field(examples=["Oct 17, 2024 5:43:35 AM"])
    last_op_date: str = Field(examples=["Oct 17, 2024 5:43:35 AM"])


class AccountReply(WireModel):
    inventory: AccountInventory


class CreateAccountParams(WireModel):
    name: str = Field(min_length=1, max_length=255, examples=["alice"])
    password: str = Field(min_length=1, max_length=255,
                          description="SHA-512 hex digest of the password, as ZStack clients "
                                      "send it", examples=[_SHA512_EXAMPLE])
    type: AccountType = Field(default=AccountType.NORMAL,
                              description="SystemAdmin may do anything; Normal uses the VMs "
                                          "it owns")
    description: str | None = Field(default=None, max_length=2048)
    resource_uuid: str | None = Field(default=None, description="UUID for the new account")


class CreateAccountRequest(WireModel):
    params: CreateAccountParams
    system_tags: Tags | None = None
    user_tags: Tags | None = None


QueryAccountInventory = inventory_model(
    "QueryAccountInventory", "ZStack's AccountInventory; null fields are left out.",
    ACCOUNT_FIELDS)
QueryAccountReply = query_reply_model("QueryAccountReply", QueryAccountInventory)


QueryAccountResourceRefInventory = inventory_model(
    "QueryAccountResourceRefInventory", "ZStack's AccountResourceRefInventory: who owns a VM.",
    ACCOUNT_RESOURCE_REF_FIELDS)
QueryAccountResourceRefReply = query_reply_model("QueryAccountResourceRefReply",
                                                 QueryAccountResourceRefInventory)


class ChangeResourceOwnerParams(WireModel):
    resource_uuid: str = Field(min_length=1, max_length=255,
                               description="the VM to give to the account")


class ChangeResourceOwnerRequest(WireModel):
    params: ChangeResourceOwnerParams
    system_tags: Tags | None = None
    user_tags: Tags | None = None


class AccountResourceRefInventory(WireModel):
    account_uuid: str
    resource_uuid: str
    resource_type: str = Field(examples=["VmInstanceVO"])
    concrete_resource_type: str = Field(examples=["org.zstack.header.vm.VmInstanceVO"])
    create_date: str = Field(examples=["Oct 17, 2024 5:43:35 AM"])
    last_op_date: str = Field(examples=["Oct 17, 2024 5:43:35 AM"])


class ChangeResourceOwnerReply(WireModel):
    inventory: AccountResourceRefInventory
