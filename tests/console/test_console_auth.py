"""Who may open the reviewer console: the login form, its cookie, CSRF, throttling,
logging out, and the headers every console answer carries (over ASGI, no browser)."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from agent_runtime.console import auth
from agent_runtime.services.console_sessions import rotate_signing_key
from agent_runtime.services.reviewers import remove_reviewer, set_reviewer_password
from tests.console.http import (
    PASSWORD,
    REVIEWER,
    SESSION_COOKIE,
    cookie_attributes,
    csrf_token,
    open_console,
)

KEY = "s3cret-key"
WRONG = "not the password at all"
WRONG_CREDENTIALS = "Wrong name or password."


def login_redirect(answer, path: str) -> bool:
    """A 303 to the login page, which sends the reviewer back to `path` after."""
    location = answer.headers.get("location")
    return answer.status_code == 303 and location == f"/console/login?next={quote(path, safe='')}"


def main_text(html: str) -> str:
    """The page's <main>, tags stripped: what it says."""
    main = html.split('<main id="main">', 1)[1].split("</main>", 1)[0]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", main)).strip()


# --- logged out -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/console/", "/console/sessions", "/console/approvals/x", "/console/sessions?q=a"]
)
async def test_a_page_sends_a_logged_out_visitor_to_the_login_page(web, path):
    answer = await web.agent().get(path)

    assert login_redirect(answer, path), (answer.status_code, answer.headers.get("location"))


async def test_a_logged_out_form_post_is_refused_with_401(web):
    await web.add_approval("c1")

    answer = await web.agent().post("/console/batch", {"call_id": "c1", "decision": "approved"})
    decide = await web.agent().post(
        "/console/approvals/c1/decide", {"csrf_token": "x", "decision": "approved"}
    )

    assert answer.status_code == 401
    assert decide.status_code == 401
    assert (await web.approval("c1"))["status"] == "pending"


async def test_the_event_stream_refuses_a_logged_out_visitor(web):
    answer = await web.agent().get("/console/events", headers={"Accept": "text/event-stream"})

    assert answer.status_code == 401
    assert "location" not in answer.headers


# --- the API key and the console ------------------------------------------------------


async def test_the_api_key_neither_opens_nor_locks_the_console(backend):
    async with open_console(backend, api_key=KEY) as web:
        visitor = web.agent()
        bearer = {"Authorization": f"Bearer {KEY}"}

        with_key = await visitor.get("/console/", headers=bearer)
        login_page = await visitor.get("/console/login")
        rest_without_key = await visitor.get("/sessions")
        rest_with_key = await visitor.get("/sessions", headers=bearer)
        await web.add_reviewer()
        logged_in = await visitor.login()
        inbox = await visitor.get("/console/")

    assert login_redirect(with_key, "/console/")
    assert login_page.status_code == 200
    assert 'name="password"' in login_page.text
    assert rest_without_key.status_code == 401
    assert rest_with_key.status_code == 200
    assert logged_in.status_code == 303
    assert inbox.status_code == 200


# --- logging in -------------------------------------------------------------------------


async def test_the_login_form_asks_for_a_name_and_password_with_a_csrf_token(web):
    html = await web.agent().login_form()

    assert 'name="username"' in html
    assert 'name="password" type="password"' in html
    assert len(csrf_token(html)) >= 32


async def test_a_wrong_password_and_an_unknown_name_get_the_same_answer(web):
    await web.add_reviewer()
    visitor = web.agent()

    wrong_password = await visitor.login(REVIEWER, WRONG)
    unknown_name = await visitor.login("nobody", PASSWORD)

    for answer in (wrong_password, unknown_name):
        assert answer.status_code == 401
        assert WRONG_CREDENTIALS in answer.text
        assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
    assert main_text(wrong_password.text).replace(REVIEWER, "NAME") == main_text(
        unknown_name.text
    ).replace("nobody", "NAME")
    assert visitor.session_cookie is None


async def test_the_right_password_opens_a_session_and_goes_where_the_visitor_was_going(web):
    await web.add_reviewer()
    visitor = web.agent()
    sent_away = await visitor.get("/console/sessions?q=abc")
    next_path = sent_away.headers["location"].split("next=", 1)[1]

    answer = await visitor.login(next_path="/console/sessions?q=abc")
    page = await visitor.get("/console/sessions?q=abc")

    assert next_path == "%2Fconsole%2Fsessions%3Fq%3Dabc"
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/sessions?q=abc"
    cookie = cookie_attributes(answer, SESSION_COOKIE)
    assert "httponly" in cookie
    assert cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/console"
    assert cookie["max-age"] == str(int(web.app.state.settings.console_session_hours * 3600))
    assert "secure" not in cookie  # plain http: a Secure cookie would never come back
    assert page.status_code == 200
    assert REVIEWER in page.text


async def test_the_session_lasts_the_configured_hours(backend):
    async with open_console(backend, console_session_hours=1.5) as web:
        await web.add_reviewer()
        answer = await web.agent().login()

    assert cookie_attributes(answer, SESSION_COOKIE)["max-age"] == "5400"


async def test_over_https_the_cookies_are_secure(backend):
    async with open_console(backend, base_url="https://t") as web:
        await web.add_reviewer()
        visitor = web.agent()
        form = await visitor.get("/console/login")
        answer = await visitor.login()
        inbox = await visitor.get("/console/")

    assert "secure" in cookie_attributes(form, "console_login_csrf")
    assert "secure" in cookie_attributes(answer, SESSION_COOKIE)
    assert inbox.status_code == 200


@pytest.mark.parametrize("token", [None, "", "forged-token-of-the-right-length-000000000"])
async def test_a_login_without_the_forms_csrf_token_is_refused(web, token):
    await web.add_reviewer()
    visitor = web.agent()
    await visitor.login_form()  # the CSRF cookie is set; the form field is missing or wrong
    form = {"username": REVIEWER, "password": PASSWORD}
    if token is not None:
        form["csrf_token"] = token

    answer = await visitor.post("/console/login", form)

    assert answer.status_code == 403
    assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
    assert visitor.session_cookie is None


async def test_a_login_without_the_csrf_cookie_is_refused(web):
    await web.add_reviewer()
    token = csrf_token(await web.agent().login_form())  # another browser's form

    answer = await web.agent().post(
        "/console/login", {"csrf_token": token, "username": REVIEWER, "password": PASSWORD}
    )

    assert answer.status_code == 403
    assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")


NOT_THE_CONSOLE = [
    "https://evil.example/",
    "//evil.example",
    "//evil.example/console/",
    "https://evil.example/console/",
    "javascript:alert(1)",
    "/elsewhere",
]


async def test_after_login_only_a_console_path_is_followed(web):
    await web.add_reviewer()

    for next_path in NOT_THE_CONSOLE:
        visitor = web.agent()
        form = await visitor.get("/console/login", params={"next": next_path})
        answer = await visitor.login(next_path=next_path)

        assert answer.status_code == 303, next_path
        assert answer.headers["location"] == "/console/", next_path
        assert 'name="next" value="/console/"' in form.text, next_path


# --- throttling -------------------------------------------------------------------------


async def test_five_wrong_passwords_for_a_name_block_the_next_attempt_even_the_right_one(web):
    await web.add_reviewer()
    # From five different addresses: the name is throttled, not one address.
    for n in range(5):
        failed = await web.agent(f"198.51.100.{n}").login(REVIEWER, WRONG)
        assert failed.status_code == 401, n

    visitor = web.agent("198.51.100.99")
    right = await visitor.login(REVIEWER, PASSWORD)
    wrong = await visitor.login(REVIEWER, WRONG)

    assert right.status_code == 429
    assert int(right.headers["retry-after"]) > 0
    assert "Too many failed logins" in right.text
    assert SESSION_COOKIE not in right.headers.get("set-cookie", "")
    assert visitor.session_cookie is None
    # The right password learns nothing the wrong one does not.
    assert wrong.status_code == 429
    assert main_text(right.text) == main_text(wrong.text)
    # Another reviewer, from another address, is not held up.
    await web.add_reviewer("dave")
    assert (await web.agent("198.51.100.100").login("dave")).status_code == 303


async def test_failures_from_one_address_across_names_block_that_address(web):
    await web.add_reviewer()
    visitor = web.agent("203.0.113.7")
    for n in range(5):
        failed = await visitor.login(f"guess-{n}", WRONG)
        assert failed.status_code == 401, n

    blocked = await visitor.login(REVIEWER, PASSWORD)
    elsewhere = await web.agent("203.0.113.8").login(REVIEWER, PASSWORD)

    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    assert elsewhere.status_code == 303


# --- sessions end -----------------------------------------------------------------------


async def test_logging_out_ends_the_session_on_the_server(web, carol):
    cookie = carol.session_cookie

    answer = await carol.submit("/console/logout")
    replayed = await web.agent().get_with_cookie("/console/", cookie)

    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/login"
    assert cookie_attributes(answer, SESSION_COOKIE)["max-age"] == "0"
    assert carol.session_cookie is None
    assert login_redirect(replayed, "/console/")


async def test_logging_out_without_the_csrf_token_is_refused_and_changes_nothing(web, carol):
    without = await carol.submit("/console/logout", csrf=False)
    forged = await carol.submit("/console/logout", {"csrf_token": "forged"}, csrf=False)

    assert without.status_code == 403
    assert forged.status_code == 403
    assert (await carol.get("/console/")).status_code == 200


async def test_a_new_password_ends_the_reviewers_sessions(web, carol):
    other_reviewer = await web.logged_in("dave")

    await set_reviewer_password(web.db, REVIEWER, "a brand new password")

    assert login_redirect(await carol.get("/console/"), "/console/")
    assert (await other_reviewer.get("/console/")).status_code == 200


async def test_removing_a_reviewer_ends_their_sessions(web, carol):
    cookie = carol.session_cookie

    assert await remove_reviewer(web.db, REVIEWER)

    assert login_redirect(await carol.get("/console/"), "/console/")
    assert login_redirect(await web.agent().get_with_cookie("/console/", cookie), "/console/")


async def test_a_tampered_cookie_opens_nothing(web, carol):
    cookie = carol.session_cookie
    assert cookie is not None
    token, timestamp, signature = cookie.rsplit(".", 2)
    # Not the last character: its low bits are base64 padding, ignored when decoded.
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    forged_token = ("B" if token[0] == "A" else "A") + token[1:]

    for value in (
        f"{token}.{timestamp}.{flipped}",
        f"{forged_token}.{timestamp}.{signature}",
        token,
        "",
    ):
        assert login_redirect(await web.agent().get_with_cookie("/console/", value), "/console/")
    assert (await web.agent().get_with_cookie("/console/", cookie)).status_code == 200


async def test_a_key_rotation_keeps_the_previous_keys_cookies_and_drops_older_ones(
    web, carol, monkeypatch
):
    cookie = carol.session_cookie
    assert cookie is not None
    # A worker trusts its copy of the keys for a while; here it re-reads them every time.
    monkeypatch.setattr(auth, "_KEYS_TTL", 0.0)

    await rotate_signing_key(web.db)
    after_one = await web.agent().get_with_cookie("/console/", cookie)
    await rotate_signing_key(web.db)
    after_two = await web.agent().get_with_cookie("/console/", cookie)

    assert after_one.status_code == 200
    assert login_redirect(after_two, "/console/")


async def test_a_new_login_after_a_rotation_is_signed_with_the_new_key(web, carol, monkeypatch):
    monkeypatch.setattr(auth, "_KEYS_TTL", 0.0)
    await rotate_signing_key(web.db)
    again = web.agent()
    assert (await again.login()).status_code == 303

    await rotate_signing_key(web.db)

    assert (await again.get("/console/")).status_code == 200
    assert login_redirect(await carol.get("/console/"), "/console/")


# --- headers ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/console/", "/console/login", "/console/sessions"])
async def test_console_pages_carry_the_security_headers(web, carol, path):
    answer = await carol.get(path)

    assert answer.status_code == 200
    csp = answer.headers["content-security-policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert "'unsafe-inline'" not in csp
    assert "'unsafe-eval'" not in csp
    assert directives["script-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["content-type"].startswith("text/html")


async def test_redirects_and_errors_carry_the_security_headers_too(web):
    redirect = await web.agent().get("/console/")
    refused = await web.agent().post("/console/batch", {})

    for answer in (redirect, refused):
        assert "'unsafe-inline'" not in answer.headers["content-security-policy"]
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/console/static/console.js", "javascript"),
        ("/console/static/console.css", "text/css"),
    ],
)
async def test_static_files_are_served_without_login(web, path, content_type):
    answer = await web.agent().get(path)

    assert answer.status_code == 200
    assert content_type in answer.headers["content-type"]
    assert answer.content
    assert answer.headers["x-content-type-options"] == "nosniff"
