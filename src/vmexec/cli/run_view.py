"""What a run looks like in the terminal: the targets' output as whole lines prefixed with the
VM's name (or each VM's output in one block when it ends: ``group``), a live progress bar on a
terminal, and a summary table at the end (on stderr, so stdout keeps only the guests' output).
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from vmexec.cli.lines import LineBuffer, prefix_of, prefixed
from vmexec.client import (
    Run,
    RunEvent,
    RunFinished,
    RunTarget,
    TargetFinished,
    TargetOutput,
    TargetStarted,
)
from vmexec.client.events import Stream

SUCCEEDED = "Succeeded"
SKIPPED = "Skipped"


class Sink(Protocol):
    def write(self, stream: Stream, data: bytes) -> None: ...


class RawSink:
    """Bytes to our stdout/stderr as they are, flushed at once."""

    def write(self, stream: Stream, data: bytes) -> None:
        out = sys.stdout.buffer if stream == "stdout" else sys.stderr.buffer
        out.write(data)
        out.flush()


class ConsoleSink:
    """Lines through the console that draws the progress bar, so they print above it."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def write(self, stream: Stream, data: bytes) -> None:
        text = data.decode("utf-8", "replace")
        self._console.out(text, end="", highlight=False,
                          style="red" if stream == "stderr" else None)


@dataclass(frozen=True)
class ViewOptions:
    prefix: bool = True
    group: bool = False
    progress: bool = False


def show_progress() -> bool:
    """A progress bar only when both our outputs are a terminal (a pipe gets clean lines)."""
    return sys.stdout.isatty() and sys.stderr.isatty()


class RunView:
    """Renders a run's events. Use as a context manager (it owns the progress bar)."""

    def __init__(self, run: Run, options: ViewOptions) -> None:
        self._options = options
        self._names = {t.vm_instance_uuid: t.name for t in run.targets}
        self._width = max((len(name) for name in self._names.values()), default=0)
        self._lines: LineBuffer[tuple[str, Stream]] = LineBuffer()
        self._blocks: dict[str, list[tuple[Stream, bytes]]] = defaultdict(list)
        self._states: Counter[str] = Counter()
        self._running = 0
        self._total = run.total
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._sink: Sink = RawSink()
        if options.progress:
            console = Console(file=sys.stderr, highlight=False)
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[counts]}"), console=console, transient=True,
                redirect_stdout=False, redirect_stderr=False)
            self._task = self._progress.add_task("run", total=self._total or None,
                                                 counts=self._counts_text())
            self._sink = ConsoleSink(console)

    def __enter__(self) -> RunView:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush_all()
        if self._progress is not None:
            self._progress.stop()

    # --- events ------------------------------------------------------------------------------
    def handle(self, event: RunEvent) -> None:
        if isinstance(event, TargetStarted):
            if event.vm_instance_name:
                self._name_vm(event.vm_instance_uuid, event.vm_instance_name)
            self._running += 1
        elif isinstance(event, TargetOutput):
            self._output(event.vm_instance_uuid, event.stream, event.data)
        elif isinstance(event, TargetFinished):
            self._finished(event.vm_instance_uuid, event.state)
        elif isinstance(event, RunFinished):
            self._states = Counter({state: n for state, n in event.run.counts.items() if n})
            self._running = 0
        self._refresh()

    def _name_vm(self, vm: str, name: str) -> None:
        self._names[vm] = name
        self._width = max(self._width, len(name))

    def _output(self, vm: str, stream: Stream, data: bytes) -> None:
        if self._options.group:
            self._blocks[vm].append((stream, data))
            return
        lines = self._lines.feed((vm, stream), data)
        if lines:
            self._write(vm, stream, lines)

    def _finished(self, vm: str, state: str) -> None:
        if state != SKIPPED and self._running > 0:
            self._running -= 1
        self._states[state] += 1
        if self._options.group:
            self._write_block(vm)
        else:
            for stream in ("stdout", "stderr"):
                rest = self._lines.end((vm, stream))
                if rest:
                    self._write(vm, stream, rest)

    def flush_all(self) -> None:
        """Write what is held (partial lines, blocks of VMs that did not finish)."""
        for vm in list(self._blocks):
            self._write_block(vm)
        for source in self._lines.pending():
            vm, stream = source
            self._write(vm, stream, self._lines.end(source))

    def _write_block(self, vm: str) -> None:
        buffers: dict[Stream, bytes] = {"stdout": b"", "stderr": b""}
        for stream, data in self._blocks.pop(vm, []):
            buffers[stream] += data
        for stream, data in buffers.items():
            if data:
                lines = data.split(b"\n")
                whole = [line + b"\n" for line in lines[:-1]]
                if lines[-1]:
                    whole.append(lines[-1] + b"\n")
                self._write(vm, stream, whole)

    def _write(self, vm: str, stream: Stream, lines: Sequence[bytes]) -> None:
        if self._options.prefix:
            data = prefixed(prefix_of(self._names.get(vm, vm), self._width), lines)
        else:
            data = b"".join(lines)
        self._sink.write(stream, data)

    # --- progress ----------------------------------------------------------------------------
    def _counts_text(self) -> str:
        done = self._states[SUCCEEDED]
        skipped = self._states[SKIPPED]
        failed = sum(self._states.values()) - done - skipped
        return (f"done {done}  failed {failed}  running {self._running}  "
                f"skipped {skipped}")

    def _refresh(self) -> None:
        if self._progress is None or self._task is None:
            return
        self._progress.update(self._task, completed=sum(self._states.values()),
                              counts=self._counts_text())


def summary_counts(counts: Mapping[str, int]) -> str:
    """``3 targets: 2 succeeded, 1 failed`` (states in lower case, zero counts left out)."""
    total = sum(counts.values())
    parts = [f"{n} {state.lower()}" for state, n in sorted(counts.items()) if n]
    return f"{total} target{'s' if total != 1 else ''}: {', '.join(parts) or 'none'}"


def target_counts(targets: Sequence[RunTarget]) -> dict[str, int]:
    return dict(Counter(t.state or "Unknown" for t in targets))


def print_summary(run: Run) -> None:
    """The targets' table, then one line for the run, on stderr."""
    console = Console(file=sys.stderr, width=None if sys.stderr.isatty() else 1000,
                      highlight=False)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("VM", "STATE", "EXIT", "ERROR", "EXECUTION"):
        table.add_column(column, no_wrap=True, overflow="ignore")
    for target in run.targets:
        table.add_row(target.name, target.state or "-",
                      "-" if target.exit_code is None else str(target.exit_code),
                      target.error_code or "-", target.execution_uuid or "-")
    console.print(table)
    counts = run.counts or target_counts(run.targets)
    console.print(f"run {run.uuid} {run.state or '?'}: {summary_counts(counts)}")


def all_succeeded(run: Run) -> bool:
    """Whether every target of ``run`` succeeded (and the run did)."""
    counts = run.counts or target_counts(run.targets)
    return run.state == SUCCEEDED and all(state == SUCCEEDED for state, n in counts.items()
                                          if n)
