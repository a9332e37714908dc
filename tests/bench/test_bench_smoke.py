"""The benchmarks (``bench/``, ``make bench``) with tiny counts: every measure runs against the
real components (a lab VM, a ``vmexec serve`` subprocess, bare qemu-ga agents) and the table
has every row. Times are never asserted: this machine is shared and noisy."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

# bench/ is a tool next to the package, not part of it: import it from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.fanout import FanoutConfig
from bench.files import FilesConfig
from bench.large_output import LargeOutputConfig
from bench.latency import METHODS, POLLING, LatencyConfig, schedule
from bench.live_output import LiveConfig
from bench.main import BenchConfig, run_all, write_results
from bench.report import targets
from bench.stats import percentile, summarize
from vmexec.lab import LabVm

TINY = BenchConfig(
    latency=LatencyConfig(iterations=3, polling_iterations=1, warmup=1, traced=2, seed=6),
    fanout=FanoutConfig(agents=4, commands=8, concurrency=4, settle=0.5),
    large=LargeOutputConfig(mib=1, repeats=1, settle=0.5),
    live=LiveConfig(lines=3, interval=0.3, agents=5),
    files=FilesConfig(mib=1, repeats=1),
)


def test_percentiles_interpolate_between_ranks() -> None:
    samples = [float(x) for x in range(1, 11)]
    assert percentile(samples, 50) == 5.5
    assert percentile(samples, 90) == pytest.approx(9.1)
    assert summarize(samples).p99 is None  # too few samples for a p99
    assert summarize(samples * 10).p99 is not None


def test_schedule_runs_every_method_once_per_round_and_polling_rules_in_some() -> None:
    rounds = schedule(20, 4, random.Random(1))
    assert len(rounds) == 20
    for round_ in rounds:
        assert len(round_) == len(set(round_))
        assert set(METHODS) - set(POLLING) <= set(round_)
    for method in POLLING:
        assert sum(method in r for r in rounds) == 4
    assert len({tuple(r) for r in rounds}) > 1  # the order changes from round to round


@pytest.mark.vm
@pytest.mark.agents
def test_bench_runs_and_reports_every_row(lab_vms: list[LabVm], tmp_path: Path) -> None:
    report = run_all(TINY, lab_vms[0])
    out = tmp_path / "latest.md"
    table = write_results(report, out)

    assert out.read_text() == table
    assert json.loads(out.with_suffix(".json").read_text())["machine"]["accel"] in ("KVM", "TCG")
    lat = report.latency
    for method, label in METHODS.items():
        assert label in table
        assert len(lat.samples[method]) == (1 if method in POLLING else 3)
    assert len(lat.server_ms) == 3
    assert set(lat.breakdowns) == {"a", "d", "d_sh", "deferred"}
    for phase in (report.fanout.raw, report.fanout.engine, report.fanout.api,
                  report.fanout.run):
        assert len(phase.ms) == 8
    for row in ("raw asyncio client", "vmexec engine in-process", "vmexec API (sync PUT",
                "vmexec API run"):
        assert row in table
    assert "Server RSS:" in table
    assert len(report.large.seconds) == 1
    assert "### 3. Large output: 1 MiB" in table
    checked = targets(report)
    assert len(report.live.line_ms) == 3
    assert "### 4. Live output" in table and "### 5. Runs of" in table
    live = report.live
    assert not live.failed and min(live.start_kib, live.after_kib, live.peak_kib) > 0
    assert "### 6. A 1 MiB file into and out of a lab VM" in table
    assert len(checked) == 11  # 8, and files: upload, download, memory
    assert report.files is not None and len(report.files.api_down) == 1
    for target in checked:
        assert target.row() in table
        assert target.row().endswith(("| PASS |", "| MISS |"))
