"""docs/langgraph.md: its examples run as written and print what the page shows.

Each section's python block is taken from the page and executed; its `main` gets an
empty (unmigrated) database of the backend under test, which it migrates itself
("Over REST": test_langgraph_docs_rest.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langgraph")

PAGE = Path(__file__).resolve().parents[2] / "docs" / "langgraph.md"


def blocks(section: str, language: str) -> list[str]:
    text = PAGE.read_text(encoding="utf-8").split(f"\n## {section}\n", 1)[1]
    text = text.split("\n## ", 1)[0]
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.M | re.S)


def example(section: str) -> tuple[Any, list[str]]:
    """The section's example (its `main`) and the lines it shows."""
    (code,) = blocks(section, "python")
    (shown,) = blocks(section, "text")
    namespace: dict[str, Any] = {"__name__": "langgraph_example"}
    # dont_inherit: not this module's `from __future__ import annotations`
    exec(compile(code, str(PAGE), "exec", dont_inherit=True), namespace)
    return namespace["main"], shown.splitlines()


@pytest.mark.parametrize("section", ["The checkpointer", "Approvals"])
async def test_the_example_runs_and_prints_what_the_page_shows(section, backend, databases, capsys):
    main, shown = example(section)

    await main(db_url=databases.empty(backend.name))

    assert capsys.readouterr().out.splitlines() == shown
