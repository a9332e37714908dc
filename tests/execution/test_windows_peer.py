"""Windows command construction and output decoding.

A Windows guest cannot boot here: these tests run against FakeWindowsAgent, a qemu-ga protocol
peer on a unix socket that stands in for a Windows guest's agent (tests/fakes/windows_agent.py).
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from fakes.windows_agent import FakeWindowsAgent, Outcome, WindowsRun

from vmexec.agent.directory import AgentDirectory
from vmexec.agent.targets import SocketTarget
from vmexec.execution.engine import Executor
from vmexec.execution.errors import InvalidExecRequest
from vmexec.execution.models import ExecRequest, ExecResult, Platform, Shell
from vmexec.execution.platform import KillReason
from vmexec.execution.windows import SUPERVISOR, WindowsPlatform, decode_powershell
from vmexec.hypervisor.libvirt_host import LibvirtHosts

NIHAO_GBK = "你好 世界\r\n".encode("gbk")


def chinese_console(run: WindowsRun) -> Outcome:
    script = run.params["script"]
    if script == "echo 你好 世界":
        return Outcome(stdout=NIHAO_GBK)
    if script == "Write-Output 'ünïcödé'":
        return Outcome(stdout="ünïcödé\r\n".encode())
    if script.startswith("exit /b"):
        return Outcome(exit_code=int(script.split()[-1]), stderr=b"oops\r\n")
    if script == "ping -n 100 127.0.0.1":
        return Outcome(stdout=b"Pinging\r\n", exit_code=1, timed_out=True)
    return Outcome(stdout=b"big" * 100_000)


@pytest.fixture
async def windows(tmp_path: Path):
    async with FakeWindowsAgent(tmp_path / "qga.sock", chinese_console) as peer:
        executor = Executor(AgentDirectory(LibvirtHosts()))
        yield peer, executor, SocketTarget(str(tmp_path / "qga.sock"))
        await executor.aclose()
        await executor.agents.aclose()


def test_supervisor_is_passed_as_encoded_command() -> None:
    launch = WindowsPlatform().launch(ExecRequest("dir", platform=Platform.WINDOWS), "a" * 32)
    assert launch.path == "powershell.exe"
    assert launch.args[:5] == ["-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass",
                               "-EncodedCommand"]
    assert decode_powershell(launch.args) == SUPERVISOR
    # The command line stays far below Windows' 32,767-character limit whatever the script.
    assert sum(len(a) + 1 for a in launch.args) < 16_000


async def test_cmd_output_in_gbk_is_decoded(windows) -> None:
    peer, executor, target = windows
    result = await executor.run(target, ExecRequest("echo 你好 世界", platform=Platform.WINDOWS))
    assert result.exit_code == 0
    assert result.stdout.text == "你好 世界\r\n"
    assert result.stdout.encoding == "cp936"
    run = peer.runs[-1]
    assert run.params["shell"] == "cmd"
    assert run.params["script"] == "echo 你好 世界"


async def test_powershell_utf8_output_and_parameters(windows) -> None:
    peer, executor, target = windows
    request = ExecRequest("Write-Output 'ünïcödé'", platform=Platform.WINDOWS,
                          shell=Shell.POWERSHELL, stdin=b"data", env={"A": "1"},
                          working_directory="C:\\Temp", timeout=30)
    result = await executor.run(target, request)
    assert result.stdout.text == "ünïcödé\r\n"
    params = peer.runs[-1].params
    assert params["shell"] == "powershell"
    assert base64.b64decode(params["stdin"]) == b"data"
    assert params["env"] == {"A": "1"}
    assert params["cwd"] == "C:\\Temp"
    assert params["limit"] == 30


async def test_exit_code_and_stderr(windows) -> None:
    _, executor, target = windows
    result = await executor.run(target, ExecRequest("exit /b 5", platform=Platform.WINDOWS))
    assert (result.exit_code, result.stderr.text) == (5, "oops\r\n")
    assert result.signal is None


async def test_timeout_reported(windows) -> None:
    _, executor, target = windows
    result = await executor.run(target, ExecRequest("ping -n 100 127.0.0.1",
                                                    platform=Platform.WINDOWS, timeout=1))
    assert result.timed_out
    assert result.stdout.text == "Pinging\r\n"


async def test_output_limit_and_size(windows) -> None:
    _, executor, target = windows
    result = await executor.run(target, ExecRequest("big", platform=Platform.WINDOWS,
                                                    max_output_bytes=1000))
    assert len(result.stdout.data) == 1000
    assert result.stdout.truncated
    assert result.stdout.total_bytes == 300_000


def test_run_as_and_posix_shells_are_refused() -> None:
    platform = WindowsPlatform()
    with pytest.raises(InvalidExecRequest, match="runAs"):
        platform.launch(ExecRequest("x", platform=Platform.WINDOWS, run_as="bob"), "a" * 32)
    with pytest.raises(InvalidExecRequest, match="Linux"):
        platform.launch(ExecRequest("x", platform=Platform.WINDOWS, shell=Shell.BASH), "a" * 32)


async def test_input_too_large_for_one_agent_request_is_refused(windows) -> None:
    # A Windows guest takes stdin, env and script in the one guest-exec request: what would
    # make it too large is refused before anything is sent, and the agent answers on.
    peer, executor, target = windows
    with pytest.raises(InvalidExecRequest, match="at most 131072"):
        await executor.run(target, ExecRequest("more", platform=Platform.WINDOWS,
                                               stdin=b"x" * 200_000))
    assert peer.runs == []  # nothing was sent
    result = await executor.run(target, ExecRequest("exit /b 3", platform=Platform.WINDOWS))
    assert result.exit_code == 3


def test_the_kill_leaves_its_reason() -> None:
    run_id = "c" * 32
    for why in KillReason:
        script = decode_powershell(WindowsPlatform().kill(run_id, why=why).args)
        assert f'"$id.{why.value}"' in script and f"$id = '{run_id}'" in script
        assert "taskkill.exe /T /F" in script


async def test_cancel_before_the_start_and_of_an_ended_run(windows) -> None:
    peer, executor, target = windows
    items = executor.stream(target, ExecRequest("dir", platform=Platform.WINDOWS),
                            run_id="d" * 32)
    assert await executor.cancel(target, "d" * 32, platform=Platform.WINDOWS)
    got = [item async for item in items]
    assert len(got) == 1 and isinstance(got[0], ExecResult) and got[0].cancelled
    assert peer.runs == []  # never started
    ended = await executor.run(target, ExecRequest("exit /b 4", platform=Platform.WINDOWS))
    assert not await executor.cancel(target, ended.run_id, platform=Platform.WINDOWS)
