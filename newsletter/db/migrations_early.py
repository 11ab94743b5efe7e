"""Migrations 1-8: the schema's first history (subscribers, the send ledger, webhook events
and engagement, sign-ups, the audit trail, exclusive sends, event detail, send contents), each
with its own frozen DDL. The registry and the rules are in db.migrations."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from newsletter.db.migrate import Migration, registrar

MIGRATIONS: list[Migration] = []


def migration(version: int, description: str) -> Callable[[Callable], Callable]:
    """Register `fn(conn)` as migration number `version` (the next consecutive number)."""
    return registrar(MIGRATIONS, version, description)


_Id = BigInteger().with_variant(Integer(), "sqlite")


@migration(1, "subscribers and tags")
def _subscribers(conn: Connection) -> None:
    md = MetaData()
    Table(
        "subscribers",
        md,
        Column("id", _Id, primary_key=True, autoincrement=True),
        Column("email", String(320), nullable=False),
        Column("email_key", String(320), nullable=False),
        Column("name", Text, nullable=False),
        Column("status", String(16), nullable=False),
        Column("attributes", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        Column("source", Text, nullable=False),
        Column("created_at", DateTime, nullable=False),
        Column("updated_at", DateTime, nullable=False),
        Column("status_changed_at", DateTime, nullable=False),
        CheckConstraint(
            "status IN ('active', 'unsubscribed', 'bounced', 'complained')",
            name="ck_subscribers_status",
        ),
        Index("uq_subscribers_email_key", "email_key", unique=True),
    )
    Table(
        "subscriber_tags",
        md,
        Column(
            "subscriber_id",
            _Id,
            ForeignKey("subscribers.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        Column("tag", String(100), primary_key=True),
        Index("ix_subscriber_tags_tag", "tag", "subscriber_id"),
        sqlite_with_rowid=False,
    )
    md.create_all(conn)


@migration(2, "send ledger")
def _send_ledger(conn: Connection) -> None:
    md = MetaData()
    Table(
        "sends",
        md,
        Column("id", _Id, primary_key=True, autoincrement=True),
        Column("issue", String(200), nullable=False),
        Column("segment", String(200), nullable=False),
        Column("transport", String(16), nullable=False),
        Column("content_hash", String(64), nullable=False),
        Column("subject", Text, nullable=False),
        Column("state", String(16), nullable=False),
        Column("total", Integer, nullable=False, default=0),
        Column("accepted", Integer, nullable=False, default=0),
        Column("failed", Integer, nullable=False, default=0),
        Column("unknown", Integer, nullable=False, default=0),
        Column("batches", Integer, nullable=False, default=0),
        Column("send_at", DateTime, nullable=True),
        Column("batch_id", String(100), nullable=True),
        Column("owner", String(200), nullable=True),
        Column("heartbeat_at", DateTime, nullable=True),
        Column("last_error", Text, nullable=True),
        Column("created_at", DateTime, nullable=False),
        Column("updated_at", DateTime, nullable=False),
        Column("finished_at", DateTime, nullable=True),
        CheckConstraint("state IN ('sending', 'stopped', 'completed', 'cancelled')",
                        name="ck_sends_state"),
        Index("ix_sends_issue_segment", "issue", "segment"),
    )
    Table(
        "send_recipients",
        md,
        Column("id", _Id, primary_key=True, autoincrement=True),
        Column("send_id", _Id, ForeignKey("sends.id", ondelete="CASCADE"), nullable=False),
        Column("subscriber_id", _Id, nullable=True),
        Column("email", String(320), nullable=False),
        Column("name", Text, nullable=False),
        Column("attributes", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        Column("state", String(10), nullable=False),
        Column("batch", Integer, nullable=True),
        Column("attempts", Integer, nullable=False, default=0),
        Column("provider_id", String(255), nullable=True),
        Column("last_error", Text, nullable=True),
        Column("updated_at", DateTime, nullable=True),
        CheckConstraint("state IN ('pending', 'accepted', 'failed', 'unknown')",
                        name="ck_send_recipients_state"),
        Index("ix_send_recipients_send", "send_id"),
    )
    md.create_all(conn)


@migration(3, "webhook events, engagement, sign-ups, suppression sync")
def _public_side(conn: Connection) -> None:
    md = MetaData()
    Table(
        "webhook_events",
        md,
        Column("sg_event_id", String(100), primary_key=True),
        Column("event", String(32), nullable=False),
        Column("email_key", String(320), nullable=False),
        Column("send_id", _Id, nullable=True),
        Column("occurred_at", DateTime, nullable=True),
        Column("received_at", DateTime, nullable=False),
        Index("ix_webhook_events_received_at", "received_at"),
    )
    counters = ("delivered", "opens", "clicks", "deferred", "bounces", "blocked", "dropped",
                "complaints", "unsubscribes")
    Table(
        "engagement",
        md,
        Column("send_id", _Id, primary_key=True, autoincrement=False),
        Column("email_key", String(320), primary_key=True),
        *(Column(name, Integer, nullable=False, default=0) for name in counters),
        Column("last_event_at", DateTime, nullable=True),
    )
    Table(
        "signups",
        md,
        Column("email_key", String(320), primary_key=True),
        Column("email", String(320), nullable=False),
        Column("name", Text, nullable=False),
        Column("tags", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        Column("requested_at", DateTime, nullable=False),
        Column("window_start", DateTime, nullable=False),
        Column("sent_in_window", Integer, nullable=False),
        Column("last_sent_at", DateTime, nullable=True),
        Column("confirmed_at", DateTime, nullable=True),
    )
    Table(
        "suppression_sync",
        md,
        Column("kind", String(64), primary_key=True),
        Column("last_created", BigInteger, nullable=False),
        Column("synced_at", DateTime, nullable=False),
    )
    md.create_all(conn)


@migration(4, "pause, subscriber history (audit trail), erasure suppressions")
def _self_service(conn: Connection) -> None:
    paused = DateTime().compile(dialect=conn.dialect)
    conn.execute(text(f"ALTER TABLE subscribers ADD COLUMN paused_until {paused}"))
    md = MetaData()
    Table("subscribers", md, Column("id", _Id, primary_key=True))  # the foreign key's target
    Table(
        "subscriber_history",
        md,
        Column("id", _Id, primary_key=True, autoincrement=True),
        Column("subscriber_id", _Id, ForeignKey("subscribers.id", ondelete="CASCADE"),
               nullable=False),
        Column("at", DateTime, nullable=False),
        Column("source", String(32), nullable=False),
        Column("field", String(32), nullable=False),
        Column("before", Text, nullable=True),
        Column("after", Text, nullable=True),
        Index("ix_subscriber_history_subscriber", "subscriber_id", "id"),
    )
    Table(
        "erased_addresses",
        md,
        Column("address_hash", String(64), primary_key=True),
        Column("erased_at", DateTime, nullable=False),
    )
    md.tables["subscriber_history"].create(conn)
    md.tables["erased_addresses"].create(conn)


@migration(5, "consent time of subscribers, shared sign-up throttle")
def _consent_and_throttle(conn: Connection) -> None:
    timestamp = "TIMESTAMP WITHOUT TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME"
    conn.execute(text(f"ALTER TABLE subscribers ADD COLUMN consented_at {timestamp}"))
    md = MetaData()
    Table(
        "signup_throttle",
        md,
        Column("client", String(100), primary_key=True),
        Column("window_start", DateTime, nullable=False),
        Column("hits", Integer, nullable=False),
        Index("ix_signup_throttle_window_start", "window_start"),
    )
    md.create_all(conn)


@migration(6, "exclusive sends: lease fencing token, one active send per issue, send batches")
def _exclusive_sends(conn: Connection) -> None:
    # Older versions allowed two active sends of one issue (to different segments): keep the
    # newest, give the others up, so the unique index below can be built.
    conn.execute(text(
        "UPDATE sends SET state = 'cancelled', owner = NULL, last_error = 'given up when "
        "sends became exclusive (schema 6); resume no longer possible' "
        "WHERE state IN ('sending', 'stopped') AND id NOT IN "
        "(SELECT max(id) FROM sends WHERE state IN ('sending', 'stopped') GROUP BY issue)"))
    conn.execute(text("ALTER TABLE sends ADD COLUMN lease INTEGER NOT NULL DEFAULT 0"))
    conn.execute(text("ALTER TABLE sends ADD COLUMN leased_at "
                      + ("TIMESTAMP WITHOUT TIME ZONE" if conn.dialect.name == "postgresql"
                         else "DATETIME")))
    conn.execute(text("CREATE UNIQUE INDEX uq_sends_active_issue ON sends (issue) "
                      "WHERE state IN ('sending', 'stopped')"))
    md = MetaData()
    Table("sends", md, Column("id", _Id, primary_key=True))
    Table(
        "send_batches",
        md,
        Column("id", _Id, primary_key=True, autoincrement=True),
        Column("send_id", _Id, ForeignKey("sends.id", ondelete="CASCADE"), nullable=False),
        Column("batch_id", String(100), nullable=False),
        Column("send_at", DateTime, nullable=False),
        Column("first_batch", Integer, nullable=False),
        Column("state", String(16), nullable=False),
        Column("created_at", DateTime, nullable=False),
        CheckConstraint("state IN ('open', 'cancelled')", name="ck_send_batches_state"),
        Index("ix_send_batches_send", "send_id"),
    )
    md.tables["send_batches"].create(conn)


@migration(7, "event detail, human-or-machine verdicts, links of each send")
def _event_detail(conn: Connection) -> None:
    """webhook_events gains the click's URL and link position, user agent, truncated IP,
    SendGrid's machine-open flag and our verdict (machine, reason), with two indexes for
    reports and engagement segments; send_links records each send's links and their piece."""
    false = "false" if conn.dialect.name == "postgresql" else "0"
    for column, kind in (("url", "TEXT"), ("position", "INTEGER"),
                         ("user_agent", "VARCHAR(300)"), ("ip", "VARCHAR(64)"),
                         ("provider_machine", "BOOLEAN"),
                         ("machine", f"BOOLEAN NOT NULL DEFAULT {false}"),
                         ("reason", "VARCHAR(32)")):
        conn.execute(text(f"ALTER TABLE webhook_events ADD COLUMN {column} {kind}"))
    conn.execute(text("CREATE INDEX ix_webhook_events_report ON webhook_events "
                      "(send_id, event, machine, email_key, position)"))
    conn.execute(text("CREATE INDEX ix_webhook_events_timeline ON webhook_events "
                      "(send_id, event, machine, occurred_at)"))
    conn.execute(text("CREATE INDEX ix_webhook_events_key_time "
                      "ON webhook_events (email_key, occurred_at)"))
    md = MetaData()
    Table(
        "send_links",
        md,
        Column("send_id", _Id, primary_key=True, autoincrement=False),
        Column("position", Integer, primary_key=True, autoincrement=False),
        Column("piece", Integer, nullable=False),
        Column("link", Integer, nullable=False),
        Column("url", Text, nullable=False),
        Column("title", Text, nullable=False),
        Column("expert", String(200), nullable=False),
    )
    md.create_all(conn)


@migration(8, "what each send carried: its pieces and click tracking, for reports")
def _send_contents(conn: Connection) -> None:
    md = MetaData()
    Table(
        "send_contents",
        md,
        Column("send_id", _Id, primary_key=True, autoincrement=False),
        Column("pieces", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        Column("click_tracking", Boolean, nullable=False),
    )
    md.create_all(conn)
