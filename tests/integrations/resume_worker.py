"""A resumer process for test_openai_agents_restart.py (not a test module).

``python -m tests.integrations.resume_worker URL SESSION_ID NAME WORKDIR``: resumes
the session's paused weather run against the agent-runtime at URL over REST
(`resume_run` with `claimed_by=NAME`), prints the outcome and exits 0.

The tool writes ``WORKDIR/started-NAME`` when it begins (the call is then claimed:
the claim comes before the run), blocks for ever if ``WORKDIR/block-NAME`` exists
(the test SIGKILLs the process there), then records its side effect: a line
appended to ``WORKDIR/effects``. A process killed while blocked never did it.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from agents import Agent, function_tool, set_tracing_disabled

from agent_runtime.client import AsyncAgentRuntimeClient
from agent_runtime.integrations.openai_agents import AgentRuntimeSession, resume_run
from tests.integrations.conftest import fake_model, function_call, text_message

ANSWER = "It is 18C and sunny in Paris."


def weather_agent(model: object, workdir: Path, name: str) -> Agent:
    @function_tool(needs_approval=True)
    def get_weather(city: str) -> str:
        """The weather in a city."""
        (workdir / f"started-{name}").write_text(city)
        while (workdir / f"block-{name}").exists():
            time.sleep(0.05)
        with (workdir / "effects").open("a") as effects:
            effects.write(f"{city} by {name}\n")
        return f"18C, sunny in {city}"

    return Agent(name="assistant", model=model, tools=[get_weather])  # type: ignore[arg-type]


def first_turn(call_id: str) -> object:
    """The model until the pause: it asks for the weather tool (call `call_id`)."""
    return fake_model([function_call("get_weather", '{"city": "Paris"}', call_id)])


async def main(url: str, session_id: str, name: str, workdir: Path) -> None:
    set_tracing_disabled(True)
    agent = weather_agent(fake_model([text_message(ANSWER)]), workdir, name)
    async with AsyncAgentRuntimeClient(url) as client:
        session = AgentRuntimeSession(session_id, client=client)
        result = await resume_run(agent, session, timeout=10, claimed_by=name)
    print("finished" if result is not None else "taken over", flush=True)
    if result is not None:
        print(result.final_output, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])))
