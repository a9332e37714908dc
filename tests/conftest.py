"""Shared pytest wiring: fixture plugins live in tests/fixtures/, one module per resource."""

pytest_plugins = [
    "fixtures.lab",
    "fixtures.server",
    "fixtures.engine",
    "fixtures.postgres",
    "fixtures.remote",
    "fixtures.nodes",
    "fixtures.netns",
]
