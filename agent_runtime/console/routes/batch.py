"""Deciding several pending approvals at once, after seeing every one of them."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from agent_runtime.console.auth import CheckedLogin
from agent_runtime.console.routes.approvals import CHOICES
from agent_runtime.console.templating import render
from agent_runtime.core.dependencies import DBSession
from agent_runtime.errors import ConflictError, InvalidInputError
from agent_runtime.services import approvals as approval_service
from models import ApprovalStatus

router = APIRouter()

BATCH_MAX = 200


def _call_ids(values: list[Any]) -> list[str]:
    ids = list(dict.fromkeys(v for v in values if isinstance(v, str) and v))
    if not ids:
        raise InvalidInputError("select at least one tool call")
    if len(ids) > BATCH_MAX:
        raise InvalidInputError(f"select at most {BATCH_MAX} tool calls at once")
    return ids


def _decision(value: Any) -> ApprovalStatus:
    decision = CHOICES.get(str(value))
    if decision is None:
        raise InvalidInputError("choose approve or reject")
    return decision


@router.post("/batch")
async def confirm_batch(request: Request, login: CheckedLogin, db: DBSession) -> Response:
    """The list of every call the decision would apply to, to confirm."""
    form = await request.form()
    decision = _decision(form.get("decision"))
    approvals = []
    for call_id in _call_ids(form.getlist("call_id")):
        approval = await approval_service.get_approval(db, call_id)
        if approval is not None:
            approvals.append(approval)
    context = {
        "approvals": approvals,
        "decision": decision.value,
        "pending": ApprovalStatus.PENDING,
    }
    return render(request, "batch_confirm.html", context)


@router.post("/batch/confirm")
async def decide_batch(request: Request, login: CheckedLogin, db: DBSession) -> Response:
    form = await request.form()
    decision = _decision(form.get("decision"))
    message = str(form.get("message") or "").strip() or None
    done = skipped = 0
    for call_id in _call_ids(form.getlist("call_id")):
        approval = await approval_service.get_approval(db, call_id)
        if approval is None or approval["status"] != ApprovalStatus.PENDING:
            skipped += 1
            continue
        try:
            decided = await approval_service.decide_approval(
                db, call_id, decision, decided_by=login.reviewer, message=message
            )
        except ConflictError:
            skipped += 1
            continue
        if decided["decided_by"] == login.reviewer:
            done += 1
        else:
            skipped += 1
    query = urlencode({"done": decision.value, "n": done, "skipped": skipped})
    return RedirectResponse(f"/console/?{query}", status_code=303)
