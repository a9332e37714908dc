"""Fixtures of the multi-node tests: a cluster of ``vmexec serve`` processes on a fresh
PostgreSQL database (``cluster``) and a webhook receiver on loopback (``receiver``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.postgres import PostgresServer

from nodes.cluster import Cluster, WebhookReceiver


@pytest.fixture
def cluster(postgres_server: PostgresServer, tmp_path: Path) -> Iterator[Cluster]:
    nodes = Cluster(postgres_server.create_database(), tmp_path)
    try:
        yield nodes
    finally:
        nodes.close()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hooks = WebhookReceiver()
    try:
        yield hooks
    finally:
        hooks.close()
