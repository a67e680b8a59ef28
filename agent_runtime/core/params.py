"""Path parameters of both the REST API's and the console's routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from models.limits import ID_MAX

__all__ = ["CallId", "SessionId"]

SessionId = Annotated[str, Path(min_length=1, max_length=ID_MAX, description="the caller's id")]
CallId = Annotated[str, Path(min_length=1, max_length=ID_MAX, description="the tool call id")]
