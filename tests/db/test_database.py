"""The database layer: engine settings, migrations upgrading in place, schema matching tables.py."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, Table, inspect, select, text

from newsletter.core.errors import InputError, NewsletterError
from newsletter.core.settings import Settings
from newsletter.db import connect, current_version, latest_version, open_database, upgrade
from newsletter.db import migrations as mig
from newsletter.db.tables import metadata, subscribers
from tests.db.test_schema import index_definitions


def test_default_database_is_sqlite_wal_under_dot_newsletter(tmp_path: Path) -> None:
    settings = Settings.from_env(tmp_path, env={})
    engine = open_database(settings)
    try:
        assert (tmp_path / ".newsletter" / "newsletter.db").is_file()
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert current_version(conn) == latest_version()
    finally:
        engine.dispose()


def test_environment_selects_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    settings = Settings.from_env(tmp_path, env={"NEWSLETTER_DATABASE_URL": url})
    open_database(settings).dispose()
    assert (tmp_path / "elsewhere.db").is_file()
    assert not (tmp_path / ".newsletter").exists()


def test_migrated_schema_matches_tables_py(db_url: str) -> None:
    import newsletter.db.ledger_tables  # noqa: F401  (the ledger's tables join metadata)

    assert {"subscribers", "sends", "webhook_events"} <= set(metadata.tables)
    engine = open_database(db_url)
    try:
        insp = inspect(engine)
        for table in metadata.sorted_tables:
            assert insp.has_table(table.name), table.name
            found = {c["name"] for c in insp.get_columns(table.name)}
            assert found == {c.name for c in table.columns}, table.name
            indexes = set(index_definitions(engine, table.name))
            assert {i.name for i in table.indexes if not i.unique} <= indexes, table.name
    finally:
        engine.dispose()


def test_upgrade_is_idempotent_and_older_database_upgrades_in_place(db_url: str) -> None:
    engine = connect(db_url)
    try:
        assert upgrade(engine) == list(range(1, latest_version() + 1))
        assert upgrade(engine) == []
        now = dt.datetime.now(dt.UTC)
        with engine.begin() as conn:
            conn.execute(subscribers.insert().values(
                email="a@example.org", email_key="a@example.org", name="A", status="active",
                attributes={}, source="test", created_at=now, updated_at=now,
                status_changed_at=now))

        def add_notes(conn: Connection) -> None:
            Table("notes", MetaData(), Column("id", Integer, primary_key=True)).create(conn)

        newer = [*mig.MIGRATIONS, mig.Migration(latest_version() + 1, "notes", add_notes)]
        assert upgrade(engine, newer) == [latest_version() + 1]
        with engine.connect() as conn:
            assert current_version(conn) == latest_version() + 1
            assert inspect(conn).has_table("notes")
            assert conn.execute(select(subscribers.c.email)).scalars().all() == ["a@example.org"]
        # This code does not know migration N+1: refuse rather than guess.
        with pytest.raises(NewsletterError, match="newer than this newsletter"):
            upgrade(engine)
    finally:
        engine.dispose()


def test_a_failing_migration_leaves_the_previous_version(db_url: str) -> None:
    engine = connect(db_url)
    try:
        upgrade(engine)

        def broken(conn: Connection) -> None:
            Table("half", MetaData(), Column("id", Integer, primary_key=True)).create(conn)
            conn.execute(text("SELECT * FROM no_such_table"))

        with pytest.raises(Exception, match="no_such_table"):
            upgrade(engine, [*mig.MIGRATIONS, mig.Migration(latest_version() + 1, "x", broken)])
        with engine.connect() as conn:
            assert current_version(conn) == latest_version()
            assert not inspect(conn).has_table("half")
    finally:
        engine.dispose()


def test_migration_numbers_must_be_consecutive() -> None:
    with pytest.raises(RuntimeError, match="expected"):
        mig.migration(latest_version() + 5, "gap")(lambda conn: None)


def test_unsupported_database_url_is_a_clear_input_error() -> None:
    with pytest.raises(InputError, match="unsupported database 'mysql'"):
        connect("mysql://u@127.0.0.1/x")


def test_unreachable_postgres_is_one_clear_line_without_password(tmp_path: Path) -> None:
    port = 9  # discard port on 127.0.0.1: nothing listens there
    with pytest.raises(InputError) as info:
        open_database(f"postgresql://u:secret@127.0.0.1:{port}/x?connect_timeout=2")
    message = str(info.value)
    assert "cannot open database" in message and "secret" not in message
    assert "\n" not in message
