"""Hand-written SQL on `agent_contexts` (model `AgentContext`) and `agent_switches`
(model `AgentSwitch`).

`?` placeholders; the services convert them per dialect
(`agent_runtime.services._sql.sql`). Figures (median ms, SQLite | PostgreSQL):
docs/performance.md, "Hand-written SQL".
"""

from __future__ import annotations

from models.queries._text import column_list, values_for

__all__ = [
    "CONTEXT_INSERT_COLUMNS",
    "INSERT_CONTEXT",
    "INSERT_SWITCH",
    "SWITCH_INSERT_COLUMNS",
]

# Every column but the generated id.
CONTEXT_INSERT_COLUMNS = (
    "session_id",
    "current_agent",
    "created_at",
    "updated_at",
    "last_switch_at",
    "switch_count",
    "metadata",
)
# Why: legacy import, once per context (not a hot path, no figure); RETURNING gives
# the switches' context_id without a second query.
INSERT_CONTEXT = (
    f"INSERT INTO agent_contexts ({column_list(CONTEXT_INSERT_COLUMNS)}) "
    f"VALUES ({values_for(CONTEXT_INSERT_COLUMNS)}) RETURNING id"
)

# Every column but the generated id.
SWITCH_INSERT_COLUMNS = (
    "context_id",
    "position",
    "from_agent",
    "to_agent",
    "switched_at",
    "reason",
    "metadata",
)
# Why: legacy import (not a hot path, no figure): one executemany per context's switches.
INSERT_SWITCH = (
    f"INSERT INTO agent_switches ({column_list(SWITCH_INSERT_COLUMNS)}) "
    f"VALUES ({values_for(SWITCH_INSERT_COLUMNS)})"
)
