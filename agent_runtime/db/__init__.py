"""Database access below the services: URLs, the Tortoise config, the SQLite engine, migrations."""
