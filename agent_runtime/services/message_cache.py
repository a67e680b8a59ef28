"""A per-process copy of recently saved message lists, so a save can find what
changed without reading the whole conversation back.

Each entry is tagged with the session's `messages_token`, a random number that
every message write replaces in the same transaction. A save trusts the entry
only if the token it reads (under the row lock) is the entry's: a write by
another process, or a transaction that rolled back after the entry was stored,
leaves a token that cannot match, and the save reads the stored messages instead.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from agent_runtime.config import Settings
from agent_runtime.observability.metrics import MESSAGE_CACHE_HITS, MESSAGE_CACHE_MISSES

__all__ = ["CachedMessages", "MessageCache", "message_cache", "new_token"]


def new_token() -> int:
    """A fresh random `messages_token`, identifying one stored message list."""
    return secrets.randbits(62) + 1  # never the 0 of a session without messages yet


@dataclass(frozen=True)
class CachedMessages:
    token: int
    messages: list[dict[str, Any]]  # projections of the saved messages, our own copies
    count: int  # len(messages) when stored: a save may extend the list before re-putting it


class MessageCache:
    """LRU over sessions, bounded by the total number of messages held."""

    def __init__(self, max_messages: int) -> None:
        self.max_messages = max_messages
        self._entries: OrderedDict[str, CachedMessages] = OrderedDict()
        self._size = 0

    def configure(self, settings: Settings) -> None:
        """Size the cache as `settings` say (the app and `init_database` both call this)."""
        self.max_messages = settings.message_cache_size

    def get(self, session_id: str) -> CachedMessages | None:
        entry = self._entries.get(session_id)
        (MESSAGE_CACHE_MISSES if entry is None else MESSAGE_CACHE_HITS).inc()
        if entry is not None:
            self._entries.move_to_end(session_id)
        return entry

    def put(self, session_id: str, token: int, messages: list[dict[str, Any]]) -> None:
        self.discard(session_id)
        if len(messages) > self.max_messages:
            return
        self._entries[session_id] = CachedMessages(token, messages, len(messages))
        self._size += len(messages)
        while self._size > self.max_messages:
            _, evicted = self._entries.popitem(last=False)
            self._size -= evicted.count

    def discard(self, session_id: str) -> None:
        entry = self._entries.pop(session_id, None)
        if entry is not None:
            self._size -= entry.count

    def clear(self) -> None:
        self._entries.clear()
        self._size = 0

    def __len__(self) -> int:
        return self._size


# The setting's default until the app or `init_database` configures it.
message_cache = MessageCache(Settings.model_fields["message_cache_size"].default)
