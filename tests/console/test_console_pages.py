"""What a logged-in reviewer sees and does in the console: the inbox, deciding one
tool call (edited or not), deciding several, reading sessions; and that nothing an
agent stored is ever served as markup (over ASGI, no browser)."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

import pytest

from tests.console.http import (
    REVIEWER,
    Agent,
    elements,
    query_of,
    tool_call,
)

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = "<img src=x onerror=alert(1)>"
XSS = f"{XSS_SCRIPT}{XSS_IMG}"


def title(html: str) -> str:
    found = re.search(r"<title>(.*?)</title>", html, re.S)
    assert found, html[:500]
    return unescape(found.group(1))


def inbox_ids(html: str) -> list[str]:
    """The call ids of the inbox's rows, top to bottom."""
    return [unescape(v) for v in re.findall(r'<tr class="approval" data-call-id="([^"]*)"', html)]


def session_ids(html: str) -> list[str]:
    return [
        unescape(t) for t in re.findall(r'<a class="session-link" href="[^"]*">([^<]*)</a>', html)
    ]


def hidden_values(html: str, name: str) -> list[str]:
    pattern = rf'<input type="hidden" name="{name}" value="([^"]*)">'
    return [unescape(v) for v in re.findall(pattern, html)]


def textarea(html: str, element_id: str) -> str:
    found = re.search(rf'<textarea id="{element_id}"[^>]*>(.*?)</textarea>', html, re.S)
    assert found, f"no textarea #{element_id}"
    return unescape(found.group(1))


async def decide_form(agent: Agent, call_id: str, **fields: str) -> tuple[str, dict[str, str]]:
    """The approval page's decide form as a browser would send it: its CSRF token and
    the arguments textarea as shown, then `fields` (decision, message, ...)."""
    page = await agent.get(f"/console/approvals/{call_id}")
    assert page.status_code == 200, page.text
    form = {
        "csrf_token": hidden_values(page.text, "csrf_token")[0],
        "message": "",
        "arguments": textarea(page.text, "arguments-input"),
        **fields,
    }
    return page.text, form


async def decide(agent: Agent, call_id: str, **fields: str) -> Any:
    _, form = await decide_form(agent, call_id, **fields)
    return await agent.post(f"/console/approvals/{call_id}/decide", form)


def html_page(answer: Any, status: int) -> str:
    assert answer.status_code == status, (answer.status_code, answer.text[:2000])
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.text.lstrip().startswith("<!doctype html>")
    return str(answer.text)


# --- the inbox ------------------------------------------------------------------------


async def test_the_inbox_lists_pending_calls_oldest_first_across_sessions(web, carol):
    for call_id, session_id in [("c3", "s2"), ("c1", "s1"), ("c9", "s1"), ("c2", "s2")]:
        await web.add_approval(call_id, session_id=session_id)
    await web.decide("c9", "approved", "alice")

    page = await carol.get("/console/")

    assert page.status_code == 200
    assert inbox_ids(page.text) == ["c3", "c1", "c2"]
    assert title(page.text) == "(3) Inbox · agent-runtime"
    assert elements(page.text, "span", "status-pending") == ["pending"] * 3


async def test_the_inbox_filters_by_tool_session_and_status(web, carol):
    await web.add_approval("a1", session_id="s1", tool_name="delete_file")
    await web.add_approval("a2", session_id="s2", tool_name="send_mail")
    await web.add_approval("a3", session_id="s1", tool_name="send_mail")
    await web.add_approval("a4", session_id="s2", tool_name="delete_file")
    await web.decide("a1", "approved", "alice")
    await web.decide("a4", "rejected", "alice")

    async def ids(**query: str) -> list[str]:
        page = await carol.get("/console/", params=query)
        assert page.status_code == 200, page.text
        assert title(page.text) == "(2) Inbox · agent-runtime"  # the count is of all pending
        return inbox_ids(page.text)

    assert await ids() == ["a2", "a3"]
    assert await ids(tool="send_mail") == ["a2", "a3"]
    assert await ids(session="s1") == ["a3"]
    assert await ids(status="all") == ["a1", "a2", "a3", "a4"]
    assert await ids(status="approved") == ["a1"]
    assert await ids(status="rejected") == ["a4"]
    assert await ids(status="all", tool="delete_file", session="s2") == ["a4"]
    assert await ids(tool="no_such_tool") == []


async def test_an_unknown_status_filter_answers_a_422_page(web, carol):
    answer = await carol.get("/console/", params={"status": "bogus"})

    page = html_page(answer, 422)
    assert "bogus" in page
    assert "pending" in elements(page, "p", "notice")[0]


async def test_an_empty_inbox_says_so(web, carol):
    page = await carol.get("/console/")
    filtered = await carol.get("/console/", params={"status": "approved"})

    assert elements(page.text, "p", "empty") == ["Nothing waits for a decision."]
    assert title(page.text) == "Inbox · agent-runtime"
    assert elements(filtered.text, "p", "empty") == ["No tool calls match these filters."]


async def test_the_inbox_rows_fragment_is_the_live_part_only(web, carol):
    await web.add_approval("c1", tool_name="delete_file")
    await web.add_approval("c2", tool_name="send_mail")

    rows = await carol.get("/console/inbox/rows", params={"tool": "send_mail"})

    assert rows.status_code == 200
    assert rows.headers["content-type"].startswith("text/html")
    assert "<html" not in rows.text
    assert "<form" not in rows.text
    assert inbox_ids(rows.text) == ["c2"]
    assert 'data-pending="2"' in rows.text


async def test_the_inbox_pages_through_every_call_once_keeping_its_filters(web, carol):
    created = [f"c{n:02d}" for n in range(55)]
    for call_id in created:
        await web.add_approval(call_id, tool_name="send_mail")
    await web.add_approval("other", tool_name="delete_file")

    first = await carol.get("/console/", params={"tool": "send_mail"})
    link = re.search(r'<a id="next-page" href="([^"]*)">', first.text)
    assert link, "no link to the next page"
    second = await carol.get(unescape(link.group(1)))

    assert query_of(unescape(link.group(1)))["tool"] == "send_mail"
    assert inbox_ids(first.text) + inbox_ids(second.text) == created
    assert 'id="next-page"' not in second.text


@pytest.mark.parametrize(
    "path",
    [
        "/console/?cursor=garbage",
        "/console/sessions?cursor=garbage",
        "/console/sessions/s1?after=-1",
        "/console/sessions/s1?after=abc",
    ],
)
async def test_a_malformed_address_answers_a_422_page(web, carol, path):
    await web.save_session("s1")

    html_page(await carol.get(path), 422)


# --- deciding one tool call -------------------------------------------------------------


async def test_approving_through_the_form_records_the_logged_in_reviewer(web, carol):
    await web.add_approval("c1", arguments={"path": "/tmp/a"})

    answer = await decide(
        carol, "c1", decision="approved", message="go ahead", decided_by="mallory"
    )
    shown = await carol.get(answer.headers["location"])

    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/approvals/c1?done=approved"
    stored = await web.approval("c1")
    assert stored["status"] == "approved"
    assert stored["decided_by"] == REVIEWER
    assert stored["message"] == "go ahead"
    assert stored["edited_arguments"] is None
    assert stored["arguments"] == {"path": "/tmp/a"}
    assert elements(shown.text, "p", "ok") == ["Approved. The agent has been told."]
    assert re.search(r'<dd id="status">approved</dd>', shown.text)
    assert 'id="decide-form"' not in shown.text


async def test_rejecting_through_the_form_records_the_message(web, carol):
    await web.add_approval("c1")

    answer = await decide(carol, "c1", decision="rejected", message="not that file")

    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/approvals/c1?done=rejected"
    stored = await web.approval("c1")
    assert (stored["status"], stored["decided_by"], stored["message"]) == (
        "rejected",
        REVIEWER,
        "not that file",
    )


async def test_a_decision_without_this_sessions_csrf_token_is_refused(web, carol):
    await web.add_approval("c1")
    bob = await web.logged_in("bob")
    bobs_token = await bob.csrf()
    _, form = await decide_form(carol, "c1", decision="approved")

    without = await carol.post(
        "/console/approvals/c1/decide", {k: v for k, v in form.items() if k != "csrf_token"}
    )
    with_bobs = await carol.post("/console/approvals/c1/decide", {**form, "csrf_token": bobs_token})

    assert without.status_code == 403
    assert with_bobs.status_code == 403
    assert "CSRF" in with_bobs.text
    assert (await web.approval("c1"))["status"] == "pending"


async def test_edited_arguments_are_confirmed_then_recorded_beside_the_original(web, carol):
    await web.add_approval("c1", arguments={"path": "/tmp/a", "force": True})
    edit = {"path": "/tmp/b", "force": True}

    answer = await decide(
        carol, "c1", decision="approved", message="use b", arguments=json.dumps(edit)
    )

    confirm = html_page(answer, 200)
    assert elements(confirm, "span", "diff-del") == ['-   "path": "/tmp/a"']
    assert elements(confirm, "span", "diff-add") == ['+   "path": "/tmp/b"']
    assert elements(confirm, "span", "diff-same") == ["  {", '    "force": true,', "  }"]
    assert hidden_values(confirm, "confirmed") == ["1"]
    assert json.loads(hidden_values(confirm, "arguments")[0]) == edit
    assert hidden_values(confirm, "message") == ["use b"]
    assert (await web.approval("c1"))["status"] == "pending"

    # The confirm page's form, as it is.
    fields = ("csrf_token", "decision", "confirmed", "arguments", "message")
    confirmed = await carol.post(
        "/console/approvals/c1/decide", {f: hidden_values(confirm, f)[0] for f in fields}
    )

    assert confirmed.status_code == 303
    assert confirmed.headers["location"] == "/console/approvals/c1?done=approved"
    stored = await web.approval("c1")
    assert stored["status"] == "approved"
    assert stored["decided_by"] == REVIEWER
    assert stored["edited_arguments"] == edit
    assert stored["arguments"] == {"path": "/tmp/a", "force": True}
    assert stored["message"] == "use b"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"path": "/tmp/b",', "not valid JSON"),
        ('["/tmp/b"]', "must be a JSON object"),
    ],
)
async def test_arguments_that_are_not_a_json_object_are_refused_with_the_error(
    web, carol, text, error
):
    await web.add_approval("c1")

    answer = await decide(carol, "c1", decision="approved", message="hi", arguments=text)

    page = html_page(answer, 422)
    assert error in elements(page, "p", "error")[0]
    assert textarea(page, "arguments-input") == text  # what the reviewer typed is kept
    assert textarea(page, "message") == "hi"
    assert (await web.approval("c1"))["status"] == "pending"


async def test_arguments_equal_to_the_recorded_ones_are_no_edit(web, carol):
    await web.add_approval("c1", arguments={"path": "/tmp/a", "n": 1})

    answer = await decide(
        carol, "c1", decision="approved", arguments='{ "n":1,\n"path" : "/tmp/a" }'
    )

    assert answer.status_code == 303
    stored = await web.approval("c1")
    assert stored["status"] == "approved"
    assert stored["edited_arguments"] is None


@pytest.mark.parametrize("text", ['{"path": "/etc/passwd"}', "not json at all"])
async def test_arguments_sent_with_a_rejection_are_ignored(web, carol, text):
    await web.add_approval("c1", arguments={"path": "/tmp/a"})

    answer = await decide(carol, "c1", decision="rejected", arguments=text)

    assert answer.status_code == 303
    stored = await web.approval("c1")
    assert stored["status"] == "rejected"
    assert stored["edited_arguments"] is None
    assert stored["arguments"] == {"path": "/tmp/a"}


@pytest.mark.parametrize("decision", ["rejected", "approved"])
async def test_a_call_decided_meanwhile_is_not_decided_again(web, carol, decision):
    await web.add_approval("c1")
    _, form = await decide_form(carol, "c1", decision=decision, message="mine")
    await web.decide("c1", "approved", "alice")  # while carol's page was open

    answer = await carol.post("/console/approvals/c1/decide", form)

    page = html_page(answer, 409)
    assert "already approved by alice" in elements(page, "p", "warn")[0]
    assert 'id="decide-form"' not in page
    stored = await web.approval("c1")
    assert (stored["status"], stored["decided_by"], stored["message"]) == (
        "approved",
        "alice",
        None,
    )


# --- deciding several -------------------------------------------------------------------


async def test_a_batch_is_confirmed_call_by_call_then_decided(web, carol):
    for call_id in ("c1", "c2", "c3", "c4"):
        await web.add_approval(call_id)
    await web.decide("c4", "approved", "alice")
    token = await carol.csrf()

    listed = await carol.post(
        "/console/batch",
        {"csrf_token": token, "decision": "approved", "call_id": ["c1", "c2", "c3", "c4"]},
    )

    confirm = html_page(listed, 200)
    items = elements(confirm, "li", "batch-item")
    assert len(items) == 4
    for call_id, item in zip(("c1", "c2", "c3", "c4"), items, strict=True):
        assert call_id in item
    assert "already approved" in items[3]
    assert hidden_values(confirm, "call_id") == ["c1", "c2", "c3"]
    assert hidden_values(confirm, "decision") == ["approved"]
    assert (await web.approval("c1"))["status"] == "pending"

    await web.decide("c2", "rejected", "alice")  # while the confirm page was open
    done = await carol.post(
        "/console/batch/confirm",
        {
            "csrf_token": hidden_values(confirm, "csrf_token")[0],
            "decision": "approved",
            "call_id": hidden_values(confirm, "call_id"),
            "message": "all fine",
        },
    )

    assert done.status_code == 303
    assert done.headers["location"].startswith("/console/?")
    assert query_of(done.headers["location"]) == {"done": "approved", "n": "2", "skipped": "1"}
    for call_id in ("c1", "c3"):
        stored = await web.approval(call_id)
        assert (stored["status"], stored["decided_by"], stored["message"]) == (
            "approved",
            REVIEWER,
            "all fine",
        )
    stored = await web.approval("c2")
    assert (stored["status"], stored["decided_by"]) == ("rejected", "alice")
    inbox = await carol.get(done.headers["location"])
    assert elements(inbox.text, "p", "ok") == [
        "Approved 2 tool calls. 1 had already been decided and were left as they were."
    ]


async def test_a_batch_without_the_csrf_token_changes_nothing(web, carol):
    await web.add_approval("c1")
    await web.add_approval("c2")
    form = {"decision": "rejected", "call_id": ["c1", "c2"]}

    listed = await carol.post("/console/batch", form)
    decided = await carol.post("/console/batch/confirm", form)
    forged = await carol.post("/console/batch/confirm", {**form, "csrf_token": "forged"})

    assert [a.status_code for a in (listed, decided, forged)] == [403, 403, 403]
    for call_id in ("c1", "c2"):
        assert (await web.approval(call_id))["status"] == "pending"


# --- sessions ---------------------------------------------------------------------------


async def test_sessions_are_listed_most_recently_active_first(web, carol):
    for session_id in ("old", "middle", "new"):
        await web.save_session(session_id, [{"role": "user", "content": session_id}])
    await web.save_session("old", [{"role": "user", "content": "back again"}])

    page = await carol.get("/console/sessions")

    assert page.status_code == 200
    assert session_ids(page.text) == ["old", "new", "middle"]


async def test_the_session_search_matches_ids_and_titles_case_insensitively(web, carol):
    await web.save_session("weather-paris", title="Forecast")
    await web.save_session("billing-42", title="Invoice for ACME")
    await web.save_session("misc", title="Weather small talk")

    async def found(q: str) -> set[str]:
        page = await carol.get("/console/sessions", params={"q": q})
        assert page.status_code == 200
        return set(session_ids(page.text))

    assert await found("WEATHER") == {"weather-paris", "misc"}
    assert await found("acme") == {"billing-42"}
    assert await found("ing-4") == {"billing-42"}
    assert await found("forecast") == {"weather-paris"}
    assert await found("nothing like it") == set()
    empty = await carol.get("/console/sessions", params={"q": "nothing like it"})
    assert "No session id or title contains" in elements(empty.text, "p", "empty")[0]


async def test_the_session_list_pages_through_every_session_once(web, carol):
    created = {f"s{n:02d}" for n in range(55)}
    for session_id in sorted(created):
        await web.save_session(session_id)

    first = await carol.get("/console/sessions")
    link = re.search(r'<a id="next-page" href="([^"]*)">', first.text)
    assert link, "no link to the next page"
    second = await carol.get(unescape(link.group(1)))

    page_one, page_two = session_ids(first.text), session_ids(second.text)
    assert len(page_one) == 50
    assert len(page_two) == 5
    assert set(page_one) | set(page_two) == created
    assert len(set(page_one + page_two)) == 55
    assert 'id="next-page"' not in second.text


async def test_a_session_page_shows_the_conversation_context_switches_and_approvals(web, carol):
    await web.save_session(
        "s1",
        [
            {"role": "user", "content": "Delete the report please"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [tool_call("c1", "delete_file", {"path": "/tmp/report.csv"})],
            },
        ],
        title="Cleanup",
    )
    await web.put_agent_context(
        "s1",
        {
            "current_agent": "billing",
            "agent_history": [{"from": "triage", "to": "billing", "reason": "invoice question"}],
            "metadata": {"tenant": "acme"},
            "switch_count": 1,
        },
    )
    await web.add_approval("c1", session_id="s1", reason="destructive tool")

    page = await carol.get("/console/sessions/s1")

    assert page.status_code == 200
    assert title(page.text) == "Cleanup · agent-runtime"
    assert elements(page.text, "div", "content") == ["Delete the report please"]
    assert elements(page.text, "span", "tool") == ["delete_file"]
    assert '"path": "/tmp/report.csv"' in unescape(page.text)
    context = elements(page.text, "section")[1]
    assert "Current agent: billing, 1 switch." in " ".join(context.split())
    assert '"tenant": "acme"' in unescape(context)
    switches = elements(page.text, "section")[2]
    assert "triage → billing (invoice question)" in " ".join(switches.split())
    approvals = elements(page.text, "section")[0]
    assert "delete_file" in approvals
    assert "c1" in approvals
    assert "pending" in approvals


async def test_a_session_without_context_or_approvals_says_so(web, carol):
    await web.save_session("quiet")

    page = await carol.get("/console/sessions/quiet")

    assert elements(page.text, "p", "empty") == [
        "No tool call of this session asked for approval.",
        "No agent context saved.",
        "No switches.",
        "No messages.",
    ]


async def test_an_unknown_session_or_approval_answers_a_404_page(web, carol):
    await web.save_session("s1")
    token = await carol.csrf()

    session = await carol.get("/console/sessions/nope")
    approval = await carol.get("/console/approvals/nope")
    decided = await carol.post(
        "/console/approvals/nope/decide", {"csrf_token": token, "decision": "approved"}
    )

    for answer in (session, approval, decided):
        page = html_page(answer, 404)
        assert title(page) == "Not found · agent-runtime"
        assert "nope" in page


# --- nothing stored is served as markup --------------------------------------------------


async def test_stored_markup_is_shown_as_text_on_every_page(web, carol):
    await web.save_session(
        "s1",
        [
            {"role": "user", "content": XSS},
            {
                "role": "assistant",
                "content": XSS,
                "tool_calls": [tool_call("c1", XSS, {"note": XSS})],
            },
        ],
        title=XSS,
    )
    await web.add_approval(
        "c1", session_id="s1", tool_name=XSS, arguments={"note": XSS}, reason=XSS
    )
    token = await carol.csrf()
    edited = await decide(carol, "c1", decision="approved", arguments=json.dumps({"x": XSS}))
    batch = await carol.post(
        "/console/batch", {"csrf_token": token, "decision": "approved", "call_id": "c1"}
    )

    pages = {
        "inbox": await carol.get("/console/"),
        "inbox rows": await carol.get("/console/inbox/rows"),
        "approval": await carol.get("/console/approvals/c1"),
        "sessions": await carol.get("/console/sessions"),
        "search": await carol.get("/console/sessions", params={"q": XSS}),
        "session": await carol.get("/console/sessions/s1"),
        "batch confirm": batch,
        "confirm edit": edited,
    }

    for name, answer in pages.items():
        assert answer.status_code == 200, (name, answer.status_code)
        assert XSS_SCRIPT not in answer.text, name
        assert "<img src=x" not in answer.text, name
        assert "onerror=alert(1)>" not in answer.text, name
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in answer.text, name
        assert "&lt;img src=x onerror=alert(1)&gt;" in answer.text, name
    assert (await web.approval("c1"))["status"] == "pending"
