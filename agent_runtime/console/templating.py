"""Jinja2 for the console: every template autoescaped, and the filters pages share."""

from __future__ import annotations

import contextlib
import difflib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from agent_runtime.timeutils import as_utc, utc_now

__all__ = ["DiffLine", "ToolCall", "diff_lines", "pretty_json", "render"]

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,  # every template, whatever its name: user data is never markup
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates = Jinja2Templates(env=_env)


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
            with contextlib.suppress(ValueError):
                arguments = json.loads(arguments)
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


_env.filters.update(pretty_json=pretty_json, utc=_utc, age=_age, tool_calls=_tool_calls)


def render(request: Request, name: str, context: dict[str, Any], *, status: int = 200) -> Response:
    """A page; `login` (who is logged in, for the header and the forms' CSRF token)
    comes from the request, set by the login dependency."""
    context = {"login": getattr(request.state, "console_login", None), **context}
    return templates.TemplateResponse(request, name, context, status_code=status)
