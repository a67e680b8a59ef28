"""Hand-written SQL on `langgraph_checkpoints` and `langgraph_checkpoint_writes`
(models `Checkpoint`, `CheckpointWrite`).

`?` placeholders; the services convert them per dialect. Why hand-written: a
LangGraph graph writes a checkpoint and its tasks' writes at every step, and reads
the latest checkpoint at the start of every run; Tortoise's query building cost
more than the statements (benchmarks/README.md, `langgraph`).
"""

from __future__ import annotations

from models.queries._text import column_list, values_for
from models.session import VISIBLE_SQL

__all__ = [
    "CHECKPOINT_COLUMNS",
    "GET_LATEST",
    "GET_ONE",
    "INSERT_CHECKPOINT",
    "INSERT_CHECKPOINT_OF_VISIBLE",
    "INSERT_WRITES",
    "PUT_TOUCHING",
    "SELECT_WRITES",
    "TOUCH_VISIBLE",
    "WRITE_COLUMNS",
]

CHECKPOINT_COLUMNS = (
    "session_id",
    "checkpoint_ns",
    "checkpoint_id",
    "parent_checkpoint_id",
    "run_id",
    "type",
    "checkpoint",
    "metadata",
    "created_at",
)
WRITE_COLUMNS = (
    "session_id",
    "checkpoint_ns",
    "checkpoint_id",
    "task_id",
    "idx",
    "channel",
    "type",
    "blob",
    "task_path",
    "created_at",
)

# Activity on a thread's visible session (a checkpoint is one); parameters
# last_activity, id.
TOUCH_VISIBLE = (
    f"UPDATE sessions SET last_activity = ?, version = version + 1 WHERE id = ? AND {VISIBLE_SQL}"
)

_COLUMNS = column_list(CHECKPOINT_COLUMNS)
_UPSERT = (
    "ON CONFLICT (session_id, checkpoint_ns, checkpoint_id) DO UPDATE SET "
    "parent_checkpoint_id = excluded.parent_checkpoint_id, run_id = excluded.run_id, "
    "type = excluded.type, checkpoint = excluded.checkpoint, metadata = excluded.metadata"
)
# A checkpoint (replacing one of the same key); parameters: CHECKPOINT_COLUMNS.
INSERT_CHECKPOINT = (
    f"INSERT INTO langgraph_checkpoints ({_COLUMNS}) VALUES ({values_for(CHECKPOINT_COLUMNS)}) "
    + _UPSERT
)
# SQLite, after TOUCH_VISIBLE in the same transaction: the session id is read from the
# visible session, so without one it is NULL, a NOT NULL violation that rolls the
# transaction back (the caller then creates or revives the session). Parameters as
# INSERT_CHECKPOINT.
INSERT_CHECKPOINT_OF_VISIBLE = (
    f"INSERT INTO langgraph_checkpoints ({_COLUMNS}) VALUES ("
    + values_for(
        CHECKPOINT_COLUMNS,
        session_id=f"(SELECT id FROM sessions WHERE id = ? AND {VISIBLE_SQL})",
    )
    + ") "
    + _UPSERT
)
# PostgreSQL: TOUCH_VISIBLE and INSERT_CHECKPOINT in one statement, a row returned
# only when the session is visible (else nothing is written); parameters
# last_activity, then CHECKPOINT_COLUMNS.
PUT_TOUCHING = (
    "WITH touched AS (UPDATE sessions SET last_activity = ?, version = version + 1 "
    f"WHERE id = ? AND {VISIBLE_SQL} RETURNING id) "
    f"INSERT INTO langgraph_checkpoints ({_COLUMNS}) "
    "SELECT touched.id, ?, ?, ?, ?, ?, CAST(? AS BYTEA), CAST(? AS JSONB), "
    f"CAST(? AS TIMESTAMPTZ) FROM touched {_UPSERT} RETURNING id"
)


def INSERT_WRITES(rows: int, *, replace: bool) -> str:
    """`rows` pending writes (parameters: WRITE_COLUMNS, row after row). A stored
    (task, idx) is kept, or with `replace` replaced."""
    conflict = (
        "ON CONFLICT (session_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE SET "
        "channel = excluded.channel, type = excluded.type, blob = excluded.blob, "
        "task_path = excluded.task_path"
        if replace
        else "ON CONFLICT DO NOTHING"
    )
    marks = ", ".join([f"({values_for(WRITE_COLUMNS)})"] * rows)
    return (
        f"INSERT INTO langgraph_checkpoint_writes ({column_list(WRITE_COLUMNS)}) "
        f"VALUES {marks} {conflict}"
    )


def SELECT_WRITES(keys: int) -> str:
    """The pending writes of `keys` checkpoints (parameters: session_id,
    checkpoint_ns, checkpoint_id of each)."""
    where = " OR ".join(["(session_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?)"] * keys)
    return (
        "SELECT session_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, "
        f"blob, task_path FROM langgraph_checkpoint_writes WHERE {where}"
    )


def _get(where: str) -> str:
    # The checkpoint's row (`w` = 0), then a row per pending write (`w` = 1), in one
    # statement; shared columns: key = checkpoint id | task id, a = parent id |
    # channel, b = metadata | task path.
    return (
        "WITH c AS (SELECT checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata "
        f"FROM langgraph_checkpoints WHERE {where} ORDER BY checkpoint_id DESC LIMIT 1) "
        "SELECT 0 AS w, c.checkpoint_id AS key, c.parent_checkpoint_id AS a, c.type, "
        "c.checkpoint AS blob, CAST(c.metadata AS TEXT) AS b, NULL AS idx FROM c "
        "UNION ALL SELECT 1, w.task_id, w.channel, w.type, w.blob, w.task_path, w.idx "
        "FROM langgraph_checkpoint_writes w JOIN c ON w.checkpoint_id = c.checkpoint_id "
        "WHERE w.session_id = ? AND w.checkpoint_ns = ?"
    )


# A thread's latest checkpoint in a namespace, with its writes; parameters session_id,
# checkpoint_ns, then again session_id, checkpoint_ns.
GET_LATEST = _get("session_id = ? AND checkpoint_ns = ?")
# The same for one checkpoint id; parameters session_id, checkpoint_ns, checkpoint_id,
# then session_id, checkpoint_ns.
GET_ONE = _get("session_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?")
