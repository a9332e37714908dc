"""The exec service: run a command in a guest through its agent and return what happened."""

from __future__ import annotations

from collections.abc import AsyncIterator

from vmexec.agent.directory import AgentDirectory
from vmexec.agent.targets import AgentTarget
from vmexec.execution.models import ExecRequest, ExecResult, OutputChunk


class Executor:
    """Runs commands in guests. One instance serves every VM; safe for concurrent use.

    Raises (from every method): :class:`vmexec.execution.errors.ExecError` subclasses.
    """

    def __init__(self, agents: AgentDirectory) -> None:
        self.agents = agents

    async def run(self, target: AgentTarget, request: ExecRequest, *,
                  run_id: str | None = None) -> ExecResult:
        """Run ``request`` in the guest behind ``target`` until it exits or times out.

        ``run_id`` (32 hex chars, default: a new one) names the run in the guest, so that
        :meth:`recover` can collect its result after a lost reply or a restart.
        """
        raise NotImplementedError

    def stream(self, target: AgentTarget, request: ExecRequest, *,
               run_id: str | None = None) -> AsyncIterator[OutputChunk | ExecResult]:
        """Like :meth:`run`, yielding output chunks as they appear and the result last."""
        raise NotImplementedError

    async def recover(self, target: AgentTarget, run_id: str, *,
                      timeout: float | None = None) -> ExecResult:
        """Collect the result of run ``run_id`` from the guest (waiting while it still runs)."""
        raise NotImplementedError
