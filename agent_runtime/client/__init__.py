"""Use agent-runtime from another process: typed REST clients (async and sync) and
`RemoteDatabaseService`, the legacy service API over REST."""

from agent_runtime.client._async import AsyncAgentRuntimeClient
from agent_runtime.client._core import LoadedSession, Page, RetryPolicy, StreamEvent
from agent_runtime.client._sync import AgentRuntimeClient
from agent_runtime.client.remote import RemoteDatabaseService

__all__ = [
    "AgentRuntimeClient",
    "AsyncAgentRuntimeClient",
    "LoadedSession",
    "Page",
    "RemoteDatabaseService",
    "RetryPolicy",
    "StreamEvent",
]
