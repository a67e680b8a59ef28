"""LangGraph checkpoints: what `AgentRuntimeSaver(client=...)` stores and reads over
REST (`services/checkpoints.py` in-process). A thread is a session: its checkpoints
are under `/sessions/{session_id}/checkpoints`; listing across threads, deleting the
checkpoints of runs and pruning are under `/checkpoints`.

Agents write, list and prune their own checkpoints: every write here needs WRITE
(an agent's key), every read READ.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from agent_runtime.api.routes._params import INVALID, READS, WRITES, errors
from agent_runtime.core.dependencies import DBConnection, DBSession
from agent_runtime.core.params import SessionId
from agent_runtime.errors import InvalidInputError, NotFoundError
from agent_runtime.schemas.checkpoints import (
    CheckpointCopyCreate,
    CheckpointCopyRead,
    CheckpointCreate,
    CheckpointDeleteRead,
    CheckpointNs,
    CheckpointPageRead,
    CheckpointPruneCreate,
    CheckpointRead,
    CheckpointRefRead,
    CheckpointRunsDelete,
    CheckpointWritesCreate,
)
from agent_runtime.schemas.cursors import decode_cursor, encode_cursor
from agent_runtime.schemas.types import LookupId, parse_json
from agent_runtime.services import checkpoints as checkpoint_service
from agent_runtime.services.checkpoints import StoredCheckpoint, StoredWrite

__all__ = ["router"]

router = APIRouter(tags=["checkpoints"], responses=INVALID)
_404 = errors({404: "no such checkpoint"})
_CURSOR = "checkpoints"

Namespace = Annotated[
    CheckpointNs | None, Query(description='the namespace ("": the root graph\'s)')
]
CheckpointIdQuery = Annotated[LookupId | None, Query(description="only this checkpoint")]
CheckpointLimit = Annotated[
    int, Query(ge=1, le=500, description="rows read (1-500): a filtered page may hold fewer")
]


def _stored(stored: StoredCheckpoint) -> dict[str, Any]:
    return asdict(stored)


def _checkpoint_key(cursor: str) -> tuple[str, int]:
    checkpoint_id, row_id = decode_cursor(_CURSOR, cursor)  # its shape: schemas/cursors.py
    return checkpoint_id, row_id


def _metadata_filter(text: str | None) -> dict[str, Any] | None:
    """The `metadata` query parameter: a JSON object, each of its keys to match."""
    if text is None:
        return None
    try:
        value = parse_json(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        message = "metadata must be a JSON object"
        raise InvalidInputError(
            message, [{"loc": ["query", "metadata"], "msg": message, "type": "value_error"}]
        )
    return value


@router.put(
    "/sessions/{session_id}/checkpoints", dependencies=WRITES, response_model=CheckpointRefRead
)
async def put_checkpoint(
    session_id: SessionId, checkpoint: CheckpointCreate, db: DBSession
) -> dict[str, Any]:
    """Store a checkpoint of the thread (replacing one of the same id in the
    namespace), creating the thread's session if needed; its key."""
    await checkpoint_service.put_checkpoint(
        db,
        session_id,
        checkpoint.checkpoint_ns,
        checkpoint.checkpoint_id,
        parent_checkpoint_id=checkpoint.parent_checkpoint_id,
        type=checkpoint.type,
        checkpoint=checkpoint.checkpoint,
        metadata=checkpoint.metadata,
    )
    return {
        "thread_id": session_id,
        "checkpoint_ns": checkpoint.checkpoint_ns,
        "checkpoint_id": checkpoint.checkpoint_id,
    }


@router.post(
    "/sessions/{session_id}/checkpoints/writes",
    dependencies=WRITES,
    status_code=status.HTTP_204_NO_CONTENT,
)
async def put_checkpoint_writes(
    session_id: SessionId, body: CheckpointWritesCreate, db: DBSession
) -> None:
    """Store writes of tasks against a checkpoint. A write whose (task, idx) is
    stored already is kept as it was, or with `replace` replaced."""
    await checkpoint_service.put_writes(
        db,
        session_id,
        body.checkpoint_ns,
        body.checkpoint_id,
        [
            (w.idx, StoredWrite(w.task_id, w.channel, w.type, w.blob, w.task_path))
            for w in body.writes
        ],
        replace=body.replace,
    )


@router.get(
    "/sessions/{session_id}/checkpoints/latest",
    dependencies=READS,
    response_model=CheckpointRead,
    responses=_404,
)
async def get_checkpoint(
    session_id: SessionId,
    db: DBConnection,
    checkpoint_ns: Namespace = None,
    checkpoint_id: CheckpointIdQuery = None,
) -> dict[str, Any]:
    """The thread's latest checkpoint in the namespace (default: the root's), or the
    one `checkpoint_id` names, with its pending writes; 404 if there is none."""
    stored = await checkpoint_service.get_checkpoint(
        db, session_id, checkpoint_ns or "", checkpoint_id
    )
    if stored is None:
        raise NotFoundError(f"no checkpoint of thread {session_id!r} found")
    return _stored(stored)


@router.get("/checkpoints", dependencies=READS, response_model=CheckpointPageRead)
async def list_checkpoints(
    db: DBConnection,
    thread_id: Annotated[LookupId | None, Query(description="only this thread's")] = None,
    checkpoint_ns: Namespace = None,
    checkpoint_id: CheckpointIdQuery = None,
    before: Annotated[
        LookupId | None, Query(description="only those before this checkpoint id")
    ] = None,
    metadata: Annotated[
        str | None,
        Query(description="a JSON object: only those whose metadata has each of its keys"),
    ] = None,
    limit: CheckpointLimit = 100,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Checkpoints newest first (of every thread without `thread_id`), a keyset page
    at a time. `limit` rows are read, then filtered by `metadata`: a page may be
    short, even empty, and still have a `next_cursor`; the last page has none."""
    page = await checkpoint_service.list_checkpoints(
        db,
        thread_id=thread_id,
        checkpoint_ns=checkpoint_ns,
        checkpoint_id=checkpoint_id,
        before=before,
        metadata=_metadata_filter(metadata),
        limit=limit,
        after=_checkpoint_key(cursor) if cursor else None,
    )
    next_cursor = None
    if page.next_key is not None:
        next_cursor = encode_cursor(_CURSOR, list(page.next_key))
    return {"items": [_stored(s) for s in page.items], "next_cursor": next_cursor}


@router.delete(
    "/sessions/{session_id}/checkpoints",
    dependencies=WRITES,
    status_code=status.HTTP_204_NO_CONTENT,
)
async def delete_thread_checkpoints(session_id: SessionId, db: DBSession) -> None:
    """Delete the thread's checkpoints and writes (its session stays)."""
    await checkpoint_service.delete_thread(db, session_id)


@router.post(
    "/checkpoints/delete-for-runs", dependencies=WRITES, response_model=CheckpointDeleteRead
)
async def delete_checkpoints_for_runs(body: CheckpointRunsDelete, db: DBSession) -> dict[str, int]:
    """Delete the checkpoints written by these runs (`metadata.run_id`) and their writes."""
    return {"deleted": await checkpoint_service.delete_for_runs(db, body.run_ids)}


@router.post(
    "/sessions/{session_id}/checkpoints/copy",
    dependencies=WRITES,
    response_model=CheckpointCopyRead,
)
async def copy_thread_checkpoints(
    session_id: SessionId, body: CheckpointCopyCreate, db: DBSession
) -> dict[str, int]:
    """Copy every checkpoint and write of the thread to `target_thread_id` (creating
    its session; what the target has under the same ids stays)."""
    return {"copied": await checkpoint_service.copy_thread(db, session_id, body.target_thread_id)}


@router.post("/checkpoints/prune", dependencies=WRITES, response_model=CheckpointDeleteRead)
async def prune_checkpoints(body: CheckpointPruneCreate, db: DBSession) -> dict[str, int]:
    """In each namespace of each thread, keep the `keep` latest checkpoints (and their
    writes) and delete the rest (all of them with `keep` 0)."""
    deleted = await checkpoint_service.keep_latest_checkpoints(db, body.thread_ids, body.keep)
    return {"deleted": deleted}
