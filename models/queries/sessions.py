"""Hand-written SQL on `sessions` (model `Session`).

`?` placeholders; the services convert them per dialect
(`agent_runtime.services._sql.sql`). Figures (median ms, SQLite | PostgreSQL):
docs/performance.md, "Hand-written SQL".
"""

from __future__ import annotations

from models.queries._text import column_list, values_for
from models.queries.messages import LOADED_COLUMNS
from models.session import VISIBLE_SQL

__all__ = [
    "CREATE_EMPTY",
    "IMPORT",
    "INSERT_COLUMNS",
    "LOAD",
    "LOCK",
    "LOCK_COLUMNS",
    "LOCK_FOR_UPDATE",
    "SELECT_EXISTING",
    "SELECT_VISIBLE_COLUMNS",
    "TOUCH",
    "TOUCH_COLUMNS",
    "TOUCH_IF_CURRENT",
]

# Every column of the table: the save's creation and the legacy import share it.
INSERT_COLUMNS = (
    "id",
    "title",
    "description",
    "created_at",
    "last_activity",
    "is_active",
    "deleted_at",
    "version",
    "messages_token",
)


def _insert(values: str, tail: str) -> str:
    return f"INSERT INTO sessions ({column_list(INSERT_COLUMNS)}) VALUES ({values}) {tail}"


# Why: save, every agent turn (save N=100: 0.39 | 0.80, 1.45x | 1.29x of the floor).
# Creates the row if missing (version 0 until the save's own TOUCH);
# parameters id, created_at, last_activity.
CREATE_EMPTY = _insert(
    values_for(
        INSERT_COLUMNS,
        title="NULL",
        description="NULL",
        is_active="TRUE",
        deleted_at="NULL",
        version="0",
        messages_token="0",
    ),
    "ON CONFLICT (id) DO NOTHING",
)

# Why: legacy import, shares the column list with CREATE_EMPTY (not a hot path, no figure).
# Every column but version (1). RETURNING, not a row count: Tortoise's asyncpg
# client reports the OID of "INSERT 0 1".
IMPORT = _insert(
    values_for(INSERT_COLUMNS, version="1"), "ON CONFLICT (id) DO NOTHING RETURNING id"
)

LOCK_COLUMNS = ("version", "messages_token", "title")
# Why: save, every agent turn (figures as CREATE_EMPTY). SQLite: no row lock needed,
# its transactions are serialized (BEGIN IMMEDIATE).
LOCK = "SELECT version, messages_token, title IS NULL AS untitled FROM sessions WHERE id = ?"
# Why: save, every agent turn, PostgreSQL: the row lock serializes saves of one session.
LOCK_FOR_UPDATE = LOCK + " FOR UPDATE"

TOUCH_COLUMNS = ("last_activity", "deleted_at", "is_active", "version", "messages_token", "title")
# Why: save and append, every agent turn (append N=10000: 0.45 | 0.88). One UPDATE for
# the session row (revives a soft-deleted one); parameters last_activity,
# messages_token, title if untitled, id.
TOUCH = (
    "UPDATE sessions SET last_activity = ?, deleted_at = NULL, is_active = TRUE, "
    "version = version + 1, messages_token = ?, title = COALESCE(title, ?) WHERE id = ?"
)
# Why: save and append when this process holds the stored list (the usual case): TOUCH
# only if the stored messages_token is still the cached one, returning the new version,
# in one round trip instead of a lock read plus TOUCH; parameters as TOUCH, then the
# cached token.
TOUCH_IF_CURRENT = TOUCH + " AND messages_token = ? RETURNING version"

SELECT_VISIBLE_COLUMNS = ("created_at", "last_activity", "version")
# Why: load, every agent turn (load N=1000: 1.51 | 1.53, 1.13x | 1.08x of the floor):
# the session (its version is GET /sessions/{id}'s ETag) and its messages in the
# legacy load shape, in one round trip: a row per message (one with NULL message
# columns when there are none). The session's timestamps come only with the first
# message (positions start at 0): decoding them on every row cost PostgreSQL 0.8 ms
# at N=1000.
LOAD = (
    "SELECT "
    + ", ".join(
        f'CASE WHEN COALESCE(messages."position", 0) = 0 THEN sessions.{column} END'
        for column in SELECT_VISIBLE_COLUMNS[:2]
    )
    + f", sessions.{SELECT_VISIBLE_COLUMNS[2]}, {column_list(LOADED_COLUMNS, 'messages')} "
    "FROM sessions LEFT JOIN messages ON messages.session_id = sessions.id "
    f'WHERE sessions.id = ? AND sessions.{VISIBLE_SQL} ORDER BY messages."position"'
)

# Why: legacy import, which session ids the target already holds, 500 per statement
# (not a hot path, no figure). A template: `{marks}` is one `?` per id of the
# batch, filled in per call (the count varies, so it cannot be a finished constant).
SELECT_EXISTING = "SELECT id FROM sessions WHERE id IN ({marks})"
