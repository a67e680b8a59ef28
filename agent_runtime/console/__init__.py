"""The reviewer console: server-rendered pages under /console/ where people decide
tool calls and browse sessions. Logged-in reviewers only; the API key does not open it."""

from agent_runtime.console.app import PREFIX, install_console

__all__ = ["PREFIX", "install_console"]
