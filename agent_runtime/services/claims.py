"""Exactly-once execution of approved tool calls: claim, then report the outcome.

The caller that will run an approved tool first claims it and gets a token, once;
a second claimer is refused while the claim's lease holds. After the outcome is
reported, every later claim is refused with the outcome, so a runtime restarted
after a crash learns the tool already ran instead of running it again.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any, cast

from agent_runtime.config import get_settings
from agent_runtime.errors import ConflictError, NotFoundError
from agent_runtime.schemas.types import Name, Outcome, StorableJSON
from agent_runtime.schemas.validation import lookup_id, validate
from agent_runtime.services._common import DB, atomic
from agent_runtime.services._sql import json_or_none
from agent_runtime.services.approvals import APPROVAL_FIELDS, read_approval
from agent_runtime.services.events import record_event
from agent_runtime.timeutils import utc_now
from models import OUTCOMES, ApprovalStatus, EventType, PendingApproval

__all__ = ["claim_approval", "report_result"]

_OUTCOME_EVENT = {
    ApprovalStatus.EXECUTED: EventType.APPROVAL_EXECUTED,
    ApprovalStatus.FAILED: EventType.APPROVAL_FAILED,
}


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _locked(conn: DB, call_id: str) -> tuple[dict[str, Any], str | None]:
    """The approval, row-locked to the end of the transaction on PostgreSQL (SQLite's
    writers are serialized), and its claim token's hash; `NotFoundError` if unknown.

    A model query: Tortoise drops `select_for_update()` from `.values()` queries."""
    row = await PendingApproval.filter(call_id=call_id).using_db(conn).select_for_update().first()
    if row is None:
        raise NotFoundError(f"approval {call_id!r} not found")
    return read_approval({f: getattr(row, f) for f in APPROVAL_FIELDS}), row.claim_token_hash


def _refusal(approval: dict[str, Any], now: Any) -> str | None:
    """Why `approval` cannot be claimed now, or None."""
    status, call_id = approval["status"], approval["call_id"]
    if status == ApprovalStatus.APPROVED:
        return None
    if status == ApprovalStatus.CLAIMED:
        if approval["claim_expires_at"] <= now:
            return None  # its holder did not report in time: taken again
        holder = f" by {approval['claimed_by']}" if approval["claimed_by"] else ""
        return (
            f"approval {call_id!r} is claimed{holder} until "
            f"{approval['claim_expires_at'].isoformat()}"
        )
    if status in OUTCOMES:
        return f"approval {call_id!r} was already run: {status}; do not run it again"
    return f"approval {call_id!r} is {status}, not approved: it must not run"


async def claim_approval(
    db: DB, call_id: str, *, claimed_by: str | None = None, lease_seconds: float | None = None
) -> tuple[str, dict[str, Any]]:
    """Claim an approved call for running it: (claim token, the approval). The claim
    holds `lease_seconds` (default: `AGENT_RUNTIME__CLAIM_LEASE_SECONDS`).

    Raises `ConflictError` (carrying the approval as `current`) when the call is not
    approved, is claimed by someone whose lease still holds, or already ran; a claim
    whose lease ran out is taken over (recorded as a re-claim). `NotFoundError` if
    the call is unknown.
    """
    call_id = lookup_id(call_id, "call_id")
    claimed_by = validate(Name | None, claimed_by, "claimed_by")
    token = secrets.token_urlsafe(32)
    async with atomic(db) as conn:
        approval, _ = await _locked(conn, call_id)
        now = utc_now()
        refusal = _refusal(approval, now)
        if refusal is not None:
            raise ConflictError(refusal, current=approval)
        reclaimed = approval["status"] == ApprovalStatus.CLAIMED
        lease = get_settings().claim_lease_seconds if lease_seconds is None else lease_seconds
        expires = now + timedelta(seconds=lease)
        changes = {
            "status": ApprovalStatus.CLAIMED,
            "claim_token_hash": _hash(token),
            "claimed_by": claimed_by,
            "claimed_at": now,
            "claim_expires_at": expires,
        }
        await PendingApproval.filter(call_id=call_id).using_db(conn).update(**changes)
        data: dict[str, Any] = {"expires_at": expires.isoformat(), "reclaimed": reclaimed}
        if reclaimed:
            data["previous_claimed_by"] = approval["claimed_by"]
            data["previous_claimed_at"] = approval["claimed_at"].isoformat()
        await record_event(
            conn,
            EventType.APPROVAL_CLAIMED,
            approval["session_id"],
            call_id=call_id,
            actor=claimed_by,
            data=data,
        )
    del changes["claim_token_hash"]
    return token, {**approval, **changes, "status": ApprovalStatus.CLAIMED.value}


async def report_result(
    db: DB, call_id: str, claim_token: str, status: str, result: Any = None
) -> dict[str, Any]:
    """Record the outcome of a claimed call: `status` "executed" or "failed", with
    any JSON `result`; returns the approval.

    `ConflictError` for a token that is not this call's current claim, or whose lease
    ran out. Reporting the same outcome again with the same token returns the
    approval unchanged (a retry after a lost answer is safe).
    """
    call_id = lookup_id(call_id, "call_id")
    outcome = ApprovalStatus(cast(str, validate(Outcome, status, "status")))
    claim_token = validate(str, claim_token, "claim_token")
    result = validate(StorableJSON, result, "result")
    async with atomic(db) as conn:
        approval, token_hash = await _locked(conn, call_id)
        ours = token_hash is not None and hmac.compare_digest(token_hash, _hash(claim_token))
        if ours and approval["status"] in OUTCOMES:
            if approval["status"] == outcome and approval["result"] == result:
                return approval
            raise ConflictError(
                f"approval {call_id!r} already reported {approval['status']}", current=approval
            )
        if not ours or approval["status"] != ApprovalStatus.CLAIMED:
            raise ConflictError(
                f"claim token is not the current claim of approval {call_id!r}",
                current=approval,
            )
        now = utc_now()
        if approval["claim_expires_at"] <= now:
            raise ConflictError(
                f"the claim on approval {call_id!r} expired at "
                f"{approval['claim_expires_at'].isoformat()}; claim it again",
                current=approval,
            )
        await (
            PendingApproval.filter(call_id=call_id)
            .using_db(conn)
            # Encoded here: Tortoise's JSONField takes a str as JSON text already.
            .update(status=outcome, result=json_or_none(result), finished_at=now)
        )
        await record_event(
            conn,
            _OUTCOME_EVENT[outcome],
            approval["session_id"],
            call_id=call_id,
            actor=approval["claimed_by"],
            data={"result": result},
        )
    return {**approval, "status": outcome.value, "result": result, "finished_at": now}
