"""Opaque keyset cursors: base64url JSON tagged with what they page through.

The service makes every cursor, so a cursor whose value has not the shape of its
kind (`SHAPES`: a message position, a `[datetime, id]` key...) was forged or mangled:
it is invalid input (422) before any route or service uses it. A number beyond its
column (a position past 32 bits, a row id past 64) never reaches the database.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from agent_runtime.errors import InvalidInputError
from agent_runtime.schemas.types import parse_json
from models.limits import BIGINT_MAX, INT_MAX

__all__ = ["SHAPES", "decode_cursor", "encode_cursor"]


def encode_cursor(kind: str, value: Any) -> str:
    raw = json.dumps([kind, value], separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _int_up_to(bound: int) -> Callable[[Any], bool]:
    return lambda value: type(value) is int and 0 <= value <= bound


def _key(second: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """`[<text>, <second>]`: a keyset key after a timestamp (ISO text) or an id."""
    return lambda value: (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and second(value[1])
    )


def _text(value: Any) -> bool:
    return isinstance(value, str)


# The value of each kind of cursor, as the service makes it (the datetime text is
# then read by `parse_datetime`, which refuses one out of range).
SHAPES: dict[str, Callable[[Any], bool]] = {
    "messages": _int_up_to(INT_MAX),  # a message position (INTEGER)
    "sessions": _key(_text),  # [last_activity, session_id]
    "console-sessions": _key(_text),
    "approvals": _key(_int_up_to(BIGINT_MAX)),  # [created_at, approval row id (BIGINT)]
    "inbox": _key(_int_up_to(BIGINT_MAX)),
    "checkpoints": _key(_int_up_to(BIGINT_MAX)),  # [checkpoint_id, checkpoint row id (BIGINT)]
}


def decode_cursor(kind: str, cursor: str) -> Any:
    """The value inside `cursor`; `InvalidInputError` if it is not a cursor of `kind`
    (of its shape, for the kinds in `SHAPES`)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        tag, value = parse_json(raw)  # never a RecursionError, whatever the client sent
    except (binascii.Error, ValueError, TypeError):
        raise InvalidInputError(f"invalid {kind} cursor") from None
    shape = SHAPES.get(kind)
    if tag != kind or (shape is not None and not shape(value)):
        raise InvalidInputError(f"invalid {kind} cursor")
    return value
