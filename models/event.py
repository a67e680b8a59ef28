from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model

from models.enums import EventType
from models.limits import ENUM_MAX, ID_MAX, NAME_MAX

__all__ = ["Event", "EventType", "PendingEvent"]


class _EventColumns(Model):
    """The columns of an event: the log's and a pending one's are the same row."""

    id = fields.BigIntField(primary_key=True)
    type = fields.CharEnumField(EventType, max_length=ENUM_MAX)
    session_id = fields.CharField(max_length=ID_MAX)
    call_id = fields.CharField(max_length=ID_MAX, null=True)
    actor = fields.CharField(max_length=NAME_MAX, null=True)
    data = fields.JSONField[Any](null=True)
    created_at = fields.DatetimeField()

    class Meta:
        abstract = True


class Event(_EventColumns):
    """One entry of the append-only event log: what happened to an approval, or
    that a session was saved.

    Never updated; rows leave only with their session, when retention
    hard-deletes it. `id` orders the log: ids become visible in increasing order (a
    reader that has seen id N never later finds a smaller one), and the SSE stream
    uses it as its `id:`. On SQLite an event is written here in the transaction of
    the change it records (writers are serialised anyway); on PostgreSQL it is
    written to `PendingEvent` and moved here once committed, by one statement at a
    time (docs/reliability.md, "The event log on PostgreSQL").
    """

    class Meta:
        table = "events"
        indexes = (("call_id", "id"), ("session_id", "id"))

    def __str__(self) -> str:
        return f"{self.id} {self.type}"


class PendingEvent(_EventColumns):
    """PostgreSQL: an event written in the transaction of the change it records,
    not yet in the log. Writers never wait for each other here (no lock, no
    NOTIFY); once their transaction has committed, the sequencer moves the rows
    into `Event`, giving them their log ids in the order it moves them.
    """

    class Meta:
        table = "pending_events"

    def __str__(self) -> str:
        return f"pending {self.id} {self.type}"
