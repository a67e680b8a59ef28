"""Aerich migrations: the same files upgrade and downgrade SQLite and PostgreSQL, and
produce exactly the schema the models describe."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid

import pytest
from tortoise import Tortoise

from agent_runtime.db.config import tortoise_config
from agent_runtime.db.urls import parse_db_url
from tests.db.schema import describe
from tests.fixtures.backends import BACKENDS, ROOT, aerich_ok

each_backend = pytest.mark.parametrize("backend_name", BACKENDS)

MODEL_TABLES = {"sessions", "messages", "agent_contexts", "agent_switches", "pending_approvals"}
# NOT NULL columns added by a later migration need a database default for existing
# rows; Tortoise's schema generation keeps such defaults in Python only.
ADDED_WITH_DEFAULT = {("sessions", "version"), ("sessions", "messages_token")}


def without_added_defaults(migrated: dict, expected: dict) -> dict:
    """`migrated` with the defaults of ADDED_WITH_DEFAULT columns set as in `expected`."""
    result = {}
    for table, facts in migrated.items():
        reference = {c[0]: c for c in expected.get(table, {}).get("columns", [])}
        columns = []
        for column in facts["columns"]:
            ref = reference.get(column[0])
            if (table, column[0]) in ADDED_WITH_DEFAULT and ref is not None:
                assert column[-1] is not None and ref[-1] is None
                column = (*column[:-1], None)
            columns.append(column)
        result[table] = {**facts, "columns": columns}
    return result


@pytest.fixture
def empty_url(databases, backend_name, request):
    if backend_name == "postgres":
        request.applymarker("postgres")
    return databases.empty(backend_name)


async def schema_of(url: str, *, generate: bool = False) -> dict:
    database = parse_db_url(url)
    database.ensure_sqlite_folder()
    await Tortoise.init(config=tortoise_config(database))
    try:
        connection = Tortoise.get_connection(database.dialect)
        if generate:
            # Only to build the reference to compare migrations against.
            await Tortoise.generate_schemas()
        return await describe(connection)
    finally:
        await Tortoise.close_connections()


@each_backend
async def test_upgrade_builds_exactly_the_schema_the_models_describe(
    databases, backend_name, empty_url
):
    reference_url = databases.empty(backend_name)

    out = aerich_ok(empty_url, "upgrade")

    assert "Success upgrading" in out
    migrated = await schema_of(empty_url)
    expected = await schema_of(reference_url, generate=True)
    assert set(migrated) >= MODEL_TABLES
    assert without_added_defaults(migrated, expected) == expected


@each_backend
async def test_upgraded_database_has_no_pending_migrations(backend_name, empty_url):
    aerich_ok(empty_url, "upgrade")

    assert "No available heads" in aerich_ok(empty_url, "heads")
    assert "No upgrade items found" in aerich_ok(empty_url, "upgrade")


@pytest.mark.parametrize("backend_name", ["postgres"])
async def test_postgres_columns_are_timestamptz_and_jsonb(backend_name, empty_url):
    aerich_ok(empty_url, "upgrade")

    schema = await schema_of(empty_url)

    types = {(table, col[0]): col[2] for table, facts in schema.items() for col in facts["columns"]}
    for column in [
        ("sessions", "created_at"),
        ("sessions", "last_activity"),
        ("sessions", "deleted_at"),
        ("messages", "timestamp"),
        ("agent_contexts", "created_at"),
        ("agent_contexts", "last_switch_at"),
        ("agent_switches", "switched_at"),
        ("pending_approvals", "created_at"),
    ]:
        assert types[column] == "timestamptz", column
    for column in [
        ("messages", "tool_calls"),
        ("messages", "metadata"),
        ("agent_contexts", "metadata"),
        ("agent_switches", "metadata"),
        ("pending_approvals", "arguments"),
    ]:
        assert types[column] == "jsonb", column


@each_backend
async def test_downgrade_undoes_every_migration_and_upgrade_reapplies(backend_name, empty_url):
    aerich_ok(empty_url, "upgrade")
    upgraded = await schema_of(empty_url)
    migrations = sorted(p.name for p in (ROOT / "migrations" / "models").glob("*.py"))

    for _ in migrations:
        aerich_ok(empty_url, "downgrade", "--yes")

    assert set(await schema_of(empty_url)) == {"aerich"}
    aerich_ok(empty_url, "upgrade")
    assert await schema_of(empty_url) == upgraded


def test_models_match_the_last_migration_on_both_dialects(tmp_path):
    shutil.copytree(
        ROOT / "migrations", tmp_path / "migrations", ignore=shutil.ignore_patterns("__pycache__")
    )

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent_runtime.db.makemigrations",
            "check",
            "--location",
            str(tmp_path / "migrations"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )

    assert "No changes detected" in result.stdout
    assert sorted(p.name for p in (tmp_path / "migrations" / "models").glob("*.py")) == sorted(
        p.name for p in (ROOT / "migrations" / "models").glob("*.py")
    )


@each_backend
async def test_the_next_migration_made_with_the_tool_applies_on_both_backends(
    backend_name, empty_url, tmp_path
):
    project = tmp_path / "project"
    for part in ("agent_runtime", "models", "migrations"):
        shutil.copytree(ROOT / part, project / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", project)
    session_model = project / "models" / "session.py"
    session_model.write_text(
        session_model.read_text().replace(
            "    class Meta:", "    probe = fields.IntField(null=True)\n\n    class Meta:", 1
        )
    )

    made = subprocess.run(
        [sys.executable, "-m", "agent_runtime.db.makemigrations", "add_probe"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "(sqlite + postgres)" in made.stdout

    aerich_ok(empty_url, "upgrade", cwd=project)
    columns = [c[0] for c in (await schema_of(empty_url))["sessions"]["columns"]]
    assert "probe" in columns
    aerich_ok(empty_url, "downgrade", "--yes", cwd=project)
    columns = [c[0] for c in (await schema_of(empty_url))["sessions"]["columns"]]
    assert "probe" not in columns


PLAIN_AERICH_FILE = '''from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
        ALTER TABLE "sessions" ADD "probe_at" TIMESTAMP;"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        ALTER TABLE "sessions" DROP COLUMN "probe_at";"""
'''


@pytest.fixture
def migrations_copy(tmp_path, monkeypatch):
    """The code pointed at a copy of the migrations folder, to add files to."""
    from agent_runtime.db import migration_files, migrations

    copy = tmp_path / "migrations"
    shutil.copytree(ROOT / "migrations", copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(migration_files, "MIGRATIONS_DIR", copy)
    monkeypatch.setattr(migrations, "MIGRATIONS_DIR", copy)
    return copy


async def test_readiness_is_unavailable_with_a_file_lacking_this_dialects_sql(db, migrations_copy):
    from agent_runtime.db.migrations import pending_on_connection
    from agent_runtime.errors import MigrationFileError, UnavailableError
    from agent_runtime.services.health import readiness

    assert await readiness(db)  # the real migrations: ready
    (migrations_copy / "models" / "4_20990101000000_probe.py").write_text(PLAIN_AERICH_FILE)

    with pytest.raises(MigrationFileError, match=r"4_20990101000000_probe.py has no SQL for"):
        await pending_on_connection(db)
    with pytest.raises(UnavailableError):
        await readiness(db)


def test_postgres_sql_of_comments_only_is_refused_sqlite_takes_it(migrations_copy):
    from agent_runtime.db.migrations import check_migration_files
    from agent_runtime.errors import MigrationFileError

    last = (migrations_copy / "models" / sorted_files(migrations_copy)[-1]).read_text()
    sql = """SQL = {
    'sqlite': {'upgrade': '-- nothing', 'downgrade': '-- nothing'},
    'postgres': {'upgrade': '-- nothing\\n;', 'downgrade': 'SELECT 1;'},
}"""
    start, end = last.index("SQL = {"), last.index("\n}\n") + 3
    (migrations_copy / "models" / "4_20990101000000_noop.py").write_text(
        last[:start] + sql + last[end:]
    )

    check_migration_files("sqlite")
    with pytest.raises(MigrationFileError, match=r"has no upgrade SQL for postgres.*SELECT 1;"):
        check_migration_files("postgres")


def sorted_files(migrations) -> list[str]:
    return sorted(
        (p.name for p in (migrations / "models").glob("*.py")), key=lambda n: int(n.split("_")[0])
    )


async def test_a_database_error_is_not_taken_for_an_empty_database(databases):
    """Only a missing `aerich` table means "nothing applied yet": any other error (here a
    role that may not read it) is raised as it is, never reported as pending migrations."""
    from tortoise.exceptions import OperationalError

    from agent_runtime.db.migrations import pending_migrations
    from tests.fixtures.backends import pg_admin

    url = databases.migrated("postgres")
    role = f"no_aerich_{uuid.uuid4().hex[:8]}"
    database = url.rpartition("/")[2]
    pg_admin(f'CREATE ROLE "{role}" LOGIN')
    pg_admin(f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"')
    try:
        restricted = url.replace("postgres@", f"{role}@", 1)
        with pytest.raises(OperationalError, match="permission denied"):
            await pending_migrations(parse_db_url(restricted))
    finally:
        pg_admin(f'REVOKE CONNECT ON DATABASE "{database}" FROM "{role}"')
        pg_admin(f'DROP ROLE "{role}"')
