"""agent-runtime persistence: sessions, agent contexts and tool approvals."""

__version__ = "0.1.0"
