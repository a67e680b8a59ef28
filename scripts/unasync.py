"""The sync client is generated from the async one (as httpcore does): one source of
truth for the methods, their arguments and docstrings; `_core` builds every request
and reads every answer for both.

    python -m scripts.unasync    # rewrites agent_runtime/client/_sync.py

tests/client/test_unasync.py fails when _sync.py is not what this makes of _async.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASYNC = ROOT / "agent_runtime/client/_async.py"
SYNC = ROOT / "agent_runtime/client/_sync.py"

HEADER = (
    '"""`AgentRuntimeClient`: the sync twin of `AsyncAgentRuntimeClient`, over an `httpx.Client`.\n'
    "\n"
    "GENERATED from _async.py by `python -m scripts.unasync`: edit _async.py. Requests\n"
    'are built and answers read in `_core`; this only sends."""'
)

# Applied in order: literal replacements, then regular expressions.
LITERAL = [
    ("import asyncio\n", "import time\n"),
    ("AsyncAgentRuntimeClient", "AgentRuntimeClient"),
    ("httpx.AsyncBaseTransport", "httpx.BaseTransport"),
    ("httpx.AsyncClient", "httpx.Client"),
    ("AsyncIterator", "Iterator"),
    ("async def __aenter__", "def __enter__"),
    ("async def __aexit__", "def __exit__"),
    ("await self.aclose()", "self.close()"),
    ("async def aclose", "def close"),
    ("await self.http.aclose()", "self.http.close()"),
    ("await asyncio.sleep", "time.sleep"),
    ("await response.aread()", "response.read()"),
    ("await response.aclose()", "response.close()"),
    ("response.aiter_lines()", "response.iter_lines()"),
    ("  # noqa: ASYNC109", ""),
]
REGEX = [
    (r"\basync def ", "def "),
    (r"\basync for ", "for "),
    (r"\bawait ", ""),
    (r"for item in page\.items:\n(\s+)yield item", r"yield from page.items"),
]


def unasync(source: str) -> str:
    body = source.split('"""', 2)[2]  # the module docstring is replaced
    for old, new in LITERAL:
        body = body.replace(old, new)
    for pattern, new in REGEX:
        body = re.sub(pattern, new, body)
    body = body.replace(
        "from agent_runtime.client import _core as core\n",
        "from agent_runtime.client import _core as core\n"
        "from agent_runtime.client._async import DEFAULT_TIMEOUT, headers\n",
    )
    # the shared constant and helper come from _async.py
    body = re.sub(
        r"\nDEFAULT_TIMEOUT = .*?\n\n\ndef headers\(.*?\n    return .*?\n", "\n", body, flags=re.S
    )
    return _format(HEADER + body)


def _format(source: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(SYNC), "-"],
        input=source,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return done.stdout


if __name__ == "__main__":
    SYNC.write_text(unasync(ASYNC.read_text(encoding="utf-8")), encoding="utf-8")
