"""Settings come from AGENT_RUNTIME__* variables and `.env`."""

from __future__ import annotations

import logging

import pytest

from agent_runtime.config import DEFAULT_DB_URL, Settings, unknown_variables


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ("AGENT_RUNTIME__DB_URL", "AGENT_RUNTIME__AUTO_MIGRATE", "AGENT_RUNTIME__PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_default_database_is_the_embedded_sqlite_file():
    assert Settings().db_url == DEFAULT_DB_URL == "sqlite:///data/agent_runtime.db"


def test_environment_variables_use_the_agent_runtime_prefix(monkeypatch):
    monkeypatch.setenv("AGENT_RUNTIME__DB_URL", "postgresql://u@h/db")
    monkeypatch.setenv("AGENT_RUNTIME__AUTO_MIGRATE", "false")
    monkeypatch.setenv("DB_URL", "sqlite:///wrong.db")

    settings = Settings()

    assert settings.db_url == "postgresql://u@h/db"
    assert settings.auto_migrate is False


def test_dotenv_file_is_read_and_environment_wins(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text(
        "AGENT_RUNTIME__DB_URL=sqlite:///from-dotenv.db\nAGENT_RUNTIME__PORT=9001\n"
    )
    assert Settings().db_url == "sqlite:///from-dotenv.db"
    monkeypatch.setenv("AGENT_RUNTIME__PORT", "9002")
    assert Settings().port == 9002


def test_a_variable_no_setting_reads_is_named_with_the_setting_it_resembles():
    environ = {
        "AGENT_RUNTIME__DB_URL": "sqlite://",
        "AGENT_RUNTIME__DB_POOLMAX_SIZE": "5",
        "AGENT_RUNTIME__COLOUR": "blue",
        "AGENT_RUNTIME_TEST_PG_URL": "postgresql://x/y",  # the tests' own, not a setting
        "PATH": "/usr/bin",
    }

    assert unknown_variables(environ) == [
        "AGENT_RUNTIME__COLOUR",
        "AGENT_RUNTIME__DB_POOLMAX_SIZE (did you mean AGENT_RUNTIME__DB_POOL_MAX_SIZE?)",
    ]


def test_every_setting_is_known():
    environ = {f"AGENT_RUNTIME__{name.upper()}": "" for name in Settings.model_fields}
    assert unknown_variables(environ) == []


async def test_the_server_warns_at_start_up_about_a_variable_no_setting_reads(
    monkeypatch, caplog, tmp_path
):
    from asgi_lifespan import LifespanManager

    from agent_runtime.main import create_app

    monkeypatch.setenv("AGENT_RUNTIME__CLAIM_LEASE_SECOND", "60")
    app = create_app(Settings(db_url=f"sqlite:///{tmp_path}/a.db"))
    with caplog.at_level(logging.WARNING, logger="agent_runtime"):
        async with LifespanManager(app):
            pass

    assert (
        "AGENT_RUNTIME__CLAIM_LEASE_SECOND (did you mean AGENT_RUNTIME__CLAIM_LEASE_SECONDS?) "
        "is not a setting: ignored" in caplog.messages
    )
