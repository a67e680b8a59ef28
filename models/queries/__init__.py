"""Hand-written SQL, one module per table, next to the models.

The services' hot paths (save and load on every agent turn, approvals on every
tool call) and the legacy import's bulk copy bypass the ORM; everything else goes
through the Tortoise models. Why each statement is hand-written is in
docs/performance.md ("Hand-written SQL") and in a comment above it.

Every statement is a module constant with `?` placeholders (the services convert
them per dialect), and is registered in `RAW_SQL` with the columns it is built
from, so tests/models/test_raw_sql.py can check it against the model: each
column exists, an INSERT names every column (bar a generated primary key, or
the columns it declares left out, with the reason), and no statement escapes
the registry.

    sessions.py        sessions
    messages.py        messages
    agent_contexts.py  agent_contexts, agent_switches
    approvals.py       pending_approvals
    events.py          events, pending_events
    checkpoints.py     langgraph_checkpoints, langgraph_checkpoint_writes
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tortoise.models import Model

from models.agent_context import AgentContext, AgentSwitch
from models.approval import PendingApproval
from models.checkpoint import Checkpoint
from models.event import Event, PendingEvent
from models.message import Message
from models.queries import agent_contexts, approvals, checkpoints, events, messages, sessions
from models.session import Session

__all__ = [
    "RAW_SQL",
    "RawStatement",
    "agent_contexts",
    "approvals",
    "checkpoints",
    "events",
    "messages",
    "sessions",
]


@dataclass(frozen=True)
class RawStatement:
    """One hand-written statement and what it touches."""

    name: str  # "<module>.<CONSTANT>" under models.queries
    model: type[Model]
    kind: Literal["insert", "select", "update", "delete"]
    columns: tuple[str, ...]  # inserted, selected or set
    text: str
    keys: tuple[str, ...] = ()  # filtered, ordered or conflicting on
    left_out: frozenset[str] = frozenset()  # of an INSERT: model columns not written
    left_out_why: str = ""
    dialects: tuple[str, ...] = ("sqlite", "postgres")  # where it is used


RAW_SQL: tuple[RawStatement, ...] = (
    # sessions
    RawStatement(
        "sessions.CREATE_EMPTY",
        Session,
        "insert",
        sessions.INSERT_COLUMNS,
        sessions.CREATE_EMPTY,
        keys=("id",),
    ),
    RawStatement(
        "sessions.IMPORT", Session, "insert", sessions.INSERT_COLUMNS, sessions.IMPORT, ("id",)
    ),
    RawStatement("sessions.LOCK", Session, "select", sessions.LOCK_COLUMNS, sessions.LOCK, ("id",)),
    RawStatement(
        "sessions.LOCK_FOR_UPDATE",
        Session,
        "select",
        sessions.LOCK_COLUMNS,
        sessions.LOCK_FOR_UPDATE,
        ("id",),
        dialects=("postgres",),
    ),
    RawStatement(
        "sessions.TOUCH", Session, "update", sessions.TOUCH_COLUMNS, sessions.TOUCH, ("id",)
    ),
    RawStatement(
        "sessions.TOUCH_IF_CURRENT",
        Session,
        "update",
        sessions.TOUCH_COLUMNS,
        sessions.TOUCH_IF_CURRENT,
        ("id", "messages_token"),
    ),
    RawStatement(
        "sessions.LOAD",
        Session,
        "select",
        sessions.SELECT_VISIBLE_COLUMNS,
        sessions.LOAD,
        ("id", "deleted_at"),
    ),
    RawStatement(
        "sessions.SELECT_EXISTING", Session, "select", ("id",), sessions.SELECT_EXISTING, ("id",)
    ),
    # messages
    RawStatement("messages.INSERT", Message, "insert", messages.INSERT_COLUMNS, messages.INSERT),
    RawStatement(
        "messages.SELECT_STORED",
        Message,
        "select",
        messages.STORED_COLUMNS,
        messages.SELECT_STORED,
        ("session_id", "position"),
    ),
    RawStatement(
        "messages.NEXT_POSITION",
        Message,
        "select",
        ("position",),
        messages.NEXT_POSITION,
        ("session_id",),
    ),
    RawStatement(
        "messages.DELETE_FROM",
        Message,
        "delete",
        (),
        messages.DELETE_FROM,
        ("session_id", "position"),
    ),
    # agent_contexts, agent_switches
    RawStatement(
        "agent_contexts.INSERT_CONTEXT",
        AgentContext,
        "insert",
        agent_contexts.CONTEXT_INSERT_COLUMNS,
        agent_contexts.INSERT_CONTEXT,
    ),
    RawStatement(
        "agent_contexts.INSERT_SWITCH",
        AgentSwitch,
        "insert",
        agent_contexts.SWITCH_INSERT_COLUMNS,
        agent_contexts.INSERT_SWITCH,
    ),
    # pending_approvals
    RawStatement(
        "approvals.INSERT",
        PendingApproval,
        "insert",
        approvals.INSERT_COLUMNS,
        approvals.INSERT,
        keys=("call_id",),
        left_out=approvals.INSERT_LEFT_OUT,
        left_out_why="the decision's columns (decided_*, message, edited_arguments) and the "
        "run's (claim_*, claimed_*, result, finished_at): a new approval has neither, and the "
        "legacy store never recorded them (they stay NULL)",
    ),
    RawStatement(
        "approvals.CREATE",
        PendingApproval,
        "insert",
        approvals.INSERT_COLUMNS,
        approvals.CREATE,
        keys=("call_id", "id"),
        left_out=approvals.INSERT_LEFT_OUT,
        left_out_why="as approvals.INSERT",
    ),
    RawStatement(
        "approvals.SELECT_PENDING",
        PendingApproval,
        "select",
        approvals.PENDING_COLUMNS,
        approvals.SELECT_PENDING,
        ("session_id", "status", "created_at", "id"),
    ),
    RawStatement(
        "approvals.SELECT_EXISTING",
        PendingApproval,
        "select",
        ("call_id",),
        approvals.SELECT_EXISTING,
        ("call_id",),
    ),
    # events
    RawStatement(
        "events.INSERT", Event, "insert", events.INSERT_COLUMNS, events.INSERT, dialects=("sqlite",)
    ),
    RawStatement(
        "events.INSERT_PENDING",
        PendingEvent,
        "insert",
        events.INSERT_COLUMNS,
        events.INSERT_PENDING,
        dialects=("postgres",),
    ),
    # checkpoints (the WITH statements, PUT_TOUCHING, GET_LATEST and GET_ONE, and the
    # statements built per row count, INSERT_WRITES and SELECT_WRITES, run in every
    # test of tests/integrations/test_langgraph_*.py)
    RawStatement(
        "checkpoints.TOUCH_VISIBLE",
        Session,
        "update",
        ("last_activity", "version"),
        checkpoints.TOUCH_VISIBLE,
        ("id", "deleted_at"),
    ),
    RawStatement(
        "checkpoints.INSERT_CHECKPOINT",
        Checkpoint,
        "insert",
        checkpoints.CHECKPOINT_COLUMNS,
        checkpoints.INSERT_CHECKPOINT,
        ("session_id", "checkpoint_ns", "checkpoint_id"),
    ),
    RawStatement(
        "checkpoints.INSERT_CHECKPOINT_OF_VISIBLE",
        Checkpoint,
        "insert",
        checkpoints.CHECKPOINT_COLUMNS,
        checkpoints.INSERT_CHECKPOINT_OF_VISIBLE,
        ("session_id", "checkpoint_ns", "checkpoint_id"),
        dialects=("sqlite",),
    ),
)
