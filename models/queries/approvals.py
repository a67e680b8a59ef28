"""Hand-written SQL on `pending_approvals` (model `PendingApproval`).

`?` placeholders; the services convert them per dialect
(`agent_runtime.services._sql.sql`). Figures (median ms, SQLite | PostgreSQL):
docs/performance.md, "Hand-written SQL".
"""

from __future__ import annotations

from models.approval import ApprovalStatus
from models.queries._text import column_list, values_for

__all__ = [
    "CREATE",
    "INSERT",
    "INSERT_COLUMNS",
    "INSERT_LEFT_OUT",
    "PENDING_COLUMNS",
    "SELECT_EXISTING",
    "SELECT_PENDING",
]

# Every column but the generated id and the decision's own columns.
INSERT_COLUMNS = (
    "call_id",
    "session_id",
    "tool_name",
    "arguments",
    "reason",
    "created_at",
    "status",
)
# The decision's and the run's columns: a new approval has neither.
INSERT_LEFT_OUT = frozenset(
    {
        "decided_at",
        "decided_by",
        "message",
        "edited_arguments",
        "claim_token_hash",
        "claimed_by",
        "claimed_at",
        "claim_expires_at",
        "result",
        "finished_at",
    }
)
# Why: every tool call of the agent loop (approval save+list: 0.18 | 0.65, 1.11x |
# 1.05x of the floor). ON CONFLICT, not check-then-insert, makes a second save a
# no-op. Parameter `status`: "pending" from the services, the merged status from
# the legacy import.
INSERT = (
    f"INSERT INTO pending_approvals ({column_list(INSERT_COLUMNS)}) "
    f"VALUES ({values_for(INSERT_COLUMNS)}) ON CONFLICT (call_id) DO NOTHING"
)

# Why: as INSERT, for the services: RETURNING tells whether this call inserted the
# approval, and so records its creation event.
CREATE = f"{INSERT} RETURNING id"

PENDING_COLUMNS = ("call_id", "tool_name", "arguments", "reason", "created_at")
# Why: every tool call of the agent loop (figures as INSERT): pending ones, oldest first.
SELECT_PENDING = (
    f"SELECT {column_list(PENDING_COLUMNS)} FROM pending_approvals "
    f"WHERE session_id = ? AND status = '{ApprovalStatus.PENDING.value}' ORDER BY created_at, id"
)

# Why: legacy import, which call_ids the target already holds, 500 per statement
# (not a hot path, no figure). A template: `{marks}` is one `?` per call_id of the
# batch, filled in per call (the count varies, so it cannot be a finished constant).
SELECT_EXISTING = "SELECT call_id FROM pending_approvals WHERE call_id IN ({marks})"
