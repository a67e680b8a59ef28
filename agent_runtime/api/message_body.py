"""The message-list body of the save and append routes, read without pydantic.

FastAPI would decode the whole list with the stdlib, validate every message and
the route would dump every one back to a dict: at 1,000 messages most of a
save's time, for messages that are already stored. Here the body is decoded
by `parse_json` (integers kept exact, nesting bounded: schemas/types.py) and only checked
to be a list of objects; the service validates, with
`MessageCreate`, the messages it writes. When it refuses one, the whole list is
validated as FastAPI would have, so the 422 is the one FastAPI gives (same
`details`, locations under `body`).
"""

from __future__ import annotations

import email.message
import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from agent_runtime.errors import InvalidInputError
from agent_runtime.schemas.sessions import MessageCreate
from agent_runtime.schemas.types import parse_json

__all__ = ["MESSAGES_BODY", "add_message_schemas", "read_messages", "refuse_messages"]

_MESSAGES: TypeAdapter[list[MessageCreate]] = TypeAdapter(list[MessageCreate])

# The OpenAPI request body FastAPI would have generated for `list[MessageCreate]`.
MESSAGES_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/MessageCreate"},
                    "title": "Messages",
                }
            }
        },
    }
}


def add_message_schemas(app: FastAPI) -> None:
    """Put `MessageCreate` (and what it refers to) in the app's OpenAPI components:
    FastAPI only collects the models of declared parameters."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            defs = _MESSAGES.json_schema(ref_template="#/components/schemas/{model}")["$defs"]
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, definition in defs.items():
                components.setdefault(name, definition)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def _is_json(content_type: str | None) -> bool:
    if content_type == "application/json":  # what nearly every client sends
        return True
    if not content_type:
        return False  # FastAPI's strict content type: no header, no JSON
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def refuse_messages(body: Any) -> None:
    """Raise the 422 FastAPI would give for `body` as `list[MessageCreate]`."""
    try:
        _MESSAGES.validate_python(body)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from None
    raise InvalidInputError("the body must be a JSON array of message objects")


async def read_messages(request: Request) -> list[Any]:
    """The body as decoded JSON: a list of objects (422 otherwise)."""
    body = await request.body()
    if not body:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    if not _is_json(request.headers.get("content-type")):
        refuse_messages(body)
    try:
        messages = parse_json(body)
    except json.JSONDecodeError as exc:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInputError("request body could not be decoded") from None
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", exc.pos),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": exc.msg},
                }
            ]
        ) from None
    if not isinstance(messages, list) or not all(type(m) is dict for m in messages):
        refuse_messages(messages)
    return messages
