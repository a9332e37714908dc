"""The app's own OpenAPI document, built once per test process without starting anything
(nothing is opened before the lifespan runs): building it costs about 0.3 s, and the
permission matrix alone asks for it in each of its 500 cells. Read it, never change it."""

from __future__ import annotations

import functools
from typing import Any

from vmexec.config import Settings
from vmexec.server import create_app


@functools.cache
def openapi_document() -> dict[str, Any]:
    return create_app(Settings(db="sqlite://")).openapi()
