"""The enums of stored values and the status sets built from them.

Plain Python (no ORM): the schemas, and through them the client, use them too.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "APPROVED_OR_LATER",
    "DECISIONS",
    "OUTCOMES",
    "RUN_STATUSES",
    "ApprovalStatus",
    "EventType",
    "MessageRole",
    "Role",
]


class MessageRole(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    TOOL = "tool"


class Role(StrEnum):
    """What an API key may do (docs/security.md has the table)."""

    AGENT = "agent"  # the agent runtime: sessions, contexts, approvals it records and runs
    REVIEWER = "reviewer"  # a person's tooling: reads, and decides as its reviewer account
    ADMIN = "admin"  # the operator: everything
    METRICS = "metrics"  # the scraper: GET /metrics only


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # set by retention, never by a decision
    CLAIMED = "claimed"  # approved, and taken by the one caller that runs the tool
    EXECUTED = "executed"  # the claim's holder reported the tool ran
    FAILED = "failed"  # the claim's holder reported the tool failed


# What a person (or the legacy `update_approval_status`) may set.
DECISIONS = frozenset({ApprovalStatus.APPROVED, ApprovalStatus.REJECTED, ApprovalStatus.CANCELLED})
# What the holder of a claim reports.
OUTCOMES = frozenset({ApprovalStatus.EXECUTED, ApprovalStatus.FAILED})
# Past the decision: the tool is being run or has run; no decision changes these.
RUN_STATUSES = frozenset({ApprovalStatus.CLAIMED, *OUTCOMES})
# Approved, whatever happened since: the tool may run (or ran).
APPROVED_OR_LATER = frozenset({ApprovalStatus.APPROVED, *RUN_STATUSES})


class EventType(StrEnum):
    APPROVAL_CREATED = "approval.created"
    APPROVAL_DECIDED = "approval.decided"  # approved or rejected
    APPROVAL_CANCELLED = "approval.cancelled"
    APPROVAL_EXPIRED = "approval.expired"
    APPROVAL_CLAIMED = "approval.claimed"  # also a re-claim after the lease ran out
    APPROVAL_EXECUTED = "approval.executed"
    APPROVAL_FAILED = "approval.failed"
    APPROVAL_DELETED = "approval.deleted"
    SESSION_SAVED = "session.saved"
