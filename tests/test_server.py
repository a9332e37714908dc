"""The composition root's start checks: the default password is refused on a non-loopback
address unless allowed (issue 10, B11). ``vmexec serve`` itself: tests/api/test_serve_cli.py."""

from __future__ import annotations

import pytest

from vmexec.config import Settings
from vmexec.server import UnsafeStart, check_default_password


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "vmexec.example.com"])
def test_a_server_with_the_default_password_refuses_other_addresses(host: str) -> None:
    with pytest.raises(UnsafeStart, match="default password"):
        check_default_password(Settings(host=host), True)
    # Allowed explicitly, or with another password, or on loopback: no refusal.
    check_default_password(Settings(host=host, allow_default_password=True), True)
    check_default_password(Settings(host=host), False)
    for loopback in ("127.0.0.1", "127.3.4.5", "::1", "localhost", "::ffff:127.0.0.1"):
        check_default_password(Settings(host=loopback), True)
