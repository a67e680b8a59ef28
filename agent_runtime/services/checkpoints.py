"""LangGraph checkpoints: every query of `agent_runtime.integrations.langgraph`.

A thread is a session (`session_id` is the thread id). The first checkpoint of a
thread creates its session (as a save does: `append_messages` with no message),
and every checkpoint counts as activity on it (`last_activity`), reviving it if it
was soft-deleted, so retention never takes a thread in use for an idle session.
Deleting a session for good (hard delete, retention's purge) deletes its
checkpoints and writes (`delete_session_checkpoints`).

Values arrive serialized (LangGraph's `serde.dumps_typed`: a type name and
bytes); this module stores and returns them as they are.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tortoise.expressions import F, Q
from tortoise.functions import Count

from agent_runtime.errors import InvalidInputError
from agent_runtime.schemas.validation import lookup_id, require_id, require_positive_int
from agent_runtime.services._common import DB, atomic
from agent_runtime.services.save import append_messages
from agent_runtime.timeutils import utc_now
from models import Checkpoint, CheckpointWrite, Session
from models.checkpoint import CHECKPOINT_NS_MAX

__all__ = [
    "StoredCheckpoint",
    "StoredWrite",
    "copy_thread",
    "delete_for_runs",
    "delete_session_checkpoints",
    "delete_thread",
    "get_checkpoint",
    "iter_checkpoints",
    "keep_latest_checkpoints",
    "put_checkpoint",
    "put_writes",
    "trim_checkpoints",
]

_ID_BATCH = 500  # well under SQLite's and PostgreSQL's bound-parameter limits
_KEY_BATCH = 100  # (thread, namespace, checkpoint) keys per OR-ed filter
_PAGE = 100  # checkpoints read at a time by `iter_checkpoints`

_CHECKPOINT_FIELDS = (
    "id",
    "session_id",
    "checkpoint_ns",
    "checkpoint_id",
    "parent_checkpoint_id",
    "type",
    "checkpoint",
    "metadata",
)
_WRITE_FIELDS = ("checkpoint_ns", "checkpoint_id", "task_id", "idx", "channel", "type", "blob")


@dataclass(frozen=True)
class StoredWrite:
    """A pending write, as `put_writes` stored it."""

    task_id: str
    channel: str
    type: str | None
    blob: bytes
    task_path: str = ""
    idx: int = 0


@dataclass(frozen=True)
class StoredCheckpoint:
    """A checkpoint as `put_checkpoint` stored it, with its pending writes in the
    order LangGraph applies them (task path, task id, index)."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    type: str
    checkpoint: bytes
    metadata: dict[str, Any]
    writes: list[StoredWrite] = field(default_factory=list)


def _ns(value: Any) -> str:
    if not isinstance(value, str) or len(value) > CHECKPOINT_NS_MAX:
        raise InvalidInputError(
            f"checkpoint_ns must be a string of at most {CHECKPOINT_NS_MAX} characters"
        )
    return value


def _checkpoint_id(value: Any, what: str = "checkpoint_id") -> str:
    return require_id(value, what)


def _bytes(value: Any) -> bytes:
    return bytes(value) if not isinstance(value, bytes) else value


async def _touch_session(conn: DB, thread_id: str, now: datetime) -> None:
    """Note activity on the thread's session, creating (or reviving) it if needed."""
    touched = (
        await Session.visible.filter(id=thread_id)
        .using_db(conn)
        .update(last_activity=now, version=F("version") + 1)
    )
    if not touched:  # unknown or soft-deleted: as a save (of no message) would
        await append_messages(conn, thread_id, [], now)


async def put_checkpoint(
    db: DB,
    thread_id: str,
    checkpoint_ns: str,
    checkpoint_id: str,
    *,
    parent_checkpoint_id: str | None,
    type: str,
    checkpoint: bytes,
    metadata: Mapping[str, Any],
) -> None:
    """Store a checkpoint (replacing one of the same id), creating the thread's
    session if needed, in one transaction."""
    thread_id = require_id(thread_id)
    checkpoint_ns = _ns(checkpoint_ns)
    checkpoint_id = _checkpoint_id(checkpoint_id)
    if parent_checkpoint_id is not None:
        parent_checkpoint_id = _checkpoint_id(parent_checkpoint_id, "parent_checkpoint_id")
    run_id = metadata.get("run_id")
    now = utc_now()
    row = Checkpoint(
        session_id=thread_id,
        checkpoint_ns=checkpoint_ns,
        checkpoint_id=checkpoint_id,
        parent_checkpoint_id=parent_checkpoint_id,
        run_id=None if run_id is None else require_id(str(run_id), "run_id"),
        type=type,
        checkpoint=checkpoint,
        metadata=dict(metadata),
        created_at=now,
    )
    async with atomic(db) as conn:
        await _touch_session(conn, thread_id, now)
        await Checkpoint.bulk_create(
            [row],
            on_conflict=["session_id", "checkpoint_ns", "checkpoint_id"],
            update_fields=["parent_checkpoint_id", "run_id", "type", "checkpoint", "metadata"],
            using_db=conn,
        )


async def put_writes(
    db: DB,
    thread_id: str,
    checkpoint_ns: str,
    checkpoint_id: str,
    writes: Sequence[tuple[int, StoredWrite]],
    *,
    replace: bool,
) -> None:
    """Store the writes of tasks against a checkpoint, each `(idx, write)`. A write
    whose (task, idx) is stored already is kept as it was, or with `replace`
    replaced (LangGraph's special channels: an error, an interrupt...)."""
    thread_id = require_id(thread_id)
    checkpoint_ns = _ns(checkpoint_ns)
    checkpoint_id = _checkpoint_id(checkpoint_id)
    if not writes:
        return
    now = utc_now()
    rows = [
        CheckpointWrite(
            session_id=thread_id,
            checkpoint_ns=checkpoint_ns,
            checkpoint_id=checkpoint_id,
            task_id=require_id(write.task_id, "task_id"),
            idx=idx,
            channel=write.channel,
            type=write.type,
            blob=write.blob,
            task_path=write.task_path,
            created_at=now,
        )
        for idx, write in writes
    ]
    async with atomic(db) as conn:
        if replace:
            await CheckpointWrite.bulk_create(
                rows,
                on_conflict=["session_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx"],
                update_fields=["channel", "type", "blob", "task_path"],
                using_db=conn,
            )
        else:
            await CheckpointWrite.bulk_create(rows, ignore_conflicts=True, using_db=conn)


def _key_filter(keys: Iterable[tuple[str, str, str]]) -> Q:
    """Rows of any of the (thread, namespace, checkpoint id) keys."""
    return Q(
        *(Q(session_id=t, checkpoint_ns=ns, checkpoint_id=c) for t, ns, c in keys),
        join_type=Q.OR,
    )


async def _with_writes(db: DB, rows: list[dict[str, Any]]) -> list[StoredCheckpoint]:
    """The checkpoints of `rows`, each with its pending writes."""
    keys = [(r["session_id"], r["checkpoint_ns"], r["checkpoint_id"]) for r in rows]
    found: dict[tuple[str, str, str], list[StoredWrite]] = defaultdict(list)
    for start in range(0, len(keys), _KEY_BATCH):
        batch = keys[start : start + _KEY_BATCH]
        writes = (
            await CheckpointWrite.filter(_key_filter(batch))
            .using_db(db)
            .values("session_id", "task_path", *_WRITE_FIELDS)
        )
        for w in writes:
            found[(w["session_id"], w["checkpoint_ns"], w["checkpoint_id"])].append(
                StoredWrite(
                    w["task_id"],
                    w["channel"],
                    w["type"],
                    _bytes(w["blob"]),
                    w["task_path"],
                    w["idx"],
                )
            )
    return [
        StoredCheckpoint(
            thread_id=r["session_id"],
            checkpoint_ns=r["checkpoint_ns"],
            checkpoint_id=r["checkpoint_id"],
            parent_checkpoint_id=r["parent_checkpoint_id"],
            type=r["type"],
            checkpoint=_bytes(r["checkpoint"]),
            metadata=r["metadata"] or {},
            writes=sorted(found.get(key, []), key=lambda w: (w.task_path, w.task_id, w.idx)),
        )
        for r, key in zip(rows, keys, strict=True)
    ]


async def get_checkpoint(
    db: DB, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None = None
) -> StoredCheckpoint | None:
    """The checkpoint `checkpoint_id` of the thread's namespace, or (None) its latest;
    None if there is none."""
    thread_id = lookup_id(thread_id)
    query = Checkpoint.filter(session_id=thread_id, checkpoint_ns=_ns(checkpoint_ns)).using_db(db)
    if checkpoint_id is not None:
        query = query.filter(checkpoint_id=lookup_id(checkpoint_id, "checkpoint_id"))
    row = await query.order_by("-checkpoint_id").first().values(*_CHECKPOINT_FIELDS)
    if row is None:
        return None
    return (await _with_writes(db, [row]))[0]


def _matches(metadata: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    return all(key in metadata and metadata[key] == value for key, value in wanted.items())


async def iter_checkpoints(
    db: DB,
    *,
    thread_id: str | None = None,
    checkpoint_ns: str | None = None,
    checkpoint_id: str | None = None,
    before: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    limit: int | None = None,
    page_size: int = _PAGE,
) -> AsyncIterator[StoredCheckpoint]:
    """Checkpoints, newest (greatest checkpoint id) first: of one thread and/or
    namespace, or all; only `checkpoint_id`; only those before `before` (a
    checkpoint id); only those whose metadata has each key of `metadata` with that
    value; at most `limit`. Read `page_size` at a time (no transaction is held
    between pages)."""
    if limit is not None:
        require_positive_int(limit, "limit", allow_zero=True)
        if limit == 0:
            return
    require_positive_int(page_size, "page_size")
    query = Checkpoint.all().using_db(db)
    if thread_id is not None:
        query = query.filter(session_id=lookup_id(thread_id))
    if checkpoint_ns is not None:
        query = query.filter(checkpoint_ns=_ns(checkpoint_ns))
    if checkpoint_id is not None:
        query = query.filter(checkpoint_id=lookup_id(checkpoint_id, "checkpoint_id"))
    if before is not None:
        query = query.filter(checkpoint_id__lt=lookup_id(before, "before"))
    sent = 0
    after: tuple[str, int] | None = None  # (checkpoint_id, id) of the last row read
    while True:
        page_query = query
        if after is not None:
            page_query = page_query.filter(
                Q(checkpoint_id__lt=after[0]) | Q(checkpoint_id=after[0], id__lt=after[1])
            )
        rows = (
            await page_query.order_by("-checkpoint_id", "-id")
            .limit(page_size)
            .values(*_CHECKPOINT_FIELDS)
        )
        if not rows:
            return
        after = (rows[-1]["checkpoint_id"], rows[-1]["id"])
        if metadata:
            rows = [r for r in rows if _matches(r["metadata"] or {}, metadata)]
        if limit is not None:
            rows = rows[: limit - sent]
        for stored in await _with_writes(db, rows):
            yield stored
        sent += len(rows)
        if limit is not None and sent >= limit:
            return


async def _delete_keys(conn: DB, keys: list[tuple[str, str, str]]) -> None:
    """Delete these checkpoints and their writes."""
    for start in range(0, len(keys), _KEY_BATCH):
        batch = keys[start : start + _KEY_BATCH]
        await CheckpointWrite.filter(_key_filter(batch)).using_db(conn).delete()
        await Checkpoint.filter(_key_filter(batch)).using_db(conn).delete()


async def delete_session_checkpoints(db: DB, session_ids: Sequence[str]) -> None:
    """Delete every checkpoint and write of these sessions (threads), in the
    caller's transaction (deleting a session, retention's purge)."""
    for start in range(0, len(session_ids), _ID_BATCH):
        batch = list(session_ids[start : start + _ID_BATCH])
        await CheckpointWrite.filter(session_id__in=batch).using_db(db).delete()
        await Checkpoint.filter(session_id__in=batch).using_db(db).delete()


async def delete_thread(db: DB, thread_id: str) -> None:
    """Delete the thread's checkpoints and writes (its session stays)."""
    thread_id = lookup_id(thread_id)
    async with atomic(db) as conn:
        await delete_session_checkpoints(conn, [thread_id])


async def delete_for_runs(db: DB, run_ids: Sequence[str]) -> int:
    """Delete the checkpoints written by these runs (`metadata["run_id"]`), and their
    writes; return how many checkpoints."""
    ids = [lookup_id(str(r), "run_id") for r in run_ids]
    deleted = 0
    async with atomic(db) as conn:
        for start in range(0, len(ids), _ID_BATCH):
            rows = (
                await Checkpoint.filter(run_id__in=ids[start : start + _ID_BATCH])
                .using_db(conn)
                .values_list("session_id", "checkpoint_ns", "checkpoint_id")
            )
            await _delete_keys(conn, [(r[0], r[1], r[2]) for r in rows])
            deleted += len(rows)
    return deleted


def _copied(row: dict[str, Any], target: str, now: datetime) -> dict[str, Any]:
    """A row's values as a new row of the thread `target`."""
    values = {key: value for key, value in row.items() if key != "id"}
    return {**values, "session_id": target, "created_at": now}


async def copy_thread(db: DB, source_thread_id: str, target_thread_id: str) -> int:
    """Copy every checkpoint and write of a thread to another (creating its
    session; what the target has already under the same ids stays); return how
    many checkpoints. Nothing happens when the source has none."""
    source = lookup_id(source_thread_id)
    target = require_id(target_thread_id)
    copied = 0
    now = utc_now()
    async with atomic(db) as conn:
        last_id = 0
        while True:
            rows = (
                await Checkpoint.filter(session_id=source, id__gt=last_id)
                .using_db(conn)
                .order_by("id")
                .limit(_ID_BATCH)
                .values(*_CHECKPOINT_FIELDS, "run_id", "created_at")
            )
            if not rows:
                break
            if not copied:
                await _touch_session(conn, target, now)
            last_id = rows[-1]["id"]
            await Checkpoint.bulk_create(
                [Checkpoint(**_copied(r, target, now)) for r in rows],
                ignore_conflicts=True,
                using_db=conn,
            )
            copied += len(rows)
        last_id = 0
        while copied:
            writes = (
                await CheckpointWrite.filter(session_id=source, id__gt=last_id)
                .using_db(conn)
                .order_by("id")
                .limit(_ID_BATCH)
                .values("id", "task_path", *_WRITE_FIELDS)
            )
            if not writes:
                break
            last_id = writes[-1]["id"]
            await CheckpointWrite.bulk_create(
                [CheckpointWrite(**_copied(w, target, now)) for w in writes],
                ignore_conflicts=True,
                using_db=conn,
            )
    return copied


async def _trim(conn: DB, thread_id: str, checkpoint_ns: str, keep: int) -> int:
    """Delete all but the `keep` (>= 1) latest checkpoints of one namespace of a
    thread, and the writes against them; return how many checkpoints."""
    oldest_kept = (
        await Checkpoint.filter(session_id=thread_id, checkpoint_ns=checkpoint_ns)
        .using_db(conn)
        .order_by("-checkpoint_id")
        .offset(keep - 1)
        .first()
        .values_list("checkpoint_id", flat=True)
    )
    if oldest_kept is None:
        return 0
    older = Q(session_id=thread_id, checkpoint_ns=checkpoint_ns, checkpoint_id__lt=oldest_kept)
    await CheckpointWrite.filter(older).using_db(conn).delete()
    return int(await Checkpoint.filter(older).using_db(conn).delete())


async def keep_latest_checkpoints(db: DB, thread_ids: Sequence[str], keep: int) -> int:
    """In each namespace of each thread, keep the `keep` latest checkpoints and the
    writes against them, and delete the rest (all of it with `keep` 0); return how
    many checkpoints were deleted."""
    keep = require_positive_int(keep, "keep", allow_zero=True)
    ids = [lookup_id(t, "thread_id") for t in thread_ids]
    deleted = 0
    async with atomic(db) as conn:
        if keep == 0:
            for start in range(0, len(ids), _ID_BATCH):
                batch = ids[start : start + _ID_BATCH]
                deleted += await Checkpoint.filter(session_id__in=batch).using_db(conn).count()
            await delete_session_checkpoints(conn, ids)
            return deleted
        for thread_id in ids:
            namespaces = (
                await Checkpoint.filter(session_id=thread_id)
                .using_db(conn)
                .distinct()
                .values_list("checkpoint_ns", flat=True)
            )
            for ns in namespaces:
                deleted += await _trim(conn, thread_id, str(ns), keep)
    return deleted


async def trim_checkpoints(db: DB, keep: int, *, dry_run: bool = False) -> int:
    """Retention: in every namespace of every thread, keep the `keep` (>= 1) latest
    checkpoints, delete the older ones and their writes; return how many
    checkpoints (with `dry_run`, would be: nothing is deleted)."""
    keep = require_positive_int(keep, "keep")
    over = (
        await Checkpoint.all()
        .using_db(db)
        .annotate(count=Count("id"))
        .group_by("session_id", "checkpoint_ns")
        .filter(count__gt=keep)
        .values("session_id", "checkpoint_ns", "count")
    )
    if dry_run:
        return sum(int(row["count"]) - keep for row in over)
    deleted = 0
    for row in over:  # a transaction per thread namespace: no long lock
        async with atomic(db) as conn:
            deleted += await _trim(conn, row["session_id"], row["checkpoint_ns"], keep)
    return deleted
