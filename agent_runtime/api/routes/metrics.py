"""`GET /metrics`: the Prometheus text format, every worker's metrics summed.

A plain Starlette route, outside the OpenAPI description (it is not JSON). It
needs the API key when one is set, or the metrics key (`AGENT_RUNTIME__METRICS_KEY`).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from agent_runtime.core.metrics_collect import render
from agent_runtime.observability.metrics import CONTENT_TYPE

__all__ = ["PATH", "metrics"]

PATH = "/metrics"


async def metrics(request: Request) -> Response:
    body = await render(request.app.state.database.dialect)
    return Response(body, media_type=CONTENT_TYPE, headers={"cache-control": "no-store"})
