"""One approval: what the agent asked, the conversation that led to it, the decision."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from agent_runtime.console.auth import CheckedLogin, ConsoleUser
from agent_runtime.console.templating import diff_lines, path_segment, pretty_json, render
from agent_runtime.core.dependencies import DBSession
from agent_runtime.core.params import CallId
from agent_runtime.errors import ConflictError, InvalidInputError, NotFoundError
from agent_runtime.schemas.types import JSONObject, parse_json
from agent_runtime.schemas.validation import validate
from agent_runtime.services import approvals as approval_service
from agent_runtime.services import events as event_service
from agent_runtime.services import messages as message_service
from agent_runtime.services._common import DB
from models import ApprovalStatus

router = APIRouter()

RECENT_MESSAGES = 20
CHOICES = {"approved": ApprovalStatus.APPROVED, "rejected": ApprovalStatus.REJECTED}


async def _approval(db: DB, call_id: str) -> dict[str, Any]:
    approval = await approval_service.get_approval(db, call_id)
    if approval is None:
        raise NotFoundError(f"there is no tool call {call_id!r}")
    return approval


@dataclass(frozen=True)
class Draft:
    """What the reviewer typed, kept in the form when a decision is refused."""

    message: str
    arguments_text: str | None


async def approval_page(
    request: Request,
    db: DB,
    approval: Mapping[str, Any],
    *,
    status: int = 200,
    error: str | None = None,
    draft: Draft | None = None,
    already: Mapping[str, Any] | None = None,
) -> Response:
    """The approval page; also what a refused decision answers with, the reviewer's
    input kept in the form."""
    recent = await message_service.list_messages(
        db, approval["session_id"], limit=RECENT_MESSAGES, latest=True
    )
    editable = approval["edited_arguments"] or approval["arguments"]
    context = {
        "approval": approval,
        "messages": recent.items if recent else [],
        "earlier_messages": bool(recent and recent.more_before),
        "events": await event_service.get_approval_events(db, approval["call_id"]),
        "arguments_text": (
            draft.arguments_text
            if draft and draft.arguments_text is not None
            else pretty_json(editable)
        ),
        "message": draft.message if draft else "",
        "error": error,
        "already": already,
        "flash": request.query_params.get("done", ""),
    }
    return render(request, "approval.html", context, status=status)


@router.get("/approvals/{call_id}")
async def show_approval(
    request: Request, call_id: CallId, login: ConsoleUser, db: DBSession
) -> Response:
    return await approval_page(request, db, await _approval(db, call_id))


def _edited(approval: dict[str, Any], text: str) -> dict[str, Any] | None:
    """The arguments the reviewer edited, or None when they left them as recorded.

    Read as the REST API reads a body (`parse_json`: integers exact, no recursion
    limit to hit) and held to the storage rule before anything is shown: the
    confirmation page prints them, and the reviewer must confirm what will be stored.
    """
    try:
        value = parse_json(text)
    except ValueError as exc:
        raise InvalidInputError(f"the arguments are not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidInputError("the arguments must be a JSON object")
    value = validate(JSONObject, value, "arguments")
    return None if value == approval["arguments"] else value


@router.post("/approvals/{call_id}/decide")
async def decide(request: Request, call_id: CallId, login: CheckedLogin, db: DBSession) -> Response:
    form = await request.form()
    approval = await _approval(db, call_id)
    decision = CHOICES.get(str(form.get("decision")))
    message = str(form.get("message") or "")
    text = form.get("arguments")
    kept = Draft(message, text if isinstance(text, str) else None)
    if decision is None:
        return await approval_page(
            request, db, approval, status=422, error="Choose Approve or Reject.", draft=kept
        )
    if approval["status"] != ApprovalStatus.PENDING:
        return await approval_page(request, db, approval, status=409, already=approval, draft=kept)
    try:
        edited = None
        if decision == ApprovalStatus.APPROVED and isinstance(text, str) and text.strip():
            edited = _edited(approval, text)
        if edited is not None and form.get("confirmed") != "1":
            context = {
                "approval": approval,
                "diff": diff_lines(approval["arguments"], edited),
                "arguments_text": pretty_json(edited),
                "message": message,
            }
            return render(request, "confirm_edit.html", context)
        decided = await approval_service.decide_approval(
            db,
            call_id,
            decision,
            decided_by=login.reviewer,
            message=message.strip() or None,
            arguments=edited,
        )
    except InvalidInputError as exc:
        return await approval_page(request, db, approval, status=422, error=str(exc), draft=kept)
    except ConflictError as exc:
        current = dict(exc.current) if exc.current else await _approval(db, call_id)
        return await approval_page(request, db, current, status=409, already=current, draft=kept)
    if decided["decided_by"] != login.reviewer:  # the same decision, taken first by someone else
        return await approval_page(request, db, decided, status=409, already=decided, draft=kept)
    target = f"/console/approvals/{path_segment(call_id)}?done={decision.value}"
    return RedirectResponse(target, status_code=303)
