"""Opaque keyset cursors: base64url JSON tagged with what they page through."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from agent_runtime.errors import InvalidInputError

__all__ = ["decode_cursor", "encode_cursor"]


def encode_cursor(kind: str, value: Any) -> str:
    raw = json.dumps([kind, value], separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> Any:
    """The value inside `cursor`; `InvalidInputError` if it is not a cursor of `kind`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        tag, value = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidInputError(f"invalid {kind} cursor") from None
    if tag != kind:
        raise InvalidInputError(f"invalid {kind} cursor")
    return value
