"""Take the reviewer console's screenshots for the documentation.

    python docs/screenshots/make_screenshots.py        (or: make screenshots)

Builds a demo in a temporary SQLite database (migrated with `agent-runtime
migrate`): a reviewer "demo", a few agent sessions whose conversations end in
tool calls, and their pending approvals. Then serves it with uvicorn, logs in
with Debian's headless Chromium (chromium, chromium-driver) and saves, next to
this script:

    inbox.png            the inbox, 1280x800
    approval.png         one approval, 1280x800
    approval-phone.png   the same approval at phone width, 390x844
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from tortoise import Tortoise

from agent_runtime.db.config import tortoise_config
from agent_runtime.db.urls import parse_db_url
from agent_runtime.services.reviewers import add_reviewer
from tests.console.browser import CHROMEDRIVER, CHROMIUM, chrome_options

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
REVIEWER, PASSWORD = "demo", "demo-password"
DESKTOP, PHONE = (1280, 800), (390, 844)


# --- the demo -------------------------------------------------------------------------


def call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


def asks(call_id: str, name: str, arguments: dict[str, Any], content: str | None = None):
    return {"role": "assistant", "content": content, "tool_calls": [call(call_id, name, arguments)]}


def result(call_id: str, name: str, content: Any) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "name": name, "content": json.dumps(content)}


REFUND = {"order_id": "A-48213", "amount": 49.0, "currency": "EUR", "reason": "duplicate charge"}
SESSIONS: list[dict[str, Any]] = [
    {
        "id": "support-7c41e2",
        "title": "Charged twice for order A-48213",
        "messages": [
            {"role": "system", "content": "You are Acme's support agent. Be brief and exact."},
            {
                "role": "user",
                "content": "Hi, I was charged twice for my order A-48213 last Friday. "
                "Can you refund the second payment?",
            },
            asks("call_lookup_1", "lookup_order", {"order_id": "A-48213"}),
            result(
                "call_lookup_1",
                "lookup_order",
                {
                    "order_id": "A-48213",
                    "total": 49.0,
                    "currency": "EUR",
                    "payments": [
                        {"id": "pay_91x", "amount": 49.0, "at": "2026-03-06T09:14:02Z"},
                        {"id": "pay_92k", "amount": 49.0, "at": "2026-03-06T09:14:07Z"},
                    ],
                },
            ),
            {
                "role": "assistant",
                "content": "I can see two payments of 49.00 EUR five seconds apart: "
                "the second one is a duplicate. I'll refund it.",
            },
            asks("call_refund_1", "issue_refund", REFUND),
        ],
        "approvals": [
            ("call_refund_1", "issue_refund", REFUND, "Moves money: refunds need a human."),
        ],
        "context": {
            "current_agent": "billing",
            "agent_history": [
                {
                    "from": "triage",
                    "to": "billing",
                    "reason": "payment question",
                    "timestamp": "2026-03-09T10:02:11Z",
                    "metadata": {},
                }
            ],
            "switch_count": 1,
        },
    },
    {
        "id": "ops-2f9a07",
        "title": "Free disk space on reports-01",
        "messages": [
            {"role": "system", "content": "You are an operations assistant for the data team."},
            {
                "role": "user",
                "content": "reports-01 is at 94% disk. Remove exports older than 2024.",
            },
            asks("call_ls_1", "list_files", {"path": "/srv/exports", "older_than": "2024-01-01"}),
            result(
                "call_ls_1",
                "list_files",
                {"files": 1842, "total_size": "212 GB", "oldest": "2021-02-01"},
            ),
            asks(
                "call_rm_1",
                "delete_files",
                {"path": "/srv/exports", "older_than": "2024-01-01", "dry_run": False},
                "1,842 files (212 GB) match. Deleting them.",
            ),
        ],
        "approvals": [
            (
                "call_rm_1",
                "delete_files",
                {"path": "/srv/exports", "older_than": "2024-01-01", "dry_run": False},
                "Deletes files on a production host; cannot be undone.",
            ),
        ],
    },
    {
        "id": "growth-5be310",
        "title": "Weekly sign-ups report",
        "messages": [
            {"role": "user", "content": "Send last week's sign-up numbers to the growth team."},
            asks(
                "call_sql_1",
                "run_sql",
                {
                    "database": "analytics",
                    "query": "SELECT date_trunc('day', created_at) AS day, count(*) "
                    "FROM signups WHERE created_at >= now() - interval '7 days' "
                    "GROUP BY 1 ORDER BY 1",
                },
            ),
            result("call_sql_1", "run_sql", {"rows": 7, "total": 3204}),
            asks(
                "call_mail_1",
                "send_email",
                {
                    "to": ["growth@acme.example"],
                    "subject": "Sign-ups, week 10: 3,204 (+6%)",
                    "body": "Hi all, last week brought 3,204 sign-ups (+6% on week 9)...",
                },
            ),
        ],
        "approvals": [
            (
                "call_mail_1",
                "send_email",
                {
                    "to": ["growth@acme.example"],
                    "subject": "Sign-ups, week 10: 3,204 (+6%)",
                    "body": "Hi all, last week brought 3,204 sign-ups (+6% on week 9)...",
                },
                "Sends email on the company's behalf.",
            ),
        ],
    },
    {
        "id": "infra-0d77c8",
        "title": "Scale the checkout service for the sale",
        "messages": [
            {"role": "user", "content": "The spring sale starts at 18:00: scale checkout to 12."},
            asks(
                "call_scale_1",
                "scale_deployment",
                {"cluster": "prod-eu-1", "deployment": "checkout", "replicas": 12},
            ),
        ],
        "approvals": [
            (
                "call_scale_1",
                "scale_deployment",
                {"cluster": "prod-eu-1", "deployment": "checkout", "replicas": 12},
                "Changes production capacity (and the bill).",
            ),
        ],
    },
]
SHOWN = "call_refund_1"  # the approval in approval.png


def seed(http: httpx.Client) -> None:
    for session in SESSIONS:
        sid = session["id"]
        http.post(f"/sessions/{sid}", json=session["messages"]).raise_for_status()
        http.patch(f"/sessions/{sid}", json={"title": session["title"]}).raise_for_status()
        if "context" in session:
            http.put(f"/sessions/{sid}/agent-context", json=session["context"]).raise_for_status()
        for call_id, tool, arguments, reason in session["approvals"]:
            body = {
                "session_id": sid,
                "call_id": call_id,
                "tool_name": tool,
                "arguments": arguments,
                "reason": reason,
            }
            http.post("/approvals", json=body).raise_for_status()
        time.sleep(0.3)  # distinct ages in the inbox


async def add_demo_reviewer(url: str) -> None:
    database = parse_db_url(url)
    await Tortoise.init(config=tortoise_config(database))
    try:
        await add_reviewer(Tortoise.get_connection(database.dialect), REVIEWER, PASSWORD)
    finally:
        await Tortoise.close_connections()


# --- the server -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_RUNTIME__")}
    env["AGENT_RUNTIME__DB_URL"] = url
    return env


def serve(url: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "agent_runtime.main:app", "--port", str(port)],
            cwd=ROOT,
            env=environment(url),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"uvicorn exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.terminate()
    sys.exit(f"uvicorn not ready within 30 s:\n{log.read_text()}")


# --- the browser ------------------------------------------------------------------------


def browser(profile: Path) -> WebDriver:
    # The tests' Chromium (Debian's, headless, offline), without scrollbars in pictures.
    options = chrome_options(profile, (1280, 900), "--hide-scrollbars")
    return webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))


def viewport(driver: WebDriver, size: tuple[int, int], *, mobile: bool) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": mobile},
    )


def shoot(driver: WebDriver, url: str, name: str) -> None:
    driver.get(url)
    WebDriverWait(driver, 10).until(lambda d: d.execute_script("return document.readyState"))
    time.sleep(0.8)  # the live inbox connects and refreshes its rows once
    path = HERE / name
    driver.save_screenshot(str(path))
    print(f"wrote {path.relative_to(ROOT)}")


def main() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        sys.exit(f"missing {', '.join(missing)}: apt-get install chromium chromium-driver")
    os.environ["TZ"] = "UTC"  # the page shows local times: the same on every machine
    with tempfile.TemporaryDirectory(prefix="console-screenshots-") as tmp:
        work = Path(tmp)
        url = f"sqlite:///{work / 'demo.db'}"
        migrated = subprocess.run(
            [sys.executable, "-m", "agent_runtime", "migrate"],
            cwd=ROOT,
            env=environment(url),
            capture_output=True,
            text=True,
            check=False,
        )
        if migrated.returncode != 0:
            sys.exit(f"migrate failed:\n{migrated.stdout}{migrated.stderr}")
        asyncio.run(add_demo_reviewer(url))
        server, base = serve(url, work / "uvicorn.log")
        driver = None
        try:
            with httpx.Client(base_url=base, timeout=10) as http:
                seed(http)
            driver = browser(work / "chromium")
            viewport(driver, DESKTOP, mobile=False)
            driver.get(f"{base}/console/login")
            driver.find_element(By.NAME, "username").send_keys(REVIEWER)
            driver.find_element(By.NAME, "password").send_keys(PASSWORD)
            driver.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
            WebDriverWait(driver, 10).until(lambda d: "/console/login" not in d.current_url)
            shoot(driver, f"{base}/console/", "inbox.png")
            shoot(driver, f"{base}/console/approvals/{SHOWN}", "approval.png")
            viewport(driver, PHONE, mobile=True)
            shoot(driver, f"{base}/console/approvals/{SHOWN}", "approval-phone.png")
        finally:
            if driver is not None:
                driver.quit()
            server.terminate()
            server.wait(15)


if __name__ == "__main__":
    main()
