"""The live side of the event log: the per-process hub that learns of new events
(PostgreSQL LISTEN/NOTIFY, or polling the log), waits that wake on a decision,
and the Server-Sent Events stream.

    hub.py       EventHub: reads new events, wakes waiters and streams
    listener.py  PostgreSQL LISTEN on a direct connection, reconnecting, self-tested
    waits.py     wait_for_decision
    stream.py    the SSE stream of GET /events
"""

from agent_runtime.events.hub import EventHub, running_hub
from agent_runtime.events.waits import wait_for_decision

__all__ = ["EventHub", "running_hub", "wait_for_decision"]
