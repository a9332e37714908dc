"""Job leases: which node runs an unfinished API job, so that several nodes share a database.

An *unfinished* job is one still running, or done with its webhook still to deliver. Each has
an owner node (``owner_node``) until ``lease_expires``:

- the node that starts a job owns it from its INSERT on, and renews the leases of all its jobs
  in one UPDATE every third of a lease (:func:`renew`);
- every node claims the jobs whose lease expired (:func:`claim`), atomically: the UPDATE
  re-checks the expiry on the row it locks, so of two nodes claiming at once one gets each
  job, and rows locked by a claim in progress are skipped (``FOR UPDATE SKIP LOCKED``);
- storing a reply and delivering a webhook are UPDATEs ``WHERE uuid = ? AND owner_node = ?``
  (:func:`owned`): a node that lost a job (silent longer than its lease, a peer took it over)
  stores nothing and sends nothing;
- a node shutting down sets its leases to expire now (:func:`release`), so a peer takes its
  jobs over at its next look rather than after the lease.

Lease times are the nodes' clocks (UTC): they must agree to well within a lease (NTP).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Row,
    Table,
    and_,
    bindparam,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from vmexec.db.models import Job, utcnow

_JOBS = cast(Table, Job.__table__)

#: The job states and webhook state that make a job unfinished (see the module doc).
RUNNING = "running"
DONE = "done"
PENDING_WEBHOOK = "pending"
#: Jobs claimed by one statement at most (the rest at the next look).
CLAIM_BATCH = 200
#: Bounds of the interval between two looks for expired leases.
LOOK_MIN_SECONDS = 0.5
LOOK_MAX_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class NodeLease:
    """A node's id and the length of the leases it takes."""

    node: str
    seconds: float = 30.0

    @property
    def renew_every(self) -> float:
        """Seconds between renewals: a third of the lease, so that two renewals may fail."""
        return self.seconds / 3

    @property
    def look_every(self) -> float:
        """Seconds between two looks for expired leases."""
        return min(max(self.seconds / 4, LOOK_MIN_SECONDS), LOOK_MAX_SECONDS)

    def until(self, now: datetime | None = None) -> datetime:
        return (now or utcnow()) + timedelta(seconds=self.seconds)


def _unfinished() -> ColumnElement[bool]:
    return or_(_JOBS.c.state == RUNNING,
               and_(_JOBS.c.state == DONE, _JOBS.c.webhook_state == PENDING_WEBHOOK))


def _expired(now: datetime) -> ColumnElement[bool]:
    # No lease at all: a job from before leases existed.
    return or_(_JOBS.c.lease_expires.is_(None), _JOBS.c.lease_expires < now)


async def claim(db: AsyncSession, lease: NodeLease, *, everything: bool = False,
                own: bool = False) -> Sequence[Row[Any]]:
    """Take over unfinished jobs whose lease expired (``own``: also those already owned by
    this node id, i.e. by a previous process of it; ``everything``: every unfinished job, for
    a database only this node uses). Returns their rows (uuid, api, request, webhook, state,
    status, result); the caller commits."""
    now = utcnow()
    if everything:
        claimable = _unfinished()
    else:
        taken_over = _expired(now)
        if own:
            taken_over = or_(taken_over, _JOBS.c.owner_node == lease.node)
        claimable = and_(_unfinished(), taken_over)
    candidates = (select(_JOBS.c.uuid).where(claimable).limit(CLAIM_BATCH)
                  .with_for_update(skip_locked=True))
    # The outer WHERE repeats the condition: PostgreSQL re-evaluates it on the row version it
    # locks, so a row claimed by a peer meanwhile (a fresh lease) is left out.
    result = await db.execute(
        update(_JOBS).where(_JOBS.c.uuid.in_(candidates), claimable)
        .values(owner_node=lease.node, lease_expires=lease.until(now))
        .returning(_JOBS.c.uuid, _JOBS.c.api, _JOBS.c.request, _JOBS.c.webhook,
                   _JOBS.c.state, _JOBS.c.status, _JOBS.c.result))
    return result.all()


async def renew(db: AsyncSession, lease: NodeLease) -> set[str]:
    """Extend the lease of every unfinished job this node owns; returns their uuids (a job
    this node runs and that is missing was taken over by a peer). The caller commits."""
    result = await db.execute(
        update(_JOBS).where(_JOBS.c.owner_node == lease.node, _unfinished())
        .values(lease_expires=lease.until()).returning(_JOBS.c.uuid))
    return set(result.scalars().all())


async def owned_by_others(db: AsyncSession, uuids: set[str], lease: NodeLease) -> set[str]:
    """Which of ``uuids`` another node owns now."""
    result = await db.execute(select(_JOBS.c.uuid).where(
        _JOBS.c.uuid.in_(sorted(uuids)), _JOBS.c.owner_node != lease.node))
    return set(result.scalars().all())


def owned(uuid: str, lease: NodeLease) -> ColumnElement[bool]:
    """The WHERE clause of a write that only the owner of job ``uuid`` may make."""
    return _owned_by(uuid, lease.node)


def _owned_by(uuid: str | BindParameter[str], node: str | BindParameter[str]
              ) -> ColumnElement[bool]:
    return and_(_JOBS.c.uuid == uuid, _JOBS.c.owner_node == node)


#: :func:`owned` for a statement built once: the job's uuid and this node's id are the bind
#: parameters ``b_uuid`` and ``b_node``.
OWNED_BOUND = _owned_by(bindparam("b_uuid"), bindparam("b_node"))


async def still_owned(db: AsyncSession, uuid: str, lease: NodeLease) -> bool:
    """Renew job ``uuid``'s lease if this node still owns it; whether it does. The caller
    commits."""
    result = await db.execute(update(_JOBS).where(owned(uuid, lease))
                              .values(lease_expires=lease.until()))
    return bool(getattr(result, "rowcount", 0))


async def release(db: AsyncSession, lease: NodeLease) -> int:
    """Let the leases of this node's unfinished jobs expire now (a graceful stop); how many.
    The caller commits."""
    result = await db.execute(
        update(_JOBS).where(_JOBS.c.owner_node == lease.node, _unfinished())
        .values(lease_expires=utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)
