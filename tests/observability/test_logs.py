"""Request ids (`X-Request-ID`, in every log line of the request) and the log formats."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import re
import sys
from collections.abc import Iterator

import httpx
import pytest
from asgi_lifespan import LifespanManager

from agent_runtime.config import Settings
from agent_runtime.main import create_app
from agent_runtime.observability import logs
from agent_runtime.observability.logs import (
    REQUEST_ID,
    JsonFormatter,
    RequestIdFilter,
    TextFormatter,
)
from tests.observability.scrape import scrape, value

HEX32 = re.compile(r"[0-9a-f]{32}")
LOGGER = "agent_runtime.test_logs"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """What `LOGGER` writes, one `request_id message` line each, through a handler
    with the filter (as the service's handlers have it)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter("%(request_id)s %(message)s"))
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def logging_app(app):
    """The app, with a route that logs a line and one that fails."""

    async def log_something() -> dict[str, str]:
        logging.getLogger(LOGGER).info("inside the request")
        return {"request_id": REQUEST_ID.get()}

    async def fail() -> None:
        logging.getLogger(LOGGER).info("about to fail")
        raise RuntimeError("boom")

    app.add_api_route("/_test/log", log_something)
    app.add_api_route("/_test/fail", fail)
    return app


async def test_a_sent_request_id_is_echoed_and_is_in_the_log_line(logging_app, client, captured):
    response = await client.get("/_test/log", headers={"X-Request-ID": "trace-42.a_b:c/d"})

    assert response.headers["x-request-id"] == "trace-42.a_b:c/d"
    assert response.json() == {"request_id": "trace-42.a_b:c/d"}
    assert captured.getvalue().splitlines() == ["trace-42.a_b:c/d inside the request"]


async def test_without_a_request_id_one_is_generated(logging_app, client, captured):
    response = await client.get("/_test/log")

    request_id = response.headers["x-request-id"]
    assert HEX32.fullmatch(request_id)
    assert captured.getvalue().splitlines() == [f"{request_id} inside the request"]
    assert response.json() == {"request_id": request_id}
    other = await client.get("/_test/log")
    assert other.headers["x-request-id"] != request_id


@pytest.mark.parametrize(
    "sent",
    ["x" * 129, "has space", "tab\there", "", "caf\u00e9"],
    ids=["too-long", "space", "control", "empty", "non-ascii"],
)
async def test_an_insane_request_id_is_replaced(client, sent):
    response = await client.get("/health/live", headers=[(b"x-request-id", sent.encode("utf-8"))])

    assert HEX32.fullmatch(response.headers["x-request-id"])


async def test_a_request_id_of_128_characters_is_kept(client):
    sent = "a" * 128
    response = await client.get("/health/live", headers={"X-Request-ID": sent})

    assert response.headers["x-request-id"] == sent


async def test_errors_and_refusals_carry_the_request_id(logging_app, client, captured, backend):
    before = await scrape(client)

    failed = await client.get("/_test/fail", headers={"X-Request-ID": "failing-1"})
    missing = await client.get("/no/such/path", headers={"X-Request-ID": "missing-1"})

    assert (failed.status_code, failed.headers["x-request-id"]) == (500, "failing-1")
    assert failed.json()["error"]["code"] == "internal_error"
    assert (missing.status_code, missing.headers["x-request-id"]) == (404, "missing-1")
    assert "failing-1 about to fail" in captured.getvalue().splitlines()
    after = await scrape(client)
    name = "agent_runtime_http_request_duration_seconds_count"
    labels = {"route": "/_test/fail", "method": "GET", "status": "500"}
    assert value(after, name, **labels) - value(before, name, **labels) == 1


async def test_an_unauthenticated_answer_carries_the_request_id(backend):
    app = create_app(Settings(db_url=backend.url, api_key="k"))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/sessions", headers={"X-Request-ID": "who-1"})

    assert (response.status_code, response.headers["x-request-id"]) == (401, "who-1")


def test_lines_outside_requests_show_a_dash(captured):
    logging.getLogger(LOGGER).info("no request here")

    assert captured.getvalue().splitlines() == ["- no request here"]


# -- formats ----------------------------------------------------------------------------


def record(message: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord(LOGGER, logging.WARNING, __file__, 1, message, args or None, None)
    made.__dict__.update(extra)
    return made


def test_json_lines_carry_time_level_logger_message_and_request_id():
    token = REQUEST_ID.set("req-7")
    try:
        line = JsonFormatter().format(record("hello %s", "world"))
    finally:
        REQUEST_ID.reset(token)

    entry = json.loads(line)
    assert "\n" not in line
    assert entry["level"] == "WARNING"
    assert entry["logger"] == LOGGER
    assert entry["message"] == "hello world"
    assert entry["request_id"] == "req-7"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
    assert "exc_info" not in entry


def test_json_lines_carry_the_traceback_as_a_string():
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        failed = record("it failed")
        failed.exc_info = sys.exc_info()

    line = JsonFormatter().format(failed)

    entry = json.loads(line)
    assert "\n" not in line
    assert entry["request_id"] == "-"
    assert entry["exc_info"].startswith("Traceback (most recent call last)")
    assert "ValueError: bad" in entry["exc_info"]


def test_json_access_lines_name_the_request_parts():
    access = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/sessions/a?x=1", "1.1", 200),
        None,
    )

    entry = json.loads(JsonFormatter().format(access))

    assert entry["message"] == '127.0.0.1:5000 - "GET /sessions/a?x=1 HTTP/1.1" 200'
    assert (entry["client"], entry["method"], entry["path"], entry["status"]) == (
        "127.0.0.1:5000",
        "GET",
        "/sessions/a?x=1",
        200,
    )


def test_text_lines_carry_the_request_id_even_without_the_filter():
    line = TextFormatter().format(record("plain"))

    assert " WARNING [-] agent_runtime.test_logs: plain" in line


def test_the_logging_config_puts_the_filter_and_format_on_every_handler():
    config = logs.logging_config("json", "warning")

    assert config["root"]["level"] == logging.WARNING
    assert config["disable_existing_loggers"] is False
    for handler in config["handlers"].values():
        assert handler["filters"] == ["request_id"]
        assert handler["formatter"] == "service"
    assert config["formatters"]["service"]["()"].endswith("JsonFormatter")
    assert config["handlers"]["access"]["stream"] == "ext://sys.stdout"
    with pytest.raises(ValueError):
        logs.logging_config("text", "loud")


def test_install_adds_the_filter_and_replaces_uvicorns_formats_only(monkeypatch):
    from uvicorn.logging import AccessFormatter

    uvicorn_handler = logging.StreamHandler(io.StringIO())
    uvicorn_handler.setFormatter(AccessFormatter())
    custom = logging.Formatter("%(message)s")
    custom_handler = logging.StreamHandler(io.StringIO())
    custom_handler.setFormatter(custom)
    access = logging.getLogger("uvicorn.access")
    monkeypatch.setattr(access, "handlers", [uvicorn_handler, custom_handler])

    logs.install("json", "info")
    logs.install("json", "info")  # again: nothing doubles

    assert isinstance(uvicorn_handler.formatter, JsonFormatter)
    assert custom_handler.formatter is custom
    for handler in (uvicorn_handler, custom_handler):
        assert sum(isinstance(f, RequestIdFilter) for f in handler.filters) == 1


def test_install_gives_an_unconfigured_root_logger_a_handler(monkeypatch):
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", logging.WARNING)

    logs.install("text", "info")

    (handler,) = root.handlers
    assert isinstance(handler.formatter, TextFormatter)
    assert root.level == logging.INFO


def test_the_log_format_setting_is_text_or_json(monkeypatch):
    from pydantic import ValidationError

    assert Settings(db_url="sqlite://").log_format == "text"
    monkeypatch.setenv("AGENT_RUNTIME__LOG_FORMAT", "json")
    assert Settings(db_url="sqlite://").log_format == "json"
    monkeypatch.setenv("AGENT_RUNTIME__LOG_FORMAT", "xml")
    with pytest.raises(ValidationError):
        Settings(db_url="sqlite://")
