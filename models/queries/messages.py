"""Hand-written SQL on `messages` (model `Message`).

`?` placeholders; the services convert them per dialect
(`agent_runtime.services._sql.sql`). Figures (median ms, SQLite | PostgreSQL):
docs/performance.md, "Hand-written SQL".
"""

from __future__ import annotations

from models.queries._text import column_list, values_for

__all__ = [
    "DELETE_FROM",
    "INSERT",
    "INSERT_COLUMNS",
    "LOADED_COLUMNS",
    "NEXT_POSITION",
    "SELECT_STORED",
    "STORED_COLUMNS",
]

# Every column but the generated id.
INSERT_COLUMNS = (
    "session_id",
    "position",
    "role",
    "content",
    "timestamp",
    "name",
    "tool_call_id",
    "tool_calls",
    "token_count",
    "metadata",
)
# Why: save / append, every agent turn: one executemany for the new tail (save N=100:
# 0.39 | 0.80, 1.45x | 1.29x of the floor); the legacy import reuses it.
INSERT = (
    f"INSERT INTO messages ({column_list(INSERT_COLUMNS)}) VALUES ({values_for(INSERT_COLUMNS)})"
)

# The legacy load shape (sessions.LOAD selects them with the session).
LOADED_COLUMNS = ("role", "content", "name", "tool_call_id", "tool_calls")
# Every column a caller sets: all but id, session_id and position.
STORED_COLUMNS = (
    "role",
    "content",
    "name",
    "tool_call_id",
    "tool_calls",
    "token_count",
    "metadata",
    "timestamp",
)
# Why: save, hot path (every agent turn) when this process's copy of the stored list
# is stale: compare, then write only the tail. No separate figure.
SELECT_STORED = (
    f'SELECT {column_list(STORED_COLUMNS)} FROM messages WHERE session_id = ? ORDER BY "position"'
)

# Why: append, every agent turn (flat: N=10 0.40 | 0.88, N=10000 0.45 | 0.88).
NEXT_POSITION = 'SELECT COALESCE(MAX("position") + 1, 0) FROM messages WHERE session_id = ?'

# Why: save of an edited history, hot path (every agent turn), no separate figure:
# drops the stored messages from the first difference.
DELETE_FROM = 'DELETE FROM messages WHERE session_id = ? AND "position" >= ?'
