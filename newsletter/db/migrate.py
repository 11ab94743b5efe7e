"""The numbered-migration runner: the database records its version in `schema_version`.

`apply(engine, migrations)` applies every migration newer than the database, in order, each in
its own transaction together with its `schema_version` row, so a database made by an older
version of newsletter upgrades in place and an interrupted upgrade leaves a consistent version
behind. Two processes upgrading at once take turns (SQLite's write lock; on PostgreSQL an
advisory lock). The migrations themselves are in db.migrations.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, func, insert, inspect, select, text

from newsletter.core.errors import NewsletterError
from newsletter.db.engine import write_connection
from newsletter.db.tables import schema_version

_PG_LOCK_KEY = 0x6E65_7773  # "news": serialises concurrent upgrades on PostgreSQL


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


def registrar(into: list[Migration], version: int, description: str
              ) -> Callable[[Callable], Callable]:
    """A decorator registering `fn(conn)` in `into` as migration number `version` (the next
    consecutive number)."""

    def register(fn: Callable[[Connection], None]) -> Callable[[Connection], None]:
        expected = len(into) + 1
        if version != expected:
            raise RuntimeError(f"migration {version} registered, expected {expected}")
        into.append(Migration(version, description, fn))
        return fn

    return register


def current_version(conn: Connection) -> int:
    """The database's schema version (0 for an empty database)."""
    if not inspect(conn).has_table(schema_version.name):
        return 0
    return conn.execute(select(func.coalesce(func.max(schema_version.c.version), 0))).scalar_one()


def apply(engine: Engine, migrations: list[Migration]) -> list[int]:
    """Apply the pending ones of `migrations`; return the versions applied (empty when up to
    date)."""
    applied: list[int] = []
    while True:
        with write_connection(engine) as conn, conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            schema_version.create(conn, checkfirst=True)
            version = current_version(conn)
            if version > len(migrations):
                raise NewsletterError(
                    f"the database has schema version {version}, newer than this newsletter "
                    f"knows ({len(migrations)}); upgrade newsletter"
                )
            if version == len(migrations):
                return applied
            step = migrations[version]
            step.apply(conn)
            conn.execute(
                insert(schema_version).values(
                    version=step.version,
                    description=step.description,
                    applied_at=dt.datetime.now(dt.UTC),
                )
            )
            applied.append(step.version)
