"""LangGraph checkpoints over REST (`agent_runtime.integrations.langgraph` with a
client): what `services/checkpoints.py` stores, with the values LangGraph's
serializer produced (bytes) as base64 text."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    StringConstraints,
    WithJsonSchema,
)

from agent_runtime.schemas.types import Id, JSONObject, LookupId, StorableText, storable_text
from models.limits import BIGINT_MAX, CHECKPOINT_NS_MAX, ENUM_MAX, INT_MAX, NAME_MAX

__all__ = [
    "Base64Bytes",
    "CheckpointCopyCreate",
    "CheckpointCopyRead",
    "CheckpointCreate",
    "CheckpointDeleteRead",
    "CheckpointNs",
    "CheckpointPageRead",
    "CheckpointPruneCreate",
    "CheckpointRead",
    "CheckpointRefRead",
    "CheckpointRunsDelete",
    "CheckpointWriteIn",
    "CheckpointWriteRead",
    "CheckpointWritesCreate",
    "SerializedType",
]

# Ids per request of the bulk operations (delete for runs, prune): the service batches.
BULK_MAX = 10_000


def _from_base64(value: Any) -> Any:
    """Base64 text (standard alphabet, padded) as bytes; bytes as they are (what the
    routes answer with)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if not isinstance(value, str):
        raise ValueError("must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be base64 text (standard alphabet, padded)") from None


def _to_base64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


# Bytes that travel as base64 text, both ways.
Base64Bytes = Annotated[
    bytes,
    BeforeValidator(_from_base64),
    PlainSerializer(_to_base64, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "contentEncoding": "base64"}),
]
# A checkpoint namespace: "" for the root graph.
CheckpointNs = Annotated[
    str,
    StringConstraints(strict=True, max_length=CHECKPOINT_NS_MAX),
    AfterValidator(storable_text),
]
# The type name LangGraph's serializer gives a value (`serde.dumps_typed`).
SerializedType = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=ENUM_MAX),
    AfterValidator(storable_text),
]
Channel = Annotated[
    str, StringConstraints(strict=True, max_length=NAME_MAX), AfterValidator(storable_text)
]
# A write's index: its position in the task's writes, or a special channel's (< 0).
WriteIdx = Annotated[int, Strict(), Field(ge=-INT_MAX - 1, le=INT_MAX)]

_CHECKPOINT_EXAMPLE: dict[str, Any] = {
    "checkpoint_ns": "",
    "checkpoint_id": "1ef4f797-8335-6428-8001-8a1503f9b875",
    "parent_checkpoint_id": None,
    "type": "msgpack",
    "checkpoint": "gqF2AqJpZNkkMWVmNGY3OTc=",
    "metadata": {"source": "loop", "step": 1},
}


class CheckpointCreate(BaseModel):
    """A checkpoint to store (replacing one of the same id in the namespace)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_CHECKPOINT_EXAMPLE]})

    checkpoint_ns: CheckpointNs = ""
    checkpoint_id: Id
    parent_checkpoint_id: Id | None = None
    type: SerializedType
    checkpoint: Base64Bytes = Field(description="the serialized checkpoint, base64")
    metadata: JSONObject = Field(default_factory=dict)


class CheckpointWriteIn(BaseModel):
    """One pending write of a task."""

    model_config = ConfigDict(extra="forbid")

    idx: WriteIdx
    task_id: Id
    channel: Channel
    type: SerializedType | None = None
    blob: Base64Bytes = Field(description="the serialized value, base64")
    task_path: StorableText = ""


class CheckpointWritesCreate(BaseModel):
    """Writes of tasks against one checkpoint. A write whose (task, idx) is stored
    already is kept, or with `replace` replaced."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "checkpoint_ns": "",
                    "checkpoint_id": "1ef4f797-8335-6428-8001-8a1503f9b875",
                    "writes": [
                        {
                            "idx": 0,
                            "task_id": "task-1",
                            "channel": "messages",
                            "type": "msgpack",
                            "blob": "kaNoaQ==",
                            "task_path": "",
                        }
                    ],
                    "replace": False,
                }
            ]
        },
    )

    checkpoint_ns: CheckpointNs = ""
    checkpoint_id: Id
    writes: list[CheckpointWriteIn] = Field(max_length=BULK_MAX)
    replace: bool = False


class CheckpointWriteRead(BaseModel):
    task_id: str
    channel: str
    type: str | None
    blob: Base64Bytes
    task_path: str
    idx: int


class CheckpointRead(BaseModel):
    """A stored checkpoint with its pending writes (in the order LangGraph applies them)."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    type: str
    checkpoint: Base64Bytes
    metadata: dict[str, Any]
    writes: list[CheckpointWriteRead]


class CheckpointPageRead(BaseModel):
    """One page: `items` are the rows read that match the metadata filter, so a page
    may be short, even empty, with a `next_cursor` (null on the last page)."""

    items: list[CheckpointRead]
    next_cursor: str | None


class CheckpointRefRead(BaseModel):
    """The stored checkpoint's key (LangGraph's config)."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str


class CheckpointRunsDelete(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"run_ids": ["r1"]}]})

    run_ids: list[LookupId] = Field(max_length=BULK_MAX, description="`metadata.run_id` values")


class CheckpointCopyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"target_thread_id": "thread-2"}]}
    )

    target_thread_id: Id


class CheckpointPruneCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"thread_ids": ["thread-1"], "keep": 1}]}
    )

    thread_ids: list[LookupId] = Field(max_length=BULK_MAX)
    keep: int = Field(
        1,
        strict=True,
        ge=0,
        le=BIGINT_MAX,
        description="checkpoints to keep per namespace of each thread, the latest (0: none)",
    )


class CheckpointDeleteRead(BaseModel):
    deleted: int = Field(description="checkpoints deleted")


class CheckpointCopyRead(BaseModel):
    copied: int = Field(description="checkpoints copied")
