"""LangGraph: a checkpointer (`BaseCheckpointSaver`) stored in agent-runtime.

Install with the extra: ``pip install 'agent-runtime[langgraph]'``.

```python
from agent_runtime.integrations.langgraph import AgentRuntimeSaver
from agent_runtime.service_api import init_database

await init_database("sqlite:///data/agent_runtime.db")
graph = builder.compile(checkpointer=AgentRuntimeSaver())
await graph.ainvoke(inputs, {"configurable": {"thread_id": "conversation-1"}})
```

Or over REST, from any process, with an agent's key (no `init_database`):

```python
from agent_runtime.client import AsyncAgentRuntimeClient

client = AsyncAgentRuntimeClient("http://127.0.0.1:8000", api_key="...")
graph = builder.compile(checkpointer=AgentRuntimeSaver(client=client))
```

A LangGraph thread is an agent-runtime session: `thread_id` is the session id.
The thread's first checkpoint creates the session (so it shows in the console's
session browser), each later one counts as activity on it, and deleting the
session for good (`delete_session(..., soft=False)`, retention's purge) deletes its
checkpoints. `adelete_thread` deletes the checkpoints only: the session, its
messages and approvals stay.

Storage (`agent_runtime.services.checkpoints`, tables `langgraph_checkpoints` and
`langgraph_checkpoint_writes`): each checkpoint whole, as the saver's serializer
writes it (`serde.dumps_typed`: a type name and bytes), its metadata as JSON (what
`alist(filter=...)` matches, key by key), and each pending write of a task. Over
REST (`agent_runtime/api/routes/checkpoints.py`) the same service stores them, the
bytes travelling as base64; both ways read back through one conversion (`_tuple`).

The async methods are the interface: run graphs with `ainvoke` / `astream`. The
sync ones (`invoke`, `get_state`, ...) work from another thread than the event
loop the saver runs on (created on, or last used on): they run there and wait, as
LangGraph's own async savers do; on that loop's thread they raise
`asyncio.InvalidStateError`.

Human approval of a node's tool calls, through agent-runtime's approvals:

```python
async def pay(state):
    decision = ask_approval("send_payment", {"amount": 120})  # pauses the graph
    if not decision.approved:
        return {"log": [f"refused: {decision.message}"]}
    receipt = await run_once(decision, send_payment)  # runs once, with the edit
    return {"log": [receipt]}

final = await run_with_approvals(graph, inputs, config)  # client=... for REST
```
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import inspect
import json
import random
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)

from agent_runtime import service_api as store
from agent_runtime.client.remote import RemoteDatabaseService
from agent_runtime.errors import ConflictError
from agent_runtime.schemas.checkpoints import CheckpointRead
from agent_runtime.services import checkpoints as checkpoint_service
from agent_runtime.services.checkpoints import StoredCheckpoint, StoredWrite
from models.enums import APPROVED_OR_LATER, ApprovalStatus

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.serde.base import SerializerProtocol
    from langgraph.types import Interrupt

    from agent_runtime.client import AsyncAgentRuntimeClient

__all__ = [
    "APPROVAL_KEY",
    "PRUNE_STRATEGIES",
    "AgentRuntimeSaver",
    "ApprovalDecision",
    "ApprovalRejectedError",
    "ToolFailedError",
    "approval_call_id",
    "ask_approval",
    "run_once",
    "run_with_approvals",
]

# `prune` strategies: how many checkpoints of each namespace of a thread stay.
PRUNE_STRATEGIES = {"keep_latest": 1, "delete": 0}

T = TypeVar("T")


class _LocalCheckpoints:
    """Checkpoints in this process: the service functions on the store's connection."""

    def __init__(self) -> None:
        self.db = store.get_connection()

    async def get(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
    ) -> StoredCheckpoint | None:
        return await checkpoint_service.get_checkpoint(
            self.db, thread_id, checkpoint_ns, checkpoint_id
        )

    def iterate(self, **query: Any) -> AsyncIterator[StoredCheckpoint]:
        return checkpoint_service.iter_checkpoints(self.db, **query)

    async def put(self, thread_id: str, checkpoint_ns: str, checkpoint_id: str, **row: Any) -> None:
        await checkpoint_service.put_checkpoint(
            self.db, thread_id, checkpoint_ns, checkpoint_id, **row
        )

    async def put_writes(
        self,
        thread_id: str,
        checkpoint_ns: str,
        checkpoint_id: str,
        writes: list[tuple[int, StoredWrite]],
        replace: bool,
    ) -> None:
        await checkpoint_service.put_writes(
            self.db, thread_id, checkpoint_ns, checkpoint_id, writes, replace=replace
        )

    async def delete_thread(self, thread_id: str) -> None:
        await checkpoint_service.delete_thread(self.db, thread_id)

    async def delete_for_runs(self, run_ids: list[str]) -> None:
        await checkpoint_service.delete_for_runs(self.db, run_ids)

    async def copy_thread(self, source: str, target: str) -> None:
        await checkpoint_service.copy_thread(self.db, source, target)

    async def keep_latest(self, thread_ids: list[str], keep: int) -> None:
        await checkpoint_service.keep_latest_checkpoints(self.db, thread_ids, keep)


def _stored(read: CheckpointRead) -> StoredCheckpoint:
    """A checkpoint read over REST, as the service returns it in-process."""
    return StoredCheckpoint(
        thread_id=read.thread_id,
        checkpoint_ns=read.checkpoint_ns,
        checkpoint_id=read.checkpoint_id,
        parent_checkpoint_id=read.parent_checkpoint_id,
        type=read.type,
        checkpoint=read.checkpoint,
        metadata=read.metadata,
        writes=[
            StoredWrite(w.task_id, w.channel, w.type, w.blob, w.task_path, w.idx)
            for w in read.writes
        ],
    )


class _RemoteCheckpoints:
    """Checkpoints over REST: the same operations through the client, the same
    answers (`StoredCheckpoint`) as in-process."""

    def __init__(self, client: AsyncAgentRuntimeClient) -> None:
        self.client = client

    async def get(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
    ) -> StoredCheckpoint | None:
        read = await self.client.get_checkpoint(
            thread_id, checkpoint_ns=checkpoint_ns, checkpoint_id=checkpoint_id
        )
        return None if read is None else _stored(read)

    async def iterate(self, **query: Any) -> AsyncIterator[StoredCheckpoint]:
        async for read in self.client.iter_checkpoints(**query):
            yield _stored(read)

    async def put(self, thread_id: str, checkpoint_ns: str, checkpoint_id: str, **row: Any) -> None:
        await self.client.put_checkpoint(
            thread_id, checkpoint_id, checkpoint_ns=checkpoint_ns, **row
        )

    async def put_writes(
        self,
        thread_id: str,
        checkpoint_ns: str,
        checkpoint_id: str,
        writes: list[tuple[int, StoredWrite]],
        replace: bool,
    ) -> None:
        await self.client.put_checkpoint_writes(
            thread_id,
            checkpoint_id,
            [{**asdict(write), "idx": idx} for idx, write in writes],
            checkpoint_ns=checkpoint_ns,
            replace=replace,
        )

    async def delete_thread(self, thread_id: str) -> None:
        await self.client.delete_thread_checkpoints(thread_id)

    async def delete_for_runs(self, run_ids: list[str]) -> None:
        await self.client.delete_checkpoints_for_runs(run_ids)

    async def copy_thread(self, source: str, target: str) -> None:
        await self.client.copy_thread_checkpoints(source, target)

    async def keep_latest(self, thread_ids: list[str], keep: int) -> None:
        await self.client.prune_checkpoints(thread_ids, keep=keep)


class AgentRuntimeSaver(BaseCheckpointSaver[str]):
    """LangGraph's checkpointer on agent-runtime's store: in this process (call
    `agent_runtime.service_api.init_database` first, as for `AgentRuntimeSession`),
    or over REST with `client=AsyncAgentRuntimeClient(url, api_key=...)` (an agent's
    key may do everything the saver does).

    Implements every capability of LangGraph's checkpointer conformance suite:
    put, put_writes, get_tuple, list, delete_thread, delete_for_runs, copy_thread
    and prune (`keep_latest`, `delete`), both ways.
    """

    def __init__(
        self,
        *,
        serde: SerializerProtocol | None = None,
        client: AsyncAgentRuntimeClient | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self.client = client
        try:
            self.loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = None

    def _store(self) -> _LocalCheckpoints | _RemoteCheckpoints:
        """Where the checkpoints are; remembers the loop the saver runs on (where the
        sync methods run their async twins)."""
        self.loop = asyncio.get_running_loop()
        return _LocalCheckpoints() if self.client is None else _RemoteCheckpoints(self.client)

    # -- conversions --------------------------------------------------------

    def _tuple(self, stored: StoredCheckpoint) -> CheckpointTuple:
        def configurable(checkpoint_id: str) -> RunnableConfig:
            return {
                "configurable": {
                    "thread_id": stored.thread_id,
                    "checkpoint_ns": stored.checkpoint_ns,
                    "checkpoint_id": checkpoint_id,
                }
            }

        return CheckpointTuple(
            config=configurable(stored.checkpoint_id),
            checkpoint=self.serde.loads_typed((stored.type, stored.checkpoint)),
            metadata=stored.metadata,  # type: ignore[arg-type]
            parent_config=(
                configurable(stored.parent_checkpoint_id)
                if stored.parent_checkpoint_id is not None
                else None
            ),
            pending_writes=[
                (w.task_id, w.channel, self.serde.loads_typed((w.type or "null", w.blob)))
                for w in stored.writes
            ],
        )

    # -- the async interface ------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint `config` names (`checkpoint_id`), or the thread's latest in
        its namespace; None if there is none."""
        configurable = config["configurable"]
        stored = await self._store().get(
            str(configurable["thread_id"]),
            configurable.get("checkpoint_ns", ""),
            get_checkpoint_id(config),
        )
        return None if stored is None else self._tuple(stored)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Checkpoints newest first: of the thread (and namespace, and checkpoint)
        `config` names, or all with `config` None; with `filter`, those whose
        metadata has each of its keys with that value; with `before`, those older
        than its checkpoint; at most `limit`."""
        configurable = (config or {}).get("configurable") or {}
        thread_id = configurable.get("thread_id")
        async for stored in self._store().iterate(
            thread_id=None if thread_id is None else str(thread_id),
            checkpoint_ns=configurable.get("checkpoint_ns"),
            checkpoint_id=configurable.get("checkpoint_id"),
            before=get_checkpoint_id(before) if before is not None else None,
            metadata=filter,
            limit=limit,
        ):
            yield self._tuple(stored)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store `checkpoint` (its parent: the checkpoint `config` names); returns
        the config naming it."""
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        checkpoint_ns = configurable.get("checkpoint_ns", "")
        type_, blob = self.serde.dumps_typed(checkpoint)
        await self._store().put(
            thread_id,
            checkpoint_ns,
            checkpoint["id"],
            parent_checkpoint_id=configurable.get("checkpoint_id"),
            type=type_,
            checkpoint=blob,
            metadata=get_serializable_checkpoint_metadata(config, metadata),
        )
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": checkpoint_ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's writes against the checkpoint `config` names. Writing the
        same (task, index) again keeps the first, except for LangGraph's special
        channels (errors, interrupts, ...), which are replaced."""
        configurable = config["configurable"]
        rows = []
        for idx, (channel, value) in enumerate(writes):
            type_, blob = self.serde.dumps_typed(value)
            write = StoredWrite(task_id, channel, type_, blob, task_path)
            rows.append((WRITES_IDX_MAP.get(channel, idx), write))
        await self._store().put_writes(
            str(configurable["thread_id"]),
            configurable.get("checkpoint_ns", ""),
            configurable["checkpoint_id"],
            rows,
            replace=all(channel in WRITES_IDX_MAP for channel, _ in writes),
        )

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete the thread's checkpoints and writes (its session stays)."""
        await self._store().delete_thread(str(thread_id))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) of these runs (`metadata["run_id"]`)."""
        await self._store().delete_for_runs([str(r) for r in run_ids])

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint and write of a thread to another."""
        await self._store().copy_thread(str(source_thread_id), str(target_thread_id))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """`keep_latest`: keep only the latest checkpoint of each namespace of each
        thread (and its writes); `delete`: delete all of them.

        Like LangGraph's own savers, `keep_latest` keeps no ancestor: do not prune
        threads of graphs using `DeltaChannel` (see `BaseCheckpointSaver.prune`)."""
        if strategy not in PRUNE_STRATEGIES:
            raise ValueError(f"unknown prune strategy {strategy!r}: use {sorted(PRUNE_STRATEGIES)}")
        await self._store().keep_latest([str(t) for t in thread_ids], PRUNE_STRATEGIES[strategy])

    # -- the sync interface: the async one, on the saver's loop ---------------

    def _sync(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is loop:
            coro.close()
            raise asyncio.InvalidStateError(
                "AgentRuntimeSaver's synchronous methods run on the event loop the saver "
                "uses, from another thread; on that loop use the async interface "
                "(`await graph.ainvoke(...)`, `checkpointer.alist(...)`)."
            )
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._sync(self.aget_tuple(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        async def collect() -> list[CheckpointTuple]:
            return [t async for t in self.alist(config, filter=filter, before=before, limit=limit)]

        yield from self._sync(collect())

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self._sync(self.aput(config, checkpoint, metadata, new_versions))

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._sync(self.aput_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        self._sync(self.adelete_thread(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        self._sync(self.adelete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self._sync(self.acopy_thread(source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self._sync(self.aprune(thread_ids, strategy=strategy))

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Versions as LangGraph's in-memory and PostgreSQL savers make them: a
        zero-padded counter, then a random fraction."""
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(current.split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"


# ---------------------------------------------------------------------------
# Human in the loop: a node's tool calls approved through agent-runtime

# The key of an `ask_approval` interrupt's value (and of its resume value): what
# `run_with_approvals` recognises as an approval to ask for.
APPROVAL_KEY = "agent_runtime_approval"


@dataclass(frozen=True)
class ApprovalDecision:
    """What the reviewer decided, as `ask_approval` returns it.

    `approved`: the tool may run (the approval is approved, or claimed or run since);
    `arguments`: the reviewer's edited arguments if any, else the original ones;
    `message`: the reviewer's note; `status`: the approval's status when the graph
    resumed; `call_id`: the approval's (`run_once` claims it)."""

    call_id: str
    approved: bool
    arguments: dict[str, Any]
    message: str | None
    status: str
    decided_by: str | None = None

    @classmethod
    def from_approval(cls, approval: Mapping[str, Any]) -> ApprovalDecision:
        edited = approval.get("edited_arguments")
        return cls(
            call_id=str(approval["call_id"]),
            approved=approval["status"] in APPROVED_OR_LATER,
            arguments=dict(edited if edited is not None else approval.get("arguments") or {}),
            message=approval.get("message"),
            status=str(approval["status"]),
            decided_by=approval.get("decided_by"),
        )


class ApprovalRejectedError(Exception):
    """`run_once` of a decision that is not an approval (rejected, cancelled, expired):
    nothing ran. `decision` carries the reviewer's message."""

    def __init__(self, decision: ApprovalDecision) -> None:
        super().__init__(
            f"tool call {decision.call_id!r} was not approved ({decision.status})"
            + (f": {decision.message}" if decision.message else "")
        )
        self.decision = decision


class ToolFailedError(Exception):
    """`run_once` of a call whose earlier run was reported failed: it is not run
    again. `approval` is the stored approval (its `result`: the error recorded)."""

    def __init__(self, approval: Mapping[str, Any]) -> None:
        super().__init__(f"tool call {approval.get('call_id')!r} failed: {approval.get('result')}")
        self.approval = dict(approval)


def approval_call_id(thread_id: str, interrupt_id: str) -> str:
    """The approval's call id for an `ask_approval` interrupt of a thread: the same
    for every run that meets that interrupt (LangGraph's interrupt id is stable for
    a task of a checkpoint, and for each successive interrupt of the task)."""
    digest = hashlib.sha256(f"{thread_id}\x1f{interrupt_id}".encode()).hexdigest()
    return f"langgraph-{digest[:40]}"


def ask_approval(
    tool_name: str, arguments: Mapping[str, Any], *, reason: str | None = None
) -> ApprovalDecision:
    """In a graph node: ask a person to approve a tool call. Pauses the graph
    (LangGraph's `interrupt`) until `run_with_approvals` resumes it with the
    decision, and returns that decision. `arguments` must be a JSON object.

    As with any `interrupt`, the node runs again from its start on resume: keep the
    side effects after this call, inside `run_once`."""
    from langgraph.types import interrupt

    ask = {"tool_name": tool_name, "arguments": dict(arguments), "reason": reason}
    value = interrupt({APPROVAL_KEY: ask})
    if not (isinstance(value, Mapping) and isinstance(value.get(APPROVAL_KEY), Mapping)):
        raise TypeError(
            "ask_approval was resumed with a value that is not a decision: run the graph "
            "with run_with_approvals (or resume it with {APPROVAL_KEY: {...}})"
        )
    return ApprovalDecision(**value[APPROVAL_KEY])


@dataclass(frozen=True)
class _Approvals:
    """Where approvals live: the service and its `db` (in-process, the service API's
    connection; over REST, a `RemoteDatabaseService` and None), and the claimer."""

    service: Any
    db: Any
    claimed_by: str | None = None


def _approvals(client: AsyncAgentRuntimeClient | None, claimed_by: str | None = None) -> _Approvals:
    if client is not None:
        return _Approvals(RemoteDatabaseService(client=client), None, claimed_by)
    return _Approvals(store.DatabaseService(), store.get_connection(), claimed_by)


# The approvals of the `run_with_approvals` running the current node (its nodes run in
# tasks, or executor threads, that copy the context): what `run_once` uses by default.
_current: contextvars.ContextVar[_Approvals | None] = contextvars.ContextVar(
    "agent_runtime_langgraph_approvals", default=None
)


def _asks(interrupts: Sequence[Interrupt]) -> list[tuple[Interrupt, dict[str, Any]]]:
    """The pending interrupts made by `ask_approval`, with what each asks."""
    return [
        (i, dict(i.value[APPROVAL_KEY]))
        for i in interrupts
        if isinstance(i.value, Mapping) and isinstance(i.value.get(APPROVAL_KEY), Mapping)
    ]


async def _decide(
    where: _Approvals,
    thread_id: str,
    pending: Interrupt,
    ask: dict[str, Any],
    timeout: float,  # noqa: ASYNC109 - as `wait_for_decision`
) -> ApprovalDecision:
    """Record the interrupt's approval (idempotent: a re-run finds the same one) and
    wait for its decision."""
    call_id = approval_call_id(thread_id, pending.id)
    await where.service.create_approval(
        where.db, thread_id, call_id, ask["tool_name"], ask["arguments"], ask.get("reason")
    )
    approval = await where.service.wait_for_decision(call_id, timeout)
    if approval["status"] == ApprovalStatus.PENDING:
        raise TimeoutError(f"approval {call_id!r} is still pending after {timeout}s")
    return ApprovalDecision.from_approval(approval)


async def run_with_approvals(
    graph: Any,
    input: Any,
    config: RunnableConfig,
    *,
    client: AsyncAgentRuntimeClient | None = None,
    timeout: float = 300.0,  # noqa: ASYNC109 - as `wait_for_decision`
    claimed_by: str | None = None,
) -> Any:
    """Run a compiled graph (`graph.ainvoke(input, config)`) to its end, with human
    approval of its `ask_approval` calls; returns the graph's last output.

    Each time the graph pauses, every pending `ask_approval` becomes an approval of
    the session named by the thread id (`config["configurable"]["thread_id"]`),
    with the call id `approval_call_id(thread_id, interrupt.id)`: a run that meets
    the same interrupt again (after a crash: call this again with `input=None`)
    finds the same approval, and its decision if it was made. The decisions are
    waited for with the service's wait (up to `timeout` seconds each, else
    `TimeoutError`; the graph stays paused, resumable), then the graph resumes with
    `Command(resume={interrupt_id: decision, ...})`, one entry per interrupt, so
    parallel nodes each get their own. Interrupts not made by `ask_approval` are
    left to the caller: the graph's output (with `__interrupt__`) is returned.

    In-process (`client=None`: `init_database` first), or over REST with
    `client=AsyncAgentRuntimeClient(url)`; the graph's checkpointer may be any (in
    this process, `AgentRuntimeSaver`). `run_once` in the graph's nodes uses the
    same `client` and `claimed_by`."""
    from langgraph.types import Command

    configurable = dict(config.get("configurable") or {})
    if "thread_id" not in configurable:
        raise ValueError("run_with_approvals needs config['configurable']['thread_id']")
    thread_id = str(configurable["thread_id"])
    configurable.pop("checkpoint_id", None)  # after the first step: the latest state
    latest: RunnableConfig = {**config, "configurable": configurable}
    where = _approvals(client, claimed_by)
    token = _current.set(where)
    try:
        output = await graph.ainvoke(input, config)
        while True:
            asks = _asks((await graph.aget_state(latest)).interrupts)
            if not asks:
                return output
            try:
                async with asyncio.TaskGroup() as group:
                    waits = [
                        group.create_task(_decide(where, thread_id, pending, ask, timeout))
                        for pending, ask in asks
                    ]
            except ExceptionGroup as errors:  # the first failed wait (the others cancelled)
                raise errors.exceptions[0] from None
            resume = {
                pending.id: {APPROVAL_KEY: asdict(wait.result())}
                for (pending, _), wait in zip(asks, waits, strict=True)
            }
            output = await graph.ainvoke(Command(resume=resume), latest)
    finally:
        _current.reset(token)


def _json(value: Any) -> Any:
    """A tool's result as stored (JSON; its text when it is not JSON-serialisable)."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return str(value)


async def run_once(
    decision: ApprovalDecision,
    fn: Callable[[dict[str, Any]], Any],
    *,
    client: AsyncAgentRuntimeClient | None = None,
    claimed_by: str | None = None,
) -> Any:
    """Run an approved tool call exactly once: claim it, call `fn(arguments)` (sync
    or async) with the decision's arguments (the reviewer's edit, if any), report
    its result, and return it as recorded (JSON: a value that is not becomes its
    text).

    When the node runs again (LangGraph re-runs a node on resume, or after a crash)
    and the call was already run, the recorded result is returned and `fn` is not
    called. Raises `ApprovalRejectedError` for a decision that is not an approval
    (check `decision.approved` first to handle it in the node), `ToolFailedError`
    when an earlier run raised (reported `failed`), and `ConflictError` while
    another worker's claim holds its lease; after the lease a claim succeeds and
    `fn` runs again (make such tools idempotent, e.g. keyed by `call_id`). If `fn`
    raises, the call is reported `failed` and the error raised.

    In a node of `run_with_approvals`, it uses that run's `client` and
    `claimed_by`; elsewhere, pass them (`client=None`: in-process)."""
    if not decision.approved:
        raise ApprovalRejectedError(decision)
    where = _current.get()
    if client is not None or where is None:
        where = _approvals(client, claimed_by)
    elif claimed_by is not None:
        where = _Approvals(where.service, where.db, claimed_by)
    call_id = decision.call_id
    try:
        claim_token, _ = await where.service.claim_approval(
            where.db, call_id, claimed_by=where.claimed_by
        )
    except ConflictError as exc:
        current = dict(exc.current or {})
        if current.get("status") == ApprovalStatus.EXECUTED:
            return current.get("result")
        if current.get("status") == ApprovalStatus.FAILED:
            raise ToolFailedError(current) from exc
        raise
    try:
        result = fn(dict(decision.arguments))
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:
        await where.service.report_result(
            where.db, call_id, claim_token, ApprovalStatus.FAILED, {"error": repr(exc)}
        )
        raise
    recorded = _json(result)
    await where.service.report_result(
        where.db, call_id, claim_token, ApprovalStatus.EXECUTED, recorded
    )
    return recorded
