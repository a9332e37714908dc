"""Issue 12, start-up: nodes started at the same instant on one empty PostgreSQL database all
come up (migrations under an advisory lock, the admin account inserted idempotently).

Before: one of two died, 3 of 3 tries (``alembic_version`` created twice; then
``accounts_name_key``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.postgres import PostgresServer

from nodes.cluster import Cluster, psql
from vmexec.db.migrate import alembic_config

pytestmark = pytest.mark.slow

#: Before the fix every try failed (3 of 3): a few tries catch a regression.
TRIES = 4
NODES = 3
#: A local libvirt that does not answer: no host is registered, so what is tested is the
#: start-up's own writes (the inventory's registration and sync are issue 12's inventory part).
NO_LIBVIRT = "unix:///nonexistent/vmexec-nodes"


def _head() -> str:
    from alembic.script import ScriptDirectory
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def test_nodes_started_at_once_on_an_empty_database_all_come_up(
        postgres_server: PostgresServer, tmp_path: Path) -> None:
    for attempt in range(TRIES):
        cluster = Cluster(postgres_server.create_database(), tmp_path / f"try-{attempt}")
        cluster.log_dir.mkdir()
        try:
            nodes = [cluster.node(f"node-{attempt}-{i}", libvirt_uri=NO_LIBVIRT)
                     for i in range(NODES)]
            for node in nodes:  # all at once: none waits for another
                node.start()
            for node in nodes:
                node.wait_ready()
                with node.client() as client:  # each node serves, the same admin
                    assert client.get("/zstack/v1/accounts").status_code == 200
            assert psql(cluster.db, "SELECT version_num FROM alembic_version") == [[_head()]]
            assert psql(cluster.db, "SELECT name, type FROM accounts") == [
                ["admin", "SystemAdmin"]]
            for node in nodes:
                node.stop()
        finally:
            cluster.close()
