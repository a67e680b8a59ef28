from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model

from models.enums import DECISIONS, OUTCOMES, RUN_STATUSES, ApprovalStatus
from models.limits import ENUM_MAX, ID_MAX, NAME_MAX

# The enums' first home was here: importing them from this module still works.
__all__ = ["DECISIONS", "OUTCOMES", "RUN_STATUSES", "ApprovalStatus", "PendingApproval"]


class PendingApproval(Model):
    """A tool call waiting for a human decision, and then for its one execution.

    Lifecycle: pending -> approved | rejected | cancelled | expired;
    approved -> claimed -> executed | failed. Every change is also an `Event`.

    `call_id` is unique: a database constraint, not a check-then-insert, keeps
    a second save of the same call a no-op even when both arrive at once. The
    legacy `approval_id` column always equalled `call_id` and is not repeated.
    `session_id` has no foreign key, as in the legacy schema: the agent loop may
    record an approval before it first saves the session.
    """

    id = fields.BigIntField(primary_key=True)
    call_id = fields.CharField(max_length=ID_MAX, unique=True)
    session_id = fields.CharField(max_length=ID_MAX)
    tool_name = fields.CharField(max_length=NAME_MAX)
    arguments = fields.JSONField[Any]()
    reason = fields.TextField(null=True)
    created_at = fields.DatetimeField()
    status = fields.CharEnumField(
        ApprovalStatus, max_length=ENUM_MAX, default=ApprovalStatus.PENDING
    )
    decided_at = fields.DatetimeField(null=True)
    decided_by = fields.CharField(max_length=NAME_MAX, null=True)
    message = fields.TextField(null=True)  # the reviewer's words for the agent
    # The arguments to run when the reviewer edited them; `arguments` keeps the original.
    edited_arguments = fields.JSONField[Any](null=True)
    # SHA-256 of the claim token: the token itself is only ever in the claimer's hands.
    claim_token_hash = fields.CharField(max_length=64, null=True)
    claimed_by = fields.CharField(max_length=NAME_MAX, null=True)
    claimed_at = fields.DatetimeField(null=True)
    claim_expires_at = fields.DatetimeField(null=True)
    result = fields.JSONField[Any](null=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "pending_approvals"
        indexes = (("session_id", "status", "created_at"), ("status", "created_at"))

    def __str__(self) -> str:
        return f"{self.call_id} ({self.status})"
