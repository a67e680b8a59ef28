"""The reviewer console in a real browser: headless Chromium (Selenium) on a live
uvicorn server, on SQLite and PostgreSQL.

One server per backend serves the module (`console` fixture): each test logs in as
a reviewer of its own, finds the inbox empty, and works on sessions and calls of
its own, created through the REST API as an agent would; decisions are checked
through the REST API too. Browsers are headless Chromium (see conftest.py).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from urllib.parse import urlencode

import httpx
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from tests.console.browser import (
    PHONE,
    body_text,
    conversation,
    elapsed,
    login,
    new_page,
    one,
    path_of,
    query_of,
    set_text,
    settle,
    settled,
    status_code,
    unique,
    wait_until,
)
from tests.console.conftest import Console

LIVE_BOUND = 2.0  # seconds for the inbox to show a change made elsewhere
STATUSES = [
    "pending",
    "approved",
    "rejected",
    "cancelled",
    "expired",
    "claimed",
    "executed",
    "failed",
    "all",
]
XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=1">'


def rows(driver: WebDriver) -> list[str]:
    """The call ids of the inbox rows, in order (read at once: the live inbox may
    replace its rows at any time)."""
    return list(
        driver.execute_script(
            "return [...document.querySelectorAll('table#inbox tbody tr.approval')]"
            ".map((row) => row.getAttribute('data-call-id'))"
        )
    )


def text_of(driver: WebDriver, css: str) -> str:
    """The element's visible text (found again if the page replaced it meanwhile)."""
    for _ in range(20):
        try:
            return str(one(driver, css).text).strip()
        except StaleElementReferenceException:
            time.sleep(0.05)
    raise AssertionError(f"{css!r} kept being replaced")


def open_inbox(driver: WebDriver, console: Console) -> None:
    """Open the inbox and wait until it is live and settled."""
    driver.get(console.page("/console/"))
    settled(driver)


def flash(driver: WebDriver) -> str:
    return text_of(driver, "#flash")


def click_to(driver: WebDriver, css: str) -> None:
    """Click the element and wait for the page it leads to."""
    with new_page(driver):
        one(driver, css).click()


def assert_times_in_utc(driver: WebDriver, at_least: int = 1) -> None:
    """Every `time[datetime]` says in its title that it is UTC."""
    times = driver.find_elements(By.CSS_SELECTOR, "time[datetime]")
    assert len(times) >= at_least, f"{len(times)} time[datetime] on {driver.current_url}"
    for element in times:
        title = element.get_attribute("title") or ""
        assert "UTC" in title, f"time {element.get_attribute('datetime')!r} has title {title!r}"


def assert_no_horizontal_scroll(driver: WebDriver) -> None:
    widths = driver.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert widths[0] <= widths[1], f"{driver.current_url}: scrollWidth {widths[0]} > {widths[1]}"


def open_approval(driver: WebDriver, console: Console, call_id: str) -> None:
    driver.get(console.page(f"/console/approvals/{call_id}"))
    assert text_of(driver, "#call-id") == call_id


def open_edit(driver: WebDriver) -> WebElement:
    """Open the approval page's "edit the arguments" section; its text field."""
    details = one(driver, "details#edit")
    if details.get_attribute("open") is None:
        one(details, "summary").click()
        wait_until(driver, lambda d: one(d, "details#edit").get_attribute("open") is not None)
    field = one(details, "textarea[name=arguments]")
    assert field.is_displayed()
    return field


# --- the browser itself -----------------------------------------------------------


def test_headless_chromium_loads_a_page_of_the_live_server(browser, console):
    browser.get(console.page("/docs"))
    assert "agent-runtime" in browser.title
    assert status_code(browser) == 200


# --- logging in and out -----------------------------------------------------------


def test_logged_out_pages_lead_to_the_login_form(browser, console):
    _, call_id = console.api.ask()
    for path in ("/console/", "/console/sessions", f"/console/approvals/{call_id}"):
        browser.get(console.page(path))
        assert path_of(browser) == "/console/login", path
        assert "next=" in query_of(browser), browser.current_url

    form = one(browser, "form#login-form")
    assert one(form, "input[name=password]").get_attribute("type") == "password"
    assert one(form, "input[name=csrf_token]").get_attribute("type") == "hidden"
    assert one(form, "input[name=csrf_token]").get_attribute("value")
    assert one(form, "button[type=submit]")

    # Logging in from there leads back to the page asked for.
    one(form, "input[name=username]").send_keys(console.reviewer)
    one(form, "input[name=password]").send_keys(console.password)
    click_to(browser, "form#login-form button[type=submit]")
    assert path_of(browser) == f"/console/approvals/{call_id}"


def test_a_wrong_password_is_refused_and_the_right_one_opens_the_inbox(browser, console):
    browser.get(console.page("/console/login"))
    one(browser, "input[name=username]").send_keys(console.reviewer)
    one(browser, "input[name=password]").send_keys("not the password")
    click_to(browser, "button[type=submit]")
    assert text_of(browser, "#login-error") == "Wrong name or password."
    assert status_code(browser) == 401
    assert path_of(browser) == "/console/login"
    assert browser.get_cookie("console_session") is None

    # An unknown name gets the same answer.
    set_text(one(browser, "input[name=username]"), unique("nobody"))
    set_text(one(browser, "input[name=password]"), console.password)
    click_to(browser, "button[type=submit]")
    assert text_of(browser, "#login-error") == "Wrong name or password."
    assert status_code(browser) == 401

    login(browser, console.url, console.reviewer)
    assert path_of(browser) == "/console/"
    assert "Inbox" in browser.title
    assert browser.get_cookie("console_session") is not None


def test_logging_out_ends_the_session_for_every_copy_of_the_cookie(reviewer_browser, console):
    browser = reviewer_browser
    cookie = browser.get_cookie("console_session")
    assert cookie is not None
    assert cookie.get("httpOnly") is True

    button = one(browser, "form#logout-form button")
    assert "Log out" in button.text
    with new_page(browser):
        button.click()
    assert path_of(browser) == "/console/login"

    open_inbox(browser, console)
    assert path_of(browser) == "/console/login"

    # The old cookie, put back, opens nothing: the session ended on the server.
    browser.delete_all_cookies()
    browser.add_cookie({"name": cookie["name"], "value": cookie["value"], "path": "/"})
    open_inbox(browser, console)
    assert path_of(browser) == "/console/login"
    assert not browser.find_elements(By.CSS_SELECTOR, "table#inbox")


# --- the inbox --------------------------------------------------------------------


def test_the_inbox_lists_pending_approvals_with_their_count(reviewer_browser, console):
    browser = reviewer_browser
    assert browser.title == "Inbox · agent-runtime"
    assert text_of(browser, "#pending-count") == "0"
    assert one(browser, "#inbox-empty").is_displayed()
    assert rows(browser) == []

    first_session, first = console.api.ask("delete_file", reason="destructive tool")
    second_session, second = console.api.ask(
        "send_email", {"to": "ops@example.com"}, reason="leaves the company"
    )
    open_inbox(browser, console)
    assert browser.title == "(2) Inbox · agent-runtime"
    assert text_of(browser, "#pending-count") == "2"
    assert not [
        e for e in browser.find_elements(By.CSS_SELECTOR, "#inbox-empty") if e.is_displayed()
    ]
    assert sorted(rows(browser)) == sorted([first, second])
    for call_id, session_id, tool, reason in (
        (first, first_session, "delete_file", "destructive tool"),
        (second, second_session, "send_email", "leaves the company"),
    ):
        row = one(browser, f'tr.approval[data-call-id="{call_id}"]')
        link = one(row, "a.approval-link")
        assert link.get_attribute("href") == console.page(f"/console/approvals/{call_id}")
        for shown in (tool, call_id, session_id, reason):
            assert shown in row.text, f"{shown!r} not in row {row.text!r}"
        assert row.find_elements(By.CSS_SELECTOR, "time[datetime]"), "no age in the row"
    assert_times_in_utc(browser, at_least=2)

    click_to(browser, f'tr.approval[data-call-id="{second}"] a.approval-link')
    assert path_of(browser) == f"/console/approvals/{second}"

    console.api.decide(first, "approved")
    console.api.decide(second, "rejected")
    open_inbox(browser, console)
    assert browser.title == "Inbox · agent-runtime"
    assert text_of(browser, "#pending-count") == "0"
    assert one(browser, "#inbox-empty").is_displayed()


def test_the_inbox_filters_by_tool_session_and_status(reviewer_browser, console):
    browser = reviewer_browser
    tag = uuid.uuid4().hex[:8]  # approvals of earlier tests stay in the database
    deleting_tool, mailing_tool, paying_tool = (
        f"{name}_{tag}" for name in ("delete_file", "send_email", "issue_refund")
    )
    session_id, deleting = console.api.ask(deleting_tool)
    _, mailing = console.api.ask(mailing_tool, {"to": "ops@example.com"})
    _, paying = console.api.ask(paying_tool, {"amount": 30})
    console.api.decide(paying, "approved")
    mine = {deleting, mailing, paying}

    open_inbox(browser, console)
    status = one(browser, "form#filters select[name=status]")
    options = status.find_elements(By.TAG_NAME, "option")
    assert [o.get_attribute("value") for o in options] == STATUSES
    assert [o.get_attribute("value") for o in options if o.is_selected()] == ["pending"]
    assert sorted(rows(browser)) == sorted([deleting, mailing])

    def apply(tool: str = "", session: str = "", status_value: str = "pending") -> list[str]:
        """The filtered inbox: those of this test's calls it lists."""
        form = one(browser, "form#filters")
        for name, value in (("tool", tool), ("session", session)):
            field = one(form, f"input[name={name}]")
            field.clear()
            if value:
                field.send_keys(value)
        one(form, f'select[name=status] option[value="{status_value}"]').click()
        with new_page(browser):
            form.submit()
        assert f"status={status_value}" in query_of(browser)
        return sorted(set(rows(browser)) & mine)

    assert apply(tool=mailing_tool) == [mailing]
    assert apply(session=session_id) == [deleting]
    assert apply(status_value="approved") == [paying]
    assert apply(tool=paying_tool, status_value="approved") == [paying]
    assert apply(tool=paying_tool) == []
    assert apply(tool=deleting_tool, status_value="all") == [deleting]
    assert apply(status_value="all") == sorted(mine)
    # The filtered page keeps the filters filled in.
    assert one(browser, "form#filters select[name=status] option[value=all]").is_selected()
    assert one(browser, "form#filters input[name=tool]").get_attribute("value") == ""
    apply(tool=paying_tool, status_value="approved")
    assert one(browser, "form#filters input[name=tool]").get_attribute("value") == paying_tool


def test_the_inbox_shows_new_and_decided_approvals_without_a_reload(reviewer_browser, console):
    browser = reviewer_browser
    assert rows(browser) == []
    browser.execute_script("window.__same_page = true")
    session_id, call_id = unique("s"), unique("call")
    console.api.save(session_id, conversation(call_id, "delete_file", {"path": "/tmp/a"}))

    started = time.monotonic()
    console.api.create_approval(call_id, session_id)
    wait_until(browser, lambda d: call_id in rows(d))
    appeared = elapsed(started)
    assert appeared <= LIVE_BOUND, f"the new approval appeared after {appeared:.2f} s"
    wait_until(browser, lambda d: d.title == "(1) Inbox · agent-runtime")
    assert text_of(browser, "#pending-count") == "1"
    row = one(browser, f'tr.approval[data-call-id="{call_id}"]')
    href = one(row, "a.approval-link").get_attribute("href")
    assert href == console.page(f"/console/approvals/{call_id}")

    started = time.monotonic()
    console.api.decide(call_id, "approved")
    wait_until(browser, lambda d: call_id not in rows(d))
    left = elapsed(started)
    assert left <= LIVE_BOUND, f"the decided approval left after {left:.2f} s"
    wait_until(browser, lambda d: d.title == "Inbox · agent-runtime")
    assert browser.execute_script("return window.__same_page") is True, "the page reloaded"


def test_a_selection_made_while_the_inbox_refreshes_is_kept(reviewer_browser, console):
    browser = reviewer_browser
    _, first = console.api.ask()
    open_inbox(browser, console)
    box = f'input[type=checkbox][name=call_id][value="{first}"]'
    # A slow network: the inbox's refresh after the next event takes a while.
    browser.execute_cdp_cmd("Network.enable", {})
    slow = {"offline": False, "latency": 800, "downloadThroughput": -1, "uploadThroughput": -1}
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", slow)
    try:
        _, second = console.api.ask()
        wait_until(browser, lambda d: d.execute_script("return window.__fetching > 0"))
        one(browser, box).click()  # ticked while the new rows are on their way
        wait_until(browser, lambda d: sorted(rows(d)) == sorted([first, second]))
        settled(browser)
    finally:
        browser.execute_cdp_cmd("Network.disable", {})
    assert one(browser, box).is_selected(), "the live refresh unticked the reviewer's choice"


# --- one approval -----------------------------------------------------------------


def test_the_approval_page_shows_the_call_and_approves_it(reviewer_browser, console):
    browser = reviewer_browser
    arguments = {"path": "/var/reports/2024-q3.csv", "recursive": False}
    session_id, call_id = console.api.ask("delete_file", arguments, reason="destructive tool")
    open_approval(browser, console, call_id)

    assert text_of(browser, "#tool-name") == "delete_file"
    assert text_of(browser, "#reason") == "destructive tool"
    assert "pending" in text_of(browser, "#status").lower()
    shown = one(browser, "pre#arguments").text
    assert json.loads(shown) == arguments
    assert "\n" in shown, "the arguments are not pretty-printed"
    assert session_id in body_text(browser)

    messages = browser.find_elements(By.CSS_SELECTOR, "section#conversation .message")
    roles = [
        next((c for c in str(m.get_attribute("class")).split() if c.startswith("role-")), None)
        for m in messages
    ]
    assert roles == ["role-system", "role-user", "role-assistant", "role-assistant"]
    requesting = browser.find_elements(By.CSS_SELECTOR, "section#conversation .message.requesting")
    assert requesting == [messages[3]]
    assert "delete_file" in requesting[0].text
    assert "Please clean up the old reports." in messages[1].text
    events_before = len(browser.find_elements(By.CSS_SELECTOR, "ul#audit li.event"))
    assert events_before >= 1
    assert_times_in_utc(browser)

    form = one(browser, "form#decide-form")
    assert one(form, "details#edit").get_attribute("open") is None, "editing is not a step away"
    prefilled = str(one(form, "details#edit textarea[name=arguments]").get_attribute("value"))
    assert json.loads(prefilled) == arguments
    assert "\n" in prefilled, "the arguments to edit are not pretty-printed"
    for css, value in (("button#approve", "approved"), ("button#reject", "rejected")):
        button = one(form, css)
        assert (button.get_attribute("name"), button.get_attribute("value")) == (
            "decision",
            value,
        )

    one(form, "textarea[name=message]").send_keys("Only the Q3 file, keep the rest.")
    click_to(browser, "form#decide-form button#approve")
    assert "Approved" in flash(browser)
    assert path_of(browser) == f"/console/approvals/{call_id}"
    assert "approved" in text_of(browser, "#status").lower()
    assert len(browser.find_elements(By.CSS_SELECTOR, "ul#audit li.event")) > events_before
    assert console.reviewer in text_of(browser, "ul#audit")

    stored = console.api.approval(call_id)
    assert stored["status"] == "approved"
    assert stored["decided_by"] == console.reviewer
    assert stored["message"] == "Only the Q3 file, keep the rest."
    assert stored["arguments"] == arguments
    assert stored["edited_arguments"] is None


def test_rejecting_from_the_approval_page(reviewer_browser, console):
    browser = reviewer_browser
    _, call_id = console.api.ask("send_email", {"to": "all@example.com"}, reason="mass mail")
    open_approval(browser, console, call_id)
    one(browser, "form#decide-form textarea[name=message]").send_keys("Not to everyone.")
    click_to(browser, "button#reject")
    assert "Rejected" in flash(browser)
    assert "rejected" in text_of(browser, "#status").lower()

    stored = console.api.approval(call_id)
    assert (stored["status"], stored["decided_by"], stored["message"]) == (
        "rejected",
        console.reviewer,
        "Not to everyone.",
    )


def test_edited_arguments_are_checked_shown_as_a_diff_and_confirmed(reviewer_browser, console):
    browser = reviewer_browser
    arguments = {"path": "/var/reports", "recursive": True}
    edit = {"path": "/var/reports/old", "recursive": False}
    _, call_id = console.api.ask("delete_file", arguments)
    open_approval(browser, console, call_id)

    field = open_edit(browser)

    set_text(field, '{"path": "/var/reports/old", ')
    wait_until(browser, lambda d: one(d, "#arguments-error").is_displayed())
    assert text_of(browser, "#arguments-error")
    assert not one(browser, "button#approve").is_enabled()

    set_text(field, json.dumps(edit))
    wait_until(browser, lambda d: one(d, "button#approve").is_enabled())
    assert not one(browser, "#arguments-error").is_displayed()
    click_to(browser, "button#approve")

    diff = one(browser, "#diff")
    removed = " ".join(e.text for e in diff.find_elements(By.CSS_SELECTOR, ".diff-del"))
    added = " ".join(e.text for e in diff.find_elements(By.CSS_SELECTOR, ".diff-add"))
    assert "/var/reports" in removed and "true" in removed, removed
    assert "/var/reports/old" in added and "false" in added, added
    assert console.api.approval(call_id)["status"] == "pending"  # nothing decided yet

    click_to(browser, "form#confirm-form button#confirm")
    assert "Approved" in flash(browser)
    stored = console.api.approval(call_id)
    assert stored["status"] == "approved"
    assert stored["decided_by"] == console.reviewer
    assert stored["edited_arguments"] == edit
    assert stored["arguments"] == arguments


def test_a_call_decided_in_another_browser_is_not_decided_again(
    browsers: Callable[..., WebDriver], console
):
    other = console.add_reviewer("bob")
    first, second = browsers(), browsers()
    login(first, console.url, console.reviewer)
    login(second, console.url, other)
    _, call_id = console.api.ask()
    open_approval(first, console, call_id)
    open_approval(second, console, call_id)

    click_to(first, "button#approve")
    assert "Approved" in flash(first)

    one(second, "textarea[name=message]").send_keys("No.")
    click_to(second, "button#reject")
    assert f"already approved by {console.reviewer}" in text_of(second, "#already-decided")
    stored = console.api.approval(call_id)
    assert (stored["status"], stored["decided_by"], stored["message"]) == (
        "approved",
        console.reviewer,
        None,
    )


# --- several at once --------------------------------------------------------------


def test_approving_a_batch_from_the_inbox(reviewer_browser, console):
    browser = reviewer_browser
    calls = [console.api.ask(tool)[1] for tool in ("delete_file", "send_email", "run_sql")]
    chosen, left = calls[:2], calls[2]
    open_inbox(browser, console)
    assert one(browser, "form#batch-form")
    for call_id in chosen:
        box = one(
            browser, f'tr.approval[data-call-id="{call_id}"] input[type=checkbox][name=call_id]'
        )
        assert box.get_attribute("value") == call_id
        box.click()
        assert box.is_selected()
    approve = one(browser, "button[name=decision][value=approved]")
    assert browser.execute_script("return arguments[0].form.id", approve) == "batch-form"
    with new_page(browser):
        approve.click()

    confirm = one(browser, "#batch-confirm")
    items = confirm.find_elements(By.CSS_SELECTOR, "li.batch-item")
    assert len(items) == len(chosen)
    for call_id in chosen:
        assert any(call_id in item.text for item in items), call_id
    assert left not in confirm.text
    assert all(console.api.approval(c)["status"] == "pending" for c in calls)

    click_to(browser, "button#confirm-batch")
    assert flash(browser)
    assert path_of(browser) == "/console/"
    assert rows(browser) == [left]
    for call_id in chosen:
        stored = console.api.approval(call_id)
        assert (stored["status"], stored["decided_by"]) == ("approved", console.reviewer)
    assert console.api.approval(left)["status"] == "pending"


# --- attacks ----------------------------------------------------------------------


def test_a_decision_without_the_csrf_token_is_refused(reviewer_browser, console):
    browser = reviewer_browser
    _, call_id = console.api.ask()
    open_approval(browser, console, call_id)
    action = str(one(browser, "form#decide-form").get_attribute("action"))
    browser.execute_script("document.querySelector('#decide-form input[name=csrf_token]').remove()")
    click_to(browser, "button#approve")
    assert "CSRF" in body_text(browser)
    assert status_code(browser) == 403
    assert console.api.approval(call_id)["status"] == "pending"

    # The same from outside the browser, with the reviewer's cookie: refused too.
    cookie = browser.get_cookie("console_session")
    assert cookie is not None
    with httpx.Client(cookies={cookie["name"]: cookie["value"]}, timeout=10) as http:
        response = http.post(action, data={"decision": "approved"}, follow_redirects=False)
    assert response.status_code == 403, response.text
    assert console.api.approval(call_id)["status"] == "pending"


def test_stored_html_is_shown_as_text_and_never_runs(reviewer_browser, console):
    browser = reviewer_browser
    session_id, call_id = unique("s"), unique("call")
    tool = f"wipe{XSS}"
    arguments = {"command": XSS}
    messages = conversation(call_id, tool, arguments, user=f"Please {XSS}")
    messages.append({"role": "assistant", "content": f"Reply {XSS}"})
    console.api.save(session_id, messages)
    console.api.set_title(session_id, f"Title {XSS}")
    console.api.create_approval(call_id, session_id, tool, arguments, reason=f"Reason {XSS}")

    def assert_inert(*expected: str) -> None:
        settle(browser)
        assert browser.execute_script("return window.__xss") is None, browser.current_url
        assert not browser.find_elements(By.CSS_SELECTOR, 'img[src="x"]'), browser.current_url
        text = body_text(browser)
        for shown in expected:
            assert shown in text, f"{shown!r} not shown on {browser.current_url}"

    open_inbox(browser, console)
    assert_inert(tool, f"Reason {XSS}")
    browser.get(console.page(f"/console/approvals/{call_id}"))
    assert_inert(tool, f"Reason {XSS}", f"Please {XSS}", f"Reply {XSS}")
    browser.get(console.page("/console/sessions"))
    assert_inert(f"Title {XSS}")
    browser.get(console.page(f"/console/sessions/{session_id}"))
    assert_inert(f"Title {XSS}", f"Please {XSS}", f"Reply {XSS}")

    # A row the inbox adds live is as inert as one it rendered.
    open_inbox(browser, console)
    live_session, live_call = unique("s"), unique("call")
    console.api.save(live_session, conversation(live_call, tool, arguments))
    console.api.create_approval(live_call, live_session, tool, arguments, reason=f"Live {XSS}")
    wait_until(browser, lambda d: live_call in rows(d))
    assert_inert(f"Live {XSS}")

    # The confirmation pages show them as text too: a batch, and an edit's diff.
    settled(browser)
    one(browser, f'input[type=checkbox][name=call_id][value="{call_id}"]').click()
    click_to(browser, "button[name=decision][value=approved]")
    assert_inert(tool)
    assert call_id in text_of(browser, "#batch-confirm")
    browser.get(console.page(f"/console/approvals/{call_id}"))
    field = open_edit(browser)
    set_text(field, json.dumps({"command": XSS, "note": XSS}))
    click_to(browser, "button#approve")
    assert one(browser, "#diff")
    assert_inert("<script>window.__xss=1</script>")
    assert console.api.approval(call_id)["status"] == "pending"


# --- sessions ---------------------------------------------------------------------


def test_the_sessions_pages_list_search_and_show_a_session(reviewer_browser, console):
    browser = reviewer_browser
    weather, call_id = console.api.ask("get_weather", {"city": "Paris"}, reason="costs money")
    console.api.set_title(weather, "Weather in Paris")
    console.api.set_agent_context(
        weather,
        {
            "current_agent": "forecaster",
            "agent_history": [
                {
                    "from": "triage",
                    "to": "forecaster",
                    "reason": "weather question",
                    "timestamp": "2026-01-02T12:05:00Z",
                    "metadata": {},
                }
            ],
            "switch_count": 1,
        },
    )
    billing = unique("s")
    console.api.save(billing, [{"role": "user", "content": "Where is my invoice?"}])
    console.api.set_title(billing, "Invoice question")

    browser.get(console.page("/console/sessions"))
    listed = browser.find_elements(By.CSS_SELECTOR, "table#sessions tr.session")
    # Most recently active first: this test's two sessions lead the list.
    assert all(row.find_elements(By.CSS_SELECTOR, "a.session-link") for row in listed)
    top = " ".join(row.text for row in listed[:2])
    assert "Weather in Paris" in top and "Invoice question" in top, top
    assert_times_in_utc(browser)

    def search(q: str) -> str:
        field = one(browser, "input[name=q]")
        field.clear()
        field.send_keys(q)
        with new_page(browser):
            field.submit()
        assert urlencode({"q": q}) in query_of(browser)
        found = browser.find_elements(By.CSS_SELECTOR, "table#sessions tr.session")
        return " ".join(row.text for row in found)

    found = search("Paris")
    assert "Weather in Paris" in found and "Invoice question" not in found
    found = search(billing)
    assert "Invoice question" in found and "Weather in Paris" not in found

    browser.get(console.page("/console/sessions"))
    link = next(
        a
        for a in browser.find_elements(By.CSS_SELECTOR, "table#sessions a.session-link")
        if str(a.get_attribute("href")).endswith(f"/console/sessions/{weather}")
    )
    with new_page(browser):
        link.click()
    assert path_of(browser) == f"/console/sessions/{weather}"
    assert len(browser.find_elements(By.CSS_SELECTOR, "section#conversation .message")) == 4
    assert "forecaster" in text_of(browser, "#agent-context")
    assert "triage" in text_of(browser, "#switch-history")
    assert call_id in text_of(browser, "#session-approvals")
    assert_times_in_utc(browser)


# --- small screens ----------------------------------------------------------------


def test_inbox_and_approval_fit_a_phone_screen(browsers, console):
    browser = browsers(PHONE)
    login(browser, console.url, console.reviewer)
    arguments = {
        "path": "/var/lib/agent/workspaces/customer-acme-corporation/reports/"
        "2024/quarterly-revenue-by-region-and-product-line-final-v3.csv",
        "note": "The customer asked for the old quarterly exports to be removed. " * 3,
    }
    _, call_id = console.api.ask(
        "delete_file_from_customer_workspace",
        arguments,
        reason="Deletes a file in a customer's workspace; this cannot be undone. " * 2,
        session_id=f"session-{uuid.uuid4()}",
    )
    open_inbox(browser, console)
    assert rows(browser) == [call_id]
    assert browser.execute_script("return window.innerWidth") <= PHONE[0]
    assert_no_horizontal_scroll(browser)
    open_approval(browser, console, call_id)
    assert_no_horizontal_scroll(browser)
