"""One definition of every storage rule: the REST schemas, the service API and the
legacy import refuse the same values, with limits and enums taken from the models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from agent_runtime.errors import InvalidInputError
from agent_runtime.main import create_app
from agent_runtime.schemas.approvals import ApprovalCreate
from agent_runtime.schemas.sessions import MessageCreate, MessageIn
from agent_runtime.schemas.types import Count, Decision, Id, JSONObject, StorableText, Title
from agent_runtime.services import database as svc
from models import DECISIONS, AgentContext, ApprovalStatus, Message, PendingApproval, Session
from models.limits import AGENT_MAX, ID_MAX, INT_MAX, NAME_MAX, TITLE_MAX

NOW = datetime(2026, 1, 2, tzinfo=UTC)
UNSTORABLE = ["a\x00b", "\ud800", "x\udfff"]


def _max_length(model: Any, field: str) -> int:
    return int(model._meta.fields_map[field].max_length)


def test_models_take_their_lengths_from_the_limits_module():
    assert _max_length(Session, "id") == ID_MAX
    assert _max_length(Session, "title") == TITLE_MAX
    assert _max_length(PendingApproval, "call_id") == ID_MAX
    assert _max_length(PendingApproval, "session_id") == ID_MAX
    assert _max_length(PendingApproval, "tool_name") == NAME_MAX
    assert _max_length(Message, "name") == NAME_MAX
    assert _max_length(AgentContext, "current_agent") == AGENT_MAX


def test_openapi_limits_and_enums_come_from_the_models():
    schemas = create_app().openapi()["components"]["schemas"]
    approval = schemas["ApprovalCreate"]["properties"]
    assert approval["call_id"]["maxLength"] == ID_MAX
    assert approval["tool_name"]["maxLength"] == NAME_MAX
    assert schemas["ApprovalStatus"]["enum"] == [s.value for s in ApprovalStatus]
    decision = schemas["ApprovalDecisionCreate"]["properties"]["status"]
    assert sorted(decision["enum"]) == sorted(d.value for d in DECISIONS)
    assert schemas["MessageRole"]["enum"] == ["user", "assistant", "system", "tool"]
    token_count = schemas["MessageCreate"]["properties"]["token_count"]["anyOf"][0]
    assert token_count["maximum"] == INT_MAX


@pytest.mark.parametrize("bad", UNSTORABLE)
@pytest.mark.parametrize("schema", [StorableText, Id, Title])
def test_unstorable_text_is_refused_by_every_text_type(schema, bad):
    with pytest.raises(ValidationError, match="NUL character or an unpaired surrogate"):
        TypeAdapter(schema).validate_python(bad)


@pytest.mark.parametrize(
    "value",
    [{"x": float("nan")}, {"x": float("inf")}, {"x": object()}, {"k": "\x00"}, {"\ud800": 1}],
)
def test_json_that_cannot_be_stored_is_refused(value):
    with pytest.raises(ValidationError):
        TypeAdapter(JSONObject).validate_python(value)


def test_json_integers_are_bounded_to_64_bits():
    adapter = TypeAdapter(JSONObject)
    assert adapter.validate_python({"big": 2**64 - 1, "small": -(2**63)})
    for beyond in (2**64, -(2**63) - 1):
        with pytest.raises(ValidationError, match="beyond the 64 bits"):
            adapter.validate_python({"n": [beyond]})


def test_json_nesting_is_bounded():
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(100):
        node["n"] = {}
        node = node["n"]
    with pytest.raises(ValidationError, match="nested deeper"):
        TypeAdapter(JSONObject).validate_python(deep)


@pytest.mark.parametrize("value", [True, "5", 5.0, -1, INT_MAX + 1])
def test_counts_are_json_integers_in_range(value):
    with pytest.raises(ValidationError):
        TypeAdapter(Count).validate_python(value)


def test_title_is_cut_not_refused():
    assert TypeAdapter(Title).validate_python("t" * (TITLE_MAX + 50)) == "t" * TITLE_MAX


@pytest.mark.parametrize("status", ["pending", "expired", "maybe", 3, None])
def test_only_decisions_can_be_decided(status):
    with pytest.raises(ValidationError, match="must be one of approved, cancelled, rejected"):
        TypeAdapter(Decision).validate_python(status)


def test_rest_message_schema_is_the_service_schema():
    assert issubclass(MessageCreate, MessageIn)
    assert set(MessageCreate.model_fields) == set(MessageIn.model_fields)
    for name, field in MessageIn.model_fields.items():  # the same rule, not a second one
        assert MessageCreate.model_fields[name].annotation == field.annotation, name
    loose = {"role": "assistant", "content": None, "tool_calls": [{"anything": 1}]}
    for schema in (MessageIn, MessageCreate):  # any storable JSON list, as the legacy API
        assert schema.model_validate(loose).tool_calls == [{"anything": 1}]
    for extra in ({"x": "\0"}, {"function": {"name": "f", "arguments": "{}", "k\0": 1}}):
        call = {"id": "c", "function": {"name": "f", "arguments": "{}"}, **extra}
        with pytest.raises(ValidationError, match="NUL"):  # keys and values too
            MessageCreate.model_validate({"role": "assistant", "tool_calls": [call]})


def test_approval_schema_for_rest_extends_the_service_one():
    assert set(ApprovalCreate.model_fields) == {
        "session_id",
        "call_id",
        "tool_name",
        "arguments",
        "reason",
    }


async def test_service_errors_carry_details_with_the_callers_location(db):
    with pytest.raises(InvalidInputError) as caught:
        await svc.save_session(db, "s1", [{"role": "user"}, {"role": "robot"}], NOW)

    assert str(caught.value).startswith("messages[1].role 'robot' is not one of")
    assert caught.value.details == [
        {
            "loc": ["messages", 1, "role"],
            "msg": "Input should be 'user', 'assistant', 'system' or 'tool'",
            "type": "enum",
        }
    ]
    assert await svc.load_session(db, "s1") is None


TOO_LONG_SWITCH = {"from": "a", "to": "b" * (AGENT_MAX + 1)}


async def test_the_service_api_refuses_an_agent_switch_by_the_shared_rule(db):
    await svc.save_session(db, "s1", [], NOW)

    with pytest.raises(InvalidInputError, match=r"agent_history\[0\]\.to is longer than 100"):
        await svc.save_agent_context(db, "s1", "b", [TOO_LONG_SWITCH], {}, NOW, None, 1)

    assert await svc.load_agent_context(db, "s1") is None


async def test_rest_refuses_the_same_agent_switch(client):
    await client.post("/sessions/s1", json=[])

    response = await client.put(
        "/sessions/s1/agent-context",
        json={"current_agent": "b", "agent_history": [TOO_LONG_SWITCH]},
    )

    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["body", "agent_history", 0, "to"]
    assert (await client.get("/sessions/s1/agent-context")).status_code == 404
