"""Tortoise models of agent-runtime; this package is also the Tortoise app module."""

from models.agent_context import AgentContext, AgentSwitch
from models.approval import PendingApproval
from models.enums import (
    APPROVED_OR_LATER,
    DECISIONS,
    OUTCOMES,
    RUN_STATUSES,
    ApprovalStatus,
    EventType,
    MessageRole,
)
from models.event import Event
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
    "ApprovalStatus",
    "ConsoleKey",
    "ConsoleSession",
    "Event",
    "EventType",
    "LoginFailure",
    "Message",
    "MessageRole",
    "PendingApproval",
    "Reviewer",
    "Session",
]
