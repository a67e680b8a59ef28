"""Claim an approved call, then report its outcome: the tool runs exactly once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from tortoise import Tortoise

from agent_runtime.errors import ConflictError, InvalidInputError, NotFoundError
from agent_runtime.services import database as svc
from agent_runtime.services.retention import expire_pending_approvals
from models import PendingApproval

ARGS = {"path": "/tmp/a"}


async def approved(db, call_id="call_1", **decision):
    await svc.save_pending_approval(db, "s1", call_id, "delete_file", ARGS)
    return await svc.decide_approval(db, call_id, "approved", **decision)


async def claimed(db, call_id="call_1", **claim):
    await approved(db, call_id)
    return await svc.claim_approval(db, call_id, **claim)


async def test_an_approved_call_is_claimed_with_a_token(db):
    await approved(db)

    token, approval = await svc.claim_approval(db, "call_1", claimed_by="worker-1")

    assert isinstance(token, str) and len(token) >= 32
    assert approval["status"] == "claimed"
    assert approval["claimed_by"] == "worker-1"
    assert approval["claimed_at"].utcoffset() == timedelta(0)
    assert approval["claim_expires_at"] > approval["claimed_at"]
    assert "claim_token_hash" not in approval and token not in str(approval)
    assert await svc.get_approval(db, "call_1") == approval


async def test_the_claim_shows_edited_arguments_and_keeps_the_original(db):
    await approved(db, arguments={"path": "/tmp/draft"}, message="the draft only")

    _, approval = await svc.claim_approval(db, "call_1")

    assert approval["edited_arguments"] == {"path": "/tmp/draft"}
    assert approval["arguments"] == ARGS
    assert approval["message"] == "the draft only"


async def set_status(db, status):
    await svc.save_pending_approval(db, "s1", "call_1", "delete_file", ARGS)
    if status == "expired":
        old = datetime.now(UTC) - timedelta(hours=2)
        await PendingApproval.filter(call_id="call_1").using_db(db).update(created_at=old)
        assert await expire_pending_approvals(db, 1) == 1
    elif status != "pending":
        await svc.decide_approval(db, "call_1", status)


@pytest.mark.parametrize("status", ["pending", "rejected", "cancelled", "expired"])
async def test_only_an_approved_call_can_be_claimed(db, status):
    await set_status(db, status)

    with pytest.raises(ConflictError, match="not approved") as refused:
        await svc.claim_approval(db, "call_1")

    assert refused.value.current["status"] == status
    assert (await svc.get_approval(db, "call_1"))["status"] == status
    assert "approval.claimed" not in [e["type"] for e in await svc.read_events(db)]


async def test_a_second_claim_while_the_lease_holds_is_refused_with_the_holder(db):
    _, first = await claimed(db, claimed_by="worker-1")

    with pytest.raises(ConflictError, match="claimed by worker-1") as refused:
        await svc.claim_approval(db, "call_1", claimed_by="worker-2")

    assert refused.value.current == first
    assert await svc.get_approval(db, "call_1") == first


async def test_a_claim_whose_lease_ran_out_is_taken_over_and_recorded(db):
    old_token, first = await claimed(db, claimed_by="worker-1", lease_seconds=0.05)
    await asyncio.sleep(0.2)

    token, second = await svc.claim_approval(db, "call_1", claimed_by="worker-2")

    assert token != old_token
    assert (second["status"], second["claimed_by"]) == ("claimed", "worker-2")
    reclaim = (await svc.get_approval_events(db, "call_1"))[-1]
    assert (reclaim["type"], reclaim["actor"]) == ("approval.claimed", "worker-2")
    assert reclaim["data"]["reclaimed"] is True
    assert reclaim["data"]["previous_claimed_by"] == "worker-1"
    assert reclaim["data"]["previous_claimed_at"] == first["claimed_at"].isoformat()
    with pytest.raises(ConflictError):  # the first holder may no longer report
        await svc.report_result(db, "call_1", old_token, "executed")


@pytest.mark.parametrize("status", ["executed", "failed"])
async def test_the_holder_reports_the_outcome_with_its_result(db, status):
    token, _ = await claimed(db, claimed_by="worker-1")

    reported = await svc.report_result(db, "call_1", token, status, {"rows": [1, 2]})

    assert (reported["status"], reported["result"]) == (status, {"rows": [1, 2]})
    assert reported["finished_at"].utcoffset() == timedelta(0)
    assert await svc.get_approval(db, "call_1") == reported
    last = (await svc.get_approval_events(db, "call_1"))[-1]
    assert (last["type"], last["actor"], last["data"]) == (
        f"approval.{status}",
        "worker-1",
        {"result": {"rows": [1, 2]}},
    )


async def test_a_wrong_token_is_refused_and_changes_nothing(db):
    _, approval = await claimed(db)

    with pytest.raises(ConflictError, match="not the current claim") as refused:
        await svc.report_result(db, "call_1", "not-the-token", "executed")

    assert refused.value.current == approval
    assert await svc.get_approval(db, "call_1") == approval


async def test_a_report_after_the_lease_ran_out_is_refused(db):
    token, _ = await claimed(db, lease_seconds=0.05)
    await asyncio.sleep(0.2)

    with pytest.raises(ConflictError, match="expired"):
        await svc.report_result(db, "call_1", token, "executed")

    assert (await svc.get_approval(db, "call_1"))["status"] == "claimed"


async def test_the_same_report_again_returns_the_approval_unchanged(db):
    token, _ = await claimed(db)
    await svc.report_result(db, "call_1", token, "executed", {"deleted": 1})
    stored = await svc.get_approval(db, "call_1")
    events = await svc.get_approval_events(db, "call_1")

    again = await svc.report_result(db, "call_1", token, "executed", {"deleted": 1})

    assert again == stored
    assert await svc.get_approval_events(db, "call_1") == events


@pytest.mark.parametrize(
    ("status", "result"), [("failed", {"deleted": 1}), ("executed", {"deleted": 2})]
)
async def test_a_different_report_after_the_outcome_is_refused(db, status, result):
    token, _ = await claimed(db)
    await svc.report_result(db, "call_1", token, "executed", {"deleted": 1})

    with pytest.raises(ConflictError, match="already reported executed"):
        await svc.report_result(db, "call_1", token, status, result)

    assert (await svc.get_approval(db, "call_1"))["result"] == {"deleted": 1}


@pytest.mark.parametrize("status", ["executed", "failed"])
async def test_a_claim_after_the_outcome_is_refused_with_the_outcome(db, status):
    token, _ = await claimed(db)
    await svc.report_result(db, "call_1", token, status, {"exit": 3})

    with pytest.raises(ConflictError, match="do not run it again") as refused:
        await svc.claim_approval(db, "call_1")

    assert refused.value.current["status"] == status
    assert refused.value.current["result"] == {"exit": 3}


@pytest.mark.parametrize("claimers", [2, 5])
async def test_concurrent_claims_give_exactly_one_token(db, backend, claimers):
    await approved(db)
    # Separate transactions racing, as workers would (PostgreSQL: separate connections).
    connection = Tortoise.get_connection(backend.database.dialect)

    results = await asyncio.gather(
        *(svc.claim_approval(connection, "call_1", claimed_by=f"w{i}") for i in range(claimers)),
        return_exceptions=True,
    )

    tokens = [r for r in results if isinstance(r, tuple)]
    assert len(tokens) == 1
    assert all(isinstance(r, ConflictError) for r in results if r not in tokens)
    winner = tokens[0][1]["claimed_by"]
    assert (await svc.get_approval(db, "call_1"))["claimed_by"] == winner
    claims = await svc.read_events(db, types=["approval.claimed"])
    assert [e["actor"] for e in claims] == [winner]


async def racing(connection, first, second):
    """`first(tx)` in a transaction held open while `second()` starts: (first's result,
    second's result or error). Deterministically the interleaving a row lock must order."""
    async with connection._in_transaction() as tx:
        out = await first(tx)
        later = asyncio.create_task(second())
        await asyncio.sleep(0.3)  # `second` reads the row before `first` commits
    return out, (await asyncio.gather(later, return_exceptions=True))[0]


async def test_a_claim_started_before_another_commits_is_refused(db, backend):
    # Tortoise drops select_for_update() from a .values() query: the row lock must be real.
    await approved(db)
    connection = Tortoise.get_connection(backend.database.dialect)

    (_, first), second = await racing(
        connection,
        lambda tx: svc.claim_approval(tx, "call_1", claimed_by="w1"),
        lambda: svc.claim_approval(connection, "call_1", claimed_by="w2"),
    )

    assert isinstance(second, ConflictError), second
    assert (await svc.get_approval(db, "call_1"))["claimed_by"] == first["claimed_by"] == "w1"


async def test_two_reports_at_once_record_one_outcome(db, backend):
    token, _ = await claimed(db)
    connection = Tortoise.get_connection(backend.database.dialect)

    _, second = await racing(
        connection,
        lambda tx: svc.report_result(tx, "call_1", token, "executed", {"n": 1}),
        lambda: svc.report_result(connection, "call_1", token, "failed", {"n": 2}),
    )

    assert isinstance(second, ConflictError), second
    assert (await svc.get_approval(db, "call_1"))["status"] == "executed"
    outcomes = await svc.read_events(db, types=["approval.executed", "approval.failed"])
    assert [e["type"] for e in outcomes] == ["approval.executed"]


async def test_unknown_calls_are_not_found(db):
    with pytest.raises(NotFoundError):
        await svc.claim_approval(db, "nope")
    with pytest.raises(NotFoundError):
        await svc.report_result(db, "nope", "token", "executed")


@pytest.mark.parametrize("status", ["approved", "claimed", "done", "EXECUTED", "", None])
async def test_only_executed_or_failed_can_be_reported(db, status):
    token, approval = await claimed(db)

    with pytest.raises(InvalidInputError):
        await svc.report_result(db, "call_1", token, status)

    assert await svc.get_approval(db, "call_1") == approval


# Tortoise's JSONField takes a str as JSON already encoded: the service must not let it.
@pytest.mark.parametrize("result", ["ok", "[1, 2]", "42", "null"])
async def test_a_string_result_is_stored_as_that_string(db, result):
    token, _ = await claimed(db)

    reported = await svc.report_result(db, "call_1", token, "executed", result)

    assert reported["result"] == result
    assert (await svc.get_approval(db, "call_1"))["result"] == result
    assert await svc.report_result(db, "call_1", token, "executed", result) == reported
