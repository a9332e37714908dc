"""``vmexec serve`` takes what start-up made out of the garbage collector's reach."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.hosts import MemoryHosts

from api.conftest import LOCAL, with_sources
from vmexec.config import Settings
from vmexec.server import create_app


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the suite's objects stay collectable


@pytest.mark.parametrize("freeze", [False, True])
async def test_freeze_gc_once_started(tmp_path: Path, unfrozen: None, freeze: bool) -> None:
    app = create_app(Settings(db=f"sqlite:///{tmp_path / 'vmexec.db'}", libvirt_uri=LOCAL),
                     inventory=with_sources(MemoryHosts()), freeze_gc=freeze)
    async with app.router.lifespan_context(app):
        assert (gc.get_freeze_count() > 0) is freeze
