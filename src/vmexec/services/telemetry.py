"""What an operator sees of the server: Prometheus metrics, and one log line per execution.

:class:`Metrics` owns a registry of its own (one per app: tests start many apps in one
process, and the global registry would mix them). Three kinds of numbers:

- counted where they happen, through the hooks below (executions, agent calls, API calls,
  runs and their targets, lease takeovers);
- read at scrape time from the state the services keep anyway (hosts and VMs by state from the
  inventory, running jobs, failed and refused logins from the login throttle): nothing is
  maintained on the request path for them;
- ``vmexec_build_info`` (the version).

The hooks execution and run code calls (cheap: a dictionary lookup and an addition each):

- :meth:`Metrics.execution_started` when an execution's command is about to go to the engine,
  and :meth:`Metrics.execution_finished` with an :class:`ExecutionReport` when it ended, once
  per execution whatever the outcome (this also writes the execution's log line), or
  :meth:`Metrics.execution_abandoned` when the server stops under it (ExecutionService does
  all three);
- :meth:`Metrics.run_started`, :meth:`Metrics.run_target_finished` (a target reached its
  final state, ``Skipped`` included), :meth:`Metrics.run_finished`;
- :meth:`Metrics.lease_taken_over` when a node takes over a job another node held;
- :meth:`Metrics.agent_call` (the agent directory's observer) and :meth:`Metrics.api_call`
  (the API middleware).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from vmexec.execution.models import ExecResult

if TYPE_CHECKING:
    from vmexec.services.inventory import Inventory
    from vmexec.services.jobs import JobService
    from vmexec.services.login_throttle import LoginThrottle
    from vmexec.services.output import OutputHub

#: The logger of the one line per execution (``extra`` carries the fields; see vmexec.logs).
EXECUTION_LOG = "vmexec.execution"
execution_log = logging.getLogger(EXECUTION_LOG)

#: Prometheus' text exposition format, as ``GET /metrics`` answers it.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# A trivial command takes ~20-40 ms through the API; a long one up to a day.
_EXECUTION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                      300.0, 1800.0, 3600.0, 86400.0)
# One agent round trip: ~1 ms on a healthy VM, up to the call's timeout on a stuck one.
_AGENT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                  5.0, 10.0, 30.0)
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0)


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    """How one execution ended, for its metrics and its log line.

    ``state`` is the execution's wire state (``Succeeded`` exited 0, ``Failed`` exited
    non-zero or a vmexec error, ``TimedOut``, ``Cancelled``); ``error_code`` the ZStack code of
    a vmexec error (``VM.EXEC.1004``…), None when the command ran. ``total_seconds`` is what the
    API spent on it (submit to result), ``engine_seconds`` the command's own run in the guest
    (None when it never started).
    """

    uuid: str
    vm_uuid: str
    state: str
    total_seconds: float
    account_uuid: str | None = None
    account_name: str | None = None
    run_uuid: str | None = None
    exit_code: int | None = None
    error_code: str | None = None
    engine_seconds: float | None = None
    stdout_bytes: int = 0
    stderr_bytes: int = 0

    @classmethod
    def of(cls, result: ExecResult | None, *, uuid: str, vm_uuid: str, state: str,
           error_code: str | None, total_seconds: float, account_uuid: str | None = None,
           account_name: str | None = None, run_uuid: str | None = None) -> ExecutionReport:
        """The report of an execution that ended with the engine's ``result`` (None: it
        never ran, e.g. the VM was stopped or the agent did not answer)."""
        return cls(
            uuid=uuid, vm_uuid=vm_uuid, state=state, total_seconds=total_seconds,
            account_uuid=account_uuid, account_name=account_name, run_uuid=run_uuid,
            exit_code=result.exit_code if result else None, error_code=error_code,
            engine_seconds=result.duration_ms / 1000 if result else None,
            stdout_bytes=result.stdout.total_bytes if result else 0,
            stderr_bytes=result.stderr.total_bytes if result else 0)

    def log_fields(self) -> dict[str, object]:
        """The log line's fields (no command, no output, no environment: they may hold
        secrets)."""
        return {
            "event": "execution", "execution": self.uuid, "vm": self.vm_uuid,
            "run": self.run_uuid, "account": self.account_name,
            "accountUuid": self.account_uuid, "state": self.state, "exitCode": self.exit_code,
            "errorCode": self.error_code, "durationMs": round(self.total_seconds * 1000),
            "engineMs": (round(self.engine_seconds * 1000)
                         if self.engine_seconds is not None else None),
            "stdoutBytes": self.stdout_bytes, "stderrBytes": self.stderr_bytes,
        }


#: Reads a number of the services at scrape time.
Reading = Callable[[], Mapping[tuple[str, ...], float]]


class _ScrapeTimeCollector(Collector):
    """Gauges and counters whose values the services keep anyway, read when scraped."""

    def __init__(self) -> None:
        self._families: list[tuple[str, str, str, tuple[str, ...], Reading]] = []

    def add(self, kind: str, name: str, documentation: str, labels: tuple[str, ...],
            read: Reading) -> None:
        self._families.append((kind, name, documentation, labels, read))

    def collect(self) -> Iterator[Metric]:
        for kind, name, documentation, labels, read in self._families:
            family: GaugeMetricFamily | CounterMetricFamily
            if kind == "counter":
                family = CounterMetricFamily(name, documentation, labels=labels)
            else:
                family = GaugeMetricFamily(name, documentation, labels=labels)
            for values, number in read().items():
                family.add_metric(list(values), number)
            yield family

    def describe(self) -> Iterator[Metric]:
        return iter(())  # registered without describing: the readings may need a running app


class Metrics:
    """The server's metrics (see the module doc). Methods never raise."""

    def __init__(self, version: str = "unknown") -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        Gauge("vmexec_build_info", "vmexec's version", ["version"], registry=r).labels(
            version).set(1)
        self.executions = Counter(
            "vmexec_executions", "Executions ended, by state and vmexec error code "
            "(error_code is empty when the command ran)", ["state", "error_code"], registry=r)
        self.execution_seconds = Histogram(
            "vmexec_execution_duration_seconds", "What the API spent on an execution, "
            "submit to result", buckets=_EXECUTION_BUCKETS, registry=r)
        self.engine_seconds = Histogram(
            "vmexec_execution_engine_duration_seconds", "The command's run in the guest, "
            "start to end, as the engine measured it", buckets=_EXECUTION_BUCKETS, registry=r)
        self.executions_in_flight = Gauge(
            "vmexec_executions_in_flight", "Executions started and not ended", registry=r)
        self.output_bytes = Counter(
            "vmexec_execution_output_bytes", "Output bytes the commands wrote, by stream",
            ["stream"], registry=r)
        self.agent_calls = Counter(
            "vmexec_agent_calls", "Guest-agent commands sent, by method and error (empty: "
            "answered)", ["method", "error"], registry=r)
        self.agent_seconds = Histogram(
            "vmexec_agent_call_duration_seconds", "Guest-agent round trips, by method",
            ["method"], buckets=_AGENT_BUCKETS, registry=r)
        self.runs_started = Counter("vmexec_runs_started", "Runs started", registry=r)
        self.runs = Counter("vmexec_runs_finished", "Runs ended, by state", ["state"],
                            registry=r)
        self.run_targets = Counter("vmexec_run_targets_finished", "Run targets ended, by state",
                                   ["state"], registry=r)
        self.lease_takeovers = Counter(
            "vmexec_job_lease_takeovers", "Jobs taken over from a node whose lease expired",
            registry=r)
        self.api_calls = Counter(
            "vmexec_api_calls", "API calls answered, by method, route template and status",
            ["method", "route", "status"], registry=r)
        self.api_seconds = Histogram(
            "vmexec_api_call_duration_seconds", "API calls' time to the answer, by method "
            "and route template", ["method", "route"], buckets=_HTTP_BUCKETS, registry=r)
        self._scraped = _ScrapeTimeCollector()
        r.register(self._scraped)
        # labels() costs a lock and a tuple build each: the hooks on every call keep the
        # labelled children they used (label values come from small fixed sets).
        self._agent_children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}
        self._api_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._execution_children: dict[tuple[str, str], Counter] = {}
        self._stdout_bytes = self.output_bytes.labels("stdout")
        self._stderr_bytes = self.output_bytes.labels("stderr")

    # --- hooks --------------------------------------------------------------------------------
    def execution_started(self) -> None:
        self.executions_in_flight.inc()

    def execution_abandoned(self) -> None:
        """An execution started and will not end here (the server stops; it is resumed)."""
        self.executions_in_flight.dec()

    def execution_finished(self, report: ExecutionReport) -> None:
        """Count the execution and write its log line (once per execution started)."""
        self.executions_in_flight.dec()
        key = (report.state, report.error_code or "")
        counter = self._execution_children.get(key)
        if counter is None:
            counter = self._execution_children[key] = self.executions.labels(*key)
        counter.inc()
        self.execution_seconds.observe(report.total_seconds)
        if report.engine_seconds is not None:
            self.engine_seconds.observe(report.engine_seconds)
        self._stdout_bytes.inc(report.stdout_bytes)
        self._stderr_bytes.inc(report.stderr_bytes)
        execution_log.info("execution %s on VM %s: %s", report.uuid, report.vm_uuid,
                           report.state, extra={"fields": report.log_fields()})

    def run_started(self) -> None:
        self.runs_started.inc()

    def run_finished(self, state: str) -> None:
        self.runs.labels(state).inc()

    def run_target_finished(self, state: str) -> None:
        self.run_targets.labels(state).inc()

    def lease_taken_over(self) -> None:
        self.lease_takeovers.inc()

    def agent_call(self, method: str, error: str | None, seconds: float) -> None:
        """One guest-agent command: ``error`` is the agent error's class name (None:
        answered)."""
        key = (method, error or "")
        children = self._agent_children.get(key)
        if children is None:
            children = self._agent_children[key] = (self.agent_calls.labels(*key),
                                                    self.agent_seconds.labels(method))
        children[0].inc()
        children[1].observe(seconds)

    def api_call(self, method: str, route: str, status: int, seconds: float) -> None:
        """One API call answered (``route`` is its template: a bounded set)."""
        key = (method, route, status)
        children = self._api_children.get(key)
        if children is None:
            children = self._api_children[key] = (
                self.api_calls.labels(method, route, str(status)),
                self.api_seconds.labels(method, route))
        children[0].inc()
        children[1].observe(seconds)

    # --- read at scrape time ------------------------------------------------------------------
    def watch(self, *, inventory: Inventory, jobs: JobService, throttle: LoginThrottle,
              output: OutputHub) -> None:
        """Read hosts, VMs, running jobs, watched executions and login failures from these at
        each scrape."""
        c = self._scraped
        c.add("gauge", "vmexec_hosts", "Hosts, by connection status", ("status",),
              lambda: {(status,): n for status, n in inventory.host_counts().items()})
        c.add("gauge", "vmexec_vms", "VMs, by state", ("state",),
              lambda: {(state,): n for state, n in inventory.vm_counts().items()})
        c.add("gauge", "vmexec_hosts_owned", "Hosts this node owns: it lists and watches them "
              "(each host has one owner among the nodes on a database)", (),
              lambda: {(): inventory.owned_host_count()})
        c.add("gauge", "vmexec_nodes_live", "Nodes with a fresh heartbeat on this database at "
              "this node's last host-lease renewal, itself included (the hosts are shared "
              "out among them)", (), lambda: {(): inventory.live_nodes()})
        c.add("gauge", "vmexec_libvirt_connections", "libvirt hosts this node has its shared "
              "connection open to (closed after libvirt_idle_close unused)", (),
              lambda: {(): inventory.libvirt_connections()})
        c.add("counter", "vmexec_host_listings", "Listings of a host's VMs this node made "
              "(resyncs of the hosts it owns)", (), lambda: {(): inventory.host_listings})
        c.add("gauge", "vmexec_jobs_running", "Async jobs of this process running now", (),
              lambda: {(): jobs.running})
        c.add("gauge", "vmexec_executions_watched", "Executions running here whose output "
              "someone reads as it comes (an SSE reader on this node or another): their "
              "output is read from the guest at the live pace", (),
              lambda: {(): output.watched_count()})
        c.add("counter", "vmexec_login_failures", "Logins refused for a wrong name or "
              "password", (), lambda: {(): throttle.failures})
        c.add("counter", "vmexec_login_throttled", "Login attempts refused unchecked after "
              "too many failures, by what was throttled (account, address)", ("by",),
              lambda: {(by,): n for by, n in throttle.refusals.items()})

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format (:data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)
