"""Tortoise models of agent-runtime; this package is also the Tortoise app module."""

from models.agent_context import AgentContext, AgentSwitch
from models.api_key import ApiKey
from models.approval import PendingApproval
from models.checkpoint import Checkpoint, CheckpointWrite
from models.enums import (
    APPROVED_OR_LATER,
    DECISIONS,
    OUTCOMES,
    RUN_STATUSES,
    ApprovalStatus,
    EventType,
    MessageRole,
    Role,
)
from models.event import Event, PendingEvent
from models.message import Message
from models.reviewer import ConsoleKey, ConsoleSession, LoginFailure, Reviewer
from models.session import Session

__all__ = [
    "APPROVED_OR_LATER",
    "DECISIONS",
    "OUTCOMES",
    "RUN_STATUSES",
    "AgentContext",
    "AgentSwitch",
    "ApiKey",
    "ApprovalStatus",
    "Checkpoint",
    "CheckpointWrite",
    "ConsoleKey",
    "ConsoleSession",
    "Event",
    "EventType",
    "LoginFailure",
    "Message",
    "MessageRole",
    "PendingApproval",
    "PendingEvent",
    "Reviewer",
    "Role",
    "Session",
]
