"""Pending tool approvals through the service API, on every backend."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from tortoise import Tortoise

from agent_runtime.errors import InvalidInputError
from agent_runtime.services import database as local_svc
from models import PendingApproval


async def test_pending_approvals_are_listed_oldest_first(legacy):
    svc, db = legacy
    await svc.save_pending_approval(
        db, "s1", "call_1", "delete_file", {"path": "/tmp/a"}, "destructive"
    )
    await svc.save_pending_approval(db, "s1", "call_2", "send_mail", {"to": "x@example.com"})
    await svc.save_pending_approval(db, "s2", "call_3", "send_mail", {})

    pending = await svc.get_pending_approvals(db, "s1")

    assert [(p["call_id"], p["tool_name"], p["arguments"], p["reason"]) for p in pending] == [
        ("call_1", "delete_file", {"path": "/tmp/a"}, "destructive"),
        ("call_2", "send_mail", {"to": "x@example.com"}, None),
    ]
    assert set(pending[0]) == {"call_id", "tool_name", "arguments", "reason", "created_at"}
    assert pending[0]["created_at"].utcoffset() == timedelta(0)


async def test_saving_the_same_call_twice_is_a_no_op(legacy):
    svc, db = legacy
    await svc.save_pending_approval(db, "s1", "call_1", "delete_file", {"path": "/a"})
    await svc.save_pending_approval(db, "s1", "call_1", "other_tool", {"path": "/b"})

    pending = await svc.get_pending_approvals(db, "s1")

    assert [(p["tool_name"], p["arguments"]) for p in pending] == [("delete_file", {"path": "/a"})]


async def test_concurrent_saves_of_one_call_store_one_row(db, backend):
    # Local only: races transactions on separate Tortoise connections, as two workers
    # would (over REST each request is its own transaction already).
    svc = local_svc
    connection = Tortoise.get_connection(backend.database.dialect)

    async def save():
        async with connection._in_transaction() as tx:
            await svc.save_pending_approval(tx, "s1", "call_1", "delete_file", {"n": 1})

    results = await asyncio.gather(*(save() for _ in range(20)), return_exceptions=True)

    assert [r for r in results if isinstance(r, BaseException)] == []
    assert await PendingApproval.filter(call_id="call_1").using_db(db).count() == 1


@pytest.mark.parametrize("status", ["approved", "rejected", "cancelled"])
async def test_decided_approvals_leave_the_pending_list(legacy, status):
    svc, db = legacy
    await svc.save_pending_approval(db, "s1", "call_1", "delete_file", {})

    assert await svc.update_approval_status(db, "call_1", status) is True

    assert await svc.get_pending_approvals(db, "s1") == []
    row = await PendingApproval.get(call_id="call_1").using_db(db)
    assert row.status == status


@pytest.mark.parametrize("status", ["done", "APPROVED", "", None, "pending"])
async def test_unknown_status_is_rejected_and_changes_nothing(legacy, status):
    svc, db = legacy
    await svc.save_pending_approval(db, "s1", "call_1", "delete_file", {})

    with pytest.raises(InvalidInputError, match="status must be one of"):
        await svc.update_approval_status(db, "call_1", status)

    assert [p["call_id"] for p in await svc.get_pending_approvals(db, "s1")] == ["call_1"]


async def test_a_status_update_overwrites_another_decision_last_write_wins(legacy):
    svc, db = legacy
    await svc.save_pending_approval(db, "s1", "call_1", "delete_file", {})

    assert await svc.update_approval_status(db, "call_1", "approved") is True
    assert await svc.update_approval_status(db, "call_1", "rejected") is True
    assert await svc.update_approval_status(db, "call_1", "rejected") is True

    row = await PendingApproval.get(call_id="call_1").using_db(db)
    assert row.status == "rejected"


async def test_a_status_update_leaves_a_claimed_call_alone(legacy):
    svc, db = legacy
    await svc.save_pending_approval(db, "s1", "call_1", "delete_file", {})
    assert await svc.update_approval_status(db, "call_1", "approved") is True
    await local_svc.claim_approval(db, "call_1")

    assert await svc.update_approval_status(db, "call_1", "rejected") is False

    row = await PendingApproval.get(call_id="call_1").using_db(db)
    assert row.status == "claimed"


async def test_unknown_call_ids_return_false(legacy):
    svc, db = legacy
    assert await svc.update_approval_status(db, "nope", "approved") is False
    assert await svc.delete_pending_approval(db, "nope") is False


async def test_delete_pending_approval(legacy):
    svc, db = legacy
    await svc.save_pending_approval(db, "s1", "call_1", "delete_file", {})

    assert await svc.delete_pending_approval(db, "call_1") is True
    assert await svc.get_pending_approvals(db, "s1") == []


@pytest.mark.parametrize(
    "args",
    [
        ("", "call_1", "tool", {}),
        ("s1", "", "tool", {}),
        ("s1", "call_1", "", {}),
        ("s1", "call_1", "tool", ["not", "a", "dict"]),
        ("s1", "c" * 256, "tool", {}),
    ],
)
async def test_invalid_approvals_are_rejected(legacy, args):
    svc, db = legacy
    with pytest.raises(InvalidInputError):
        await svc.save_pending_approval(db, *args)
    assert await PendingApproval.all().using_db(db).count() == 0
