"""The exec engine on real lab VMs: libvirt + QEMU guests running the real qemu-ga."""

from __future__ import annotations

import asyncio

import pytest
from fixtures.engine import target_of

from vmexec.agent.targets import LibvirtTarget
from vmexec.execution.cleanup import CLEANUP_INTERVAL
from vmexec.execution.engine import CLEANUP_DELAY, Executor
from vmexec.execution.models import ExecRequest, ExecResult, OutputChunk, Shell

pytestmark = pytest.mark.vm

MiB = 1024 * 1024


async def run(executor: Executor, vm: LibvirtTarget, command: str, **kw: object) -> ExecResult:
    return await executor.run(vm, ExecRequest(command, **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize(("command", "code"), [("true", 0), ("false", 1), ("exit 42", 42),
                                               ("no-such-command-here", 127)])
async def test_exit_codes(executor: Executor, vm: LibvirtTarget, command: str, code: int) -> None:
    result = await run(executor, vm, command)
    assert result.exit_code == code
    assert result.signal is None
    assert not result.timed_out


async def test_killed_by_signal(executor: Executor, vm: LibvirtTarget) -> None:
    result = await run(executor, vm, "echo before; kill -KILL $$")
    assert result.signal == 9
    assert result.exit_code == 137
    assert result.stdout.data == b"before\n"


async def test_stdout_and_stderr_are_separate(executor: Executor, vm: LibvirtTarget) -> None:
    only_err = await run(executor, vm, "echo oops >&2")
    assert (only_err.stdout.data, only_err.stderr.data) == (b"", b"oops\n")
    both = await run(executor, vm, "echo out; echo err >&2; echo out2")
    assert both.stdout.text == "out\nout2\n"
    assert both.stderr.text == "err\n"
    assert both.stdout.total_bytes == 9
    assert not both.stdout.truncated


async def test_binary_and_non_utf8_output(executor: Executor, vm: LibvirtTarget) -> None:
    result = await run(executor, vm, r"printf '\000\001\377\376'; printf '\344\275' >&2")
    assert result.stdout.data == b"\x00\x01\xff\xfe"
    assert result.stderr.data == b"\xe4\xbd"
    assert result.stderr.text == "\ufffd"  # decoded with replacement, never an exception


async def test_one_mebibyte(executor: Executor, vm: LibvirtTarget) -> None:
    result = await run(executor, vm, "head -c 1048576 /dev/zero | tr '\\0' a")
    assert result.stdout.data == b"a" * MiB
    assert (result.stdout.total_bytes, result.stdout.truncated) == (MiB, False)


async def test_output_beyond_16_mib_is_truncated_with_its_size(
        executor: Executor, vm: LibvirtTarget) -> None:
    result = await run(executor, vm, "head -c 17825792 /dev/zero; echo done >&2", timeout=300)
    assert len(result.stdout.data) == 16 * MiB
    assert result.stdout.truncated
    assert result.stdout.total_bytes == 17 * MiB
    assert result.stderr.text == "done\n"


async def test_custom_output_limit(executor: Executor, vm: LibvirtTarget) -> None:
    result = await run(executor, vm, "seq 1 100000", max_output_bytes=10)
    assert result.stdout.data == b"1\n2\n3\n4\n5\n"
    assert result.stdout.truncated
    assert result.stdout.total_bytes == len("".join(f"{i}\n" for i in range(1, 100001)))


async def test_multi_line_script(executor: Executor, vm: LibvirtTarget) -> None:
    script = """set -e
greet() { echo "hello $1"; }
greet world
cat <<EOF
heredoc line
EOF
for i in 1 2 3; do printf '%s' "$i"; done
echo
"""
    result = await run(executor, vm, script)
    assert result.stdout.text == "hello world\nheredoc line\n123\n"
    assert result.exit_code == 0


async def test_runs_under_bash_by_default(executor: Executor, vm: LibvirtTarget) -> None:
    result = await run(executor, vm, 'echo "${BASH_VERSION:+bash}"; [[ 1 == 1 ]] && echo ok')
    assert result.stdout.text == "bash\nok\n"
    sh = await run(executor, vm, 'echo "${BASH_VERSION:-plain sh}"', shell=Shell.SH)
    assert sh.stdout.text == "plain sh\n"


async def test_shebang_python_script(executor: Executor, vm: LibvirtTarget) -> None:
    script = ("#!/usr/bin/env python3\nimport sys\n"
              "print('py', sys.version_info.major)\nsys.exit(3)\n")
    result = await run(executor, vm, script)
    assert result.stdout.text == "py 3\n"
    assert result.exit_code == 3


async def test_stdin_env_and_working_directory(executor: Executor, vm: LibvirtTarget) -> None:
    result = await run(executor, vm, 'read -r line; echo "got $line"; echo "$A|$B"; pwd; cat',
                       stdin=b"first\nrest of input\n", env={"A": "x y", "B": "it's \"q\""},
                       working_directory="/tmp")
    assert result.stdout.text == "got first\nx y|it's \"q\"\n/tmp\nrest of input\n"


async def test_run_as_another_user(executor: Executor, vm: LibvirtTarget) -> None:
    result = await run(executor, vm, "id -un; id -u", run_as="vmuser")
    assert result.stdout.text.split() == ["vmuser", "1000"]
    root = await run(executor, vm, "id -u")
    assert root.stdout.text == "0\n"


async def test_timeout_kills_the_whole_process_tree(executor: Executor, vm: LibvirtTarget) -> None:
    script = """sleep 311 &
sleep 312 &
(setsid sleep 313 &)
sh -c 'trap "" TERM; sleep 314' &
echo started
sleep 315
"""
    result = await run(executor, vm, script, timeout=3)
    assert result.timed_out
    assert result.stdout.text == "started\n"
    leftovers = await run(executor, vm, "ps | grep 'sleep 31[1-5]' | grep -v grep || true")
    assert leftovers.stdout.text == ""


async def test_background_process_holding_output_does_not_block(
        executor: Executor, vm: LibvirtTarget) -> None:
    result = await run(executor, vm, "sleep 47 & echo done", timeout=120)
    assert result.stdout.text == "done\n"
    assert result.exit_code == 0
    assert result.duration_ms < 47_000  # finished when the command did, not the sleep
    await run(executor, vm, "pkill -f 'sleep 47' || true")


async def test_hostname_proves_which_vm_answered(executor: Executor, lab_vms) -> None:
    results = await asyncio.gather(*(run(executor, target_of(v), "hostname") for v in lab_vms))
    assert [r.stdout.text.strip() for r in results] == [v.name for v in lab_vms]


async def test_twenty_concurrent_commands_on_one_vm(executor: Executor, vm: LibvirtTarget) -> None:
    results = await asyncio.gather(*(run(executor, vm, f"echo {i}; echo e{i} >&2; exit {i % 5}")
                                     for i in range(20)))
    for i, result in enumerate(results):
        assert (result.stdout.text, result.stderr.text, result.exit_code) == (
            f"{i}\n", f"e{i}\n", i % 5)
    assert len({r.run_id for r in results}) == 20


async def test_concurrent_commands_on_several_vms(executor: Executor, lab_vms) -> None:
    jobs = [(v, i) for v in lab_vms for i in range(7)]
    results = await asyncio.gather(*(run(executor, target_of(v), f"echo {i} $(hostname)")
                                     for v, i in jobs))
    for (v, i), result in zip(jobs, results, strict=True):
        assert result.stdout.text == f"{i} {v.name}\n"


async def test_streaming_yields_output_while_running(executor: Executor, vm: LibvirtTarget) -> None:
    items: list[OutputChunk | ExecResult] = []
    async for item in executor.stream(vm, ExecRequest(
            "for i in 1 2 3; do echo line$i; sleep 1; done; echo end >&2")):
        items.append(item)
    chunks = [i for i in items if isinstance(i, OutputChunk)]
    result = items[-1]
    assert isinstance(result, ExecResult)
    assert len(chunks) >= 2  # output arrived in pieces, before the end
    assert b"".join(c.data for c in chunks if c.stream == "stdout") == b"line1\nline2\nline3\n"
    assert b"".join(c.data for c in chunks if c.stream == "stderr") == b"end\n"
    assert result.stdout.text == "line1\nline2\nline3\n"


async def test_collected_runs_leave_no_files(executor: Executor, vm: LibvirtTarget) -> None:
    first = await run(executor, vm, "echo x")
    look = (f"ls /var/lib/vmexec /run/vmexec /tmp/vmexec 2>/dev/null "
            f"| grep -c {first.run_id} || true")
    # The guest's cleanup is due CLEANUP_DELAY after the run ended, or CLEANUP_INTERVAL after
    # the guest's previous cleanup (an earlier test's): look until then, and a while beyond
    # for a loaded machine, not at a fixed moment.
    deadline = asyncio.get_running_loop().time() + CLEANUP_DELAY + CLEANUP_INTERVAL + 30
    while (left := (await run(executor, vm, look)).stdout.text) != "0\n":
        assert asyncio.get_running_loop().time() < deadline, f"{left.strip()} files left"
        await asyncio.sleep(1)
