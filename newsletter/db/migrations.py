"""A small numbered-migration runner: the database records its version in `schema_version`.

`upgrade(engine)` applies every migration newer than the database, in order, each in its own
transaction together with its `schema_version` row, so a database made by an older version of
newsletter upgrades in place and an interrupted upgrade leaves a consistent version behind.

Adding a migration is a one-function job: append, at the end of this module,

    @migration(2, "send ledger")
    def _send_ledger(conn: Connection) -> None:
        md = MetaData()
        Table("send_ledger", md, Column(...), ...)
        md.create_all(conn)

and put the same tables (or columns) into tables.py or ledger_tables.py. Rules: numbers are
consecutive; a released migration is never edited (write a new one to change its tables); a
migration spells out its own DDL instead of importing the live tables, which always show the
newest schema. tests/audience/test_schema.py builds the schema both ways and compares them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from newsletter.core.errors import NewsletterError
from newsletter.db.engine import write_connection
from newsletter.db.tables import schema_version

_PG_LOCK_KEY = 0x6E65_7773  # "news": serialises concurrent upgrades on PostgreSQL


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


MIGRATIONS: list[Migration] = []


def migration(version: int, description: str) -> Callable[[Callable], Callable]:
    """Register `fn(conn)` as migration number `version` (the next consecutive number)."""

    def register(fn: Callable[[Connection], None]) -> Callable[[Connection], None]:
        expected = len(MIGRATIONS) + 1
        if version != expected:
            raise RuntimeError(f"migration {version} registered, expected {expected}")
        MIGRATIONS.append(Migration(version, description, fn))
        return fn

    return register


def latest_version(migrations: list[Migration] | None = None) -> int:
    return len(MIGRATIONS if migrations is None else migrations)


def current_version(conn: Connection) -> int:
    """The database's schema version (0 for an empty database)."""
    if not inspect(conn).has_table(schema_version.name):
        return 0
    return conn.execute(select(func.coalesce(func.max(schema_version.c.version), 0))).scalar_one()


def upgrade(engine: Engine, migrations: list[Migration] | None = None) -> list[int]:
    """Apply pending migrations; return the versions applied (empty when up to date)."""
    migrations = MIGRATIONS if migrations is None else migrations
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


# --- migrations (append new ones at the end) -------------------------------------------------

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


@migration(9, "issue family ledger: frozen send artifacts, skipped and cancelled recipients")
def _issue_family_ledger(conn: Connection) -> None:
    """sends gain `skipped` and `cancelled` counts and a `reach` policy; send_recipients gain
    the states `skipped` and `cancelled` (the check constraint is rebuilt: on SQLite by copying
    the table) and an index on subscriber_id; recipients of batches cancelled at SendGrid,
    recorded `failed` so far, become `cancelled`; send_artifacts holds each send's frozen
    message."""
    for column in ("skipped", "cancelled"):
        conn.execute(text(f"ALTER TABLE sends ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0"))
    conn.execute(text("ALTER TABLE sends ADD COLUMN reach VARCHAR(8) NOT NULL DEFAULT 'once'"))
    states = "'pending', 'accepted', 'failed', 'unknown', 'skipped', 'cancelled'"
    if conn.dialect.name == "postgresql":
        conn.execute(text("ALTER TABLE send_recipients DROP CONSTRAINT ck_send_recipients_state"))
        conn.execute(text("ALTER TABLE send_recipients ADD CONSTRAINT ck_send_recipients_state "
                          f"CHECK (state IN ({states}))"))
    else:  # SQLite cannot alter a constraint: copy the table into one that has the new one
        md = MetaData()
        Table("sends", md, Column("id", _Id, primary_key=True))
        columns = ("id", "send_id", "subscriber_id", "email", "name", "attributes", "state",
                   "batch", "attempts", "provider_id", "last_error", "updated_at")
        Table(
            "send_recipients_new",
            md,
            Column("id", _Id, primary_key=True, autoincrement=True),
            Column("send_id", _Id, ForeignKey("sends.id", ondelete="CASCADE"), nullable=False),
            Column("subscriber_id", _Id, nullable=True),
            Column("email", String(320), nullable=False),
            Column("name", Text, nullable=False),
            Column("attributes", JSON(), nullable=False),
            Column("state", String(10), nullable=False),
            Column("batch", Integer, nullable=True),
            Column("attempts", Integer, nullable=False, default=0),
            Column("provider_id", String(255), nullable=True),
            Column("last_error", Text, nullable=True),
            Column("updated_at", DateTime, nullable=True),
            CheckConstraint(f"state IN ({states})", name="ck_send_recipients_state"),
        )
        md.tables["send_recipients_new"].create(conn)
        listed = ", ".join(columns)
        conn.execute(text(f"INSERT INTO send_recipients_new ({listed}) "
                          f"SELECT {listed} FROM send_recipients"))
        conn.execute(text("DROP TABLE send_recipients"))
        conn.execute(text("ALTER TABLE send_recipients_new RENAME TO send_recipients"))
        conn.execute(text("CREATE INDEX ix_send_recipients_send ON send_recipients (send_id)"))
    conn.execute(text("CREATE INDEX ix_send_recipients_subscriber "
                      "ON send_recipients (subscriber_id)"))
    # `send cancel` recorded the recipients of batches it cancelled at SendGrid as failed
    conn.execute(text(
        "UPDATE send_recipients SET state = 'cancelled' WHERE state = 'failed' "
        "AND last_error LIKE 'cancelled%before delivery' "
        "AND send_id IN (SELECT id FROM sends WHERE state = 'cancelled')"))
    conn.execute(text(
        "UPDATE sends SET "
        "cancelled = (SELECT count(*) FROM send_recipients r "
        "             WHERE r.send_id = sends.id AND r.state = 'cancelled'), "
        "failed = (SELECT count(*) FROM send_recipients r "
        "          WHERE r.send_id = sends.id AND r.state = 'failed') "
        "WHERE state = 'cancelled'"))
    md = MetaData()
    Table("sends", md, Column("id", _Id, primary_key=True))
    Table(
        "send_artifacts",
        md,
        Column("send_id", _Id, ForeignKey("sends.id", ondelete="CASCADE"), primary_key=True,
               autoincrement=False),
        Column("format", Integer, nullable=False),
        Column("subject", Text, nullable=False),
        Column("html", Text, nullable=False),
        Column("text", Text, nullable=False),
        Column("settings", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        Column("content_hash", String(64), nullable=False),
        Column("source_hash", String(64), nullable=True),
        Column("created_at", DateTime, nullable=False),
    )
    md.tables["send_artifacts"].create(conn)


@migration(10, "erasure list: its own key wrapped under each secret, restored addresses")
def _erasure_key(conn: Connection) -> None:
    """erased_addresses gains `restored_at` (the person's own confirmed sign-up) and `legacy`
    (entries keyed with a signing secret itself, as every entry made before this version);
    erasure_keys holds the list's key wrapped under each signing secret."""
    true, false = ("true", "false") if conn.dialect.name == "postgresql" else ("1", "0")
    timestamp = "TIMESTAMP WITHOUT TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME"
    conn.execute(text(f"ALTER TABLE erased_addresses ADD COLUMN restored_at {timestamp}"))
    conn.execute(text("ALTER TABLE erased_addresses ADD COLUMN legacy BOOLEAN NOT NULL "
                      f"DEFAULT {false}"))
    conn.execute(text(f"UPDATE erased_addresses SET legacy = {true}"))
    md = MetaData()
    Table(
        "erasure_keys",
        md,
        Column("fingerprint", String(64), primary_key=True),
        Column("wrapped", String(64), nullable=False),
        Column("created_at", DateTime, nullable=False),
    )
    md.create_all(conn)


@migration(11, "sign-off: approvals of an issue's exact content")
def _approvals(conn: Connection) -> None:
    """approvals: who approved which content (hash) of which issue, and when."""
    md = MetaData()
    Table(
        "approvals",
        md,
        Column("id", _Id, primary_key=True, autoincrement=True),
        Column("issue", String(200), nullable=False),
        Column("content", String(64), nullable=False),
        Column("approver", String(200), nullable=False),
        Column("approver_key", String(200), nullable=False),
        Column("approved_at", DateTime, nullable=False),
        Index("uq_approvals_issue_content_approver", "issue", "content", "approver_key",
              unique=True),
    )
    md.create_all(conn)


@migration(12, "signature tokens of provider webhooks, so a replayed one is refused")
def _webhook_tokens(conn: Connection) -> None:
    md = MetaData()
    Table(
        "webhook_tokens",
        md,
        Column("provider", String(16), primary_key=True),
        Column("token", String(100), primary_key=True),
        Column("seen_at", DateTime, nullable=False),
        Index("ix_webhook_tokens_seen_at", "seen_at"),
    )
    md.create_all(conn)


@migration(13, "reputation guard: paused sends and each pause with its figures")
def _send_pauses(conn: Connection) -> None:
    """sends gain `paused_at` (set while the reputation guard holds the send); send_pauses
    keeps each pause: when, why, the figures and thresholds judged, and the resume with the
    figures it started from; engagement gains two partial indexes, each send's people who
    bounced hard and who complained (what the guard counts before every batch)."""
    for name in ("bounces", "complaints"):
        conn.execute(text(f"CREATE INDEX ix_engagement_{name} ON engagement (send_id) "
                          f"WHERE {name} > 0"))
    timestamp = "TIMESTAMP WITHOUT TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME"
    conn.execute(text(f"ALTER TABLE sends ADD COLUMN paused_at {timestamp}"))
    md = MetaData()
    Table("sends", md, Column("id", _Id, primary_key=True))
    Table(
        "send_pauses",
        md,
        Column("id", _Id, primary_key=True, autoincrement=True),
        Column("send_id", _Id, ForeignKey("sends.id", ondelete="CASCADE"), nullable=False),
        Column("paused_at", DateTime, nullable=False),
        Column("reason", Text, nullable=False),
        Column("handed", Integer, nullable=False),
        Column("hard", Integer, nullable=False),
        Column("complaints", Integer, nullable=False),
        Column("min_sample", Integer, nullable=False),
        Column("bounce_pause", Float, nullable=False),
        Column("complaint_pause", Float, nullable=False),
        Column("resumed_at", DateTime, nullable=True),
        Column("resumed_by", String(200), nullable=True),
        Column("resumed_handed", Integer, nullable=True),
        Column("resumed_hard", Integer, nullable=True),
        Column("resumed_complaints", Integer, nullable=True),
        Index("ix_send_pauses_send", "send_id"),
    )
    md.tables["send_pauses"].create(conn)


@migration(14, "ledger at scale: a send's rows by (send_id, id), a person's by "
               "(subscriber_id, send_id), room for in-place updates")
def _ledger_at_scale(conn: Connection) -> None:
    """send_recipients' two indexes gain a second column, so reading a batch, updating its
    range and finding one person's row of a send are index range scans whatever the planner's
    statistics say; on PostgreSQL its pages are filled to half from now on, leaving room for
    the two updates of each row to stay on its page."""
    conn.execute(text("DROP INDEX ix_send_recipients_send"))
    conn.execute(text("CREATE INDEX ix_send_recipients_send ON send_recipients (send_id, id)"))
    conn.execute(text("DROP INDEX ix_send_recipients_subscriber"))
    conn.execute(text("CREATE INDEX ix_send_recipients_subscriber "
                      "ON send_recipients (subscriber_id, send_id)"))
    if conn.dialect.name == "postgresql":
        conn.execute(text("ALTER TABLE send_recipients SET (fillfactor = 50)"))


@migration(15, "welcome requests of confirmed sign-ups, subject tests and their samples")
def _welcome_and_subject_tests(conn: Connection) -> None:
    """welcome_requests: confirmed sign-ups waiting for the welcome; subject_tests and
    subject_test_people: a send's subject test, its sample and each person's subject."""
    md = MetaData()
    Table("subscribers", md, Column("id", _Id, primary_key=True))
    Table(
        "welcome_requests",
        md,
        Column("subscriber_id", _Id, ForeignKey("subscribers.id", ondelete="CASCADE"),
               primary_key=True, autoincrement=False),
        Column("requested_at", DateTime, nullable=False),
        Column("via", String(32), nullable=False),
        Index("ix_welcome_requests_requested_at", "requested_at"),
    )
    open_test = "state IN ('testing', 'waiting', 'finishing')"
    Table(
        "subject_tests",
        md,
        Column("id", _Id, primary_key=True, autoincrement=True),
        Column("issue", String(200), nullable=False),
        Column("segment", String(200), nullable=False),
        Column("transport", String(16), nullable=False),
        Column("subjects", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        Column("sample", Integer, nullable=False),
        Column("measure", String(8), nullable=False),
        Column("decide_after", Integer, nullable=False),
        Column("level", Float, nullable=False),
        Column("send_at", DateTime, nullable=True),
        Column("undo_window", Integer, nullable=True),
        Column("state", String(16), nullable=False),
        Column("created_at", DateTime, nullable=False),
        Column("decide_at", DateTime, nullable=True),
        Column("decided_at", DateTime, nullable=True),
        Column("winner", Integer, nullable=True),
        Column("figures", JSON().with_variant(JSONB(), "postgresql"), nullable=True),
        Column("note", Text, nullable=True),
        Column("last_error", Text, nullable=True),
        CheckConstraint("state IN ('testing', 'waiting', 'finishing', 'done', 'cancelled')",
                        name="ck_subject_tests_state"),
        CheckConstraint("measure IN ('clicks', 'opens')", name="ck_subject_tests_measure"),
        Index("uq_subject_tests_open_issue", "issue", unique=True,
              sqlite_where=text(open_test), postgresql_where=text(open_test)),
    )
    Table(
        "subject_test_people",
        md,
        Column("test_id", _Id, ForeignKey("subject_tests.id", ondelete="CASCADE"),
               primary_key=True, autoincrement=False),
        Column("subscriber_id", _Id, ForeignKey("subscribers.id", ondelete="CASCADE"),
               primary_key=True, autoincrement=False),
        Column("arm", Integer, nullable=False),
        Index("ix_subject_test_people_arm", "test_id", "arm", "subscriber_id"),
    )
    for name in ("welcome_requests", "subject_tests", "subject_test_people"):
        md.tables[name].create(conn)
