"""`python -m agent_runtime`: the `agent-runtime` command."""

from agent_runtime.cli import main

if __name__ == "__main__":
    main()
