"""The LangGraph checkpointer (issue 15): `AgentRuntimeSaver` against LangGraph's own
`AsyncSqliteSaver` / `AsyncPostgresSaver`, on the same database server.

A real compiled `StateGraph`: one node, `agent`, looping through a conditional edge
`STEPS` (40) times; each step appends one message-like dict (`benchmarks.data.message`,
a new dict each step, 100-450 bytes as JSON) to an `operator.add` channel, so the
state, and every checkpoint of it, grows each step. Each run is one `ainvoke` of a new
input on a fresh thread id (`durability` left at LangGraph's default); the saver
writes the input checkpoint and one per step, with the step's writes.

Per backend, each saver on its own fresh database of the same server:

* ours: `service_api.init_database(url)` + `init_db()` (this project's migrations),
  then `AgentRuntimeSaver()`, as the integration's documentation says;
* theirs, SQLite: `AsyncSqliteSaver` on an `aiosqlite` connection to its own file in
  the same directory, with this project's pragmas (`agent_runtime.db.urls.SQLITE_PRAGMAS`:
  WAL, synchronous=NORMAL, ...; their `setup()` sets WAL only and would leave
  synchronous=FULL), then `setup()`;
* theirs, PostgreSQL: `AsyncPostgresSaver.from_conn_string(url)` (one psycopg
  connection, autocommit) + `setup()`.

Each side has one saver and one compiled graph for the whole workload (LangGraph's
savers run `setup()` per object); every run builds its input and messages anew. After
`warmup` untimed runs per side (the first records the saver calls its graph makes),
`langgraph_samples` runs per side, alternating which side goes first per sample.
Reported per side: the median and p90 of the run time / STEPS (per step), the ratio
ours/theirs (the issue's goal: <= 1.0x) and the median of each sample's pair ratio.
To explain it, without LangGraph's work and its overlapping background saves: the
calls recorded from one of our runs replayed one at a time on each saver
(`langgraph_samples // 4` times, alternating), each call timed (`aput`, `aput_writes`,
`aget_tuple`; calls per run from the recording); and, outside the run's clock,
`aget_tuple` of each run's latest checkpoint (the whole state). Checked (SANITY): each
run's output and the state read back through the saver hold every message, in order.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import importlib
import operator
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, TypedDict

from benchmarks.backends import Databases
from benchmarks.config import Config
from benchmarks.data import Message, message
from benchmarks.workloads.http import Checks
from harness.latency import latency_ms, median, percentile

__all__ = ["OPS", "SIDES", "STEPS", "run"]

STEPS = 40  # graph steps per run (the node runs STEPS times)
SIDES = ("ours", "theirs")
OPS = ("aput", "aput_writes", "aget_tuple")  # saver calls made by the graph, recorded


class State(TypedDict):
    messages: Annotated[list[Message], operator.add]
    step: int


def _graph(checkpointer: Any) -> Any:
    from langgraph.graph import END, START, StateGraph

    def agent(state: State) -> dict[str, Any]:
        step = state["step"]
        return {"messages": [message(step + 1)], "step": step + 1}

    def route(state: State) -> str:
        return "agent" if state["step"] < STEPS else END

    builder = StateGraph(State)
    builder.add_node("agent", agent)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, ["agent", END])
    return builder.compile(checkpointer=checkpointer)


def _recording(saver: Any, calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]]) -> None:
    """Record the saver calls the graph makes (instance attributes over its methods;
    removed with `_plain`), their arguments copied for `_replay`."""
    for name in OPS:
        method: Callable[..., Awaitable[Any]] = getattr(saver, name)

        async def recorded(*args: Any, _method: Any = method, _name: str = name, **kw: Any) -> Any:
            calls.append((_name, copy.deepcopy(args), copy.deepcopy(kw)))
            return await _method(*args, **kw)

        setattr(saver, name, recorded)


def _plain(saver: Any) -> None:
    for name in OPS:
        with contextlib.suppress(AttributeError):
            delattr(saver, name)


def _on_thread(value: Any, thread_id: str) -> Any:
    """A recorded argument with its thread id replaced (configs are dicts)."""
    if isinstance(value, dict) and isinstance(value.get("configurable"), dict):
        return {**value, "configurable": {**value["configurable"], "thread_id": thread_id}}
    return value


def _sqlite_path(url: str) -> str:
    return url.split(":///", 1)[1]


@contextlib.asynccontextmanager
async def _ours(url: str) -> AsyncIterator[Any]:
    from agent_runtime import service_api
    from agent_runtime.integrations.langgraph import AgentRuntimeSaver

    await service_api.init_database(url)
    try:
        await service_api.init_db()  # this project's migrations, on the fresh database
        yield AgentRuntimeSaver()
    finally:
        await service_api.close_db()


@contextlib.asynccontextmanager
async def _theirs(backend: str, url: str) -> AsyncIterator[Any]:
    if backend == "sqlite":
        import aiosqlite
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        from agent_runtime.db.urls import SQLITE_PRAGMAS

        async with aiosqlite.connect(_sqlite_path(url)) as conn:
            for pragma, value in SQLITE_PRAGMAS.items():
                await conn.execute(f"PRAGMA {pragma}={value}")
            saver = AsyncSqliteSaver(conn)
            await saver.setup()
            yield saver
    else:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        async with AsyncPostgresSaver.from_conn_string(url) as pg_saver:
            await pg_saver.setup()
            yield pg_saver


def _config(thread_id: str) -> dict[str, Any]:
    # recursion_limit: the graph takes STEPS + 1 supersteps (LangGraph's default is 25).
    return {"configurable": {"thread_id": thread_id}, "recursion_limit": STEPS + 10}


def _expected() -> list[Message]:
    return [message(i) for i in range(STEPS + 1)]


class _Side:
    """One saver: its compiled graph, its runs, its replays."""

    def __init__(self, name: str, saver: Any, prefix: str, checks: Checks) -> None:
        self.name, self.saver, self.prefix, self.checks = name, saver, prefix, checks
        self.graph = _graph(saver)
        self.runs: list[float] = []
        self.reads: list[float] = []
        self.ops: dict[str, list[float]] = defaultdict(list)  # per call, replayed
        self.replays: list[float] = []  # all the calls of a run, replayed in sequence
        self.calls_per_run: dict[str, int] = {}
        self.count = 0
        self.expected = _expected()

    def _thread(self, kind: str) -> str:
        self.count += 1
        return f"{self.prefix}-lg-{self.name}-{kind}{self.count}"

    async def run(self, *, timed: bool, record: list[Any] | None = None) -> None:
        """One `ainvoke` on a new thread (recording its saver calls into `record`),
        then its latest checkpoint read back."""
        thread_id = self._thread("run")
        config = _config(thread_id)
        inputs = {"messages": [message(0)], "step": 0}  # new dicts each run
        if record is not None:
            _recording(self.saver, record)
        try:
            began = time.perf_counter()
            output = await self.graph.ainvoke(inputs, config)
            elapsed = time.perf_counter() - began
        finally:
            _plain(self.saver)
        if record is not None:
            self.calls_per_run = {op: sum(1 for c in record if c[0] == op) for op in OPS}
        if output.get("messages") != self.expected:
            got = len(output.get("messages") or [])
            self.checks.fail(f"{self.name}: {thread_id} answered {got} messages, not {STEPS + 1}")
        # The thread's latest checkpoint, the whole state (outside the run's clock).
        began = time.perf_counter()
        stored = await self.saver.aget_tuple({"configurable": {"thread_id": thread_id}})
        read = time.perf_counter() - began
        values = stored.checkpoint["channel_values"] if stored is not None else {}
        if values.get("messages") != self.expected or values.get("step") != STEPS:
            self.checks.fail(f"{self.name}: {thread_id} read back without its {STEPS} steps")
        if timed:
            self.runs.append(elapsed)
            self.reads.append(read)

    async def replay(self, calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]]) -> None:
        """A run's saver calls again, one at a time on a new thread, each timed:
        what the saver costs without LangGraph's work and its overlapping tasks."""
        thread_id = self._thread("replay")
        total = 0.0
        for name, args, kw in calls:
            method = getattr(self.saver, name)
            moved = [_on_thread(a, thread_id) for a in args]
            began = time.perf_counter()
            await method(*moved, **kw)
            elapsed = time.perf_counter() - began
            self.ops[name].append(elapsed)
            total += elapsed
        self.replays.append(total)

    def summary(self) -> dict[str, Any]:
        return {
            "runs": len(self.runs),
            "per_step": latency_ms([r / STEPS for r in self.runs], "median", "p90", "min", "max"),
            "run": latency_ms(self.runs, "median", "p90"),
            "calls_per_run": self.calls_per_run,
            "replays": len(self.replays),
            "replay_per_step": latency_ms([r / STEPS for r in self.replays], "median", "p90"),
            "ops": {name: latency_ms(self.ops[name], "median", "p90") for name in OPS},
            "read_latest": latency_ms(self.reads, "median", "p90"),
        }


def _alternate(sides: list[_Side], sample: int) -> list[_Side]:
    """ours, theirs; theirs, ours; ...: neither always goes first."""
    return sides if sample % 2 == 0 else sides[::-1]


async def run(
    dbs: Databases, cfg: Config, prefix: str, log: Callable[[str], None]
) -> dict[str, Any]:
    missing = _missing(dbs.backend)
    if missing:
        log(f"langgraph: skipped: {missing}")
        return {"skipped": missing, "problems": []}
    checks = Checks()
    ours_url, theirs_url = dbs.urls["langgraph_ours"], dbs.urls["langgraph_theirs"]
    async with _ours(ours_url) as ours_saver, _theirs(dbs.backend, theirs_url) as theirs_saver:
        sides = [
            _Side("ours", ours_saver, prefix, checks),
            _Side("theirs", theirs_saver, prefix, checks),
        ]
        # Warm-up; the first run of each side records the calls its graph makes.
        recorded: dict[str, list[Any]] = {side.name: [] for side in sides}
        for i in range(max(1, cfg.warmup)):
            for side in sides:
                await side.run(timed=False, record=recorded[side.name] if i == 0 else None)
        gc.collect()
        for sample in range(cfg.langgraph_samples):
            for side in _alternate(sides, sample):
                await side.run(timed=True)
        # The same calls (ours' recording) replayed on each saver, alternating.
        for sample in range(max(1, cfg.langgraph_samples // 4)):
            for side in _alternate(sides, sample):
                await side.replay(recorded["ours"])
    ours, theirs = (side.summary() for side in sides)
    paired = [a / b for a, b in zip(sides[0].runs, sides[1].runs, strict=True)]
    out: dict[str, Any] = {
        "steps": STEPS,
        "samples": cfg.langgraph_samples,
        "savers": {
            "ours": "AgentRuntimeSaver (in-process, service_api.init_database)",
            "theirs": "AsyncSqliteSaver (aiosqlite, this project's pragmas)"
            if dbs.backend == "sqlite"
            else "AsyncPostgresSaver.from_conn_string (psycopg, autocommit) + setup()",
        },
        "ours": ours,
        "theirs": theirs,
        # ours/theirs of each sample's two runs (back to back): the machine's drift cancels
        "paired_ratio": {"median": median(paired), "p90": percentile(paired, 90)} if paired else {},
        "problems": checks.problems,
    }
    per_step = f"ours {_ms(ours['per_step'])}, theirs {_ms(theirs['per_step'])}"
    ratio = _ratio(ours["per_step"]["median_ms"], theirs["per_step"]["median_ms"])
    log(
        f"langgraph {STEPS}-step graph, per step median | p90 ms: {per_step} -> {ratio:.2f}x"
        f" (median of pairs {median(paired) if paired else float('nan'):.2f}x)"
    )
    return out


def _missing(backend: str) -> str | None:
    """Why the workload cannot run (a package of the `dev` extra not installed)."""
    needed = ["langgraph.graph", "agent_runtime.integrations.langgraph"]
    needed.append(
        "langgraph.checkpoint.sqlite.aio"
        if backend == "sqlite"
        else "langgraph.checkpoint.postgres.aio"
    )
    for module in needed:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            return f"cannot import {module} ({exc}): pip install -e '.[dev]'"
    return None


def _ms(figures: dict[str, Any]) -> str:
    return f"{figures['median_ms'] or 0:.2f} | {figures['p90_ms'] or 0:.2f}"


def _ratio(a: float | None, b: float | None) -> float:
    return a / b if a is not None and b else float("nan")
