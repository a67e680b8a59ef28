"""Hand-written SQL on `events` (model `Event`).

`?` placeholders; the services convert them per dialect. One statement per
dialect, because PostgreSQL needs two things SQLite gets for free:

* ids in commit order. A sequence hands out ids at insert time, so two writers
  can commit out of id order, and a reader that has seen id 11 would never see
  id 10 committed after it. A transaction-level advisory lock, taken just before
  the id is drawn and held to commit, makes event writers commit one at a time,
  in id order. (SQLite's writers are serialized already.) Committing transactions
  that NOTIFY are serialized by PostgreSQL anyway, so the lock costs little more.
* the announcement: `pg_notify` in the same statement, so it is sent at commit,
  and only if the change committed.

Why hand-written: every approval change and every session save writes one
(figures: docs/performance.md, "The event log").
"""

from __future__ import annotations

from models.queries._text import column_list, values_for

__all__ = [
    "EVENT_LOCK_KEY",
    "INSERT",
    "INSERT_COLUMNS",
    "INSERT_NOTIFY",
    "INSERT_NOTIFY_COLUMNS",
    "NOTIFY_CHANNEL",
]

NOTIFY_CHANNEL = "agent_runtime_events"
EVENT_LOCK_KEY = 0x6167_656E_7465_7674  # "agentevt"; the migration lock has its own key

INSERT_COLUMNS = ("type", "session_id", "call_id", "actor", "data", "created_at")
INSERT = f"INSERT INTO events ({column_list(INSERT_COLUMNS)}) VALUES ({values_for(INSERT_COLUMNS)})"

INSERT_NOTIFY_COLUMNS = ("id", *INSERT_COLUMNS)
_ORDERED_ID = (
    "(SELECT nextval('events_id_seq') "
    f"FROM (SELECT pg_advisory_xact_lock({EVENT_LOCK_KEY})) AS in_commit_order)"
)
INSERT_NOTIFY = (
    f"INSERT INTO events ({column_list(INSERT_NOTIFY_COLUMNS)}) "
    f"VALUES ({values_for(INSERT_NOTIFY_COLUMNS, id=_ORDERED_ID)}) "
    f"RETURNING id, pg_notify('{NOTIFY_CHANNEL}', id::text)::text AS notified"
)
