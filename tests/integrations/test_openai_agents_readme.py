"""The README's "OpenAI Agents SDK" example runs as written.

The code block is taken from README.md and executed; its `main` gets a fake model
(no network) and an empty database of the backend under test, and a reviewer
approves the refund through the service API while the example waits.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from tortoise.exceptions import BaseORMException

pytest.importorskip("agents")

from agent_runtime.services import database
from tests.integrations.conftest import fake_model, function_call, text_message

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## OpenAI Agents SDK\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```python\n(.*?)^```$", section, flags=re.M | re.S)
    assert len(blocks) == 1, "one python block in the OpenAI Agents SDK section"
    return blocks[0]


async def approve_pending(session_id: str) -> list[str]:
    """A reviewer: approve the session's first pending approval, once there is one."""
    while True:
        try:
            db = database.get_connection()
        except RuntimeError:  # the example has not connected yet
            await asyncio.sleep(0.02)
            continue
        try:
            pending = await database.get_pending_approvals(db, session_id)
        except BaseORMException:  # not migrated yet
            pending = []
        if pending:
            call_id = pending[0]["call_id"]
            await database.decide_approval(db, call_id, "approved", decided_by="alice")
            return [call_id]
        await asyncio.sleep(0.02)


async def test_the_readme_example_runs(backend, databases, capsys):
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(readme_example(), str(README), "exec"), namespace)
    model = fake_model(
        [text_message("Hello Ada!")],
        [function_call("refund", '{"order_id": "7", "amount": 20}', "call_refund")],
        [text_message("Order 7 is refunded.")],
    )
    url = databases.empty(backend.name)

    reviewer = asyncio.create_task(approve_pending("customer-42"))
    main = namespace["main"]
    try:
        await asyncio.wait_for(main(model=model, db_url=url), 60)  # type: ignore[operator]
        assert await asyncio.wait_for(reviewer, 5) == ["call_refund"]
    finally:
        reviewer.cancel()

    out = capsys.readouterr().out.splitlines()
    assert out == [
        "Hello Ada!",
        "Order 7 is refunded.",
        "6 items in session customer-42",
    ]
    # The refund ran once, and the approval says so.
    await database.init_database(url)
    try:
        approval = await database.get_approval(database.get_connection(), "call_refund")
        assert approval is not None
        assert approval["status"] == "executed"
        assert approval["result"] == "refunded 20.0 EUR on order 7"
    finally:
        await database.close_db()
