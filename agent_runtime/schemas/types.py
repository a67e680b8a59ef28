"""What the service can store, defined once as annotated types.

The REST schemas, the service API (legacy dict callers are validated with the
same types) and the legacy import all use these, so a value refused on one path
is refused, with the same message, on every path.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainValidator,
    Strict,
    StringConstraints,
    WithJsonSchema,
)

from agent_runtime.timeutils import to_utc_datetime
from models.enums import DECISIONS, OUTCOMES, ApprovalStatus
from models.limits import AGENT_MAX, ID_MAX, INT_MAX, JSON_DEPTH_MAX, NAME_MAX, TITLE_MAX

__all__ = [
    "AgentName",
    "Count",
    "Decision",
    "Id",
    "JSONObject",
    "LookupId",
    "Name",
    "OptionalAgentName",
    "Outcome",
    "RequestTitle",
    "RequiredName",
    "StorableJSON",
    "StorableText",
    "Title",
    "UTCDateTime",
    "cut_title",
    "storable_json",
    "storable_text",
]

# PostgreSQL cannot store NUL in text or JSON, and neither backend can encode a
# lone UTF-16 surrogate: both are refused up front, the same way on both backends.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# JSON is encoded with orjson (Tortoise's codec when installed): 64-bit integers only.
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


def storable_text(value: str) -> str:
    if _UNSTORABLE.search(value):
        raise ValueError(
            "contains a NUL character or an unpaired surrogate, which cannot be stored"
        )
    return value


def _storable_if_text(value: Any) -> Any:
    # Before pydantic's own str checks: with length constraints, it refuses a lone
    # surrogate with a decoding message instead of ours.
    return storable_text(value) if isinstance(value, str) else value


def storable_json(value: Any) -> Any:
    """`value` if both backends store it as given: string keys, finite numbers,
    storable text, nesting at most JSON_DEPTH_MAX deep."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > JSON_DEPTH_MAX:
            raise ValueError(f"is nested deeper than {JSON_DEPTH_MAX} levels")
        if isinstance(item, str):
            storable_text(item)
        elif item is None or isinstance(item, bool):
            continue
        elif isinstance(item, int):
            if not _INT_MIN <= item <= _INT_MAX:
                raise ValueError(f"has the integer {item}, beyond the 64 bits JSON is stored with")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError(f"contains {item}, which JSON cannot hold")
        elif isinstance(item, Mapping):
            for key, val in item.items():
                if not isinstance(key, str):
                    raise ValueError(f"has a non-string key {key!r}")
                storable_text(key)
                stack.append((val, depth + 1))
        elif isinstance(item, list | tuple):
            stack.extend((val, depth + 1) for val in item)
        else:
            raise ValueError(f"must be JSON data, not {type(item).__name__}")
    return value


def _one_of(allowed: frozenset[ApprovalStatus]) -> Any:
    def check(value: Any) -> ApprovalStatus:
        if not isinstance(value, str) or value not in allowed:
            raise ValueError(f"must be one of {', '.join(sorted(allowed))}, got {value!r}")
        return ApprovalStatus(value)

    return check


def _text(*, min_length: int = 0, max_length: int | None = None) -> Any:
    return Annotated[
        str,
        StringConstraints(strict=True, min_length=min_length, max_length=max_length),
        BeforeValidator(_storable_if_text),
    ]


# Strict: text is a str, never bytes or a number turned into one.
StorableText = Annotated[str, Strict(), AfterValidator(storable_text)]
StorableJSON = Annotated[Any, AfterValidator(storable_json)]
JSONObject = Annotated[dict[str, Any], AfterValidator(storable_json)]

Id = _text(min_length=1, max_length=ID_MAX)  # a session or call id to store
LookupId = _text(max_length=ID_MAX)  # an id to look up: anything that could be stored
Name = _text(max_length=NAME_MAX)  # optional names: message name, tool_call_id, decided_by
RequiredName = _text(min_length=1, max_length=NAME_MAX)  # tool names, tool call ids
AgentName = _text(min_length=1, max_length=AGENT_MAX)
OptionalAgentName = _text(max_length=AGENT_MAX)  # a switch's `from` (none at the start)


def cut_title(title: str) -> str:
    return title[:TITLE_MAX]  # longer titles are cut, as the legacy service did


Title = Annotated[StorableText, AfterValidator(cut_title)]
# Over REST a bound keeps requests sane; the service API takes any length, as legacy did.
RequestTitle = Annotated[
    str,
    StringConstraints(strict=True, max_length=10_000),
    BeforeValidator(_storable_if_text),
    AfterValidator(cut_title),
]

# Strict: a count is a JSON integer, never a string, float or boolean.
Count = Annotated[int, Strict(), Field(ge=0, le=INT_MAX)]
# An aware datetime or an ISO 8601 string (naive = UTC), normalized to aware UTC.
UTCDateTime = Annotated[datetime, BeforeValidator(to_utc_datetime)]
# What a person may decide; `pending` and `expired` are set by the service only.
Decision = Annotated[
    ApprovalStatus,
    PlainValidator(_one_of(DECISIONS)),
    WithJsonSchema({"type": "string", "enum": sorted(d.value for d in DECISIONS)}),
]
# What the holder of a claim reports about the run.
Outcome = Annotated[
    ApprovalStatus,
    PlainValidator(_one_of(OUTCOMES)),
    WithJsonSchema({"type": "string", "enum": sorted(o.value for o in OUTCOMES)}),
]
