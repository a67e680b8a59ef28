"""What the simulated agents send, and the ledger of what the service acknowledged.

Each `Client` owns its sessions and approvals: nobody else writes them, and it
sends one request at a time. So after any sequence of answers the state the
database must hold is known exactly: for a session, the message list of its last
acknowledged write (its version = the number of acknowledged writes); for an
approval, its content and, once a decision was acknowledged, that decision. A
request that got no answer (the server died, a timeout) may or may not have taken
effect: the client records both possibilities and sends nothing more, so at most
one write per client is in doubt.

Reads check the same ledger while the load runs: a load served by any worker must
return exactly the last acknowledged write.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ApprovalRecord",
    "Client",
    "Message",
    "Request",
    "SessionRecord",
    "loaded_form",
    "make_clients",
    "stored_form",
]

Message = dict[str, Any]
Outcome = Literal["acked", "in_doubt"]

MAX_MESSAGES = 40  # a longer conversation is cut back by its next whole-list save
MAX_PENDING = 8  # per session; more pending approvals and the client decides one instead
SESSIONS_PER_CLIENT = 3

# Text that must come back byte for byte: non-ASCII, quotes, SQL, control characters.
TEXTS = (
    "What's the weather in Paris?",
    "Ünïcödé ✓ 日本語 🙂 — ﬁ",
    "quotes ' \" ` and ; -- DROP TABLE sessions; /* */",
    "line one\nline two\ttabbed\r\n",
    "",
    "%s %d {0} $1 ? :name",
    "a" * 300,
)
TOOLS = ("get_weather", "delete_file", "send_email", "run_sql")
LOADED_KEYS = ("role", "content", "name", "tool_call_id", "tool_calls")
STORED_KEYS = ("role", "content", "name", "tool_call_id", "tool_calls", "token_count", "metadata")


def loaded_form(messages: list[Message]) -> list[Message]:
    """The messages as `GET /sessions/{id}` returns them (what it serves of each)."""
    return [{k: m[k] for k in LOADED_KEYS if k in m} for m in messages]


def stored_form(message: Message) -> Message:
    """Every stored field of a sent message, the timestamp aside (None when not sent)."""
    return {k: message.get(k) for k in STORED_KEYS}


@dataclass
class SessionRecord:
    session_id: str
    acked: list[Message] | None = None  # after the last acknowledged write; None: none yet
    acked_writes: int = 0  # each write increments the session's version by one
    in_doubt: list[Message] | None = None  # the messages if the unanswered write took effect


@dataclass
class ApprovalRecord:
    call_id: str
    sent: dict[str, Any]  # the POST /approvals body
    created: Outcome = "in_doubt"
    decision: dict[str, Any] | None = None  # the POST .../decision body, once sent
    decided: Outcome | None = None

    @property
    def session_id(self) -> str:
        return str(self.sent["session_id"])

    def expected_status(self) -> str:
        """The status a read must see now (only asked while nothing is in doubt)."""
        return "pending" if self.decision is None else str(self.decision["status"])


@dataclass
class Request:
    """One request of a client, and what its answer means for the ledger."""

    op: str
    method: str
    path: str
    body: Any
    # Called with the status and decoded body: updates the ledger, returns a problem or None.
    answered: Callable[[int, Any], str | None]
    # Called when no answer came: the write, if it is one, may or may not have happened.
    unanswered: Callable[[], None] = lambda: None


@dataclass
class Client:
    """One agent: its sessions, approvals and random choices (seeded)."""

    index: int
    rng: random.Random
    sessions: list[SessionRecord]
    approvals: list[ApprovalRecord] = field(default_factory=list)
    _seq: int = 0

    # -- content -----------------------------------------------------------------

    def _tag(self) -> str:
        self._seq += 1
        return f"c{self.index}-{self._seq}"

    def _message(self, role: str) -> Message:
        rng, tag = self.rng, self._tag()
        message: Message = {"role": role, "content": f"{tag} {rng.choice(TEXTS)}"}
        if rng.random() < 0.2:
            message["token_count"] = rng.randint(0, 4000)
        if rng.random() < 0.15:
            message["metadata"] = {
                "tag": tag,
                "scores": [rng.randint(-5, 5), 0.5, None, True],
                "nested": {"k": rng.choice(TEXTS), "empty": {}},
            }
        if rng.random() < 0.15:
            message["timestamp"] = (
                f"2026-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T0{rng.randint(0, 9)}:"
                f"{rng.randint(10, 59)}:{rng.randint(10, 59)}.{rng.randint(0, 999_999):06d}"
                f"{rng.choice(['+00:00', '+05:30', '-08:00', 'Z'])}"
            )
        return message

    def _tool_exchange(self) -> list[Message]:
        call_id, tool = f"call-{self._tag()}", self.rng.choice(TOOLS)
        arguments = json.dumps({"path": f"/tmp/{call_id}.csv", "text": self.rng.choice(TEXTS)})
        call = self._message("assistant")
        call["content"] = None
        call["tool_calls"] = [
            {"id": call_id, "type": "function", "function": {"name": tool, "arguments": arguments}}
        ]
        result = self._message("tool")
        result.update(tool_call_id=call_id, name=tool)
        return [call, result]

    def _turn(self) -> list[Message]:
        """One to three new messages, as an agent loop produces them."""
        r = self.rng.random()
        if r < 0.35:
            return [self._message("user")]
        if r < 0.6:
            return [self._message("user"), self._message("assistant")]
        if r < 0.65:
            return [self._message("system")]
        return self._tool_exchange()

    # -- the next request ----------------------------------------------------------

    def next_request(self) -> Request:
        rng = self.rng
        known = [s for s in self.sessions if s.acked is not None]
        if not known:
            return self._save(rng.choice(self.sessions))
        session = rng.choice(known)
        r = rng.random()
        if r < 0.28:
            return self._save(rng.choice(self.sessions))
        if r < 0.48:
            return self._append(session)
        if r < 0.66:
            return self._load(session)
        pending = [a for a in self.approvals if a.created == "acked" and a.decision is None]
        mine = [a for a in pending if a.session_id == session.session_id]
        if r < 0.80 and len(mine) < MAX_PENDING:
            return self._create_approval(session)
        if r < 0.92 and pending:
            return self._decide(rng.choice(pending))
        created = [a for a in self.approvals if a.created == "acked"]
        if r < 0.97 and created:
            return self._read_approval(rng.choice(created))
        return self._list_pending(session)

    def _save(self, session: SessionRecord) -> Request:
        rng, current = self.rng, session.acked or []
        if len(current) >= MAX_MESSAGES:
            base = current[: rng.randint(0, 8)]  # cut back: the tail is deleted
        elif current and rng.random() < 0.15:
            i = rng.randrange(len(current))  # an old message edited in place
            base = [*current[:i], self._message("user"), *current[i + 1 :]]
        else:
            base = list(current)
        messages = base + self._turn()
        return self._write("save", f"/sessions/{session.session_id}", session, messages, messages)

    def _append(self, session: SessionRecord) -> Request:
        current = session.acked or []
        if len(current) >= MAX_MESSAGES:
            return self._save(session)
        new = self._turn()
        path = f"/sessions/{session.session_id}/messages"
        return self._write("append", path, session, new, current + new)

    def _write(
        self, op: str, path: str, session: SessionRecord, body: list[Message], after: list[Message]
    ) -> Request:
        def answered(status: int, data: Any) -> str | None:
            if status != 200 or data != {"status": "saved"}:
                return f"{op} {session.session_id}: {status} {data!r}"
            session.acked, session.acked_writes = after, session.acked_writes + 1
            return None

        def unanswered() -> None:
            session.in_doubt = after

        return Request(op, "POST", path, body, answered, unanswered)

    def _load(self, session: SessionRecord) -> Request:
        assert session.acked is not None
        expected = loaded_form(session.acked)

        def answered(status: int, data: Any) -> str | None:
            if status != 200:
                return f"load {session.session_id}: {status} {data!r}"
            if data.get("session_id") != session.session_id or data.get("messages") != expected:
                return (
                    f"stale read of {session.session_id}: {len(data.get('messages', []))} "
                    f"messages served, {len(expected)} acknowledged"
                )
            return None

        return Request("load", "GET", f"/sessions/{session.session_id}", None, answered)

    def _create_approval(self, session: SessionRecord) -> Request:
        rng = self.rng
        call_id = f"{session.session_id}-approval-{len(self.approvals)}"
        sent: dict[str, Any] = {
            "session_id": session.session_id,
            "call_id": call_id,
            "tool_name": rng.choice(TOOLS),
            "arguments": {"path": rng.choice(TEXTS), "force": rng.random() < 0.5, "n": [1, 2.5]},
        }
        if rng.random() < 0.7:
            sent["reason"] = rng.choice(TEXTS)
        record = ApprovalRecord(call_id, sent)
        self.approvals.append(record)

        def answered(status: int, data: Any) -> str | None:
            if status != 201:  # stays in doubt (a failure anyway): absent or as sent
                return f"create approval {call_id}: {status} {data!r}"
            record.created = "acked"
            return _approval_mismatch(record, data)

        return Request("create_approval", "POST", "/approvals", sent, answered)

    def _decide(self, record: ApprovalRecord) -> Request:
        rng = self.rng
        decision: dict[str, Any] = {"status": rng.choice(["approved", "rejected", "cancelled"])}
        if rng.random() < 0.7:
            decision["decided_by"] = f"human-{self.index} {rng.choice(TEXTS)[:40]}"
        record.decision = decision

        def answered(status: int, data: Any) -> str | None:
            if status != 200:
                record.decided = "in_doubt" if status >= 500 else None
                if status < 500:
                    record.decision = None
                return f"decide {record.call_id}: {status} {data!r}"
            record.decided = "acked"
            return _approval_mismatch(record, data)

        def unanswered() -> None:
            record.decided = "in_doubt"

        path = f"/approvals/{record.call_id}/decision"
        return Request("decide", "POST", path, decision, answered, unanswered)

    def _read_approval(self, record: ApprovalRecord) -> Request:
        def answered(status: int, data: Any) -> str | None:
            if status != 200:
                return f"read approval {record.call_id}: {status} {data!r}"
            return _approval_mismatch(record, data)

        path = f"/approvals/{record.call_id}"
        return Request("read_approval", "GET", path, None, answered)

    def _list_pending(self, session: SessionRecord) -> Request:
        expected = [
            a.call_id
            for a in self.approvals
            if a.session_id == session.session_id and a.created == "acked" and a.decision is None
        ]

        def answered(status: int, data: Any) -> str | None:
            if status != 200:
                return f"list approvals of {session.session_id}: {status} {data!r}"
            served = [item["call_id"] for item in data["items"]]
            if served != expected:
                return f"stale pending list of {session.session_id}: {served} != {expected}"
            return None

        path = f"/sessions/{session.session_id}/approvals"
        return Request("list_pending", "GET", path, None, answered)


def _approval_mismatch(record: ApprovalRecord, data: Any) -> str | None:
    """A problem if an approval as served differs from the ledger."""
    expected = {
        "session_id": record.sent["session_id"],
        "call_id": record.call_id,
        "tool_name": record.sent["tool_name"],
        "arguments": record.sent["arguments"],
        "reason": record.sent.get("reason"),
        "status": record.expected_status(),
        "decided_by": record.decision.get("decided_by") if record.decision else None,
    }
    served = {k: data.get(k) for k in expected}
    if served != expected or (data.get("decided_at") is None) != (record.decision is None):
        return f"approval {record.call_id} served as {data!r}, expected {expected!r}"
    return None


def make_clients(count: int, *, prefix: str, seed: int = 0) -> list[Client]:
    """`count` clients; session ids start with `prefix` (unique per test)."""
    return [
        Client(
            index=i,
            rng=random.Random(seed * 1_000_003 + i),
            sessions=[SessionRecord(f"{prefix}-c{i}-s{k}") for k in range(SESSIONS_PER_CLIENT)],
        )
        for i in range(count)
    ]
