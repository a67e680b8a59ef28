"""The OpenAPI description covers every route, with response models and examples."""

from __future__ import annotations

from fastapi.routing import APIRoute, iter_route_contexts
from sse_starlette import EventSourceResponse

from agent_runtime.config import Settings
from agent_runtime.main import create_app


def api_contexts(app):
    """The API's routes: the console's pages are HTML for people, left out of the schema."""
    return [
        c
        for c in iter_route_contexts(app.routes)
        if isinstance(c.original_route, APIRoute) and c.include_in_schema
    ]


def test_every_route_declares_a_response_model_or_no_content():
    app = create_app(Settings(db_url="sqlite://"))
    api_routes = [c.original_route for c in api_contexts(app)]
    assert len(api_routes) >= 20
    for route in api_routes:
        if route.response_class is EventSourceResponse:  # a stream: described by its media type
            schema = app.openapi()["paths"][route.path]["get"]["responses"]["200"]
            assert "text/event-stream" in schema["content"], route.path
            continue
        assert route.response_model is not None or route.status_code == 204, route.path


def test_openapi_describes_every_route_with_error_bodies_and_examples():
    app = create_app(Settings(db_url="sqlite://"))
    schema = app.openapi()
    api_routes = {c.path for c in api_contexts(app)}

    assert set(schema["paths"]) == api_routes
    components = schema["components"]["schemas"]
    assert "ErrorRead" in components
    for name in (
        "MessageCreate",
        "ApprovalCreate",
        "ApprovalDecisionCreate",
        "AgentContextCreate",
        "SessionUpdate",
        "CleanupCreate",
    ):
        assert components[name].get("examples"), name
    save = schema["paths"]["/sessions/{session_id}"]["post"]
    assert save["requestBody"]["content"]["application/json"]["schema"]["type"] == "array"
    assert "412" in save["responses"]
