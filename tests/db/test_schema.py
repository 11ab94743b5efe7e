"""Migrations and the live table definitions describe the same schema, on SQLite and PostgreSQL.

One database is built by running every migration, another by `metadata.create_all()` from the
live definitions (newsletter.db.tables and newsletter.db.ledger_tables); reflecting both must give
the same tables, columns (type, nullability, default), primary and foreign keys, indexes, unique
and check constraints.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect, text

import newsletter.db.ledger_tables  # noqa: F401  (the ledger's tables join metadata)
from newsletter.db import connect, upgrade
from newsletter.db.tables import metadata, schema_version
from tests.db_fixtures import fresh_postgres_database

#: SQLAlchemy's reflection of SQLite skips an index on an expression (index_definitions reads it)
pytestmark = pytest.mark.filterwarnings(
    "ignore:Skipped unsupported reflection of expression-based index")


@pytest.fixture()
def live_url(db_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A second empty database on the same kind of server as `db_url`."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'live.db'}"
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_server")) as url:
        yield url


@contextmanager
def both_schemas(db_url: str, live_url: str) -> Iterator[tuple[Engine, Engine]]:
    """(database built by the migrations, database built from the live definitions)."""
    migrated, live = connect(db_url), create_engine(live_url)
    try:
        upgrade(migrated)
        metadata.create_all(live)
        yield migrated, live
    finally:
        migrated.dispose()
        live.dispose()


def _describe(engine: Engine) -> dict[str, dict]:
    """Everything the database reports about each table, in comparable form."""
    insp = inspect(engine)
    dialect = engine.dialect
    found: dict[str, dict] = {}
    for name in sorted(insp.get_table_names()):
        columns = {
            c["name"]: (
                c["type"].compile(dialect=dialect),
                c["nullable"],
                None if c.get("default") is None else str(c["default"]),
            )
            for c in insp.get_columns(name)
        }
        pk = insp.get_pk_constraint(name)
        foreign = sorted(
            (tuple(fk["constrained_columns"]), fk["referred_table"],
             tuple(fk["referred_columns"]), tuple(sorted((fk.get("options") or {}).items())))
            for fk in insp.get_foreign_keys(name)
        )
        indexes = sorted(
            (i["name"], tuple(i["column_names"]), bool(i["unique"]))
            for i in insp.get_indexes(name)
        )
        uniques = sorted((u["name"], tuple(u["column_names"]))
                         for u in insp.get_unique_constraints(name))
        checks = sorted((c["name"], " ".join(c["sqltext"].split()))
                        for c in insp.get_check_constraints(name))
        found[name] = {
            "columns": columns,
            "primary_key": tuple(pk["constrained_columns"]),
            "foreign_keys": foreign,
            "indexes": indexes,
            "unique": uniques,
            "checks": checks,
            "triggers": _triggers(engine, name),
            "index_definitions": index_definitions(engine, name),
        }
    return found


def index_definitions(engine: Engine, table: str) -> dict[str, str]:
    """Each index of the table (its constraints' too) by name, with its definition as the
    database keeps it, quotes, brackets, spaces and case aside: the reflection above leaves
    out what an index on an expression indexes (SQLite skips such an index altogether)."""
    if engine.dialect.name == "postgresql":
        query = text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :t")
    else:
        query = text("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                     "AND tbl_name = :t AND sql IS NOT NULL")
    with engine.connect() as conn:
        rows = conn.execute(query, {"t": table}).all()
    return {name: re.sub(r"[\s\"'()]", "", sql.lower()).replace("public.", "")
            for name, sql in rows}


def _triggers(engine: Engine, table: str) -> list[tuple[str, str]]:
    """PostgreSQL: the table's own triggers with their definitions (the statement triggers
    that stand in for foreign keys there, db.subscriber_keys); SQLite: none are made."""
    if engine.dialect.name != "postgresql":
        return []
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT t.tgname, pg_get_triggerdef(t.oid) || ' / ' || p.prosrc FROM pg_trigger t "
            "JOIN pg_proc p ON p.oid = t.tgfoid WHERE t.tgrelid = CAST(:t AS regclass) "
            "AND NOT t.tgisinternal"), {"t": table}).all()
    return sorted((name, " ".join(body.split())) for name, body in rows)


def test_migrations_build_the_live_schema(db_url: str, live_url: str) -> None:
    with both_schemas(db_url, live_url) as (migrated, live):
        by_migrations, by_definitions = _describe(migrated), _describe(live)
    assert {"subscribers", "sends", "send_recipients", "webhook_events"} <= set(by_definitions)
    assert set(by_migrations) == set(by_definitions) == set(metadata.tables)
    if migrated.dialect.name == "postgresql":  # the keys' stand-ins are there, both ways
        for schema in (by_migrations, by_definitions):
            assert [n for n, _ in schema["subscriber_history"]["triggers"]] == [
                "subscriber_history_insert_names_subscribers",
                "subscriber_history_update_names_subscribers"]
            assert [n for n, _ in schema["subscribers"]["triggers"]] == [
                "subscribers_delete_takes_their_rows"]
    for name in sorted(by_definitions):
        for aspect, value in by_definitions[name].items():
            assert by_migrations[name][aspect] == value, (name, aspect)


def test_the_comparison_sees_a_drifted_column(db_url: str, live_url: str) -> None:
    """A live definition that no migration matches is noticed (the check is not vacuous)."""
    with both_schemas(db_url, live_url) as (migrated, live):
        with live.begin() as conn:
            conn.execute(text(f"DROP TABLE {schema_version.name}"))
            conn.execute(text(f"CREATE TABLE {schema_version.name} (version INTEGER NOT NULL, "
                              "description VARCHAR(10), applied_at TIMESTAMP)"))
        assert _describe(migrated)[schema_version.name] != _describe(live)[schema_version.name]
