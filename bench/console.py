"""The web console's page weight and time to interactive on loopback, in Debian's chromium.

A real ``vmexec serve`` (bench/server.py: temporary database, free loopback port, the
machine's libvirt) and headless chromium driven by Playwright. Each sample is a new browser
context (empty cache, no cookies):

- **login page**: from navigation start to the login form shown (the page's files loaded and
  run), and the bytes the page loaded by then;
- **console, logged in**: a context holding a session cookie opens ``/``; to the VM list
  drawn (session check, QueryVmInstance and hosts answered, rows in the table);
- **docs**: ``/docs`` and ``/redoc`` to their load event (one sample each: they are the
  Swagger UI and Redoc bundles, not ours).

The moments are taken in the page (a MutationObserver added before any page script runs), so
the harness's polling adds nothing. Bytes are the resources' body sizes as sent (vmexec does
not compress). ``--screenshot FILE`` also runs a command on the lab VMs and
saves the console in use (docs/console.png).

    .venv/bin/python bench/console.py [--samples 20] [--screenshot docs/console.png]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, sync_playwright

# Run as a script (python bench/console.py): make the repository root importable for ``bench``.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.server import PASSWORD, ApiServer

CHROMIUM = os.environ.get("VMEXEC_CHROMIUM", "/usr/bin/chromium")
VIEWPORT = {"width": 1400, "height": 900}

#: Runs before the page's scripts: note when the login form and the first VM row appear.
_OBSERVE = """
window.__marks = {};
new MutationObserver(() => {
  const login = document.getElementById('login-view');
  if (login && !login.hidden && !window.__marks.login) window.__marks.login = performance.now();
  if (document.querySelector('#vm-table tbody tr') && !window.__marks.vms)
    window.__marks.vms = performance.now();
}).observe(document, {subtree: true, childList: true, attributes: true});
"""
_WEIGHT = """() => {
  const entries = [...performance.getEntriesByType('navigation'),
                   ...performance.getEntriesByType('resource')];
  return {bytes: entries.reduce((n, e) => n + e.encodedBodySize, 0), requests: entries.length,
          files: entries.filter(e => !e.name.includes('/zstack/') && !e.name.endsWith('/session'))
                        .reduce((n, e) => n + e.encodedBodySize, 0)};
}"""


def _sample(context: BrowserContext, url: str, mark: str) -> dict[str, Any]:
    page = context.new_page()
    page.add_init_script(_OBSERVE)
    page.goto(f"{url}/")
    page.wait_for_function(f"() => window.__marks && window.__marks.{mark}")
    result: dict[str, Any] = page.evaluate(_WEIGHT)
    result["ms"] = page.evaluate(f"window.__marks.{mark}")
    page.close()
    return result


def _logged_in_context(browser: Browser, url: str) -> BrowserContext:
    context = browser.new_context(viewport=VIEWPORT)
    reply = context.request.post(f"{url}/console/session",
                                 data={"accountName": "admin", "password": PASSWORD})
    assert reply.ok, reply.text()
    return context


def _docs(browser: Browser, url: str, path: str) -> dict[str, Any]:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.goto(f"{url}{path}", wait_until="load")
    result: dict[str, Any] = page.evaluate(_WEIGHT)
    result["ms"] = page.evaluate(
        "performance.getEntriesByType('navigation')[0].loadEventEnd")
    context.close()
    return result


def _screenshot(browser: Browser, url: str, path: Path) -> None:
    context = _logged_in_context(browser, url)
    page = context.new_page()
    page.goto(f"{url}/")
    page.locator("#vm-name").fill("vmexec-lab-")
    page.locator("#vm-state").select_option("Running")
    page.wait_for_function("() => { const rows = [...document.querySelectorAll("
                           "'#vm-table tbody tr td:nth-child(3)')]; return rows.length && "
                           "rows.every(td => td.textContent === 'Running'); }")
    names = [n for n in page.locator("#vm-table tbody tr td:nth-child(2)").all_inner_texts()
             if re.fullmatch(r"vmexec-lab-\d+", n)]
    if not names:
        raise SystemExit("no running vmexec-lab-N VM for the screenshot: run `vmexec lab up`")
    for name in names[:3]:
        page.get_by_role("checkbox", name=name, exact=True).check()
    page.get_by_label("Command", exact=True).fill(
        "uname -sr; hostname; echo 'a line on stderr' >&2; cat /proc/loadavg")
    page.get_by_role("button", name="Run", exact=True).click()
    page.locator("#progress").filter(has_text=re.compile(r"^\w+: done")).wait_for()
    page.wait_for_function("() => [...document.querySelectorAll('.pane-status')]"
                           ".every(s => s.textContent.includes('exit code'))")
    page.screenshot(path=path, full_page=True)
    context.close()


def _row(name: str, samples: list[dict[str, Any]]) -> str:
    times = sorted(s["ms"] for s in samples)
    p90 = times[min(len(times) - 1, round(0.9 * (len(times) - 1)))]
    weight = samples[-1]
    return (f"| {name} | {statistics.median(times):.0f} | {p90:.0f} | "
            f"{weight['bytes'] / 1024:.1f} | {weight['files'] / 1024:.1f} | "
            f"{weight['requests']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--screenshot", type=Path)
    args = parser.parse_args()
    with ApiServer() as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        login, console = [], []
        for _ in range(args.samples):
            context = browser.new_context(viewport=VIEWPORT)
            login.append(_sample(context, server.url, "login"))
            context.close()
            context = _logged_in_context(browser, server.url)
            console.append(_sample(context, server.url, "vms"))
            context.close()
        docs = [_docs(browser, server.url, "/docs")]
        redoc = [_docs(browser, server.url, "/redoc")]
        if args.screenshot:
            _screenshot(browser, server.url, args.screenshot)
        browser.close()
    print(f"chromium {CHROMIUM}, {args.samples} cold loads each (new context, empty cache)\n")
    print("| page | to interactive, median ms | p90 ms | KiB loaded | of which files KiB "
          "| requests |")
    print("|---|---:|---:|---:|---:|---:|")
    print(_row("login page (form shown)", login))
    print(_row("console, logged in (VM list drawn)", console))
    print(_row("/docs (Swagger UI, load event)", docs))
    print(_row("/redoc (load event)", redoc))


if __name__ == "__main__":
    main()
