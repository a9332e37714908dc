"""How a command runs in a Windows guest: a PowerShell supervisor passed to ``guest-exec``.

The supervisor is given as ``-EncodedCommand`` (UTF-16LE base64: no quoting or execution-policy
surprises); the run's parameters and the script travel as JSON on its stdin, so a 64 KiB script
never meets Windows' 32 KiB command-line limit.  Like the Linux forms it keeps output and status in
files under ``%ProgramData%\\vmexec``; it prints a status line and enforces the timeout itself
(killing the whole process tree with ``taskkill /T /F``).  ``cmd`` scripts are written in the console's code page (what cmd.exe reads);
PowerShell scripts as UTF-8 with BOM, and their output is forced to UTF-8.  The status line
carries the console code page, so output that is not UTF-8 (a Chinese Windows prints GBK,
cp936) is decoded with it — never garbled.
"""

from __future__ import annotations

import base64
import codecs
import json
import math
from collections.abc import Collection, Sequence

from vmexec.execution.errors import InvalidExecRequest
from vmexec.execution.models import ExecRequest, Shell
from vmexec.execution.platform import (
    KILL_GRACE,
    GuestPlatform,
    KillReason,
    Launch,
    check_run_id,
)
from vmexec.zstack.exec import is_utf8

RUN_DIR = "C:\\ProgramData\\vmexec"
POWERSHELL = "powershell.exe"
_PS_ARGS = ["-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-EncodedCommand"]

SUPERVISOR = r"""
$ErrorActionPreference = 'Stop'
$p = [Console]::In.ReadToEnd() | ConvertFrom-Json
$d = Join-Path $env:ProgramData 'vmexec'
[void](New-Item -ItemType Directory -Force -Path $d)
$f = Join-Path $d $p.id
$cp = [Console]::OutputEncoding.CodePage
$out = [Console]::OpenStandardOutput(); $err = [Console]::OpenStandardError()
function Say($stream, [byte[]]$bytes) { if ($bytes.Length) { $stream.Write($bytes, 0, $bytes.Length) } }
function Fail($why, $msg) {
  [IO.File]::WriteAllText("$f.rc", "setup $why")
  Say $out ([Text.Encoding]::ASCII.GetBytes("VMEXEC1 setup $why`n")); Say $err ([Text.Encoding]::UTF8.GetBytes($msg)); exit 0
}
[IO.File]::WriteAllBytes("$f.in", [Convert]::FromBase64String($p.stdin))
if ($p.shell -eq 'powershell') {
  $body = "[Console]::OutputEncoding = [Text.Encoding]::UTF8`r`n`$OutputEncoding = [Text.Encoding]::UTF8`r`n" + $p.script
  [IO.File]::WriteAllText("$f.ps1", $body, (New-Object Text.UTF8Encoding $true))
  $inner = "powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -File `"$f.ps1`""
} else {
  [IO.File]::WriteAllText("$f.cmd", "@echo off`r`n" + $p.script, [Text.Encoding]::GetEncoding($cp))
  $inner = "`"$f.cmd`""
}
foreach ($k in $p.env.PSObject.Properties) { [Environment]::SetEnvironmentVariable($k.Name, [string]$k.Value, 'Process') }
$env:VMEXEC_RUN_ID = $p.id
$cwd = $d
if ($p.cwd) {
  if (-not (Test-Path -LiteralPath $p.cwd -PathType Container)) { Fail 'working-directory-missing' "working directory $($p.cwd) does not exist in the guest" }
  $cwd = $p.cwd
}
$line = "/d /s /c `"$inner < `"$f.in`" > `"$f.out`" 2> `"$f.err`"`""
try { $proc = Start-Process -FilePath "$env:SystemRoot\System32\cmd.exe" -ArgumentList $line -WorkingDirectory $cwd -NoNewWindow -PassThru }
catch { Fail 'spawn-failed' "$_" }
$null = $proc.Handle
[IO.File]::WriteAllText("$f.pid", "$($proc.Id)")
$state = 'exited'
if (-not $proc.WaitForExit([int]$p.limit * 1000)) {
  [IO.File]::WriteAllText("$f.timeout", '')
  & taskkill.exe /T /F /PID $proc.Id 2>&1 | Out-Null
  [void]$proc.WaitForExit([int]$p.grace * 100 + 5000)
  $state = 'timeout'
}
$rc = $proc.ExitCode
[IO.File]::WriteAllText("$f.rc", "$rc $state $d cp$cp")
Say $out ([Text.Encoding]::ASCII.GetBytes("VMEXEC1 $rc $state $d cp$cp`n"))
exit 0
"""

KILL = r"""
$id = '{run_id}'
$d = Join-Path $env:ProgramData 'vmexec'
try {{ [IO.File]::WriteAllText((Join-Path $d "$id.{why}"), '') }} catch {{ }}
$f = Join-Path $d "$id.pid"
if (Test-Path $f) {{
  $procId = [int](Get-Content $f)
  $p = Get-Process -Id $procId -ErrorAction SilentlyContinue
  # A pid used again (after a reboot) belongs to a process started after the pid file.
  if ($p -and $p.StartTime -le (Get-Item $f).LastWriteTime) {{ & taskkill.exe /T /F /PID $procId 2>&1 | Out-Null }}
}}
"""

CLEANUP = r"""
foreach ($id in @({ids})) {{ Remove-Item -Force -ErrorAction SilentlyContinue -Path "{run_dir}\$id.*" }}
"""
#: Appended to :data:`CLEANUP` when the run directory is swept for files older than the
#: retention.
SWEEP = r"""$old = (Get-Date).AddMinutes(-{minutes})
Get-ChildItem -File -Path "{run_dir}" -ErrorAction SilentlyContinue |
  Where-Object {{ $_.Name -match '^[0-9a-f]{{32}}\.' -and $_.LastWriteTime -lt $old }} |
  Remove-Item -Force -ErrorAction SilentlyContinue
"""


def encode_powershell(script: str) -> list[str]:
    """``powershell.exe`` arguments that run ``script`` exactly as written."""
    return [*_PS_ARGS, base64.b64encode(script.encode("utf-16-le")).decode("ascii")]


def decode_powershell(args: Sequence[str]) -> str:
    """The script inside :func:`encode_powershell`'s arguments (for tests and diagnostics)."""
    return base64.b64decode(args[-1]).decode("utf-16-le")


class WindowsPlatform(GuestPlatform):
    run_dirs = (RUN_DIR,)
    separator = "\\"

    def launch(self, request: ExecRequest, run_id: str, *, run_dir: str = RUN_DIR,
               interpreter: str = POWERSHELL, staged: Collection[str] = ()) -> Launch:
        """Raises: InvalidExecRequest (run-as and POSIX shells do not exist on Windows)."""
        if request.run_as:
            raise InvalidExecRequest("runAs is not supported for Windows guests")
        if request.shell in (Shell.SH, Shell.BASH):
            raise InvalidExecRequest(f"shell {request.shell.value} is for Linux guests")
        params = {
            "id": check_run_id(run_id),
            "script": request.command,
            "stdin": base64.b64encode(request.stdin or b"").decode("ascii"),
            "env": dict(request.env),
            "cwd": request.working_directory or "",
            "shell": "powershell" if request.shell is Shell.POWERSHELL else "cmd",
            "limit": max(1, math.ceil(request.timeout)),
            "grace": KILL_GRACE,
        }
        return Launch(POWERSHELL, encode_powershell(SUPERVISOR),
                      json.dumps(params).encode("utf-8"))

    def kill(self, run_id: str, pid: int | None = None, run_dir: str = RUN_DIR, *,
             why: KillReason = KillReason.TIMEOUT) -> Launch:
        """``taskkill /T /F`` of the run's tree (its supervisor's child, from the pid file):
        the supervisor then writes the status as for any exit."""
        return Launch(POWERSHELL, encode_powershell(
            KILL.format(run_id=check_run_id(run_id), why=why.value)))

    def cleanup(self, run_dir: str, run_ids: Sequence[str], retention: float | None) -> Launch:
        ids = ",".join(f"'{check_run_id(r)}'" for r in run_ids)
        script = CLEANUP.format(ids=ids, run_dir=RUN_DIR)
        if retention is not None:
            script += SWEEP.format(run_dir=RUN_DIR, minutes=max(1, math.ceil(retention / 60)))
        return Launch(POWERSHELL, encode_powershell(script))

    def decode(self, data: Sequence[bytes], code_page: str | None) -> str:
        if is_utf8(data):
            return "utf-8"
        if code_page and code_page != "cp65001":
            try:
                codecs.lookup(code_page)
                return code_page
            except LookupError:
                pass
        return "latin-1"
