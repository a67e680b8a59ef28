"""The event log: every approval change and every session save, in order, kept."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta

import pytest
from tortoise import Tortoise

from agent_runtime.errors import InvalidInputError, NotFoundError
from agent_runtime.services import database as svc
from agent_runtime.services._common import atomic
from agent_runtime.services.events import last_event_id
from agent_runtime.services.retention import expire_pending_approvals
from models import ApprovalStatus, PendingApproval, Session

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ARGS = {"path": "/tmp/a"}


async def approve_and_claim(db, call_id="call_1", **claim):
    await svc.save_pending_approval(db, "s1", call_id, "delete_file", ARGS)
    await svc.decide_approval(db, call_id, "approved")
    return await svc.claim_approval(db, call_id, **claim)


def types_of(events):
    return [e["type"] for e in events]


async def test_a_decision_records_actor_message_and_both_argument_sets(db):
    await svc.save_pending_approval(db, "s1", "call_1", "delete_file", ARGS, "destructive")
    await svc.decide_approval(
        db,
        "call_1",
        "approved",
        decided_by="alice",
        message="only the draft",
        arguments={"path": "/tmp/draft"},
    )

    created, decided = await svc.get_approval_events(db, "call_1")

    assert created["type"] == "approval.created"
    assert created["data"] == {"tool_name": "delete_file", "arguments": ARGS}
    assert (decided["type"], decided["actor"], decided["session_id"]) == (
        "approval.decided",
        "alice",
        "s1",
    )
    assert decided["data"] == {
        "status": "approved",
        "message": "only the draft",
        "arguments": {"path": "/tmp/draft"},
        "original_arguments": ARGS,
    }


async def test_a_rejection_is_a_decided_event_and_a_cancellation_its_own(db):
    await svc.save_pending_approval(db, "s1", "call_1", "delete_file", ARGS)
    await svc.save_pending_approval(db, "s1", "call_2", "delete_file", ARGS)
    await svc.decide_approval(db, "call_1", "rejected", decided_by="bob", message="no")
    await svc.decide_approval(db, "call_2", "cancelled")

    rejected = (await svc.get_approval_events(db, "call_1"))[-1]
    cancelled = (await svc.get_approval_events(db, "call_2"))[-1]

    assert (rejected["type"], rejected["data"]) == (
        "approval.decided",
        {"status": "rejected", "message": "no"},
    )
    assert (cancelled["type"], cancelled["data"]["status"]) == ("approval.cancelled", "cancelled")


async def test_the_whole_run_is_recorded_oldest_first_with_utc_times(db):
    token, _ = await approve_and_claim(db, claimed_by="worker-1")
    await svc.report_result(db, "call_1", token, "executed", {"deleted": 1})
    await approve_and_claim(db, "call_2")

    events = await svc.get_approval_events(db, "call_1")

    assert types_of(events) == [
        "approval.created",
        "approval.decided",
        "approval.claimed",
        "approval.executed",
    ]
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert all(e["created_at"].utcoffset() == timedelta(0) for e in events)
    assert [e["created_at"] for e in events] == sorted(e["created_at"] for e in events)
    claimed, executed = events[2:]
    assert claimed["actor"] == executed["actor"] == "worker-1"
    assert claimed["data"]["reclaimed"] is False
    assert executed["data"] == {"result": {"deleted": 1}}


async def test_a_failed_run_records_approval_failed_with_its_result(db):
    token, _ = await approve_and_claim(db)
    await svc.report_result(db, "call_1", token, "failed", {"error": "disk full"})

    last = (await svc.get_approval_events(db, "call_1"))[-1]

    assert (last["type"], last["data"]) == ("approval.failed", {"result": {"error": "disk full"}})


async def test_expiry_by_retention_is_recorded(db):
    await svc.save_pending_approval(db, "s1", "call_1", "delete_file", ARGS)
    await svc.save_pending_approval(db, "s1", "call_2", "delete_file", ARGS)
    await (
        PendingApproval.filter(call_id="call_1")
        .using_db(db)
        .update(created_at=datetime.now(UTC) - timedelta(hours=5))
    )

    assert await expire_pending_approvals(db, 1) == 1

    expired = (await svc.get_approval_events(db, "call_1"))[-1]
    assert (expired["type"], expired["actor"]) == ("approval.expired", "retention")
    assert types_of(await svc.get_approval_events(db, "call_2")) == ["approval.created"]


@pytest.mark.parametrize("decision", ["approved", "rejected"])
async def test_a_decision_committing_during_expiry_is_not_overwritten(db, backend, decision):
    # Retention re-reads the still-pending rows under a row lock before expiring them.
    await svc.save_pending_approval(db, "s1", "call_1", "delete_file", ARGS)
    await (
        PendingApproval.filter(call_id="call_1")
        .using_db(db)
        .update(created_at=datetime.now(UTC) - timedelta(hours=5))
    )
    connection = Tortoise.get_connection(backend.database.dialect)

    async with connection._in_transaction() as tx:
        await svc.decide_approval(tx, "call_1", decision)
        expiring = asyncio.create_task(expire_pending_approvals(connection, 1))
        await asyncio.sleep(0.3)  # retention reads the row before the decision commits

    assert await expiring == 0
    assert (await svc.get_approval(db, "call_1"))["status"] == decision
    assert types_of(await svc.get_approval_events(db, "call_1")) == [
        "approval.created",
        "approval.decided",
    ]


async def test_events_stay_after_the_approval_is_deleted(db):
    await svc.save_pending_approval(db, "s1", "call_1", "delete_file", ARGS)
    await svc.decide_approval(db, "call_1", "rejected")

    assert await svc.delete_pending_approval(db, "call_1") is True

    events = await svc.get_approval_events(db, "call_1")
    assert types_of(events) == ["approval.created", "approval.decided", "approval.deleted"]
    assert events[-1]["session_id"] == "s1"


async def test_a_call_never_recorded_has_no_events_but_not_found(db):
    with pytest.raises(NotFoundError):
        await svc.get_approval_events(db, "nope")


async def test_a_second_save_of_the_same_call_records_no_second_created_event(db):
    await svc.save_pending_approval(db, "s1", "call_1", "delete_file", ARGS)
    await svc.save_pending_approval(db, "s1", "call_1", "other_tool", {})
    await svc.create_approval(db, "s1", "call_1", "delete_file", ARGS)

    assert types_of(await svc.get_approval_events(db, "call_1")) == ["approval.created"]


async def test_a_change_rolled_back_leaves_no_event(db):
    await svc.save_pending_approval(db, "s1", "call_1", "delete_file", ARGS)

    with pytest.raises(RuntimeError, match="rolled back"):
        async with atomic(db) as tx:
            await svc.decide_approval(tx, "call_1", "approved", decided_by="alice")
            await svc.save_pending_approval(tx, "s1", "call_2", "delete_file", ARGS)
            raise RuntimeError("rolled back")

    assert types_of(await svc.get_approval_events(db, "call_1")) == ["approval.created"]
    assert (await svc.get_approval(db, "call_1"))["status"] == "pending"
    assert await svc.read_events(db, call_id="call_2") == []


async def test_session_saves_record_their_new_version(db):
    await svc.save_session(db, "s1", [{"role": "user", "content": "hi"}], T0)
    await svc.append_messages(db, "s1", [{"role": "assistant", "content": "hello"}], T0)
    version = await svc.get_session_version(db, "s1")

    saves = await svc.read_events(db, types=["session.saved"])

    assert [(e["session_id"], e["call_id"], e["data"]) for e in saves] == [
        ("s1", None, {"version": version - 1}),
        ("s1", None, {"version": version}),
    ]


async def test_read_events_filters_by_type_session_and_position(db):
    await svc.save_pending_approval(db, "s1", "call_1", "delete_file", ARGS)
    await svc.save_pending_approval(db, "s2", "call_2", "delete_file", ARGS)
    await svc.decide_approval(db, "call_1", "approved")
    await svc.save_session(db, "s2", [], T0)

    everything = await svc.read_events(db)
    ids = [e["id"] for e in everything]

    assert types_of(everything) == [
        "approval.created",
        "approval.created",
        "approval.decided",
        "session.saved",
    ]
    assert all(a < b for a, b in itertools.pairwise(ids))
    assert ids[-1] == await last_event_id(db)
    decided_or_saved = await svc.read_events(db, types=["approval.decided", "session.saved"])
    assert types_of(decided_or_saved) == ["approval.decided", "session.saved"]
    assert [e["call_id"] for e in await svc.read_events(db, session_id="s2")] == ["call_2", None]
    assert [e["id"] for e in await svc.read_events(db, after=ids[1])] == ids[2:]
    assert [e["id"] for e in await svc.read_events(db, after=ids[0], limit=2)] == ids[1:3]
    assert await svc.read_events(db, after=ids[-1]) == []


@pytest.mark.parametrize(
    "bad", [{"types": ["approval.nope"]}, {"after": -1}, {"limit": 0}, {"after": "1"}]
)
async def test_read_events_rejects_bad_filters(db, bad):
    with pytest.raises(InvalidInputError):
        await svc.read_events(db, **bad)


async def test_hard_delete_removes_the_events_of_that_session_only(db):
    for session_id in ("old", "kept"):
        await svc.save_session(db, session_id, [], T0)
        await svc.save_pending_approval(db, session_id, f"call_{session_id}", "tool", {})
        await svc.delete_session(db, session_id)
    long_ago = datetime.now(UTC) - timedelta(days=40)
    await Session.filter(id="old").using_db(db).update(deleted_at=long_ago)
    kept = await svc.read_events(db, session_id="kept")

    assert await svc.hard_delete_old_sessions(db, 30) == 1

    assert await svc.read_events(db, session_id="old") == []
    assert await svc.read_events(db, session_id="kept") == kept
    with pytest.raises(NotFoundError):
        await svc.get_approval_events(db, "call_old")


async def test_update_approval_status_records_a_decided_event(db):
    await svc.save_pending_approval(db, "s1", "call_1", "delete_file", ARGS)

    assert await svc.update_approval_status(db, "call_1", "approved") is True

    decided = (await svc.get_approval_events(db, "call_1"))[-1]
    assert (decided["type"], decided["data"]) == (
        "approval.decided",
        {"status": "approved", "message": None},
    )


async def test_update_approval_status_leaves_an_executed_approval_alone(db):
    token, _ = await approve_and_claim(db)
    await svc.report_result(db, "call_1", token, "executed", {"ok": True})
    before = await svc.get_approval_events(db, "call_1")

    assert await svc.update_approval_status(db, "call_1", "rejected") is False

    approval = await svc.get_approval(db, "call_1")
    assert (approval["status"], approval["result"]) == (ApprovalStatus.EXECUTED, {"ok": True})
    assert await svc.get_approval_events(db, "call_1") == before
