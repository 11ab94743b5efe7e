"""SQLAlchemy Core tables: the current schema, kept in step with migrations.py.

Timestamps are `UtcDateTime`: aware UTC datetimes in Python, stored as UTC on every database.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

STATUSES = ("active", "unsubscribed", "bounced", "complained")


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A timestamp that goes in and comes out as an aware UTC datetime."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("UtcDateTime needs an aware datetime")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # raw SQL on SQLite
            value = dt.datetime.fromisoformat(value)
        return value.replace(tzinfo=dt.UTC)


#: JSON on SQLite, JSONB on PostgreSQL.
JsonDoc = JSON().with_variant(JSONB(), "postgresql")
#: 64-bit ids, but SQLite's INTEGER PRIMARY KEY (the rowid) there.
Id = BigInteger().with_variant(Integer(), "sqlite")

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", Text, nullable=False),
    Column("applied_at", UtcDateTime, nullable=False),
)

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False),  # normalised by email-validator
    Column("email_key", String(320), nullable=False),  # lower-cased: the unique key
    Column("name", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attributes", JsonDoc, nullable=False),
    Column("source", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("status_changed_at", UtcDateTime, nullable=False),
    CheckConstraint(
        "status IN ('active', 'unsubscribed', 'bounced', 'complained')",
        name="ck_subscribers_status",
    ),
    Index("uq_subscribers_email_key", "email_key", unique=True),
)

subscriber_tags = Table(
    "subscriber_tags",
    metadata,
    Column(
        "subscriber_id",
        Id,
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("tag", String(100), primary_key=True),
    Index("ix_subscriber_tags_tag", "tag", "subscriber_id"),
    sqlite_with_rowid=False,
)
