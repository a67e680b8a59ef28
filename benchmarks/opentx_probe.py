"""The open-transaction probe (issue 14/15), one process, the service API as an
embedding application uses it: while one task's transaction that saved session A stays
open for `--hold` seconds, other tasks save B, append to C, create an approval on D and
decide another call (on E); how long each waits.

Run by `benchmarks/workloads/writers.py` in a fresh interpreter, once per tree (this
checkout, or an older commit's tree with PYTHONPATH pointing at it), so it imports
only the standard library, Tortoise and `agent_runtime`: never `benchmarks`, which
may be the other tree's. It is run with `runpy.run_path` from the tree's directory,
not as `python path/to/this.py` (that would put `benchmarks/` first on sys.path).

Prints one JSON object on stdout: the baseline latency of each operation (no
transaction open; the four at once, median and max of `--samples`, untimed warm-up
first), then each
one's latency while A's transaction is open, whether it finished before that
transaction committed, and the checks (every write stored, A's save in the event log
once committed). Exit status 1 if a check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

_FILLER = "The quick brown fox jumps over the lazy dog while the agent reads the docs. " * 3


def _message(i: int) -> dict[str, Any]:
    """Message `i` of a synthetic conversation (a new dict on every call)."""
    if i % 2 == 0:
        return {"role": "user", "content": f"[{i}] {_FILLER}"}
    return {"role": "assistant", "content": f"[{i}] answer: {_FILLER[:120]}"}


def _conversation(n: int) -> list[dict[str, Any]]:
    return [_message(i) for i in range(n)]


async def _probe(url: str, hold: float, tag: str, samples: int) -> dict[str, Any]:
    from tortoise.transactions import in_transaction

    from agent_runtime import service_api as store

    await store.init_database(url)
    try:
        await store.init_db()
        db = store.get_connection()
        a, b, c, d, e = (f"{tag}-{x}" for x in "ABCDE")
        lengths = dict.fromkeys((a, b, c, d, e), 10)
        for session_id in lengths:
            await store.save_session(db, session_id, _conversation(10), datetime.now(UTC))
        created = 0
        decisions = [f"{tag}-E-call-{k}" for k in range(samples + 4)]  # 2 + samples + 1
        for call_id in decisions:
            await store.create_approval(db, e, call_id, "delete_file", {"path": f"/tmp/{call_id}"})
        decided = 0

        async def save_b() -> None:
            lengths[b] += 1
            # The whole list, a new list of new dicts, as a caller sends it.
            await store.save_session(db, b, _conversation(lengths[b]), datetime.now(UTC))

        async def append_c() -> None:
            await store.append_messages(db, c, [_message(lengths[c])], datetime.now(UTC))
            lengths[c] += 1

        async def create_on_d() -> None:
            nonlocal created
            call_id = f"{tag}-D-call-{created}"
            created += 1
            arguments = {"path": f"/tmp/{call_id}.csv"}
            await store.create_approval(db, d, call_id, "delete_file", arguments)

        async def decide_other() -> None:
            nonlocal decided
            call_id = decisions[decided]
            decided += 1
            await store.decide_approval(db, call_id, "approved", decided_by="probe")

        operations: dict[str, Callable[[], Awaitable[None]]] = {
            "save B": save_b,
            "append to C": append_c,
            "create approval on D": create_on_d,
            "decide a call on E": decide_other,
        }

        async def timed(operation: Callable[[], Awaitable[None]]) -> tuple[float, float]:
            began = time.perf_counter()
            await operation()
            ended = time.perf_counter()
            return ended - began, ended

        # Baseline, nothing open: the four at once, as in the probe. Untimed rounds
        # first, with a fifth connection busy as A's will be: the pool then holds the
        # connections the probe needs (opening one is not what it measures).
        async def busy() -> None:
            async with in_transaction(db.connection_name) as tx:
                await tx.execute_query("SELECT 1")
                await asyncio.sleep(0.05)

        for _ in range(2):
            await asyncio.gather(busy(), *(op() for op in operations.values()))
        baseline: dict[str, list[float]] = {name: [] for name in operations}
        for _ in range(samples):
            measured = await asyncio.gather(*(timed(op) for op in operations.values()))
            for name, (latency, _ended) in zip(operations, measured, strict=True):
                baseline[name].append(latency)

        # The probe: A's transaction stays open `hold` seconds after its save.
        opened = asyncio.Event()
        times: dict[str, float] = {}

        async def holder() -> None:
            async with in_transaction(db.connection_name) as tx:
                began = time.perf_counter()
                await store.save_session(tx, a, _conversation(11), datetime.now(UTC))
                times["a_saved"] = time.perf_counter() - began
                opened.set()
                await asyncio.sleep(hold)
                times["commit_started"] = time.perf_counter()
            times["committed"] = time.perf_counter()

        held = asyncio.create_task(holder())
        await opened.wait()
        started = time.perf_counter()
        measured = await asyncio.gather(*(timed(op) for op in operations.values()))
        await held
        during = {
            name: {
                "ms": latency * 1000,
                "finished_before_a_committed": ended < times["commit_started"],
            }
            for name, (latency, ended) in zip(operations, measured, strict=True)
        }

        # Checks: every write stored; A's save in the log once committed.
        problems: list[str] = []
        for session_id in (a, b, c):
            loaded = await store.load_session(db, session_id)
            got = len(loaded["messages"]) if loaded else None
            expected = 11 if session_id == a else lengths[session_id]
            if got != expected:
                problems.append(f"{session_id}: {got} messages stored, {expected} expected")
        for k in range(created):
            approval = await store.get_approval(db, f"{tag}-D-call-{k}")
            if approval is None or approval["status"] != "pending":
                problems.append(f"approval {k} on D: {approval and approval['status']}")
        for call_id in decisions[:decided]:
            approval = await store.get_approval(db, call_id)
            if approval is None or approval["status"] != "approved":
                problems.append(f"{call_id}: {approval and approval['status']} after its decision")
        events = await store.read_events(db, session_id=a, limit=1000)
        if len([ev for ev in events if ev["type"] == "session.saved"]) != 2:
            problems.append(f"{a}: {len(events)} events in the log, 2 session.saved expected")
    finally:
        await store.close_db()
    return {
        "hold_s": hold,
        "baseline": {
            name: {
                "median_ms": statistics.median(s) * 1000,
                "max_ms": max(s) * 1000,
                "n": len(s),
            }
            for name, s in baseline.items()
        },
        "a_save_ms": times["a_saved"] * 1000,
        "a_open_ms": (times["commit_started"] - started) * 1000,
        "during": during,
        "problems": problems,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--hold", type=float, default=3.0)
    parser.add_argument("--tag", default="probe")
    parser.add_argument("--samples", type=int, default=10)
    args = parser.parse_args()
    result = asyncio.run(_probe(args.url, args.hold, args.tag, args.samples))
    print(json.dumps(result))
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
