"""Helpers of the console's browser tests: Debian's headless Chromium driven by
Selenium (started by harness/browser.py), seeding through the REST API and the
reviewer service, small waits."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from selenium import webdriver
from selenium.common.exceptions import (
    JavascriptException,
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait
from tortoise import Tortoise

from agent_runtime.db.config import tortoise_config
from agent_runtime.db.urls import parse_db_url
from agent_runtime.services.reviewers import add_reviewer
from harness.browser import browser_missing as browser_missing  # for conftest.py
from harness.browser import emulate_viewport, start_chromium
from tests.fixtures.backends import truncate

DESKTOP = (1280, 900)
PHONE = (390, 844)
PASSWORD = "correct horse battery staple"
WAIT = 5.0  # the ceiling of every wait; a test asserts tighter bounds itself

T = TypeVar("T")


# Run in every page before its own scripts: records when the DOM last changed, when
# each event stream the page opens is connected, and how many fetches are under way,
# so a test can wait until a live page has settled (its rows are not being replaced
# under the test's feet), or act while it is refreshing.
INSTRUMENT = """
(() => {
  window.__lastChange = 0;
  window.__streams = [];
  window.__fetching = 0;
  new MutationObserver(() => { window.__lastChange = performance.now(); })
    .observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
  const nativeFetch = window.fetch;
  window.fetch = async function (...args) {
    window.__fetching += 1;
    try {
      return await nativeFetch.apply(this, args);
    } finally {
      window.__fetching -= 1;
    }
  };
  const Native = window.EventSource;
  if (!Native) return;
  function Instrumented(...args) {
    const source = new Native(...args);
    const stream = {opened: 0};
    window.__streams.push(stream);
    source.addEventListener("open", () => { stream.opened = performance.now(); });
    return source;
  }
  Instrumented.prototype = Native.prototype;
  Object.assign(Instrumented, {CONNECTING: 0, OPEN: 1, CLOSED: 2});
  window.EventSource = Instrumented;
})();
"""


def new_driver(user_data_dir: Path, size: tuple[int, int] = DESKTOP) -> WebDriver:
    """A headless Chromium of `size` (CSS pixels). Below 500 pixels wide, which a
    headless window cannot be, a phone is emulated (touch-less; `mobile` viewport)."""
    driver = start_chromium(user_data_dir, (max(size[0], 500), size[1]))
    driver.set_page_load_timeout(30)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": INSTRUMENT})
    if size[0] < 500:
        emulate_viewport(driver, size, mobile=True)
    return driver


class BrowserPool:
    """Started browsers, kept between tests (a start costs a second): a browser
    handed back is emptied (blank page, no cookie) before it is handed out again."""

    def __init__(self, profiles: Path) -> None:
        self.profiles = profiles
        self.idle: dict[tuple[int, int], list[WebDriver]] = {}
        self.started = 0

    def take(self, size: tuple[int, int] = DESKTOP) -> WebDriver:
        idle = self.idle.get(size)
        if idle:
            return idle.pop()
        self.started += 1
        return new_driver(self.profiles / f"chromium-{self.started}", size)

    def give_back(self, driver: WebDriver, size: tuple[int, int]) -> None:
        try:
            driver.get("about:blank")  # also ends the page's event streams
            driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
        except Exception:  # a browser that cannot be emptied is not reused
            driver.quit()
            return
        self.idle.setdefault(size, []).append(driver)

    def close(self) -> None:
        for drivers in self.idle.values():
            for driver in drivers:
                driver.quit()
        self.idle.clear()


# --- waits and page reading -------------------------------------------------------


def wait_until(driver: WebDriver, condition: Callable[[WebDriver], T], timeout: float = WAIT) -> T:
    """The first truthy result of `condition(driver)`, polled every 50 ms (a poll
    that fails, on a page being replaced or not there yet, counts as falsy)."""
    ignored = (
        AssertionError,
        JavascriptException,
        NoSuchElementException,
        StaleElementReferenceException,
    )
    try:
        return WebDriverWait(driver, timeout, 0.05, ignored).until(condition)
    except TimeoutException:
        raise AssertionError(
            f"condition not met within {timeout} s on {driver.current_url}\n"
            f"{body_text(driver)[:2000]}"
        ) from None


def path_of(driver: WebDriver) -> str:
    return urlsplit(driver.current_url).path


def query_of(driver: WebDriver) -> str:
    return urlsplit(driver.current_url).query


@contextmanager
def new_page(driver: WebDriver, timeout: float = WAIT) -> Iterator[None]:
    """Waits, after the block, until the block made the browser load another page
    (a form submitted, a link followed) and that page has loaded."""
    driver.execute_script("window.__old_page = true")
    yield
    wait_until(
        driver,
        lambda d: d.execute_script(
            "return window.__old_page === undefined && document.readyState === 'complete'"
        ),
        timeout,
    )


def settled(driver: WebDriver, quiet_ms: int = 300, timeout: float = WAIT) -> None:
    """Wait until the page has loaded, its event streams are connected, and neither
    they nor its DOM changed for `quiet_ms`."""
    wait_until(
        driver,
        lambda d: d.execute_script(
            """
            const streams = window.__streams || [];
            if (document.readyState !== "complete" || window.__fetching
                || streams.some((s) => !s.opened)) {
              return false;
            }
            const last = Math.max(window.__lastChange || 0, ...streams.map((s) => s.opened));
            return performance.now() - last >= arguments[0];
            """,
            quiet_ms,
        ),
        timeout,
    )


def body_text(driver: WebDriver) -> str:
    try:
        return str(driver.find_element(By.TAG_NAME, "body").text)
    except Exception:  # a page without a body, or one being replaced
        return ""


def one(driver: WebDriver | WebElement, css: str) -> WebElement:
    """The first element matching `css` (fails clearly when there is none)."""
    found = driver.find_elements(By.CSS_SELECTOR, css)
    assert found, f"no element matches {css!r}"
    return found[0]


def status_code(driver: WebDriver) -> int:
    """The HTTP status of the document shown (also after a form POST)."""
    return int(
        driver.execute_script(
            "const n = performance.getEntriesByType('navigation')[0];"
            "return n ? n.responseStatus : 0;"
        )
    )


def settle(driver: WebDriver) -> None:
    """Let the page's deferred work run (an image's error event, a timer)."""
    driver.execute_async_script(
        "const done = arguments[arguments.length - 1]; setTimeout(done, 300);"
    )


def set_text(element: WebElement, text: str) -> None:
    """Replace a field's text the way a user does: select all, then type."""
    element.click()
    element.send_keys(webdriver.Keys.CONTROL, "a")
    element.send_keys(webdriver.Keys.DELETE)
    element.send_keys(text)


def login(driver: WebDriver, server_url: str, name: str, password: str = PASSWORD) -> None:
    """Log in through the login form (from its own page, so the reviewer lands on
    the inbox); waits until the inbox has settled."""
    driver.get(f"{server_url}/console/login")
    form = one(driver, "form#login-form")
    one(form, "input[name=username]").send_keys(name)
    one(form, "input[name=password]").send_keys(password)
    with new_page(driver):
        one(form, "button[type=submit]").click()
    assert path_of(driver) != "/console/login", f"login as {name!r} failed:\n{body_text(driver)}"
    settled(driver)


# --- seeding ------------------------------------------------------------------------


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _in_fresh_loop(work: Callable[[], Any]) -> Any:
    """Run the coroutine function `work` in its own event loop, in a thread (so it
    works from sync tests and from code already inside a loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work()).result(timeout=120)


async def _with_connection(url: str, work: Callable[[Any], Any]) -> Any:
    database = parse_db_url(url)
    await Tortoise.init(config=tortoise_config(database))
    try:
        return await work(Tortoise.get_connection(database.dialect))
    finally:
        await Tortoise.close_connections()


def reset_database(url: str) -> None:
    """Empty every table (before a server starts: its event hub keeps a position)."""
    _in_fresh_loop(lambda: _with_connection(url, truncate))


def add_reviewers(url: str, *names: str, password: str = PASSWORD) -> None:
    """Create reviewer accounts with the reviewer service."""

    async def add(connection: Any) -> None:
        for name in names:
            await add_reviewer(connection, name, password)

    _in_fresh_loop(lambda: _with_connection(url, add))


def tool_call(call_id: str, tool_name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": tool_name, "arguments": json.dumps(arguments)},
    }


def conversation(
    call_id: str,
    tool_name: str,
    arguments: dict[str, Any],
    *,
    user: str = "Please clean up the old reports.",
) -> list[dict[str, Any]]:
    """A short agent conversation whose last assistant turn asks to run the tool."""
    return [
        {"role": "system", "content": "You are an operations assistant."},
        {"role": "user", "content": user},
        {"role": "assistant", "content": "Let me look at what is there first."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [tool_call(call_id, tool_name, arguments)],
        },
    ]


class Api:
    """The REST calls the tests make on the live server."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=10)

    def close(self) -> None:
        self.http.close()

    def _ok(self, response: httpx.Response, *codes: int) -> httpx.Response:
        assert response.status_code in (codes or (200,)), (
            f"{response.request.method} {response.request.url}: "
            f"{response.status_code} {response.text}"
        )
        return response

    def save(self, session_id: str, messages: list[dict[str, Any]]) -> None:
        self._ok(self.http.post(f"/sessions/{session_id}", json=messages))

    def set_title(self, session_id: str, title: str) -> None:
        self._ok(self.http.patch(f"/sessions/{session_id}", json={"title": title}))

    def set_agent_context(self, session_id: str, body: dict[str, Any]) -> None:
        self._ok(self.http.put(f"/sessions/{session_id}/agent-context", json=body), 200, 201)

    def create_approval(
        self,
        call_id: str,
        session_id: str,
        tool_name: str = "delete_file",
        arguments: dict[str, Any] | None = None,
        reason: str | None = "destructive tool",
    ) -> dict[str, Any]:
        body = {
            "call_id": call_id,
            "session_id": session_id,
            "tool_name": tool_name,
            "arguments": {"path": "/tmp/report.csv"} if arguments is None else arguments,
            "reason": reason,
        }
        return dict(self._ok(self.http.post("/approvals", json=body), 201).json())

    def ask(
        self,
        tool_name: str = "delete_file",
        arguments: dict[str, Any] | None = None,
        reason: str | None = "destructive tool",
        *,
        session_id: str | None = None,
    ) -> tuple[str, str]:
        """A saved conversation that ends in a tool call, and its pending approval:
        (session_id, call_id)."""
        session_id = session_id or unique("s")
        call_id = unique("call")
        arguments = {"path": "/tmp/report.csv"} if arguments is None else arguments
        self.save(session_id, conversation(call_id, tool_name, arguments))
        self.create_approval(call_id, session_id, tool_name, arguments, reason)
        return session_id, call_id

    def decide(self, call_id: str, status: str = "approved", **extra: Any) -> dict[str, Any]:
        body = {"status": status, **extra}
        return dict(self._ok(self.http.post(f"/approvals/{call_id}/decision", json=body)).json())

    def approval(self, call_id: str) -> dict[str, Any]:
        return dict(self._ok(self.http.get(f"/approvals/{call_id}")).json())

    def pending(self) -> list[str]:
        """Every pending call id (the whole inbox, page after page)."""
        call_ids: list[str] = []
        params = {"status": "pending", "limit": "500"}
        while True:
            page = self._ok(self.http.get("/approvals", params=params)).json()
            call_ids += [item["call_id"] for item in page["items"]]
            if not page["next_cursor"]:
                return call_ids
            params["cursor"] = page["next_cursor"]

    def cancel_pending(self) -> None:
        """Empty the inbox: what earlier tests left pending is cancelled."""
        for call_id in self.pending():
            self.decide(call_id, "cancelled")


def elapsed(since: float) -> float:
    return time.monotonic() - since
