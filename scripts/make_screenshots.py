"""Take the reviewer console's screenshots for the documentation.

    python -m scripts.make_screenshots        (or: make screenshots)

Builds a demo in a temporary SQLite database (migrated with `agent-runtime
migrate`): a reviewer "demo", a few agent sessions whose conversations end in
tool calls, and their pending approvals. Then serves it with uvicorn, logs in
with Debian's headless Chromium (chromium, chromium-driver) and saves, in
docs/screenshots/:

    inbox.png            the inbox, 1280x800
    approval.png         one approval, 1280x800
    approval-phone.png   the same approval at phone width, 390x844
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from tortoise import Tortoise

from agent_runtime.db.config import tortoise_config
from agent_runtime.db.urls import parse_db_url
from agent_runtime.services.reviewers import add_reviewer
from harness.browser import browser_missing, emulate_viewport, start_chromium
from harness.servers import ROOT, ServerStartError, server_environment, start_uvicorn

OUT = ROOT / "docs" / "screenshots"
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


# --- the browser ------------------------------------------------------------------------


def browser(profile: Path) -> WebDriver:
    # The tests' Chromium (Debian's, headless, offline), without scrollbars in pictures.
    return start_chromium(profile, (1280, 900), "--hide-scrollbars")


def shoot(driver: WebDriver, url: str, name: str) -> None:
    driver.get(url)
    WebDriverWait(driver, 10).until(lambda d: d.execute_script("return document.readyState"))
    time.sleep(0.8)  # the live inbox connects and refreshes its rows once
    path = OUT / name
    driver.save_screenshot(str(path))
    print(f"wrote {path.relative_to(ROOT)}")


def main() -> None:
    missing = browser_missing()
    if missing:
        sys.exit(missing)
    os.environ["TZ"] = "UTC"  # the page shows local times: the same on every machine
    with tempfile.TemporaryDirectory(prefix="console-screenshots-") as tmp:
        work = Path(tmp)
        url = f"sqlite:///{work / 'demo.db'}"
        migrated = subprocess.run(
            [sys.executable, "-m", "agent_runtime", "migrate"],
            cwd=ROOT,
            env=server_environment({"AGENT_RUNTIME__DB_URL": url}),
            capture_output=True,
            text=True,
            check=False,
        )
        if migrated.returncode != 0:
            sys.exit(f"migrate failed:\n{migrated.stdout}{migrated.stderr}")
        asyncio.run(add_demo_reviewer(url))
        try:
            server = start_uvicorn({"AGENT_RUNTIME__DB_URL": url}, work)
        except ServerStartError as exc:
            sys.exit(str(exc))
        base = server.url
        driver = None
        try:
            with httpx.Client(base_url=base, timeout=10) as http:
                seed(http)
            driver = browser(work / "chromium")
            emulate_viewport(driver, DESKTOP, mobile=False)
            driver.get(f"{base}/console/login")
            driver.find_element(By.NAME, "username").send_keys(REVIEWER)
            driver.find_element(By.NAME, "password").send_keys(PASSWORD)
            driver.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
            WebDriverWait(driver, 10).until(lambda d: "/console/login" not in d.current_url)
            shoot(driver, f"{base}/console/", "inbox.png")
            shoot(driver, f"{base}/console/approvals/{SHOWN}", "approval.png")
            emulate_viewport(driver, PHONE, mobile=True)
            shoot(driver, f"{base}/console/approvals/{SHOWN}", "approval-phone.png")
        finally:
            if driver is not None:
                driver.quit()
            server.stop()


if __name__ == "__main__":
    main()
