"""Real uvicorn with two workers: `GET /metrics` counts every worker's requests,
whichever worker answers it; request ids reach uvicorn's own access lines."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from harness.ports import free_port
from tests.fixtures.backends import ROOT
from tests.fixtures.servers import start_uvicorn
from tests.observability.scrape import Samples, parse, value

REQUESTS = "agent_runtime_http_request_duration_seconds_count"
SESSION = {"route": "/sessions/{session_id}", "method": "GET", "status": "404"}
BATCH = 24


def get_many(base: str, count: int) -> None:
    """`count` requests for missing sessions, each on a new connection, 8 at a time:
    the kernel spreads new connections over the workers."""

    def one(_: int) -> int:
        return httpx.get(f"{base}/sessions/missing-{uuid.uuid4().hex}", timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(one, range(count))) == {404}


def scrape(base: str) -> Samples:
    response = httpx.get(f"{base}/metrics", timeout=30)
    assert response.status_code == 200, response.text
    return parse(response.text)


def per_worker(directory: Path, tmp_path: Path) -> dict[str, float]:
    """Each worker's own count of the session requests, from its file alone."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    counts = {}
    for file in sorted(directory.glob("histogram_*.db")):
        alone = tmp_path / f"alone-{file.stem}"
        alone.mkdir(parents=True)
        shutil.copy(file, alone)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        counts[file.stem] = value(parse(generate_latest(registry).decode()), REQUESTS, **SESSION)
    return counts


def send_until_both_workers_answered(base: str, directory: Path, tmp_path: Path) -> int:
    sent = 0
    for batch in range(10):
        get_many(base, BATCH)
        sent += BATCH
        counts = per_worker(directory, tmp_path / f"batch-{batch}")
        if sum(1 for count in counts.values() if count) >= 2:
            return sent
    pytest.fail(f"one worker answered every request: {counts}")


def test_metrics_of_two_uvicorn_workers_are_summed(backend, tmp_path):
    directory = tmp_path / "metrics"
    directory.mkdir()
    server = start_uvicorn(
        backend.url, tmp_path, workers=2, env={"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    )
    try:
        sent = send_until_both_workers_answered(server.url, directory, tmp_path)

        for _ in range(4):  # whichever worker answers the scrape
            assert value(scrape(server.url), REQUESTS, **SESSION) == sent
        traced = httpx.get(f"{server.url}/health/live", headers={"X-Request-ID": "uv-trace-1"})
        assert traced.headers["x-request-id"] == "uv-trace-1"
        live_gauges = list(directory.glob("gauge_livesum_*.db"))
        assert len(live_gauges) == 2
    finally:
        stopped = server.stop()

    assert stopped, server.output()
    # Each worker withdrew its live gauges at shutdown; counts stay.
    assert list(directory.glob("gauge_livesum_*.db")) == []
    assert len(list(directory.glob("histogram_*.db"))) == 2
    access = [line for line in server.stdout.read_text().splitlines() if "uv-trace-1" in line]
    assert len(access) == 1 and '"GET /health/live HTTP/1.1" 200' in access[0], access


def test_a_worker_killed_without_shutdown_stops_counting_in_live_gauges(backend, tmp_path):
    directory = tmp_path / "metrics"
    directory.mkdir()
    server = start_uvicorn(
        backend.url, tmp_path, workers=2, env={"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    )
    try:
        # Both workers' pools (at least one connection each), each worker writing its
        # own every second once it has started.
        deadline = time.monotonic() + 30
        while value(scrape(server.url), "agent_runtime_db_pool_size") < 2:
            assert time.monotonic() < deadline, "the second worker's pool never counted"
            time.sleep(0.1)
        assert len(list(directory.glob("gauge_livesum_*.db"))) == 2
        killed = min(int(f.stem.rpartition("_")[2]) for f in directory.glob("gauge_livesum_*.db"))
        os.kill(killed, signal.SIGKILL)

        # The next scrape (by the other worker, or the one uvicorn starts instead)
        # withdraws the dead worker's live gauges.
        deadline = time.monotonic() + 20
        while (directory / f"gauge_livesum_{killed}.db").exists():
            assert time.monotonic() < deadline, "the dead worker's live gauges still count"
            try:
                scrape(server.url)
            except httpx.TransportError:
                time.sleep(0.1)
        assert (directory / f"histogram_{killed}.db").exists()  # its counts stay
    finally:
        server.stop()


def test_serve_with_two_workers_reports_both_in_json_logs(backend, tmp_path):
    port = free_port()
    temp = tmp_path / "tmp"
    temp.mkdir()
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AGENT_RUNTIME__") and k != "PROMETHEUS_MULTIPROC_DIR"
    }
    environment.update(
        AGENT_RUNTIME__DB_URL=backend.url, AGENT_RUNTIME__LOG_FORMAT="json", TMPDIR=str(temp)
    )
    out, err = tmp_path / "serve.out", tmp_path / "serve.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "agent_runtime", "serve", "--port", str(port), "--workers", "2"],
            cwd=ROOT,
            env=environment,
            stdout=stdout,
            stderr=stderr,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, err.read_text()
            try:
                if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        (directory,) = temp.glob("agent-runtime-metrics-*")
        assert directory.stat().st_mode & 0o077 == 0  # private to the service's user
        sent = send_until_both_workers_answered(base, directory, tmp_path)

        assert value(scrape(base), REQUESTS, **SESSION) == sent
        traced = httpx.get(f"{base}/health/live", headers={"X-Request-ID": "serve-trace-1"})
        assert traced.headers["x-request-id"] == "serve-trace-1"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)

    assert not directory.exists()  # removed at exit
    lines = [
        line for text in (out.read_text(), err.read_text()) for line in text.splitlines() if line
    ]
    entries = [json.loads(line) for line in lines]  # every line is JSON
    assert all({"time", "level", "logger", "message", "request_id"} <= set(e) for e in entries)
    (traced_line,) = [e for e in entries if e["request_id"] == "serve-trace-1"]
    assert (traced_line["logger"], traced_line["path"], traced_line["status"]) == (
        "uvicorn.access",
        "/health/live",
        200,
    )
    assert any(e["message"] == "Application startup complete." for e in entries)
