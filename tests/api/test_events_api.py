"""`GET /events` over real HTTP: the event log as a Server-Sent Events stream, from a
uvicorn server process on each backend."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.servers import start_uvicorn

TIMEOUT = httpx.Timeout(10.0)  # a read waiting longer than this fails the test


def sse(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """The messages of an event stream: its fields ("id", "event", "data"), or
    {"comment": ...} for a comment line."""
    fields: dict[str, str] = {}
    for line in lines:
        if not line:
            if fields:
                yield fields
            fields = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            name, _, value = line.partition(":")
            fields[name] = fields.get(name, "") + value.removeprefix(" ")


def events_of(response: httpx.Response) -> Iterator[dict]:
    """The stream's events (comments skipped), each with its fields and `data` decoded."""
    for message in sse(response.iter_lines()):
        if "comment" not in message:
            yield {**message, "data": json.loads(message["data"])}


def read_events(response: httpx.Response, count: int) -> list[dict]:
    """The next `count` events of the stream."""
    return list(itertools.islice(events_of(response), count))


class Api:
    """The calls the tests make, on one server, with ids no other test uses."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=TIMEOUT)
        self.session_id = f"s-{uuid.uuid4()}"

    def create(self, call_id: str, session_id: str | None = None) -> None:
        body = {
            "session_id": session_id or self.session_id,
            "call_id": call_id,
            "tool_name": "delete_file",
            "arguments": {"path": "/tmp/x"},
        }
        assert self.http.post("/approvals", json=body).status_code == 201

    def decide(self, call_id: str, status: str = "approved") -> None:
        response = self.http.post(f"/approvals/{call_id}/decision", json={"status": status})
        assert response.status_code == 200

    def stream(self, headers: dict[str, str] | None = None, **params: str):
        return self.http.stream("GET", "/events", params=params, headers=headers)


@pytest.fixture
def api(server) -> Iterator[Api]:
    client = Api(server.url)
    yield client
    client.http.close()


def new_call() -> str:
    return f"call-{uuid.uuid4()}"


def test_the_log_is_replayed_in_order_with_id_event_and_data(api):
    first, second = new_call(), new_call()
    api.create(first)
    api.create(second)
    api.decide(first)

    with api.stream(after="0", session_id=api.session_id) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = read_events(response, 3)

    assert [(e["event"], e["data"]["call_id"]) for e in events] == [
        ("approval.created", first),
        ("approval.created", second),
        ("approval.decided", first),
    ]
    for e in events:
        assert e["id"] == str(e["data"]["id"])
        assert e["event"] == e["data"]["type"]
        assert e["data"]["session_id"] == api.session_id
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(set(ids))
    with api.stream(after=str(ids[0] - 1)) as response:  # the whole log from there on
        assert [int(e["id"]) for e in read_events(response, 3)] == ids


def test_last_event_id_resumes_after_it_without_duplicates(api):
    calls = [new_call() for _ in range(4)]
    for call_id in calls:
        api.create(call_id)
    with api.stream(after="0", session_id=api.session_id) as response:
        seen = read_events(response, 2)

    with api.stream(
        session_id=api.session_id, after="0", headers={"Last-Event-ID": seen[-1]["id"]}
    ) as response:
        rest = read_events(response, 2)

    assert [e["data"]["call_id"] for e in seen + rest] == calls


def test_types_and_session_id_filter_the_stream(api):
    mine, other = new_call(), new_call()
    api.create(mine)
    api.create(other, session_id=f"other-{uuid.uuid4()}")
    api.decide(other, "rejected")
    api.decide(mine)

    with api.stream(after="0", session_id=api.session_id) as response:
        by_session = read_events(response, 2)
    with api.stream(after="0", types="approval.decided,approval.cancelled") as response:
        decided = []
        for event in events_of(response):  # the log's earlier decisions, then ours
            decided.append(event)
            if event["data"]["call_id"] == mine:
                break

    assert [(e["event"], e["data"]["call_id"]) for e in by_session] == [
        ("approval.created", mine),
        ("approval.decided", mine),
    ]
    # The log may hold other tests' decisions and cancellations (the database is shared
    # by the tests of one run, or of one xdist worker), never a creation.
    assert {e["event"] for e in decided} <= {"approval.decided", "approval.cancelled"}
    assert [(e["event"], e["data"]["call_id"]) for e in decided[-2:]] == [
        ("approval.decided", other),
        ("approval.decided", mine),
    ]


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        ({"types": "approval.nope"}, None),
        ({"types": "approval.created,nope"}, None),
        ({"after": "-1"}, None),
        ({"after": "abc"}, None),
        ({}, {"Last-Event-ID": "abc"}),
    ],
)
def test_bad_stream_requests_are_422(api, params, headers):
    response = api.http.get("/events", params=params, headers=headers)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"


def test_live_events_arrive_while_the_stream_is_open(api):
    call_id = new_call()
    api.create(call_id)

    with api.stream(session_id=api.session_id) as response:  # from now on
        assert response.status_code == 200
        api.decide(call_id)
        api.http.post(f"/sessions/{api.session_id}", json=[]).raise_for_status()
        events = read_events(response, 2)

    assert [e["event"] for e in events] == ["approval.decided", "session.saved"]
    assert events[0]["data"]["call_id"] == call_id
    assert events[1]["data"]["data"] == {"version": 1}


def test_a_heartbeat_comment_comes_while_nothing_happens(backend, tmp_path):
    server = start_uvicorn(backend, tmp_path, env={"AGENT_RUNTIME__SSE_HEARTBEAT_SECONDS": "0.5"})
    try:
        with (
            httpx.Client(base_url=server.url, timeout=TIMEOUT) as http,
            http.stream("GET", "/events", params={"session_id": f"s-{uuid.uuid4()}"}) as r,
        ):
            first = next(sse(r.iter_lines()))
    finally:
        server.stop()

    assert "comment" in first, first


def test_a_client_too_slow_is_cut_off_and_resumes_exactly_once(backend, databases, tmp_path):
    # Events far larger than the socket buffers, so the server cannot write them all
    # while the client reads nothing: its buffer of 5 overflows and the stream ends.
    fresh = databases.fresh(backend.name)
    server = start_uvicorn(fresh, tmp_path, env={"AGENT_RUNTIME__SSE_BUFFER_EVENTS": "5"})
    api = Api(server.url)
    big = "x" * 512 * 1024
    try:
        with api.stream(after="0") as response:
            for n in range(60):
                body = {
                    "session_id": "s1",
                    "call_id": f"c{n}",
                    "tool_name": "t",
                    "arguments": {"big": big},
                }
                assert api.http.post("/approvals", json=body).status_code == 201
            first = [int(e["id"]) for e in events_of(response)]  # to the end of the stream
        with api.stream(headers={"Last-Event-ID": str(first[-1])}) as response:
            rest = [int(e["id"]) for e in read_events(response, 60 - len(first))]
        with api.stream(after="0") as response:
            log = [int(e["id"]) for e in read_events(response, 60)]
    finally:
        api.http.close()
        server.stop()

    assert 0 < len(first) < 60
    assert first + rest == log
