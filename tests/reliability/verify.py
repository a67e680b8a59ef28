"""Compare what the database holds with the clients' ledgers, through the service API.

Reads the database itself (not the clients' memory, not a server's cache): every
session and approval the clients acknowledged must be stored exactly as sent, a
write left in doubt may be there or not but nothing else, and no row exists that
no client wrote.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agent_runtime.services.approvals import list_approvals
from agent_runtime.services.database import (
    close_db,
    get_connection,
    init_database,
    list_all_sessions,
)
from agent_runtime.services.messages import stored_messages
from agent_runtime.services.sessions import get_session_version
from agent_runtime.timeutils import parse_datetime
from tests.reliability.workload import ApprovalRecord, Client, Message, SessionRecord, stored_form

__all__ = ["Verification", "all_approvals", "stored_as_sent", "verify_clients"]


@dataclass
class Verification:
    problems: list[str] = field(default_factory=list)
    sessions: int = 0  # stored sessions checked
    messages: int = 0  # their stored messages
    approvals: int = 0  # stored approvals checked
    in_doubt: int = 0  # writes that got no answer...
    in_doubt_applied: int = 0  # ... and took effect (the database holds their result)

    def summary(self) -> str:
        return (
            f"verified {self.sessions} sessions, {self.messages} messages, "
            f"{self.approvals} approvals; {self.in_doubt} writes in doubt, "
            f"{self.in_doubt_applied} of them applied; {len(self.problems)} problem(s)"
        )

    def report(self) -> str:
        return f"{self.summary()}:\n" + "\n".join(self.problems[:20])


async def verify_clients(
    url: str, clients: Iterable[Client], *, other_sessions: Iterable[str] = ()
) -> Verification:
    """Check the database at `url` against the clients' ledgers. `other_sessions`
    were written by the test itself, and are checked by it."""
    clients = list(clients)
    sessions = [s for c in clients for s in c.sessions]
    approvals = [a for c in clients for a in c.approvals]
    result = Verification()
    await init_database(url)
    try:
        db = get_connection()
        await _check_sessions(db, sessions, set(other_sessions), result)
        await _check_approvals(db, approvals, result)
    finally:
        await close_db()
    return result


def stored_as_sent(rows: list[dict[str, Any]], sent: list[Message]) -> bool:
    """Whether stored message rows are exactly the sent messages, in order (a sent
    timestamp as the same instant; without one the server's is not compared)."""
    if [{k: r[k] for k in r if k != "timestamp"} for r in rows] != [stored_form(m) for m in sent]:
        return False
    return all(
        "timestamp" not in m or row["timestamp"] == parse_datetime(m["timestamp"], "timestamp")
        for row, m in zip(rows, sent, strict=True)
    )


async def _check_sessions(
    db: Any, sessions: list[SessionRecord], others: set[str], result: Verification
) -> None:
    problems = result.problems
    expected_ids = {s.session_id for s in sessions}
    stored_ids = set(await list_all_sessions(db, include_deleted=True))
    for extra in sorted(stored_ids - expected_ids - others):
        problems.append(f"session {extra!r} exists but no client wrote it")
    for session in sessions:
        sid = session.session_id
        exists = sid in stored_ids
        version = await get_session_version(db, sid)
        rows = await stored_messages(db, sid) if exists else []
        result.sessions += exists
        result.messages += len(rows)
        acked_state = _is_state(exists, version, rows, session.acked, session.acked_writes)
        if session.in_doubt is None:
            if acked_state:
                continue
        else:
            # A write without an answer: the acknowledged state, or the one after it.
            result.in_doubt += 1
            if _is_state(exists, version, rows, session.in_doubt, session.acked_writes + 1):
                result.in_doubt_applied += 1
                continue
            if acked_state:
                continue
        problems.append(
            f"session {sid!r}: stored version {version} with {len(rows)} message(s); "
            f"acknowledged: version {session.acked_writes} with "
            f"{len(session.acked or [])} message(s)"
            + (
                f"; or, in doubt, {len(session.in_doubt)} message(s)"
                if session.in_doubt is not None
                else ""
            )
            + _first_difference(rows, session.acked or [])
        )


def _first_difference(rows: list[dict[str, Any]], sent: list[Message]) -> str:
    for i, (row, message) in enumerate(zip(rows, sent, strict=False)):
        if not stored_as_sent([row], [message]):
            return f"; first difference at message {i}: stored {row!r:.300}, sent {message!r:.300}"
    return ""


def _is_state(
    exists: bool,
    version: int | None,
    rows: list[dict[str, Any]],
    messages: list[Message] | None,
    want_version: int,
) -> bool:
    """Whether the session holds `messages` at `want_version` (None: does not exist)."""
    if messages is None:
        return not exists
    return exists and version == want_version and stored_as_sent(rows, messages)


async def all_approvals(db: Any) -> dict[str, dict[str, Any]]:
    """Every stored approval, by call_id."""
    stored, after = {}, None
    while True:
        page = await list_approvals(db, limit=500, after=after)
        stored.update({a["call_id"]: a for a in page.items})
        if page.next_key is None:
            return stored
        after = page.next_key


async def _check_approvals(db: Any, approvals: list[ApprovalRecord], result: Verification) -> None:
    problems = result.problems
    stored = await all_approvals(db)
    for extra in sorted(stored.keys() - {a.call_id for a in approvals}):
        problems.append(f"approval {extra!r} exists but no client created it")
    for record in approvals:
        row = stored.get(record.call_id)
        if record.created == "in_doubt":
            result.in_doubt += 1
            result.in_doubt_applied += row is not None
        if row is None:
            if record.created == "acked":
                problems.append(f"approval {record.call_id!r} acknowledged but not stored")
            continue
        result.approvals += 1
        content = {k: row[k] for k in ("session_id", "tool_name", "arguments", "reason")}
        sent = {k: record.sent.get(k) for k in content}
        if content != sent:
            problems.append(f"approval {record.call_id!r} stored as {content}, sent {sent}")
        # (status, decided_by) the ledger allows.
        allowed = {("pending", None)}
        if record.decision is not None:
            decision = (record.decision["status"], record.decision.get("decided_by"))
            if record.decided == "acked":
                allowed = {decision}
            else:  # sent, no answer
                allowed.add(decision)
                result.in_doubt += 1
                result.in_doubt_applied += row["status"] != "pending"
        stored_decision = (row["status"], row["decided_by"])
        if stored_decision not in allowed or (
            (row["decided_at"] is None) != (row["status"] == "pending")
        ):
            problems.append(
                f"approval {record.call_id!r}: stored {row['status']} by {row['decided_by']!r} "
                f"at {row['decided_at']}, expected one of {sorted(allowed, key=str)}"
            )
