"""A synthetic agent conversation, deterministic so that every implementation stores
the same bytes: user asks, assistant calls a tool, the tool answers, assistant replies."""

from __future__ import annotations

import json
from typing import Any

Message = dict[str, Any]

_FILLER = "The quick brown fox jumps over the lazy dog while the agent reads the docs. " * 5


def message(i: int) -> Message:
    """Message `i` (0-based) of the conversation, in the legacy dict shape that
    `load_session` returns (content None only for an assistant tool call)."""
    turn, step = divmod(i, 4)
    if step == 0:
        return {"role": "user", "content": f"[{i}] Question {turn}: {_FILLER[:200]}"}
    if step == 1:
        arguments = json.dumps({"query": f"topic {turn}", "limit": 5})
        function = {"name": "search_docs", "arguments": arguments}
        call = {"id": f"call_{turn}", "type": "function", "function": function}
        return {"role": "assistant", "content": None, "tool_calls": [call]}
    if step == 2:
        return {
            "role": "tool",
            "content": f"[{i}] {_FILLER}",
            "name": "search_docs",
            "tool_call_id": f"call_{turn}",
        }
    return {"role": "assistant", "content": f"[{i}] Answer {turn}: {_FILLER[:300]}"}


def conversation(n: int) -> list[Message]:
    return [message(i) for i in range(n)]


def appended(messages: list[Message]) -> list[Message]:
    """A new list with the next message: callers send a fresh list on every save,
    as an HTTP client would, so no implementation can rely on list identity."""
    return [*messages, message(len(messages))]
