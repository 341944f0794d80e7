"""Browser tests: the real app served over HTTP in a thread, driven by Debian's Chromium through
Playwright (never Playwright's own browser downloads).

One browser for the whole session; each test gets fresh contexts (cookies, storage): one per
operator it signs in, or `browser_context` for a stranger. The app is the test's `app` fixture, so it
talks to the same database as `session` (SQLite file or DATABASE_URL), and its tables are emptied
after each test as everywhere else.

    def test_something(console_page, live_server, session):
        manager = console_page(OperatorRole.STORE_MANAGER, store_id=store.id)  # via the login form
        response = manager.goto("/console/")              # relative to live_server.url
        manager.page.click("text=查询")                    # the Playwright Page
        assert response.status == 200 and manager.errors == []  # uncaught JS errors, console.error
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from app.models import OperatorRole
from tests import factories
from tests.app.console.console_flows import PASSWORD

# Debian's package; `make test` installs it with apt-get where it can. CHROMIUM points elsewhere.
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class LiveServer:
    url: str
    app: Flask


@dataclass
class ConsolePage:
    """A browser tab signed in to the console, and every JS error it has seen."""

    page: Any  # playwright.sync_api.Page
    base_url: str
    username: str
    errors: list[str] = field(default_factory=list)

    def goto(self, path: str) -> Any:
        """Opens `path` and waits until the network is quiet (charts drawn); returns the response."""
        return self.page.goto(self.base_url + path, wait_until="networkidle")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        pytest.skip(
            f"browser tests skipped: no Chromium at {CHROMIUM} (`make test` installs it with "
            "`apt-get install -y chromium` when run as root; or set CHROMIUM=/path/to/chromium)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser tests skipped: playwright is not installed (requirements-dev.txt)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    """The test's app on a free port, served by werkzeug in a thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.server_port}", app)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def new_context(browser: Any, live_server: LiveServer) -> Any:
    context = browser.new_context(
        base_url=live_server.url,
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
        viewport={"width": 1280, "height": 900},
    )
    context.set_default_timeout(TIMEOUT_MS)
    return context


@pytest.fixture
def browser_context(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """A fresh, signed-out browser context (its own cookies) for this test."""
    context = new_context(browser, live_server)
    try:
        yield context
    finally:
        context.close()


def open_tab(context: Any, live_server: LiveServer, username: str = "") -> ConsolePage:
    """A new tab that records uncaught JS errors and console.error messages in `errors`."""
    tab = ConsolePage(context.new_page(), live_server.url, username)
    tab.page.on("pageerror", lambda error: tab.errors.append(f"pageerror: {error}"))
    tab.page.on("console", lambda message: _console_error(tab, message))
    return tab


def _console_error(tab: ConsolePage, message: Any) -> None:
    if message.type == "error":
        tab.errors.append(f"{message.text} ({message.location.get('url', '?')})")


def sign_in(tab: ConsolePage, password: str = PASSWORD) -> None:
    """Through the login form, as a person would."""
    tab.goto("/console/login")
    tab.page.fill("input[name=username]", tab.username)
    tab.page.fill("input[name=password]", password)
    with tab.page.expect_navigation(wait_until="networkidle"):
        tab.page.click("form button[type=submit]")


@pytest.fixture
def console_page(
    browser: Any, live_server: LiveServer, session: Session
) -> Iterator[Callable[..., ConsolePage]]:
    """`console_page(role, **operator_fields)`: creates an operator of `role` (username: the role's
    value unless `username=` is given), signs them in through the login form in a browser context
    of their own (so one test can hold several operators), and returns the tab."""
    contexts: list[Any] = []

    def signed_in_as(role: OperatorRole, username: str | None = None, **operator_fields: Any) -> ConsolePage:
        name = username or role.value
        factories.create_operator(session, name, PASSWORD, role=role, **operator_fields)
        contexts.append(new_context(browser, live_server))
        tab = open_tab(contexts[-1], live_server, name)
        sign_in(tab)
        assert tab.page.url == f"{live_server.url}/console/", f"not signed in: at {tab.page.url}"
        return tab

    try:
        yield signed_in_as
    finally:
        for context in contexts:
            context.close()
