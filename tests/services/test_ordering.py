"""Messages never come back misordered, even after churn with shared timestamps.

The legacy store ordered by timestamp and, on PostgreSQL, returned rows that
share a timestamp in varying order after updates and deletes; order here is an
explicit position.

Local only (not run through RemoteDatabaseService): the churn races transactions
on separate Tortoise connections.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

from tortoise import Tortoise

from agent_runtime.services import database as svc

SAME_INSTANT = datetime(2026, 1, 2, tzinfo=UTC)
SESSIONS = 16
ROUNDS = 30


async def test_no_misordered_loads_after_concurrent_churn(db, backend):
    connection = Tortoise.get_connection(backend.name)
    rng = random.Random(7)
    expected: dict[str, list[dict]] = {f"churn-{i}": [] for i in range(SESSIONS)}

    async def churn(session_id: str) -> None:
        for round_ in range(ROUNDS):
            current = expected[session_id]
            action = rng.random()
            if action < 0.6:
                current = current + [
                    {
                        "role": "user",
                        "content": f"{session_id}-{round_}-{k}",
                        "timestamp": SAME_INSTANT,
                    }
                    for k in range(rng.randint(1, 5))
                ]
            elif action < 0.8:
                current = current[: rng.randint(0, len(current))]
            else:
                rng.shuffle(current := list(current))
            async with connection._in_transaction() as tx:
                await svc.save_session(tx, session_id, current, SAME_INSTANT)
            expected[session_id] = current

    await asyncio.gather(*(churn(s) for s in expected))

    misordered = 0
    for _ in range(30):
        for session_id, saved in expected.items():
            loaded = (await svc.load_session(db, session_id))["messages"]
            misordered += [m["content"] for m in loaded] != [m["content"] for m in saved]
    assert misordered == 0
