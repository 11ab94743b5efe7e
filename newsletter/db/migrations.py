"""The schema's history: numbered migrations, each with its own frozen DDL.

`upgrade(engine)` applies every migration newer than the database (db.migrate runs them, each
in its own transaction with its `schema_version` row).

The history itself is in db.migrations_early (1-8) and db.migrations_late (9 on), one registry
in order. Adding a migration is a one-function job: append, at the end of migrations_late.py,

    @migration(2, "send ledger")
    def _send_ledger(conn: Connection) -> None:
        md = MetaData()
        Table("send_ledger", md, Column(...), ...)
        md.create_all(conn)

and put the same tables (or columns) into tables.py or ledger_tables.py. Rules: numbers are
consecutive; a released migration is never edited (write a new one to change its tables); a
migration spells out its own DDL instead of importing the live tables, which always show the
newest schema. tests/db/test_schema.py builds the schema both ways and compares them.
"""

from __future__ import annotations

from sqlalchemy import Engine

from newsletter.db import migrations_late  # noqa: F401  (registers migrations 9 on, in order)
from newsletter.db.migrate import Migration, apply
from newsletter.db.migrations_early import MIGRATIONS, migration

__all__ = ["MIGRATIONS", "Migration", "latest_version", "migration", "upgrade"]


def latest_version(migrations: list[Migration] | None = None) -> int:
    return len(MIGRATIONS if migrations is None else migrations)


def upgrade(engine: Engine, migrations: list[Migration] | None = None) -> list[int]:
    """Apply pending migrations (db.migrate); return the versions applied (empty when up to
    date)."""
    return apply(engine, MIGRATIONS if migrations is None else migrations)
