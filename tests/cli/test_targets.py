"""Choosing a run's VMs from names, uuids and globs (``vmexec.cli.targets``): pure, no VM."""

from __future__ import annotations

import pytest

from vmexec.cli.client import split_targets
from vmexec.cli.targets import TargetError, is_glob, is_run, select
from vmexec.client import VmInstance

VMS = [VmInstance(uuid=f"{i:032x}", name=name) for i, name in
       enumerate(["web-1", "web-2", "db-1", "twin", "twin", "web-10"], start=1)]


def names(vms: list[VmInstance]) -> list[str | None]:
    return [vm.name for vm in vms]


def test_globs_match_names_in_the_order_given_each_vm_once() -> None:
    assert names(select(["web-?"], VMS)) == ["web-1", "web-2"]
    assert names(select(["db-1", "web-*"], VMS)) == ["db-1", "web-1", "web-2", "web-10"]
    assert names(select(["web-1", "web-*", "web-[12]"], VMS)) == ["web-1", "web-2", "web-10"]


def test_uuids_select_their_vm_and_win_over_names() -> None:
    assert select([VMS[2].uuid.upper()], VMS) == [VMS[2]]
    assert select([VMS[3].uuid], VMS) == [VMS[3]]  # a uuid picks one of two twins


def test_glob_matching_is_case_sensitive_as_names_are() -> None:
    with pytest.raises(TargetError, match="no VM name matches 'WEB-\\*'"):
        select(["WEB-*"], VMS)


def test_a_name_or_glob_that_matches_nothing_is_an_error_naming_it() -> None:
    with pytest.raises(TargetError, match="no VM has the uuid or name 'nope'"):
        select(["web-1", "nope"], VMS)
    with pytest.raises(TargetError, match="among the VMs matching the conditions"):
        select(["web-1"], VMS[2:], filtered=True)


def test_an_ambiguous_name_is_an_error_but_a_glob_takes_all_twins() -> None:
    with pytest.raises(TargetError, match="2 VMs are named 'twin'"):
        select(["twin"], VMS)
    assert select(["twi?"], VMS) == [VMS[3], VMS[4]]


def test_what_makes_a_run() -> None:
    assert is_glob("web-*") and is_glob("vm[12]") and is_glob("vm?")
    assert not is_glob("web-1")
    assert not is_run(["web-1"], [])
    assert is_run(["web-*"], [])
    assert is_run(["web-1", "web-2"], [])
    assert is_run(["web-1"], ["state=Running"])
    assert is_run([], ["state=Running"])


def test_the_words_after_the_double_dash_are_the_command() -> None:
    argv = ["exec", "web-1", "web-*", "-q", "state=Running", "--", "echo", "--", "-n"]
    args = ["web-1", "web-*", "echo", "--", "-n"]  # what click leaves as positionals
    assert split_targets(args, argv) == (["web-1", "web-*"], ["echo", "--", "-n"])
    # Without --, the first word is the one VM (as before runs existed).
    assert split_targets(["vm", "uname", "-a"], ["exec", "vm", "uname", "-a"]) == (
        ["vm"], ["uname", "-a"])
    assert split_targets(["a", "b"], ["exec", "a", "b", "--"]) == (["a", "b"], [])
