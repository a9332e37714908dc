"""How a run's events come out (``vmexec.cli.run_view.RunView``): whole lines after the VM's
name, partial lines held until their end, ``--group`` blocks, ``--no-prefix``; pure, no VM."""

from __future__ import annotations

import pytest

from vmexec.cli.run_view import RunView, ViewOptions, all_succeeded, summary_counts
from vmexec.client import Run, RunFinished, RunTarget, TargetFinished, TargetOutput, TargetStarted

A, B = "a" * 32, "b" * 32
RUN = Run(uuid="r" * 32, state="Running",
          targets=(RunTarget(A, "web-1"), RunTarget(B, "db")))


def out(vm: str, text: str, stream: str = "stdout") -> TargetOutput:
    return TargetOutput(vm, vm, stream, text)  # type: ignore[arg-type]


def finished(vm: str, state: str = "Succeeded") -> TargetFinished:
    return TargetFinished(vm, vm, state, 0, None)


def test_lines_are_prefixed_and_partial_lines_wait_for_their_end(
        capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    with RunView(RUN, ViewOptions()) as view:
        view.handle(TargetStarted(A, "web-1", A))
        view.handle(TargetStarted(B, "db", B))
        view.handle(out(A, "one\ntw"))
        view.handle(out(B, "x\n"))
        view.handle(out(A, "o\n"))
        view.handle(out(B, "err", "stderr"))
        view.handle(out(B, "tail"))
        assert capsysbinary.readouterr().out == b"web-1 | one\ndb    | x\nweb-1 | two\n"
        view.handle(finished(B, "Failed"))  # its partial lines end with it
    captured = capsysbinary.readouterr()
    assert captured.out == b"db    | tail\n"
    assert captured.err == b"db    | err\n"


def test_group_prints_each_vm_as_one_block_when_it_ends(
        capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    with RunView(RUN, ViewOptions(group=True)) as view:
        view.handle(out(A, "a1\n"))
        view.handle(out(B, "b1\n"))
        view.handle(out(A, "a2"))
        view.handle(finished(B))
        assert capsysbinary.readouterr().out == b"db    | b1\n"
        view.handle(finished(A))
    assert capsysbinary.readouterr().out == b"web-1 | a1\nweb-1 | a2\n"


def test_no_prefix_keeps_whole_lines_only(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    with RunView(RUN, ViewOptions(prefix=False)) as view:
        view.handle(out(A, "é".encode()[:1].decode("utf-8", "surrogateescape")))
        view.handle(out(B, "b\n"))
        view.handle(out(A, "é".encode()[1:].decode("utf-8", "surrogateescape") + "\n"))
    assert capsysbinary.readouterr().out == "b\né\n".encode()


def test_a_vm_not_in_the_run_yet_is_named_by_its_started_event(
        capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    c = "c" * 32
    with RunView(RUN, ViewOptions()) as view:
        view.handle(TargetStarted(c, "cache-server", c))
        view.handle(out(c, "hi\n"))
    assert capsysbinary.readouterr().out == b"cache-server | hi\n"


def test_summary_and_exit_rule() -> None:
    assert summary_counts({"Succeeded": 2, "Failed": 1, "Skipped": 0}) == (
        "3 targets: 1 failed, 2 succeeded")
    done = Run(uuid="r", state="Succeeded", counts={"Succeeded": 3})
    assert all_succeeded(done)
    assert not all_succeeded(Run(uuid="r", state="Failed", counts={"Succeeded": 2,
                                                                    "Failed": 1}))
    assert not all_succeeded(Run(uuid="r", state="Cancelled", counts={"Succeeded": 3}))
    final = RunFinished(done)
    assert final.run is done
