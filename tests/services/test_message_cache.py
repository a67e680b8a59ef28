"""The per-process message cache stays within its bound."""

from __future__ import annotations

from agent_runtime.services.message_cache import MessageCache


def test_least_recently_used_sessions_are_evicted_beyond_the_bound():
    cache = MessageCache(max_messages=10)
    cache.put("a", 1, [{}] * 4)
    cache.put("b", 1, [{}] * 4)
    cache.get("a")
    cache.put("c", 1, [{}] * 4)

    assert cache.get("b") is None
    assert cache.get("a") is not None and cache.get("c") is not None
    assert len(cache) == 8


def test_a_list_extended_in_place_is_accounted_for():
    cache = MessageCache(max_messages=100)
    messages = [{}] * 3
    cache.put("a", 1, messages)
    for token in range(2, 50):
        messages = cache.get("a").messages
        messages.append({})
        cache.put("a", token, messages)

    assert len(cache) == 51 == len(cache.get("a").messages)


def test_a_list_larger_than_the_bound_is_not_cached():
    cache = MessageCache(max_messages=5)
    cache.put("a", 1, [{}] * 6)

    assert cache.get("a") is None
    assert len(cache) == 0
