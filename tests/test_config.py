"""Settings come from AGENT_RUNTIME__* variables and `.env`."""

from __future__ import annotations

import pytest

from agent_runtime.config import DEFAULT_DB_URL, Settings


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
