"""The host URI policy: the forms vmexec supports pass, anything that could run a program or
name a local file is refused with a reason, and operators can widen or narrow it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmexec.hypervisor.uris import (
    HostUri,
    HostUriPolicy,
    HostUriRefused,
    Transport,
    parse_host_uri,
)

DEFAULT = HostUriPolicy()
LOCAL_ONLY = HostUriPolicy.of(["local", "unix"])


@pytest.mark.parametrize(("uri", "expected"), [
    ("qemu:///system", HostUri("qemu:///system", Transport.LOCAL, path="/system")),
    ("qemu:///session?mode=direct", HostUri("qemu:///session?mode=direct", Transport.LOCAL,
                                            path="/session", parameters=(("mode", "direct"),))),
    ("qemu+ssh://root@10.0.0.5:2222/system?no_tty=1&no_verify=1",
     HostUri("qemu+ssh://root@10.0.0.5:2222/system?no_tty=1&no_verify=1", Transport.SSH,
             host="10.0.0.5", user="root", port=2222, path="/system",
             parameters=(("no_tty", "1"), ("no_verify", "1")))),
    ("qemu+tls://kvm-1.example.org/system",
     HostUri("qemu+tls://kvm-1.example.org/system", Transport.TLS, host="kvm-1.example.org",
             path="/system")),
    ("qemu+tcp://[fd00::5]:16509/system",
     HostUri("qemu+tcp://[fd00::5]:16509/system", Transport.TCP, host="[fd00::5]", port=16509,
             path="/system")),
    ("unix:///var/run/qemu-server", HostUri("unix:///var/run/qemu-server",
                                            Transport.SOCKET_DIR, path="/var/run/qemu-server")),
])
def test_supported_forms_pass(uri: str, expected: HostUri) -> None:
    assert DEFAULT.check(uri) == expected
    assert expected.remote is (expected.transport in (Transport.SSH, Transport.TLS,
                                                      Transport.TCP))


@pytest.mark.parametrize(("uri", "fragment"), [
    # The finding: a program run on the vmexec host.
    ("qemu+ext:///system?command=/tmp/x", "qemu+ext:// is not supported"),
    ("qemu+ssh://root@h/system?command=/tmp/x", "parameter 'command' is not allowed"),
    ("qemu+ssh://root@h/system?netcat=/tmp/nc", "parameter 'netcat' is not allowed"),
    ("qemu+ssh://root@h/system?proxy=netcat", "parameter 'proxy' is not allowed"),
    ("qemu+ssh://root@h/system?keyfile=/root/.ssh/id", "parameter 'keyfile' is not allowed"),
    ("qemu:///system?socket=/tmp/other.sock", "parameter 'socket' is not allowed"),
    ("qemu+tls://h/system?pkipath=/tmp/pki", "parameter 'pkipath' is not allowed"),
    # The remote libvirtd would open any URI named here.
    ("qemu+tcp://h/system?name=qemu+ext:///system", "parameter 'name' is not allowed"),
    # Hidden parameters: escapes and libvirt's other separator.
    ("qemu+ssh://h/system?%63ommand=/tmp/x", "no percent-escapes"),
    ("qemu+ssh://h/system?no_tty=1;command=/tmp/x", "';'"),
    ("qemu+ssh://h/system?no_tty=1&no_tty=0", "given twice"),
    ("qemu+ssh://h/system?no_tty=yes", "not a valid value of 'no_tty'"),
    ("qemu+ssh://h/system?no_tty", "not a name=value parameter"),
    ("qemu+ssh://h/system#frag", "'#'"),
    # Hosts, users, ports, paths.
    ("qemu+ssh://-oProxyCommand=x/system", "not a valid host name"),
    ("qemu+ssh://-l@h/system", "not a valid user name"),
    ("qemu+ssh://root:pw@h/system", "'root:pw' is not a valid user name"),
    ("qemu+ssh:///system", "names no host"),
    ("qemu+tcp://h:0/system", "port '0' is not 1-65535"),
    ("qemu+tcp://h:99999/system", "port '99999'"),
    ("qemu+tcp://[zz::1]/system", "not an IPv6 address"),
    ("qemu://h/system", "means TLS to HOST"),
    ("qemu+tcp://h/", "must be /system or /session"),
    ("qemu+tcp://h/system/../x", "must be /system or /session"),
    ("qemu+unix:///system", "qemu+unix:// is not supported"),
    ("qemu+libssh2://h/system", "qemu+libssh2:// is not supported"),
    ("xen+ssh://h/system", "xen+ssh:// is not supported"),
    ("QEMU:///system", "QEMU:// is not supported"),
    ("qemu:///system extra", "spaces"),
    ("not a uri", "not a libvirt URI"),
    ("unix://relative", "absolute path"),
    ("unix:///tmp/x?socket=/y", "no query"),
    ("unix:///tmp/\nx", "control characters"),
    ("qemu+tcp://h/system?" + "no_tty=1&" * 200, "at most 1024"),
])
def test_refused_with_a_reason(uri: str, fragment: str) -> None:
    with pytest.raises(HostUriRefused) as info:
        DEFAULT.check(uri)
    assert fragment in str(info.value)


def test_operators_allow_more_parameters() -> None:
    uri = "qemu+ssh://root@127.0.0.1:2222/system?keyfile=/srv/keys/id&no_verify=1"
    with pytest.raises(HostUriRefused, match="host_uri_parameters"):
        DEFAULT.check(uri)
    assert HostUriPolicy.of(list(Transport), ["keyfile"]).check(uri).parameters == (
        ("keyfile", "/srv/keys/id"), ("no_verify", "1"))


def test_operators_keep_every_connection_local() -> None:
    assert LOCAL_ONLY.check("qemu:///system").transport is Transport.LOCAL
    assert LOCAL_ONLY.check("unix:///run/agents").transport is Transport.SOCKET_DIR
    for uri in ("qemu+ssh://root@127.0.0.1/system", "qemu+tls://h/system",
                "qemu+tcp://127.0.0.1:1/system"):
        with pytest.raises(HostUriRefused, match="transport is not allowed on this server"):
            LOCAL_ONLY.check(uri)


def test_unknown_transport_setting_is_an_error() -> None:
    with pytest.raises(ValueError, match="ext"):
        HostUriPolicy.of(["local", "ext"])


@settings(max_examples=1000, deadline=None)
@given(st.one_of(
    st.text(max_size=80),
    st.builds(lambda scheme, rest: scheme + rest,
              st.sampled_from(["qemu://", "qemu:///", "qemu+ssh://", "qemu+tcp://", "unix://",
                               "qemu+ext://"]),
              st.text(alphabet="ab1:/?&=@[]%;#._-+ ", max_size=40))))
def test_any_text_is_parsed_or_refused(uri: str) -> None:
    # Never a crash; and whatever passes holds no parameter beyond the safe ones.
    try:
        parsed = parse_host_uri(uri)
    except HostUriRefused:
        return
    assert {name for name, _ in parsed.parameters} <= {"no_tty", "no_verify", "mode"}
    if parsed.transport is not Transport.SOCKET_DIR:
        assert parsed.path in ("/system", "/session")
        assert "%" not in uri and ";" not in uri
