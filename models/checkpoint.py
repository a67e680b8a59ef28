"""LangGraph checkpoints: the state of a graph thread after each step, and the
writes of the tasks of the step in progress (`agent_runtime.integrations.langgraph`).

One LangGraph thread is one session: `session_id` is the thread id. As on
`PendingApproval`, it has no foreign key: the saver creates the session row with
the thread's first checkpoint, and deleting a session (hard delete, retention's
purge) deletes its checkpoints and writes by `session_id`.

Values are stored as LangGraph's serializer produces them (`serde.dumps_typed`):
a type name and bytes. The checkpoint is kept whole, its channel values inline.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model

from models.limits import CHECKPOINT_NS_MAX, ENUM_MAX, ID_MAX, NAME_MAX

__all__ = ["Checkpoint", "CheckpointWrite"]


class Checkpoint(Model):
    """One checkpoint of a thread (a session) in a namespace, keyed by its id.

    Checkpoint ids are LangGraph's uuid6: they sort by time, so "latest" is the
    greatest id of the thread and namespace."""

    id = fields.BigIntField(primary_key=True)
    session_id = fields.CharField(max_length=ID_MAX)
    checkpoint_ns = fields.CharField(max_length=CHECKPOINT_NS_MAX, default="")
    checkpoint_id = fields.CharField(max_length=ID_MAX)
    parent_checkpoint_id = fields.CharField(max_length=ID_MAX, null=True)
    # metadata["run_id"], a column of its own for `delete_for_runs`.
    run_id = fields.CharField(max_length=ID_MAX, null=True, db_index=True)
    type = fields.CharField(max_length=ENUM_MAX)
    checkpoint = fields.BinaryField()
    metadata = fields.JSONField[Any]()
    created_at = fields.DatetimeField()

    class Meta:
        table = "langgraph_checkpoints"
        unique_together = (("session_id", "checkpoint_ns", "checkpoint_id"),)

    def __str__(self) -> str:
        return f"{self.session_id}/{self.checkpoint_ns}/{self.checkpoint_id}"


class CheckpointWrite(Model):
    """One pending write of a task, against the checkpoint it follows.

    `idx` is the write's position in the task's writes, or LangGraph's negative
    index of a special channel (error, interrupt, ...), which a later write of the
    same task replaces."""

    id = fields.BigIntField(primary_key=True)
    session_id = fields.CharField(max_length=ID_MAX)
    checkpoint_ns = fields.CharField(max_length=CHECKPOINT_NS_MAX, default="")
    checkpoint_id = fields.CharField(max_length=ID_MAX)
    task_id = fields.CharField(max_length=ID_MAX)
    idx = fields.IntField()
    channel = fields.CharField(max_length=NAME_MAX)
    type = fields.CharField(max_length=ENUM_MAX, null=True)
    blob = fields.BinaryField()
    task_path = fields.TextField(default="")
    created_at = fields.DatetimeField()

    class Meta:
        table = "langgraph_checkpoint_writes"
        unique_together = (("session_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx"),)

    def __str__(self) -> str:
        return f"{self.session_id}/{self.checkpoint_id} {self.task_id}#{self.idx} {self.channel}"
