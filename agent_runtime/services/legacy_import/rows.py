"""Validation of legacy rows: what this service can store, and in which shape.

Naive legacy datetimes are UTC wall-clock values (the legacy wrote
`datetime.now(timezone.utc)` into naive columns) and are stored as aware UTC.
Empty strings in `name`, `tool_call_id`, `tool_calls` and `metadata_json` are
imported as NULL: the legacy `load_session` left falsy values out of a message, so
`load_session` here returns exactly what the legacy one did.

Rows this service cannot store are refused with `Invalid` (the importer reports
and skips them, never fatal): a role outside the legacy CHECK, NUL characters or
invalid UTF-8 (PostgreSQL cannot store them; both backends refuse them alike),
text over its column's length, unparsable datetimes or JSON, datetimes out of range
in UTC, JSON of the wrong shape (tool_calls must be a list of objects, metadata and
arguments objects), negative or out-of-range integers, and session ids or call ids
that break the id rule (`.`, `..`, or containing `/` or a control character: no
route or console link could reach them; see `schemas/types.py`). The
legacy service took any string as an id: a session with such an id is reported and
skipped with its messages, context and switches, and so is each approval whose call
id or session id breaks the rule. Rename them in the legacy database and run the
import again (it skips what it already imported).

The legacy store had no unique `call_id`, so one call may have several approval
rows. **Merge rule** for the rows of one `call_id`, taken oldest first
(created_at, ties in insertion order):

* the content (session_id, tool_name, arguments, reason, created_at) is the
  oldest row's;
* the status is the decision if any row carries one (approved, rejected,
  cancelled); rows with different decisions resolve to the most cautious one:
  rejected, then cancelled, then approved (the conflict is reported); without a
  decision, the oldest row's status;
* `decided_at` / `decided_by` stay NULL: the legacy store did not record them.

Every merge is reported (call_id, rows merged, resulting status, and whether
the rows' contents differed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, cast

from agent_runtime.errors import InvalidInputError
from agent_runtime.schemas.types import (
    AgentName,
    Count,
    Id,
    JSONObject,
    Name,
    OptionalAgentName,
    RequiredName,
    StorableJSON,
    StorableText,
    Title,
    parse_json,
)
from agent_runtime.schemas.validation import validate
from agent_runtime.services._sql import json_dumps
from agent_runtime.services.legacy_import.report import MergedApproval
from agent_runtime.timeutils import parse_datetime
from models import ApprovalStatus, MessageRole

__all__ = [
    "Approval",
    "Context",
    "Invalid",
    "Session",
    "approval",
    "context",
    "merge",
    "message",
    "row_id",
    "session",
    "switch",
]

# Most cautious first: the decision kept when duplicate rows disagree.
_DECISIONS = ("rejected", "cancelled", "approved")


class Invalid(Exception):
    """A legacy value this service cannot store; the message says why."""


def _checked(schema: Any, value: Any, what: str) -> Any:
    """`value` by the service's own rule for it (schemas/types.py), or `Invalid`."""
    try:
        return validate(schema, value, what)
    except InvalidInputError as exc:
        if "NUL character" in str(exc):  # undecodable legacy bytes arrive as surrogates
            raise Invalid(f"{what} contains a NUL character or invalid UTF-8") from None
        raise Invalid(str(exc)) from None


def _text(
    value: Any, what: str, schema: Any = StorableText, *, empty_is_null: bool = False
) -> str | None:
    """Legacy text (None, or "" where the legacy meant "unset", is NULL)."""
    if value is None or (empty_is_null and value == ""):
        return None
    if not isinstance(value, str):
        raise Invalid(f"{what} is not text ({type(value).__name__})")
    return cast(str, _checked(schema, value, what))


def _required(value: Any, what: str, schema: Any) -> str:
    if value is None:
        raise Invalid(f"{what} is missing")
    text = _text(value, what, schema)
    assert text is not None
    return text


def _stamp(value: Any, what: str, *, required: bool = True) -> datetime | None:
    """A legacy datetime (naive = UTC; ISO text on SQLite) as aware UTC."""
    if value is None:
        if required:
            raise Invalid(f"{what} is missing")
        return None
    if isinstance(value, str | datetime):
        try:
            return parse_datetime(value, what)
        except InvalidInputError:
            pass
    raise Invalid(f"{what} is not a datetime: {value!r:.60}")


def _json(value: Any, what: str, shape: type) -> str | None:
    """A legacy JSON string (or value) as the JSON text to store, or None."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = parse_json(value)  # as a REST body: integers exact, no RecursionError
        except ValueError:
            raise Invalid(f"{what} is not valid JSON") from None
        if value is None:
            return None
    if shape is list:
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise Invalid(f"{what} must be a JSON list of objects")
    elif not isinstance(value, dict):
        raise Invalid(f"{what} must be a JSON object")
    return json_dumps(_checked(JSONObject if shape is dict else list[StorableJSON], value, what))


def _count(value: Any, what: str, *, default: int | None = None) -> int | None:
    return default if value is None else cast(int, _checked(Count, value, what))


def _flag(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("0", "1", "true", "false", "t", "f"):
        return value.lower() in ("1", "true", "t")
    raise Invalid(f"{what} is not a boolean: {value!r:.40}")


def row_id(value: Any) -> str:
    return "(no id)" if value is None else str(value)


@dataclass
class Session:
    db_id: Any  # legacy sessions.id
    caller_id: str
    values: list[Any]  # title, description, created_at, last_activity, is_active, deleted_at


def session(row: Sequence[Any], variant: str) -> Session:
    db_id, session_id, title, description, created_at, last_activity, is_active, deleted_at = row
    caller = _required(
        session_id if variant == "A" else db_id, "session_id" if variant == "A" else "id", Id
    )
    deleted = _stamp(deleted_at, "deleted_at", required=False)
    return Session(
        db_id,
        caller,
        [
            _text(title, "title", Title),
            _text(description, "description"),
            _stamp(created_at, "created_at"),
            _stamp(last_activity, "last_activity"),
            deleted is None if is_active is None else _flag(is_active, "is_active"),
            deleted,
        ],
    )


def message(row: Sequence[Any]) -> tuple[Any, ...]:
    """A legacy message row as (role, content, timestamp, name, tool_call_id,
    tool_calls, token_count, metadata), ready to insert after session and position."""
    _, _, role, content, stamp, name, tool_call_id, tool_calls, tokens, metadata = row
    return (
        _checked(MessageRole, role, "role").value,
        _text(content, "content"),
        _stamp(stamp, "timestamp"),
        _text(name, "name", Name, empty_is_null=True),
        _text(tool_call_id, "tool_call_id", Name, empty_is_null=True),
        _json(tool_calls, "tool_calls", list),
        _count(tokens, "token_count"),
        _json(metadata, "metadata_json", dict),
    )


@dataclass
class Context:
    legacy_id: Any
    values: list[Any]  # current_agent, created_at, updated_at, switch_count, metadata
    switches: list[tuple[Any, ...]] = field(default_factory=list)  # in history order


def context(row: Sequence[Any]) -> Context:
    legacy_id, _, agent, created_at, updated_at, switch_count, metadata = row
    created = _stamp(created_at, "created_at")
    return Context(
        legacy_id,
        [
            _required(agent, "current_agent", AgentName),
            created,
            _stamp(updated_at, "updated_at", required=False) or created,
            _count(switch_count, "switch_count", default=0),
            _json(metadata, "metadata_json", dict),
        ],
    )


def switch(row: Sequence[Any]) -> tuple[Any, ...]:
    """(from_agent, to_agent, switched_at, reason, metadata)."""
    _, _, from_agent, to_agent, switched_at, reason, metadata = row
    return (
        _text(from_agent, "from_agent", OptionalAgentName),
        _required(to_agent, "to_agent", AgentName),
        _stamp(switched_at, "switched_at"),
        _text(reason, "reason"),
        _json(metadata, "metadata_json", dict),
    )


@dataclass(frozen=True)
class Approval:
    call_id: str
    session_id: str
    tool_name: str
    arguments: str  # JSON text
    reason: str | None
    created_at: datetime
    status: str

    @property
    def content(self) -> tuple[Any, ...]:
        return (self.session_id, self.tool_name, self.arguments, self.reason)


def approval(row: Sequence[Any], caller_ids: dict[Any, str], variant: str) -> Approval:
    _, call_id, session_id, tool_name, arguments, reason, created_at, status = row
    status = _checked(
        ApprovalStatus, ApprovalStatus.PENDING if status is None else status, "status"
    )
    if variant == "A" and session_id in caller_ids:
        session_id = caller_ids[session_id]  # a legacy uuid sessions.id: the caller's id
    created = _stamp(created_at, "created_at")
    assert created is not None
    return Approval(
        call_id=_required(call_id, "call_id", Id),
        session_id=_required(session_id, "session_id", Id),
        tool_name=_required(tool_name, "tool_name", RequiredName),
        arguments=_json(arguments, "arguments", dict) or "{}",
        reason=_text(reason, "reason"),
        created_at=created,
        status=status.value,
    )


def merge(rows: list[Approval]) -> tuple[Approval, MergedApproval | None]:
    """Rows of one call_id, oldest first, as one approval (the module's merge rule)."""
    oldest = rows[0]
    if len(rows) == 1:
        return oldest, None
    decisions = {r.status for r in rows if r.status in _DECISIONS}
    status = next((d for d in _DECISIONS if d in decisions), oldest.status)
    notes = []
    if len(decisions) > 1:
        notes.append(f"conflicting decisions {', '.join(sorted(decisions))}: kept {status}")
    if any(r.content != oldest.content for r in rows[1:]):
        notes.append("rows differ in content: kept the oldest row's")
    return (
        replace(oldest, status=status),
        MergedApproval(oldest.call_id, len(rows), status, "; ".join(notes)),
    )
