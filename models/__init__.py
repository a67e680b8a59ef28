"""Tortoise models of agent-runtime; this package is also the Tortoise app module."""

from models.agent_context import AgentContext, AgentSwitch
from models.approval import DECISIONS, ApprovalStatus, PendingApproval
from models.message import Message, MessageRole
from models.session import Session

__all__ = [
    "DECISIONS",
    "AgentContext",
    "AgentSwitch",
    "ApprovalStatus",
    "Message",
    "MessageRole",
    "PendingApproval",
    "Session",
]
