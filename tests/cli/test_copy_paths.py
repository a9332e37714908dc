"""``vmexec cp``'s reading of SRC and DST (pure)."""

from __future__ import annotations

from vmexec.cli.copy import Remote, parse_location


def test_vm_colon_path_is_in_a_guest_and_the_rest_is_local() -> None:
    assert parse_location("web-1:/etc/motd") == Remote("web-1", "/etc/motd")
    assert parse_location("web-1:relative") == Remote("web-1", "relative")  # the server says
    assert parse_location("./a:b") == "./a:b"
    assert parse_location("/tmp/a:b") == "/tmp/a:b"
    assert parse_location("-") == "-"
    assert parse_location(":x") == ":x"
    assert parse_location("file.txt") == "file.txt"
