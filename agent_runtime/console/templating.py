"""Jinja2 for the console: every template autoescaped, and the filters pages share."""

from __future__ import annotations

import contextlib
import difflib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from agent_runtime.schemas.types import parse_json, storable_json
from agent_runtime.timeutils import as_utc, utc_now

__all__ = ["DiffLine", "ToolCall", "diff_lines", "path_segment", "pretty_json", "render"]

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,  # every template, whatever its name: user data is never markup
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates = Jinja2Templates(env=_env)


def path_segment(value: Any) -> str:
    """`value` as one segment of a URL path: every character but letters, digits and
    `_.-~` percent-encoded, `/` included. Every id in a console link or redirect goes
    through it (the `path_segment` filter in templates), so no id can make a link
    lead to another page than its own."""
    return quote(str(value), safe="")


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def _utc(value: datetime) -> str:
    return as_utc(value).strftime("%Y-%m-%d %H:%M:%S UTC")


def _age(value: datetime) -> str:
    seconds = max(0, int((utc_now() - as_utc(value)).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


@dataclass(frozen=True)
class ToolCall:
    """One entry of a message's `tool_calls`, in whatever shape the agent stored it."""

    id: str | None
    name: str
    arguments: str


def _tool_calls(value: Any) -> list[ToolCall]:
    calls = value if isinstance(value, list) else [value]
    out = []
    for call in calls:
        if not isinstance(call, dict):
            out.append(ToolCall(None, "", pretty_json(call)))
            continue
        function: dict[str, Any] = (
            call["function"] if isinstance(call.get("function"), dict) else call
        )
        arguments = function.get("arguments", call.get("input"))
        if isinstance(arguments, str):  # OpenAI's format: JSON in a string
            # Shown as parsed only if storable JSON (not nested too deep to print);
            # otherwise as the text the agent sent.
            with contextlib.suppress(ValueError):
                arguments = storable_json(parse_json(arguments))
        text = arguments if isinstance(arguments, str) else pretty_json(arguments)
        out.append(ToolCall(call.get("id"), str(function.get("name") or ""), text))
    return out


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "add", "del" or "same"
    text: str


def diff_lines(before: Any, after: Any) -> list[DiffLine]:
    """The pretty-printed JSON of `before` and `after`, line by line."""
    kinds = {"+ ": "add", "- ": "del", "  ": "same"}
    return [
        DiffLine(kinds[line[:2]], line[2:])
        for line in difflib.ndiff(pretty_json(before).splitlines(), pretty_json(after).splitlines())
        if line[:2] in kinds
    ]


_env.filters.update(
    pretty_json=pretty_json,
    utc=_utc,
    age=_age,
    tool_calls=_tool_calls,
    path_segment=path_segment,
)


def render(request: Request, name: str, context: dict[str, Any], *, status: int = 200) -> Response:
    """A page; `login` (who is logged in, for the header and the forms' CSRF token)
    comes from the request, set by the login dependency."""
    context = {"login": getattr(request.state, "console_login", None), **context}
    return templates.TemplateResponse(request, name, context, status_code=status)
