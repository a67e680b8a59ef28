"""Tortoise models of agent-runtime; this package is also the Tortoise app module."""

from models.agent_context import AgentContext, AgentSwitch
from models.approval import DECISIONS, OUTCOMES, RUN_STATUSES, ApprovalStatus, PendingApproval
from models.event import Event, EventType
from models.message import Message, MessageRole
from models.reviewer import ConsoleKey, ConsoleSession, LoginFailure, Reviewer
from models.session import Session

__all__ = [
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
