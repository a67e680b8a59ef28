"""No input gets a 500: each malformed value below is answered 4xx with the error
body (422 for a value, 400 for a header that does not parse), in-process as
`InvalidInputError` where the service API takes it, and changes nothing."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from tortoise import Tortoise

from agent_runtime.errors import InvalidInputError
from agent_runtime.events.stream import first_page
from agent_runtime.services import database as svc
from tests.console.http import Agent, Console, csrf_token, open_console
from tests.fixtures.backends import Backend, dump_data

# --- helpers ---------------------------------------------------------------------------


def refused(response: httpx.Response, status: int = 422) -> dict[str, Any]:
    """The error body of `response`, checked: `status`, its code, a message, and for
    a 422 the `details` (one `{loc, msg, type}` per problem)."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    code = {400: "bad_request", 422: "invalid_input"}[status]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    if status == 422:
        assert error["details"], error
        assert all({"loc", "msg", "type"} <= set(d) for d in error["details"]), error
    return error  # type: ignore[no-any-return]


async def dump(backend: Backend) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table of the app's database: to prove nothing changed."""
    return await dump_data(Tortoise.get_connection(backend.dialect))


def cursor(kind: str, value: Any) -> str:
    """A cursor as the service makes them, holding whatever `value` a client forged."""
    raw = json.dumps([kind, value], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def raw_cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


JSON = {"content-type": "application/json"}
DEEP = "[" * 100_000 + "]" * 100_000  # RecursionError for the standard library's decoder
DEEP_900 = "[" * 900 + "]" * 900  # orjson and the standard library read it: too deep to copy
DEEP_190 = "[" * 190 + "]" * 190  # every decoder reads it; the storage rule refuses it
MESSAGE = {"role": "user", "content": "hello"}


async def seeded(client: httpx.AsyncClient) -> None:
    """A session s1 with one message and an agent context, a pending call c1, and a
    claimed call c2 (its claim token in the result of `claim_token`)."""
    assert (await client.post("/sessions/s1", json=[MESSAGE])).status_code == 200
    context = {"current_agent": "triage", "metadata": {"tenant": "acme"}}
    assert (await client.put("/sessions/s1/agent-context", json=context)).status_code == 200
    for call_id in ("c1", "c2"):
        body = {"session_id": "s1", "call_id": call_id, "tool_name": "pay", "arguments": {"n": 1}}
        assert (await client.post("/approvals", json=body)).status_code == 201
    decided = await client.post("/approvals/c2/decision", json={"status": "approved"})
    assert decided.status_code == 200


async def claim_token(client: httpx.AsyncClient) -> str:
    claimed = await client.post("/approvals/c2/claim", json={"claimed_by": "w"})
    assert claimed.status_code == 200, claimed.text
    return str(claimed.json()["claim_token"])


# --- event ids: Last-Event-ID and ?after= ------------------------------------------


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        ({}, {"Last-Event-ID": str(2**63)}),
        ({}, {"Last-Event-ID": str(2**64 + 1)}),
        ({}, {"Last-Event-ID": "9" * 5000}),
        ({}, {"Last-Event-ID": "-1"}),
        ({}, {"Last-Event-ID": "abc"}),
        ({"after": str(2**63)}, {}),
        ({"after": "9" * 5000}, {}),
        ({"after": "-1"}, {}),
        ({"after": "abc"}, {}),
    ],
)
async def test_an_event_id_past_64_bits_or_not_a_number_is_422(client, backend, params, headers):
    await seeded(client)
    before = await dump(backend)

    response = await client.get("/events", params=params, headers=headers)

    refused(response)
    assert await dump(backend) == before


async def test_the_largest_event_id_is_accepted(client, app):
    # 2**63 - 1 is a BIGINT: nothing comes after it, but it is a valid place to resume.
    page = await first_page(app.state.hub, 2**63 - 1, None, None)
    assert page == []
    with pytest.raises(InvalidInputError, match="event id"):
        await first_page(app.state.hub, 2**63, None, None)
    with pytest.raises(InvalidInputError, match="event id"):
        await first_page(app.state.hub, -1, None, None)


# --- datetimes whose conversion to UTC overflows -----------------------------------

EARLY = "0001-01-01T00:00:00+14:00"  # before year 1 in UTC
LATE = "9999-12-31T23:59:59-14:00"  # after year 9999 in UTC
SWITCH = "0001-01-01T00:00:00+01:00"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", f"/sessions/s1?last_activity={EARLY.replace('+', '%2B')}", []),
        ("POST", f"/sessions/s1/messages?last_activity={EARLY.replace('+', '%2B')}", [MESSAGE]),
        ("POST", f"/sessions/s1?last_activity={LATE}", [MESSAGE]),
        ("POST", "/sessions/s1", [{**MESSAGE, "timestamp": LATE}]),
        ("POST", "/sessions/s1", [MESSAGE, {**MESSAGE, "timestamp": EARLY}]),
        ("POST", "/sessions/s1/messages", [{**MESSAGE, "timestamp": LATE}]),
        ("POST", "/sessions/new", [{**MESSAGE, "timestamp": LATE}]),
        (
            "PUT",
            "/sessions/s1/agent-context",
            {"current_agent": "b", "agent_history": [{"to": "b", "timestamp": SWITCH}]},
        ),
        ("PUT", "/sessions/s1/agent-context", {"current_agent": "b", "created_at": SWITCH}),
        ("PUT", "/sessions/s1/agent-context", {"current_agent": "b", "last_switch_at": LATE}),
        ("GET", "/sessions?cursor=" + cursor("sessions", [EARLY, "s1"]), None),
        ("GET", "/approvals?cursor=" + cursor("approvals", [LATE, 1]), None),
    ],
)
async def test_a_datetime_out_of_range_in_utc_is_422(client, backend, method, path, body):
    await seeded(client)
    before = await dump(backend)

    response = await client.request(method, path, json=body)

    error = refused(response)
    assert "out of range" in json.dumps(error)
    assert await dump(backend) == before


async def test_datetimes_at_the_edges_of_the_range_are_stored_as_given(client):
    first, last = "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"
    messages = [{**MESSAGE, "timestamp": first}, {**MESSAGE, "timestamp": last}]

    saved = await client.post(f"/sessions/edge?last_activity={last}", json=messages)
    context = {"current_agent": "b", "agent_history": [{"to": "b", "timestamp": first}]}
    put = await client.put("/sessions/edge/agent-context", json=context)

    assert (saved.status_code, put.status_code) == (200, 200), (saved.text, put.text)
    session = (await client.get("/sessions/edge")).json()
    assert datetime.fromisoformat(session["last_activity"]) == datetime.max.replace(tzinfo=UTC)
    history = (await client.get("/sessions/edge/agent-context")).json()["agent_history"]
    assert datetime.fromisoformat(history[0]["timestamp"]) == datetime.min.replace(tzinfo=UTC)


PLUS_14 = timezone(timedelta(hours=14))
MINUS_14 = timezone(timedelta(hours=-14))


async def test_the_service_api_refuses_the_same_datetimes(db):
    now = datetime.now(UTC)
    late = datetime(9999, 12, 31, 23, 59, 59, tzinfo=MINUS_14)
    early = datetime(1, 1, 1, tzinfo=PLUS_14)
    calls = [
        svc.save_session(db, "s1", [{**MESSAGE, "timestamp": LATE}], now),
        svc.save_session(db, "s1", [{**MESSAGE, "timestamp": early}], now),
        svc.save_session(db, "s1", [MESSAGE], late),
        svc.save_session(db, "s1", [MESSAGE], EARLY),
        svc.save_agent_context(db, "s1", "b", [{"to": "b", "timestamp": SWITCH}], {}, now, None, 1),
        svc.save_agent_context(db, "s1", "b", [], {}, early, None, 0),
        svc.save_agent_context(db, "s1", "b", [], {}, now, late, 0),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError, match="out of range") as caught:
            await call
        assert caught.value.details and caught.value.status_code == 422

    assert await svc.list_all_sessions(db, include_deleted=True) == []
    assert await svc.list_all_contexts(db) == []


# --- If-Match that does not parse --------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        b'"\xb2"',  # a superscript two in Latin-1: str.isdigit() says yes, int() says no
        b'"\xe9"',
        '"1", "\u00e9"'.encode("latin-1"),
        ('"' + "1" * 4400 + '"').encode(),  # past int()'s 4,300-digit limit
        ('"1", "' + "2" * 65 + '"').encode(),
        b'"1\x01"',
    ],
)
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/sessions/s1", [MESSAGE, MESSAGE]),
        ("POST", "/sessions/s1/messages", [MESSAGE]),
        ("PATCH", "/sessions/s1", {"title": "changed"}),
        ("DELETE", "/sessions/s1", None),
    ],
)
async def test_an_if_match_that_does_not_parse_is_400(client, backend, header, method, path, body):
    await seeded(client)
    before = await dump(backend)

    response = await client.request(method, path, json=body, headers={"If-Match": header})

    refused(response, 400)
    assert await dump(backend) == before


async def test_if_match_is_compared_as_text(client):
    await client.post("/sessions/s1", json=[MESSAGE])  # version 1

    padded = await client.post("/sessions/s1", json=[], headers={"If-Match": '"01"'})
    exact = await client.post("/sessions/s1", json=[], headers={"If-Match": '"1"'})

    assert padded.status_code == 412 and padded.json()["error"]["code"] == "precondition_failed"
    assert exact.status_code == 200 and exact.headers["etag"] == '"2"'


# --- JSON nested too deep -------------------------------------------------------------


def bodies(value: str) -> list[tuple[str, str, str]]:
    """(method, path, raw JSON body) of every route that stores user JSON, with
    `value` (raw JSON text) where the JSON goes; `{token}` is c2's claim token."""
    return [
        (
            "POST",
            "/sessions/s1",
            f'[{{"role": "user", "content": "x", "metadata": {{"v": {value}}}}}]',
        ),
        ("POST", "/sessions/s1", f'[{{"role": "assistant", "tool_calls": [{{"v": {value}}}]}}]'),
        ("POST", "/sessions/s1/messages", f'[{{"role": "user", "metadata": {{"v": {value}}}}}]'),
        (
            "POST",
            "/approvals",
            '{"session_id": "s1", "call_id": "c9", "tool_name": "t", '
            f'"arguments": {{"v": {value}}}}}',
        ),
        (
            "POST",
            "/approvals/c1/decision",
            f'{{"status": "approved", "arguments": {{"v": {value}}}}}',
        ),
        (
            "POST",
            "/approvals/c2/result",
            f'{{"claim_token": "{{token}}", "status": "executed", "result": {{"v": {value}}}}}',
        ),
        (
            "PUT",
            "/sessions/s1/agent-context",
            f'{{"current_agent": "b", "metadata": {{"v": {value}}}}}',
        ),
        (
            "PUT",
            "/sessions/s1/agent-context",
            '{"current_agent": "b", '
            f'"agent_history": [{{"to": "b", "metadata": {{"v": {value}}}}}]}}',
        ),
    ]


async def prepared(client: httpx.AsyncClient, body: str) -> str:
    """`body` ready to send: c2 claimed first if the body reports its result."""
    if "{token}" in body:
        body = body.replace("{token}", await claim_token(client))
    return body


async def send(client: httpx.AsyncClient, method: str, path: str, body: str) -> httpx.Response:
    return await client.request(method, path, content=body.encode(), headers=JSON)


ROUTES = [f"{m} {p} #{n}" for n, (m, p, _) in enumerate(bodies("1"))]


@pytest.mark.parametrize("value", [DEEP, DEEP_900, DEEP_190], ids=["100k", "900", "190"])
@pytest.mark.parametrize("route", range(len(ROUTES)), ids=ROUTES)
async def test_json_nested_too_deep_is_422_in_every_body(client, backend, value, route):
    await seeded(client)
    method, path, body = bodies(value)[route]
    body = await prepared(client, body)
    before = await dump(backend)

    response = await send(client, method, path, body)

    refused(response)
    assert await dump(backend) == before


@pytest.mark.parametrize(
    ("path", "param"),
    [("/sessions", "cursor"), ("/approvals", "cursor"), ("/sessions/s1/messages", "after")],
)
async def test_a_cursor_nested_too_deep_is_422(client, path, param):
    await seeded(client)

    refused(await client.get(path, params={param: raw_cursor(b"[" * 9000)}))


# --- integers past 64 bits, and numbers JSON cannot hold ----------------------------


@pytest.mark.parametrize(
    "value",
    [str(2**64), str(-(2**63) - 1), str(10**30), "1e400", "-1e400", "NaN"],
)
@pytest.mark.parametrize("route", range(len(ROUTES)), ids=ROUTES)
async def test_a_number_json_cannot_store_is_422_over_rest_as_in_process(
    client, backend, value, route
):
    await seeded(client)
    method, path, body = bodies(value)[route]
    body = await prepared(client, body)
    before = await dump(backend)

    response = await send(client, method, path, body)

    error = refused(response)
    # The storage rule's own message, as in-process.
    assert any(word in json.dumps(error) for word in ("64 bits", "inf", "nan")), error
    assert await dump(backend) == before


@pytest.mark.parametrize("value", [2**63, -(2**63), 2**64 - 1, 2**53 + 1])
async def test_integers_within_the_rule_are_stored_exactly(client, value):
    await seeded(client)
    raw = json.dumps(value)

    saved = await send(client, *bodies(raw)[2])  # append: metadata
    created = await send(client, *bodies(raw)[3])  # approval c9: arguments

    assert (saved.status_code, created.status_code) == (200, 201), (saved.text, created.text)
    page = (await client.get("/sessions/s1/messages")).json()["items"]
    assert page[-1]["metadata"] == {"v": value} and type(page[-1]["metadata"]["v"]) is int
    approval = (await client.get("/approvals/c9")).json()
    assert approval["arguments"] == {"v": value} and type(approval["arguments"]["v"]) is int


async def test_the_service_api_refuses_the_same_numbers(db):
    now = datetime.now(UTC)
    for value in (2**64, -(2**63) - 1, float("inf"), float("nan")):
        calls = [
            svc.save_session(db, "s1", [{**MESSAGE, "metadata": {"v": value}}], now),
            svc.save_pending_approval(db, "s1", "c1", "t", {"v": value}),
            svc.save_agent_context(db, "s1", "b", [], {"v": value}, now, None, 0),
        ]
        for call in calls:
            with pytest.raises(InvalidInputError):
                await call
    assert await svc.list_all_sessions(db, include_deleted=True) == []


async def test_replacing_a_stored_message_with_json_deeper_than_python_recurses_is_refused(db):
    now = datetime.now(UTC)
    await svc.save_session(db, "s1", [MESSAGE], now)
    deep: Any = 0
    for _ in range(5000):
        deep = [deep]

    with pytest.raises(InvalidInputError):
        await svc.save_session(db, "s1", [{**MESSAGE, "metadata": {"v": deep}}], now)

    stored = await svc.load_session(db, "s1")
    assert [m["content"] for m in stored["messages"]] == [MESSAGE["content"]]


async def test_the_service_api_refuses_row_positions_past_their_column(db):
    from agent_runtime.services import approvals, events, messages

    await svc.save_session(db, "s1", [MESSAGE], datetime.now(UTC))
    calls = [
        events.read_events(db, after=2**63),
        messages.list_messages(db, "s1", limit=5, after=2**31),
        messages.list_messages(db, "s1", limit=5, before=2**63),
        approvals.list_approvals(db, limit=5, after=(datetime.now(UTC), 2**63)),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError, match="must be an integer from 0 to"):
            await call


# --- forged cursors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "param", "value"),
    [
        ("/sessions/s1/messages", "after", cursor("messages", 2**70)),
        ("/sessions/s1/messages", "before", cursor("messages", 2**63)),
        ("/sessions/s1/messages", "after", cursor("messages", 2**40)),  # past INTEGER
        ("/sessions/s1/messages", "after", cursor("messages", "1")),
        ("/approvals", "cursor", cursor("approvals", ["2026-01-01T00:00:00Z", 2**70])),
        ("/approvals", "cursor", cursor("approvals", ["2026-01-01T00:00:00Z", "9" * 5000])),
        ("/approvals", "cursor", cursor("approvals", 5)),
        ("/sessions", "cursor", cursor("sessions", 5)),
        ("/sessions", "cursor", cursor("sessions", ["2026-01-01T00:00:00Z", 5])),
    ],
)
async def test_a_forged_cursor_is_422(client, backend, path, param, value):
    await seeded(client)
    before = await dump(backend)

    refused(await client.get(path, params={param: value}))
    assert await dump(backend) == before


# --- the console ------------------------------------------------------------------------


@pytest.fixture
async def web(backend: Backend) -> AsyncIterator[Console]:
    async with open_console(backend) as console:
        yield console


@pytest.fixture
async def carol(web: Console) -> Agent:
    return await web.logged_in("carol")


def html_page(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, (answer.status_code, answer.text[:2000])
    assert answer.headers["content-type"].startswith("text/html")
    return answer.text


async def post_decision(carol: Agent, call_id: str, arguments: str) -> httpx.Response:
    page = await carol.get(f"/console/approvals/{call_id}")
    form = {
        "csrf_token": csrf_token(page.text),
        "decision": "approved",
        "message": "",
        "arguments": arguments,
    }
    return await carol.post(f"/console/approvals/{call_id}/decide", form)


@pytest.mark.parametrize(
    "arguments",
    [
        '{"v": ' + DEEP + "}",
        DEEP,
        '{"v": ' + DEEP_900 + "}",
        '{"amount": 18446744073709551616}',
        '{"amount": -9223372036854775809}',
        '{"amount": 1e400}',
        '{"amount": ' + "9" * 5000 + "}",
    ],
    ids=["deep-100k", "deep-array", "deep-900", "2**64", "-2**63-1", "1e400", "5000-digits"],
)
async def test_console_arguments_that_cannot_be_stored_answer_a_422_page(web, carol, arguments):
    await web.add_approval("c1", arguments={"amount": 1})

    answer = await post_decision(carol, "c1", arguments)

    page = html_page(answer, 422)
    assert "not valid JSON" in page or "arguments" in page
    stored = await web.approval("c1")
    assert stored["status"] == "pending" and stored["edited_arguments"] is None


async def test_console_pages_show_tool_call_arguments_too_deep_to_print(web, carol):
    calls = [
        {"id": f"t{n}", "type": "function", "function": {"name": "f", "arguments": text}}
        for n, text in enumerate([DEEP, DEEP_900, '{"amount": 18446744073709551616}'])
    ]
    await web.save_session("s1", [{"role": "assistant", "content": None, "tool_calls": calls}])
    await web.add_approval("c1")

    html_page(await carol.get("/console/approvals/c1"), 200)
    session = html_page(await carol.get("/console/sessions/s1"), 200)
    assert "18446744073709551616" in session  # shown as the agent sent it, not as a float


@pytest.mark.parametrize(
    "path",
    [
        "/console/sessions/s1?after=" + str(2**70),
        "/console/sessions/s1?after=" + str(2**31),
        "/console/sessions?cursor=" + cursor("console-sessions", 5),
        "/console/sessions?cursor=" + cursor("console-sessions", [EARLY, "s1"]),
        "/console/sessions?cursor=" + raw_cursor(b"[" * 9000),
        "/console/?cursor=" + cursor("inbox", 5),
        "/console/?cursor=" + cursor("inbox", ["2026-01-01T00:00:00Z", 2**70]),
        "/console/?cursor=" + cursor("inbox", ["2026-01-01T00:00:00Z", "9" * 5000]),
        "/console/?cursor=" + cursor("inbox", [LATE, 1]),
    ],
)
async def test_console_addresses_that_cannot_be_read_answer_a_422_page(web, carol, path):
    await web.save_session("s1")

    html_page(await carol.get(path), 422)


async def test_console_events_past_64_bits_are_422(web, carol):
    answer = await carol.get(
        "/console/events",
        headers={"Last-Event-ID": str(2**63), "accept": "text/event-stream"},
    )

    assert answer.status_code == 422, answer.text[:500]
