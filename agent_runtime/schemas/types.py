"""What the service can store, defined once as annotated types.

The REST schemas, the service API (legacy dict callers are validated with the
same types) and the legacy import all use these, so a value refused on one path
is refused, with the same message, on every path.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

import orjson
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainValidator,
    Strict,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import from_json

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
    "parse_json",
    "reachable_id",
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


def parse_json(raw: str | bytes) -> Any:
    """JSON text (bytes: UTF-8) as the values `storable_json` then judges; every
    JSON body, form field or cursor a client sends that holds JSON is read with it.

    pydantic-core's parser (jiter): as fast as orjson, but integers stay exact
    (orjson turns one beyond 64 bits into a float, 2**64 into 1.8446744073709552e19,
    so the storage rule could not refuse it and a reviewer would see another number
    than the agent sent), and nesting deeper than 200 levels is a refusal like any
    syntax error: never a `RecursionError`, here or in the code that copies or
    compares the value before the rule refuses it (deeper than `JSON_DEPTH_MAX`).
    1e400, NaN and Infinity are read as floats, which the rule refuses, as it does
    in-process and in the bodies FastAPI decodes.

    Raises `json.JSONDecodeError` (a `ValueError`), with `msg` and `pos` (orjson's,
    when it refuses the text too).
    """
    try:
        return from_json(raw)
    except ValueError as exc:
        reason = str(exc)
    try:  # where the text fails, for the error's details (the position FastAPI gives)
        orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise exc from None
    raise json.JSONDecodeError(reason, "", 0)


# The id rule: an id must be reachable as one path segment of every route and console
# link that names it (`/sessions/{session_id}`, `/approvals/{call_id}`,
# `/console/...`), the link built with `urllib.parse.quote(id, safe="")`. Refused:
# `/` (a `%2F` is decoded before routing: no route matches), `.` and `..` (dot
# segments: HTTP clients remove them, browsers even percent-encoded as `%2E%2E`, so a
# link could only lead elsewhere), and control characters (C0, DEL, C1: URL parsers
# strip or refuse them unencoded; no id needs one, and they would break the log lines
# and pages that show the id). Everything else (`?`, `#`, `%`, `\`, spaces, any other
# Unicode) is reachable once percent-encoded.
_UNREACHABLE = re.compile(r"[/\x00-\x1f\x7f-\x9f]")
_DOT_SEGMENTS = frozenset({".", ".."})
UNREACHABLE_ID = (
    "must not be '.' or '..', nor contain '/' or a control character: "
    "no URL could reach it as one path segment"
)


def reachable_id(value: str) -> str:
    """`value` if routes and console links can reach it as one path segment (the id
    rule, applied to every id the service stores: session ids, call ids)."""
    if value in _DOT_SEGMENTS or _UNREACHABLE.search(value):
        raise ValueError(UNREACHABLE_ID)
    return value


def _one_of(allowed: frozenset[ApprovalStatus]) -> Any:
    def check(value: Any) -> ApprovalStatus:
        if not isinstance(value, str) or value not in allowed:
            raise ValueError(f"must be one of {', '.join(sorted(allowed))}, got {value!r}")
        return ApprovalStatus(value)

    return check


def _text(*, min_length: int = 0, max_length: int | None = None, rule: Any = None) -> Any:
    checks: list[Any] = [
        StringConstraints(strict=True, min_length=min_length, max_length=max_length),
        BeforeValidator(_storable_if_text),
    ]
    if rule is not None:
        checks.append(AfterValidator(rule))
    return Annotated[(str, *checks)]


# Strict: text is a str, never bytes or a number turned into one.
StorableText = Annotated[str, Strict(), AfterValidator(storable_text)]
StorableJSON = Annotated[Any, AfterValidator(storable_json)]
JSONObject = Annotated[dict[str, Any], AfterValidator(storable_json)]

# A session or call id to store: 1 to ID_MAX storable characters, reachable by URL.
Id = _text(min_length=1, max_length=ID_MAX, rule=reachable_id)
# An id to look up: anything that could be stored (ids stored before the id rule too).
LookupId = _text(max_length=ID_MAX)
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
