"""Hand-written SQL on `events` and `pending_events` (models `Event`, `PendingEvent`).

`?` placeholders; the services convert them per dialect. The log's promise: ids
become visible in increasing order, so a reader that has seen id 11 never finds
id 10 later.

* SQLite: an event goes straight into `events`, in the transaction of the change
  it records (`INSERT`): SQLite's writers are serialised, so ids commit in order.
* PostgreSQL: writers commit in parallel, and a sequence hands out ids at insert
  time, so ids drawn by writers would commit out of order. Writers therefore put
  their event into `pending_events` (`INSERT_PENDING`: no lock, no NOTIFY, so a
  writer never waits for another, however long its transaction stays open), and
  `SEQUENCE` moves the committed ones into `events`. `SEQUENCE` is the log's only
  writer and draws the ids under a transaction-level advisory lock, one statement
  at a time, so its ids commit in increasing order. A pending row is invisible
  until its writer commits, and is moved by the first `SEQUENCE` after that (a
  rolled-back one never is); the move deletes the row, so it is moved once. The
  same statement sends one NOTIFY for what it moved. An open transaction delays
  nobody: its events are not in the log until it commits, and then they get ids
  above everything logged meanwhile.

Why hand-written: every approval change and every session save writes one
(figures: docs/performance.md, "The event log").
"""

from __future__ import annotations

from models.queries._text import column_list, values_for

__all__ = [
    "EVENT_SEQUENCE_LOCK",
    "INSERT",
    "INSERT_COLUMNS",
    "INSERT_PENDING",
    "NOTIFY_CHANNEL",
    "SEQUENCE",
]

NOTIFY_CHANNEL = "agent_runtime_events"
EVENT_SEQUENCE_LOCK = 0x6167_656E_7465_7674  # "agentevt"; the migration lock has its own key

INSERT_COLUMNS = ("type", "session_id", "call_id", "actor", "data", "created_at")
INSERT = f"INSERT INTO events ({column_list(INSERT_COLUMNS)}) VALUES ({values_for(INSERT_COLUMNS)})"
INSERT_PENDING = (
    f"INSERT INTO pending_events ({column_list(INSERT_COLUMNS)}) "
    f"VALUES ({values_for(INSERT_COLUMNS)})"
)

# The lock is taken (once, by the sub-select) only when there is a row to move,
# before any id is drawn. Rows another statement holds are skipped, not waited for:
# those another `SEQUENCE` is moving, and those retention is deleting (waiting for
# it would stall every reader, which sequences before it reads). Ids are drawn in
# the order of the pending ids: one writer's events keep their order.
_COLUMNS = column_list(INSERT_COLUMNS)
SEQUENCE = (
    "WITH moved AS ("
    " DELETE FROM pending_events"
    " WHERE id IN (SELECT id FROM pending_events ORDER BY id FOR UPDATE SKIP LOCKED)"
    f" AND (SELECT pg_advisory_xact_lock({EVENT_SEQUENCE_LOCK})) IS NOT NULL"
    f" RETURNING id AS pending_id, {_COLUMNS}"
    "), logged AS ("
    f" INSERT INTO events (id, {_COLUMNS})"
    f" SELECT nextval('events_id_seq'), {_COLUMNS}"
    " FROM (SELECT * FROM moved ORDER BY pending_id) AS in_order"
    " RETURNING id"
    ")"
    f" SELECT count(*) AS moved, pg_notify('{NOTIFY_CHANNEL}', max(id)::text)::text AS notified"
    " FROM logged HAVING count(*) > 0"
)
