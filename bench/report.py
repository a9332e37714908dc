"""The bench's one table: every row, the ratios, PASS/MISS against each target (markdown)."""

from __future__ import annotations

from dataclasses import dataclass

from .fanout import FanoutResult, Phase
from .files import FilesResult
from .large_output import MIB, LargeOutputResult
from .latency import METHODS, LatencyResult
from .live_output import LiveResult
from .machine import Machine
from .stats import Summary, summarize
from .trace import RunBreakdown

#: (d) and (e): p50 at most SLOPE x raw p50 + OFFSET_MS.
SLOPE, OFFSET_MS = 1.2, 5.0
#: (e) at least this many times faster than the 1 s polling rule.
POLLING_FACTOR = 20.0
#: Fan-out through the API: at least this fraction of the raw client's commands/s.
FANOUT_FRACTION = 0.7
#: Large output: server RSS growth at most this many times the output size.
MEMORY_FACTOR = 3.0
#: Runs over many agents: server RSS growth per in-flight target at most this (KiB; issue
#: 16's 20, within issue 11's 50) ...
INFLIGHT_KIB = 20.0
#: ... and idle RSS per VM the server has run a command on at most this (KiB; issue 16).
PER_VM_KIB = 50.0
#: Files through the API: at least this fraction of the raw agent loop's throughput ...
FILES_FRACTION = 0.8
#: ... and server RSS growth at most this (MiB), whatever the file's size.
FILES_GROWTH_MIB = 32


@dataclass(frozen=True, slots=True)
class Target:
    what: str
    measured: str
    passed: bool

    def row(self) -> str:
        return f"| {self.what} | {self.measured} | {'PASS' if self.passed else 'MISS'} |"


@dataclass
class Report:
    machine: Machine
    seconds: float
    latency: LatencyResult
    fanout: FanoutResult
    large: LargeOutputResult
    live: LiveResult
    #: Measure 6 (None in reports from before it).
    files: FilesResult | None = None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _mib(kib: float) -> str:
    return f"{kib / 1024:.1f}"


def _summary_cells(s: Summary) -> str:
    return f"{s.n} | {_ms(s.p50)} | {_ms(s.p90)} | {_ms(s.p99)}"


def targets(report: Report) -> list[Target]:
    lat = {m: summarize(v) for m, v in report.latency.samples.items()}
    a, c, d, e = lat["a"].p50, lat["c"].p50, lat["d"].p50, lat["e"].p50
    c_pve = lat["c_pve"].p50
    bound = SLOPE * a + OFFSET_MS
    fan, large = report.fanout, report.large
    raw_rate, api_rate = fan.raw.rate, fan.api.rate
    growth_limit = MEMORY_FACTOR * large.size / 1024
    return [
        Target(f"(d) engine p50 <= {SLOPE} x (a) p50 + {OFFSET_MS:g} ms",
               f"{d:.1f} ms vs <= {bound:.1f} ms; (d)/(a) = {d / a:.2f}x", d <= bound),
        Target(f"(e) API p50 <= {SLOPE} x (a) p50 + {OFFSET_MS:g} ms",
               f"{e:.1f} ms vs <= {bound:.1f} ms; (e)/(a) = {e / a:.2f}x", e <= bound),
        Target(f"(e) API >= {POLLING_FACTOR:g}x faster than (c) polling rule (p50)",
               f"(c)/(e) = {c / e:.1f}x; Proxmox's (c')/(e) = {c_pve / e:.1f}x",
               c / e >= POLLING_FACTOR),
        Target(f"fan-out: API >= {FANOUT_FRACTION} x raw commands/s",
               f"{api_rate:.0f} vs {raw_rate:.0f} /s = {api_rate / raw_rate:.2f}x",
               api_rate >= FANOUT_FRACTION * raw_rate),
        Target(f"fan-out: API run >= {FANOUT_FRACTION} x raw commands/s",
               f"{fan.run.rate:.0f} vs {raw_rate:.0f} /s = {fan.run.rate / raw_rate:.2f}x",
               fan.run.rate >= FANOUT_FRACTION * raw_rate),
        Target(f"{large.config.mib} MiB output: server RSS growth <= {MEMORY_FACTOR:g} x "
               f"{large.config.mib} MiB",
               f"{_mib(large.growth_kib)} MiB vs <= {_mib(growth_limit)} MiB",
               large.growth_kib <= growth_limit),
        Target(f"run over {report.live.config.agents} agents: server RSS growth <= "
               f"{INFLIGHT_KIB:g} KiB per in-flight target",
               f"{report.live.per_inflight_kib:.1f} KiB; failed targets: "
               f"{sum(report.live.failed.values())}",
               report.live.per_inflight_kib <= INFLIGHT_KIB and not report.live.failed),
        Target(f"run over {report.live.config.agents} agents: server idle RSS <= "
               f"{PER_VM_KIB:g} KiB per VM it ran a command on",
               f"{report.live.per_vm_after_kib:.1f} KiB",
               report.live.per_vm_after_kib <= PER_VM_KIB),
        *_files_targets(report.files),
    ]


def _files_targets(files: FilesResult | None) -> list[Target]:
    if files is None:
        return []
    rows = []
    for way, api_s, raw_s in (("upload", files.api_up, files.raw_up),
                              ("download", files.api_down, files.raw_down)):
        api_rate, raw_rate = files.mib_per_s(api_s), files.mib_per_s(raw_s)
        rows.append(Target(
            f"{files.config.mib} MiB file {way}: API >= {FILES_FRACTION} x raw guest-file "
            "loop", f"{api_rate:.1f} vs {raw_rate:.1f} MiB/s = {api_rate / raw_rate:.2f}x",
            api_rate >= FILES_FRACTION * raw_rate))
    rows.append(Target(f"{files.config.mib} MiB file both ways: server RSS growth <= "
                       f"{FILES_GROWTH_MIB} MiB", f"{_mib(files.growth_kib)} MiB",
                       files.growth_kib <= FILES_GROWTH_MIB * 1024))
    return rows


def _files(files: FilesResult | None) -> list[str]:
    if files is None:
        return []
    cells = " | ".join(f"{files.mib_per_s(s):.1f}" for s in (
        files.raw_up, files.api_up, files.raw_down, files.api_down))
    return [
        "", f"### 6. A {files.config.mib} MiB file into and out of a lab VM "
            "(`PUT`/`GET …/files` vs a raw guest-file loop through libvirt)", "",
        "Best of the repeats; the raw loop uses the same piece sizes (a write request within "
        "what qemu-ga takes, a read reply within libvirt's limits).", "",
        "| n | raw up MiB/s | API up MiB/s | raw down MiB/s | API down MiB/s | "
        "server RSS idle MiB | peak MiB | growth MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {len(files.api_up)} | {cells} | {_mib(min(files.idle_kib))} | "
        f"{_mib(max(files.peak_kib))} | {_mib(files.growth_kib)} |",
    ]


def _latency(result: LatencyResult) -> list[str]:
    lines = ["### 1. Single-command latency: `echo hi` on one lab VM (ms)", "",
             "Methods interleaved in a random order each round, after a warm-up. (a)-(c) run "
             "`sh -c 'echo hi'`; the engine runs the command under bash by default (issue 3), "
             "(d') under sh.", "",
             "| method | n | p50 | p90 | p99 |", "|---|---:|---:|---:|---:|"]
    p50 = {m: summarize(v).p50 for m, v in result.samples.items()}
    for method, label in METHODS.items():
        lines.append(f"| {label} | {_summary_cells(summarize(result.samples[method]))} |")
    ratios = [("(a')/(a)", "a_bash", "a"), ("(a'')/(a)", "a_launch", "a"),
              ("(b)/(a)", "b", "a"), ("(d)/(a)", "d", "a"), ("(d')/(a)", "d_sh", "a"),
              ("(e)/(a)", "e", "a"), ("(e)/(d)", "e", "d"), ("(c)/(e)", "c", "e"),
              ("(c')/(e)", "c_pve", "e")]
    lines += ["", "Ratios of p50: " + ", ".join(f"{name} = {p50[x] / p50[y]:.2f}"
                                               for name, x, y in ratios) + "."]
    if result.server_ms:
        server = summarize(result.server_ms)
        e = summarize(result.samples["e"])
        lines += ["", f"(e) breakdown: the engine's own time in the server (`durationMs`) "
                      f"p50 {server.p50:.0f} ms, so HTTP, session check, job and execution "
                      f"records add about {e.p50 - server.p50:.0f} ms at p50."]
    bound = SLOPE * p50["a"] + OFFSET_MS
    lines += ["", f"What the guest alone makes of the engine's launch, with no vmexec code "
                  f"around it: (a'') p50 {p50['a_launch']:.1f} ms (bash alone, (a'): "
                  f"{p50['a_bash']:.1f} ms) against the latency targets' bound "
                  f"{SLOPE:g} x (a) + {OFFSET_MS:g} ms = {bound:.1f} ms."]
    return lines


_CALL_ORDER = ("guest-exec", "guest-exec-status", "guest-file-open", "guest-file-read",
               "guest-file-seek", "guest-file-close")


def _breakdown(breakdowns: dict[str, RunBreakdown]) -> list[str]:
    if not breakdowns:
        return []
    commands = sorted({c for b in breakdowns.values() for c in b.calls},
                      key=lambda c: (_CALL_ORDER.index(c) if c in _CALL_ORDER
                                     else len(_CALL_ORDER), c))
    runs = breakdowns["a"].runs if "a" in breakdowns else 0
    lines = ["", f"#### Where the time goes: agent calls per run ({runs} traced runs of each; "
                 "medians, the deferred row a mean; cells are calls / ms)", "",
             "| method | wall ms | " + " | ".join(f"`{c}`" for c in commands)
             + " | not in agent calls ms |",
             "|---|---:|" + "---:|" * len(commands) + "---:|"]
    for method, b in breakdowns.items():
        cells = [f"{b.calls[c][0]:.2g} / {b.calls[c][1]:.1f}" if c in b.calls else "-"
                 for c in commands]
        if method == "deferred":
            label, wall, outside = "engine, deferred (after the run, per run)", "-", "-"
        else:
            label, wall = METHODS[method].split(" ", 1)[0], f"{b.wall_ms:.1f}"
            outside = f"{b.wall_ms - b.agent_ms:.1f}"
        lines.append(f"| {label} | {wall} | " + " | ".join(cells) + f" | {outside} |")
    return lines


def _fanout_row(label: str, phase: Phase) -> str:
    cpu = " / ".join(f"{phase.per_command(x):.1f}" for x in
                     (phase.cpu_bench_ms, phase.cpu_server_ms, phase.cpu_agents_ms))
    return (f"| {label} | {phase.rate:.0f} | {_summary_cells(summarize(phase.ms))} | "
            f"{cpu} |")


def _fanout(fan: FanoutResult) -> list[str]:
    cfg = fan.config
    return [
        "", f"### 2. Fan-out: {cfg.commands} x `echo hi` over {cfg.agents} bare agents, "
            f"concurrency {cfg.concurrency}", "",
        "Bare agents are real `qemu-ga -m unix-listen` processes on the host (control-plane "
        "load only), registered in the API as one agent-socket-directory host. An agent serves "
        "one client at a time, so the clients take turns: raw (half), engine, API, raw (half). "
        "CPU is per command, in the bench process (the client; the engine runs there) / the "
        "server / the agents (qemu-ga and what it ran), including deferred cleanup.", "",
        "| client | commands/s | n | p50 ms | p90 ms | p99 ms | CPU ms: bench / server / "
        "agents |",
        "|---|---:|---:|---:|---:|---:|---:|",
        _fanout_row("raw asyncio client (`UnixSocketTransport` + `GuestAgent`, 2 ms polls)",
                    fan.raw),
        _fanout_row("vmexec engine in-process (`Executor.run`, `SocketTarget`)", fan.engine),
        _fanout_row("vmexec API (sync PUT ExecuteGuestVmCommand, httpx)", fan.api),
        _fanout_row("vmexec API run (one POST .../commands/runs of every command; "
                    "latency = the run's)", fan.run),
        "", f"Server RSS: {_mib(fan.start_kib)} MiB after start, {_mib(fan.idle_kib)} MiB idle "
            f"after the warm-up, peak {_mib(fan.peak_kib)} MiB while the API ran: "
            f"{fan.per_inflight_kib:.0f} KiB per in-flight command "
            f"((peak - idle) / {cfg.concurrency}).",
    ]


def _large(large: LargeOutputResult) -> list[str]:
    time_s, server = summarize(large.seconds), summarize(large.server_ms)
    return [
        "", f"### 3. Large output: {large.config.mib} MiB of stdout from a lab VM through the API",
        "", "| n | time p50 s | engine part (`durationMs`) p50 s | server RSS idle MiB | "
            "peak MiB | growth MiB (worst repeat) |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {time_s.n} | {time_s.p50:.2f} | {server.p50 / 1000:.2f} | "
        f"{_mib(min(large.idle_kib))} | {_mib(max(large.peak_kib))} | "
        f"{_mib(large.growth_kib)} |",
    ]


def _live(live: LiveResult) -> list[str]:
    cfg = live.config
    lines = summarize(live.line_ms)
    return [
        "", f"### 4. Live output: a line every {cfg.interval:g} s, followed over SSE "
            "(`/output`), on a bare agent", "",
        "Latency from the line's own wall-clock time (`date +%s.%N` in the command) to its "
        "SSE event at the client: the engine's adaptive follow interval plus the event's way "
        "out.", "", "| n | p50 ms | p90 ms | p99 ms |", "|---:|---:|---:|---:|",
        f"| {_summary_cells(lines)} |",
        "", f"### 5. Runs of `sleep 2; echo hi` over {cfg.agents} bare agents: a tenth of "
            "them at a time, then all at once", "",
        "Server RSS before the agents were registered, idle once they were, idle after the "
        "first run (per VM: over the RSS before), and the peak of the second run (per "
        "in-flight target: over the idle RSS before it).", "",
        "| all-at-once run s | server RSS before MiB | registered MiB | idle after the first "
        "run MiB | per VM KiB | peak in the second MiB | per in-flight target KiB |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {live.run_seconds:.1f} | {_mib(live.start_kib)} | {_mib(live.idle_kib)} | "
        f"{_mib(live.after_kib)} | {live.per_vm_after_kib:.1f} | {_mib(live.peak_kib)} | "
        f"{live.per_inflight_kib:.1f} |",
        "", ("Every target succeeded." if not live.failed else
             "Targets that failed: " + ", ".join(f"{n} x {code}" for code, n in
                                                 sorted(live.failed.items())) + "."),
    ]


def render(report: Report) -> str:
    lines = ["## vmexec bench", "", report.machine.line(),
             f"· run took {report.seconds:.0f} s", "",
             "### Targets", "", "| target | measured | result |", "|---|---|---|"]
    lines += [t.row() for t in targets(report)]
    lines += ["", *_latency(report.latency), *_breakdown(report.latency.breakdowns)]
    lines += _fanout(report.fanout) + _large(report.large) + _live(report.live)
    lines += _files(report.files)
    return "\n".join(lines) + "\n"


__all__ = ["MIB", "Report", "Target", "render", "targets"]
