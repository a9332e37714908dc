"""The web console in a real browser (Debian's chromium through Playwright) against a real
vmexec server and real lab VMs: log in, run on two VMs, live output, cancel, history, copy as
curl/CLI, a wrong password. Every test fails if the page requested anything from a host other
than the server's (see conftest.py); each step's screenshot is in test-artifacts/console/.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fixtures.server import RunningServer, ServerFactory
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Locator, Route, expect

from console.conftest import Console
from vmexec.lab import LabVm

pytestmark = pytest.mark.vm

ConsoleFactory = Callable[[str], Console]


@pytest.fixture(scope="module")
def server(module_server_factory: ServerFactory, lab_vms: list[LabVm]) -> RunningServer:
    return module_server_factory(libvirt_uri=lab_vms[0].uri)


@pytest.fixture
def console(console_factory: ConsoleFactory, server: RunningServer) -> Console:
    return console_factory(server.url)


def _logged_in(console: Console) -> None:
    console.log_in()
    expect(console.page.get_by_role("button", name="Log out")).to_be_visible()


def _select(console: Console, *vms: LabVm) -> None:
    for vm in vms:
        box = console.page.get_by_role("checkbox", name=vm.name, exact=True)
        box.check()
        expect(box).to_be_checked()


def _command(console: Console, text: str) -> None:
    console.page.get_by_label("Command", exact=True).fill(text)


def _pane(console: Console, vm: LabVm) -> Locator:
    return console.page.get_by_role("region", name=vm.name, exact=True)


def _run(console: Console) -> None:
    console.page.get_by_role("button", name="Run", exact=True).click()


def _status(pane: Locator) -> Locator:
    return pane.locator(".pane-status")


def test_log_in_and_run_hostname_on_two_vms(console: Console, lab_vms: list[LabVm]) -> None:
    page = console.page
    console.log_in()
    console.shot("login")
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    first, second = lab_vms[0], lab_vms[1]
    # The agents' status comes from the live agents.
    row = page.locator("#vm-table tr", has=page.get_by_role("checkbox", name=first.name,
                                                           exact=True))
    expect(row.locator("td.agent")).to_contain_text("Running")
    _select(console, first, second)
    _command(console, "hostname")
    console.shot("vms-selected")
    _run(console)
    for vm in (first, second):
        pane = _pane(console, vm)
        expect(pane.locator(".output")).to_have_text(f"{vm.name}\n")
        expect(_status(pane)).to_contain_text("Succeeded")
        expect(_status(pane)).to_contain_text("exit code 0")
        expect(_status(pane)).to_contain_text(re.compile(r"\d+(\.\d+)? m?s"))  # duration
    expect(page.locator("#progress")).to_contain_text(
        "Succeeded: done 2 · failed 0 · running 0 · skipped 0")
    console.shot("two-panes")
    # The same run as a command line.
    page.get_by_role("button", name="Copy as curl").click()
    curl = page.get_by_label("Copied command")
    expect(curl).to_contain_text("curl -X POST")
    expect(curl).to_contain_text("/zstack/v1/vm-instances/commands/runs")
    expect(curl).to_contain_text(f'"vmInstanceUuids":["{first.uuid}","{second.uuid}"]')
    page.get_by_role("button", name="Copy as CLI").click()
    expect(curl).to_have_text(f"vmexec exec {first.name} {second.name} -- hostname")
    console.shot("copied-cli")


def test_stderr_is_told_apart_and_the_exit_code_shown(console: Console,
                                                      lab_vms: list[LabVm]) -> None:
    _logged_in(console)
    vm = lab_vms[0]
    _select(console, vm)
    _command(console, "echo out; echo err >&2; exit 3")
    _run(console)
    pane = _pane(console, vm)
    expect(_status(pane)).to_contain_text("exit code 3")
    expect(_status(pane)).to_contain_text("Failed")
    expect(pane.locator(".output .stdout")).to_have_text("out\n")
    expect(pane.locator(".output .stderr")).to_have_text("err\n")
    console.shot("stderr")


_RECORD_PANES = """() => {
  window.seen = [];
  new MutationObserver(() => {
    for (const pane of document.querySelectorAll('#panes .pane')) {
      window.seen.push({output: pane.querySelector('.output').textContent,
                        status: pane.querySelector('.pane-status').textContent,
                        cancel: !document.getElementById('cancel').hidden});
    }
  }).observe(document.getElementById('panes'),
             {subtree: true, childList: true, characterData: true});
}"""


def test_output_shows_before_the_command_ends(console: Console, lab_vms: list[LabVm]) -> None:
    page = console.page
    _logged_in(console)
    vm = lab_vms[1]
    _select(console, vm)
    _command(console, "for i in 1 2 3; do echo $i; sleep 1; done")
    # What the pane showed, each time it changed (no clock involved).
    page.evaluate(_RECORD_PANES)
    _run(console)
    pane = _pane(console, vm)
    expect(pane.locator(".output")).to_contain_text("1")
    console.shot("first-line")
    expect(_status(pane)).to_contain_text("Succeeded")
    expect(pane.locator(".output")).to_have_text("1\n2\n3\n")
    console.shot("ended")
    # The page showed "1" alone while the command still ran, with Cancel offered.
    seen: list[dict[str, Any]] = page.evaluate("window.seen")
    assert {"output": "1\n", "status": "running", "cancel": True} in seen, seen
    expect(page.get_by_role("button", name="Cancel")).to_be_hidden()


def test_cancel_a_sleep_and_open_it_in_history(console: Console, lab_vms: list[LabVm]) -> None:
    page = console.page
    _logged_in(console)
    vm = lab_vms[2]
    _select(console, vm)
    _command(console, "sleep 60")
    _run(console)
    pane = _pane(console, vm)
    expect(_status(pane)).to_have_text("running")
    console.shot("running")
    page.get_by_role("button", name="Cancel").click()
    expect(_status(pane)).to_contain_text("Cancelled")
    expect(page.get_by_role("button", name="Cancel")).to_be_hidden()
    console.shot("cancelled")

    page.get_by_role("button", name="History").click()
    page.get_by_label("Command contains").fill("sleep 60")
    row = page.locator("#history-table tbody tr").first
    expect(row).to_contain_text("sleep 60")
    expect(row).to_contain_text("Cancelled")
    expect(row).to_contain_text(vm.name)
    console.shot("history")
    row.get_by_role("button", name=re.compile("^Open execution")).click()
    pane = _pane(console, vm)
    expect(_status(pane)).to_contain_text("Cancelled")
    expect(page.get_by_label("Command", exact=True)).to_have_value("sleep 60")
    # It is the command to repeat now: its VM selected, the copy buttons give it.
    page.get_by_role("button", name="Copy as CLI").click()
    expect(page.get_by_label("Copied command")).to_have_text(
        f"vmexec exec {vm.name} -- 'sleep 60'")
    console.shot("opened-from-history")


def test_a_run_stops_at_max_errors_and_opens_from_history(console: Console,
                                                          lab_vms: list[LabVm]) -> None:
    page = console.page
    _logged_in(console)
    vms = lab_vms[:3]
    _select(console, *vms)
    _command(console, "echo failing on $(hostname) >&2; exit 1")
    page.get_by_label("Max concurrency").fill("1")
    page.get_by_label("Max errors").fill("0")
    page.get_by_role("button", name="Copy as CLI").click()
    expect(page.get_by_label("Copied command")).to_contain_text("--parallel 1 --max-errors 0")
    _run(console)
    # One at a time, no error tolerated: the first fails, the other two never start.
    progress = page.locator("#progress")
    expect(progress).to_have_text("Failed: done 0 · failed 1 · running 0 · skipped 2")
    first = _pane(console, vms[0])
    expect(_status(first)).to_contain_text("exit code 1")
    expect(first.locator(".stderr")).to_have_text(f"failing on {vms[0].name}\n")
    for vm in vms[1:]:
        expect(_status(_pane(console, vm))).to_have_text("Skipped")
    console.shot("run-failed")

    page.get_by_role("button", name="History").click()
    page.get_by_label("Show").select_option("runs")
    row = page.locator("#history-table tbody tr").first
    expect(row).to_contain_text("exit 1")
    expect(row).to_contain_text("2 Skipped")
    console.shot("runs-history")
    row.get_by_role("button", name=re.compile("^Open run")).click()
    expect(progress).to_have_text("Failed: done 0 · failed 1 · running 0 · skipped 2")
    expect(_pane(console, vms[0]).locator(".stderr")).to_have_text(
        f"failing on {vms[0].name}\n")
    expect(_status(_pane(console, vms[2]))).to_have_text("Skipped")
    console.shot("run-opened")


def test_a_dropped_run_stream_is_followed_again_without_doubled_output(
        console: Console, lab_vms: list[LabVm]) -> None:
    # The first connection to the run's events ends before runFinished, as a restart or a
    # proxy would end it: the page follows the run again, and each pane shows its output once.
    page = console.page
    connections: list[str] = []

    def cut_first(route: Route) -> None:
        connections.append(route.request.url)
        if len(connections) > 1:
            route.fallback()
            return
        stream = route.fetch().text()  # the whole stream, to the run's end
        cut = stream.index("event: runFinished")
        route.fulfill(status=200, content_type="text/event-stream", body=stream[:cut])

    page.route(re.compile(r"/commands/runs/[0-9a-f]{32}/events$"), cut_first)
    _logged_in(console)
    vms = lab_vms[:2]
    _select(console, *vms)
    _command(console, "hostname")
    _run(console)
    expect(page.locator("#progress")).to_have_text(
        "Succeeded: done 2 · failed 0 · running 0 · skipped 0")
    for vm in vms:
        expect(_pane(console, vm).locator(".output")).to_have_text(f"{vm.name}\n")
    assert len(connections) == 2, connections
    console.shot("followed-again")


def test_copied_curl_and_cli_commands_run_as_shown(console: Console, lab_vms: list[LabVm],
                                                   server: RunningServer) -> None:
    # What the buttons copy works when pasted into a shell: quotes of both kinds and a $
    # reach the guest as typed.
    page = console.page
    _logged_in(console)
    vm = lab_vms[0]
    _select(console, vm)
    _command(console, """echo "it's $((6 * 7))" """)
    copied = page.get_by_label("Copied command")
    page.get_by_role("button", name="Copy as curl").click()
    expect(copied).to_contain_text("curl -X PUT")
    curl = copied.inner_text()
    page.get_by_role("button", name="Copy as CLI").click()
    expect(copied).to_contain_text("vmexec exec")
    cli = copied.inner_text()
    console.shot("copied")
    env = {**os.environ, "SESSION": server.session, "VMEXEC_SERVER": server.url,
           "VMEXEC_SESSION": server.session}
    by_curl = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, env=env,
                             timeout=120, check=False)
    assert json.loads(by_curl.stdout)["stdout"] == "it's 42\n", (curl, by_curl)
    vmexec = str(Path(sys.executable).with_name("vmexec"))
    by_cli = subprocess.run(["bash", "-c", cli.replace("vmexec", vmexec, 1)],
                            capture_output=True, text=True, env=env, timeout=120, check=False)
    assert (by_cli.returncode, by_cli.stdout) == (0, "it's 42\n"), (cli, by_cli)


def test_a_wrong_password_shows_the_apis_error(console: Console) -> None:
    console.log_in(password="not the password")
    alert = console.page.get_by_role("alert")
    expect(alert).to_contain_text("ID.1000")
    expect(alert).to_contain_text("wrong account name or password")
    expect(console.page.get_by_role("button", name="Log out")).to_be_hidden()
    console.shot("wrong-password")


def test_logout_ends_the_session(console: Console, server: RunningServer) -> None:
    page = console.page
    _logged_in(console)
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    # The cookie is gone, and so is its session: a reload shows the login again.
    assert not [c for c in page.context.cookies() if c["name"] == "vmexec_session"]
    page.reload()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    console.shot("logged-out")


def test_the_api_docs_load_without_another_host(console: Console) -> None:
    page = console.page
    page.goto(f"{console.url}/docs")
    expect(page.locator(".swagger-ui .info")).to_contain_text("vmexec")
    console.shot("swagger-ui")
    page.goto(f"{console.url}/redoc")
    expect(page.get_by_role("heading", name=re.compile("^vmexec"))).to_be_visible()
    console.shot("redoc")
    # Redoc's bundle draws its maker's logo from the maker's CDN: the CSP of /redoc blocks it
    # (and the page hides the broken image); the guard saw it go nowhere. It is the only one.
    assert set(console.foreign) <= {"https://cdn.redoc.ly/redoc/logo-mini.svg"}
    console.foreign.clear()


def test_the_guard_catches_a_request_to_another_host(console: Console) -> None:
    # The check every test above ends with can fail. A script's fetch elsewhere is stopped by
    # the page's CSP before it is a request; a navigation is not (CSP does not govern it):
    # the guard sees it and aborts it, so nothing leaves the browser.
    page = console.page
    page.goto(f"{console.url}/")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    fetched = page.evaluate(
        "fetch('http://127.0.0.2:9/fetched').then(() => 'sent', () => 'refused')")
    assert fetched == "refused"
    with pytest.raises(PlaywrightError):
        page.goto("http://127.0.0.2:9/elsewhere")
    assert console.foreign == ["http://127.0.0.2:9/elsewhere"]
    console.foreign.clear()
