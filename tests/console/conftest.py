"""Fixtures of the console's browser tests: a live uvicorn server on each backend
(shared by the tests of the module; each test gets a reviewer of its own and an
empty inbox) and headless Chromium browsers.

Chromium and chromedriver come from Debian (`apt-get install chromium
chromium-driver`, done by `.ci/run`); nothing is downloaded at test time. Without
them the tests are skipped, with the reason, except in CI
(`AGENT_RUNTIME_TEST_REQUIRE_PG=1`), where they fail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from tests.console.browser import (
    DESKTOP,
    PASSWORD,
    Api,
    BrowserPool,
    add_reviewers,
    body_text,
    browser_missing,
    login,
    reset_database,
    unique,
)
from tests.console.http import REVIEWER, Agent, open_console
from tests.console.http import Console as HttpConsole
from tests.fixtures.backends import REQUIRE_PG, Backend
from tests.fixtures.servers import LiveServer, start_uvicorn


@dataclass
class Console:
    """A live server with a reviewer of the test's own who may log in; the
    inbox holds no pending approval when the test starts."""

    server: LiveServer
    backend: Backend
    reviewer: str
    api: Api
    password: str = PASSWORD
    drivers: list[WebDriver] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def page(self, path: str) -> str:
        return f"{self.server.url}{path}"

    def add_reviewer(self, prefix: str = "reviewer") -> str:
        name = unique(prefix)
        add_reviewers(self.backend.url, name, password=self.password)
        return name


@pytest.fixture(scope="module")
def live_servers() -> Iterator[dict[str, LiveServer]]:
    """One uvicorn server per backend, shared by the module's tests."""
    servers: dict[str, LiveServer] = {}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def console(
    backend: Backend,
    live_servers: dict[str, LiveServer],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Console]:
    server = live_servers.get(backend.name)
    if server is None or server.process.poll() is not None:
        # Emptied once, before the server starts (a running server's event hub keeps
        # its place in the event log, which a truncation would rewind under it): no
        # data, and no failed login, of other test modules counts here.
        reset_database(backend.url)
        server = start_uvicorn(backend.url, tmp_path_factory.mktemp(f"console-{backend.name}"))
        live_servers[backend.name] = server
    # Tests share the database: each has its own reviewer, sessions and calls.
    reviewer = unique("alice")
    add_reviewers(backend.url, reviewer)
    api = Api(server.url)
    api.cancel_pending()
    try:
        yield Console(server, backend, reviewer, api)
    finally:
        api.close()


@pytest.fixture(scope="module")
def browser_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserPool]:
    """Headless Chromium browsers shared by the module's tests, one at a time."""
    reason = browser_missing()
    if reason:
        if REQUIRE_PG:  # CI: a browser test must run
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    pool = BrowserPool(tmp_path_factory.mktemp("chromium"))
    yield pool
    pool.close()


@pytest.fixture
def browsers(console: Console, browser_pool: BrowserPool) -> Iterator[Callable[..., WebDriver]]:
    """Opens a browser (blank, without cookies); call it again for a second,
    independent one (another profile). They go back to the pool at teardown."""
    taken: list[tuple[WebDriver, tuple[int, int]]] = []

    def open_browser(size: tuple[int, int] = DESKTOP) -> WebDriver:
        driver = browser_pool.take(size)
        taken.append((driver, size))
        console.drivers.append(driver)
        return driver

    yield open_browser
    for driver, size in taken:
        browser_pool.give_back(driver, size)


@pytest.fixture
def browser(browsers: Callable[..., WebDriver]) -> WebDriver:
    return browsers()


@pytest.fixture
def reviewer_browser(browser: WebDriver, console: Console) -> WebDriver:
    """A browser logged in as the console's reviewer, on the inbox."""
    login(browser, console.url, console.reviewer)
    return browser


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    if report.when == "call" and report.failed:
        console = getattr(item, "funcargs", {}).get("console")
        if isinstance(console, Console):
            for n, driver in enumerate(console.drivers):
                try:
                    page = f"{driver.current_url}\n{body_text(driver)[:3000]}"
                except Exception as exc:  # the browser itself is gone
                    page = f"(no page: {exc})"
                report.sections.append((f"browser {n}", page))
            report.sections.append(("server log", console.server.errors()[-6000:]))
    return report


# The HTTP-level tests (no browser): the app in process, and one reviewer's user agent.


@pytest.fixture
async def web(backend: Backend) -> AsyncIterator[HttpConsole]:
    async with open_console(backend) as console:
        yield console


@pytest.fixture
async def carol(web: HttpConsole) -> Agent:
    """A user agent logged in as the reviewer carol."""
    return await web.logged_in(REVIEWER)
