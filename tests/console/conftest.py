"""Browser fixtures: Debian's chromium driven by Playwright (no browser download), a page
that may talk to the vmexec server only, and screenshots of each step as test artifacts.

- ``browser`` (module): headless chromium (``$VMEXEC_CHROMIUM``, default /usr/bin/chromium;
  ``scripts/bootstrap.sh`` installs it).
- ``console(server)``: a :class:`Console` on a fresh browser context: every request the page
  makes to another host is aborted and recorded, and the test fails at teardown if there was
  one.
- Screenshots go to ``test-artifacts/console/<test>/<step>.png`` (gitignored).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

CHROMIUM = os.environ.get("VMEXEC_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
#: How long a step may wait for the page (ms): a TCG guest and a busy machine are slow.
STEP_TIMEOUT_MS = 60_000
# expect() has a timeout of its own (5 s by default), apart from the context's.
expect.set_options(timeout=STEP_TIMEOUT_MS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no chromium at {CHROMIUM}: run scripts/bootstrap.sh (apt-get install "
                    "chromium) or set VMEXEC_CHROMIUM")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


@dataclass
class Console:
    """A browser page on the console of ``url``."""

    page: Page
    url: str
    shots: Path
    #: Requests the page tried to send to another host (aborted).
    foreign: list[str] = field(default_factory=list)
    steps: int = 0

    def shot(self, step: str) -> Path:
        """Screenshot of the whole page, numbered in the order of the test's steps."""
        self.steps += 1
        path = self.shots / f"{self.steps:02d}-{step}.png"
        self.page.screenshot(path=path, full_page=True)
        return path

    def log_in(self, account: str = "admin", password: str = "password") -> None:
        self.page.goto(f"{self.url}/")
        self.page.get_by_label("Account").fill(account)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Log in").click()


def _same_origin(url: str, origin: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        # data: is inline; blob: URLs belong to the page's own origin.
        return parts.scheme != "blob" or url.startswith(f"blob:{origin}/")
    return f"{parts.scheme}://{parts.netloc}" == origin


@pytest.fixture
def console_factory(browser: Browser, request: pytest.FixtureRequest
                    ) -> Iterator[Callable[[str], Console]]:
    consoles: list[Console] = []
    name = re.sub(r"[^\w.-]+", "_", request.node.name)

    def open_console(url: str) -> Console:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(STEP_TIMEOUT_MS)
        page = context.new_page()
        shots = ARTIFACTS / name
        shots.mkdir(parents=True, exist_ok=True)
        for old in shots.glob("*.png"):
            old.unlink()
        console = Console(page=page, url=url, shots=shots)

        def guard(route: Route) -> None:
            if _same_origin(route.request.url, url):
                route.continue_()
            else:
                if route.request.url not in console.foreign:
                    console.foreign.append(route.request.url)
                route.abort()

        context.route("**/*", guard)
        # And whatever the router does not see (e.g. a request the page's CSP blocked).
        context.on("request", lambda r: None if _same_origin(r.url, url) or r.url in
                   console.foreign else console.foreign.append(r.url))
        consoles.append(console)
        return console

    yield open_console
    for console in consoles:
        context = console.page.context
        context.close()
        assert console.foreign == [], f"the page requested other hosts: {console.foreign}"
