"""SQLAlchemy Core tables: the current schema, kept in step with the migrations
(migrations_early.py, migrations_late.py).

Timestamps are `UtcDateTime`: aware UTC datetimes in Python, stored as UTC on every database.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    DDL,
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    event,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from newsletter.db import subscriber_keys

metadata = MetaData()


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
    Column("paused_until", UtcDateTime, nullable=True),  # migration 4: in no segment until then
    Column("consented_at", UtcDateTime, nullable=True),  # last confirmed sign-up (migration 5)
    # migration 16: the latest human open or click (newsletter.audience.engaged keeps it)
    Column("last_engaged_at", UtcDateTime, nullable=True),
    CheckConstraint(
        "status IN ('active', 'unsubscribed', 'bounced', 'complained')",
        name="ck_subscribers_status",
    ),
    Index("uq_subscribers_email_key", "email_key", unique=True),
)

subscriber_tags = Table(
    "subscriber_tags",
    metadata,
    Column("subscriber_id", Id, primary_key=True),
    Column("tag", String(100), primary_key=True),
    # PostgreSQL: checked once per statement instead (db.subscriber_keys, migration 18)
    ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"], ondelete="CASCADE")
    .ddl_if(dialect="sqlite"),
    Index("ix_subscriber_tags_tag", "tag", "subscriber_id"),
    sqlite_with_rowid=False,
)

# --- public side (migration 3): webhook events, engagement, sign-ups, suppression sync ---------

webhook_events = Table(
    "webhook_events",
    metadata,
    Column("sg_event_id", String(100), primary_key=True),  # SendGrid's id: the dedup key
    Column("event", String(32), nullable=False),
    Column("email_key", String(320), nullable=False),
    Column("send_id", Id, nullable=True),
    Column("occurred_at", UtcDateTime, nullable=True),
    Column("received_at", UtcDateTime, nullable=False),
    # migration 4: event detail and the human-or-machine verdict (newsletter.events.classify)
    Column("url", Text, nullable=True),  # clicks: where the link goes
    Column("position", Integer, nullable=True),  # clicks: the link's place (send_links)
    Column("user_agent", String(300), nullable=True),
    Column("ip", String(64), nullable=True),  # truncated to its /24 (IPv4) or /48 (IPv6)
    Column("provider_machine", Boolean, nullable=True),  # opens: SendGrid's sg_machine_open
    Column("machine", Boolean, nullable=False, server_default=false()),
    Column("reason", String(32), nullable=True),  # why machine (a classify rule name)
    Index("ix_webhook_events_received_at", "received_at"),
    # reports and the verdicts' look-ups read only these two indexes (they cover what they need)
    Index("ix_webhook_events_report", "send_id", "event", "machine", "email_key", "position"),
    Index("ix_webhook_events_timeline", "send_id", "event", "machine", "occurred_at"),
    Index("ix_webhook_events_key_time", "email_key", "occurred_at"),
)

#: Migration 4: every link of a send's email with its piece (newsletter.compose.links), written
#: when a send starts; clicks name their link by `position`, the redirect looks up its URL here.
send_links = Table(
    "send_links",
    metadata,
    Column("send_id", Id, primary_key=True, autoincrement=False),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("piece", Integer, nullable=False),  # 0: the chrome
    Column("link", Integer, nullable=False),  # 1-based within the piece
    Column("url", Text, nullable=False),
    Column("title", Text, nullable=False),  # the piece's title ("" for the chrome)
    Column("expert", String(200), nullable=False),  # the piece's expert id ("" for the chrome)
)

#: Migration 8: what each send carried, for its report, written when the send starts: every
#: piece (those without links too) with its expert's id and name as sent, and whether our
#: click tracking rewrote its links (newsletter.events.report_sends).
send_contents = Table(
    "send_contents",
    metadata,
    Column("send_id", Id, primary_key=True, autoincrement=False),
    Column("pieces", JsonDoc, nullable=False),  # [{piece, title, expert, expert_name}, ...]
    Column("click_tracking", Boolean, nullable=False),
)

#: Engagement counters per send and recipient (send_id is the ledger's sends.id).
ENGAGEMENT_COUNTERS = (
    "delivered", "opens", "clicks", "deferred", "bounces", "blocked", "dropped", "complaints",
    "unsubscribes",
)

engagement = Table(
    "engagement",
    metadata,
    Column("send_id", Id, primary_key=True, autoincrement=False),
    Column("email_key", String(320), primary_key=True),
    *(Column(name, Integer, nullable=False, default=0) for name in ENGAGEMENT_COUNTERS),
    Column("last_event_at", UtcDateTime, nullable=True),
    # migration 13: each send's people who bounced hard or complained, counted by the
    # reputation guard before every batch (newsletter.db.health) from these alone
    *(Index(f"ix_engagement_{name}", "send_id", sqlite_where=text(f"{name} > 0"),
            postgresql_where=text(f"{name} > 0")) for name in ("bounces", "complaints")),
)

signups = Table(
    "signups",
    metadata,
    Column("email_key", String(320), primary_key=True),
    Column("email", String(320), nullable=False),
    Column("name", Text, nullable=False),
    Column("tags", JsonDoc, nullable=False),
    Column("requested_at", UtcDateTime, nullable=False),
    Column("window_start", UtcDateTime, nullable=False),
    Column("sent_in_window", Integer, nullable=False),
    Column("last_sent_at", UtcDateTime, nullable=True),
    Column("confirmed_at", UtcDateTime, nullable=True),
)

# --- provider webhooks: signature tokens seen (Mailgun), refused when replayed --------------
webhook_tokens = Table(
    "webhook_tokens",
    metadata,
    Column("provider", String(16), primary_key=True),
    Column("token", String(100), primary_key=True),
    Column("seen_at", UtcDateTime, nullable=False),
    Index("ix_webhook_tokens_seen_at", "seen_at"),
)

suppression_sync = Table(
    "suppression_sync",
    metadata,
    Column("kind", String(64), primary_key=True),
    Column("last_created", BigInteger, nullable=False),
    Column("synced_at", UtcDateTime, nullable=False),
)

# --- self-service (migration 4): audit trail and erasure suppressions -------------------------

#: One row per change of a subscriber's status, tags or preferences: what made it (`source`:
#: import, cli, page, webhook, sync, confirmation), when, and the value before and after.
subscriber_history = Table(
    "subscriber_history",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("subscriber_id", Id, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("source", String(32), nullable=False),
    Column("field", String(32), nullable=False),  # status, tag, pause, language, ...
    Column("before", Text, nullable=True),
    Column("after", Text, nullable=True),
    # PostgreSQL: checked once per statement instead (db.subscriber_keys, migration 18)
    ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"], ondelete="CASCADE")
    .ddl_if(dialect="sqlite"),
    Index("ix_subscriber_history_subscriber", "subscriber_id", "id"),
)


def _on_postgresql(table: Table, statements: list[str]) -> None:
    for statement in statements:
        event.listen(table, "after_create", DDL(statement).execute_if(dialect="postgresql"))


_on_postgresql(subscribers, subscriber_keys.CASCADE)
_on_postgresql(subscriber_tags, subscriber_keys.checks("subscriber_tags"))
_on_postgresql(subscriber_history, subscriber_keys.checks("subscriber_history"))

#: Keyed hashes of erased addresses (newsletter.audience.erasure): imports, `add` and events of
#: these are refused until the person confirms a new sign-up (`restored_at`, migration 9).
erased_addresses = Table(
    "erased_addresses",
    metadata,
    Column("address_hash", String(64), primary_key=True),
    Column("erased_at", UtcDateTime, nullable=False),
    Column("restored_at", UtcDateTime, nullable=True),  # the person's own confirmed sign-up
    # keyed with a signing secret itself, as before migration 8 (matched under every secret)
    Column("legacy", Boolean, nullable=False, server_default=false()),
)

#: Migration 9: the erasure list's own key, stored only wrapped under each signing secret
#: (`fingerprint` names the secret), so the list survives a rotation of NEWSLETTER_SECRET.
erasure_keys = Table(
    "erasure_keys",
    metadata,
    Column("fingerprint", String(64), primary_key=True),
    Column("wrapped", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# --- migration 5: consent, a shared sign-up throttle ------------------------------------------

signup_throttle = Table(
    "signup_throttle",
    metadata,
    Column("client", String(100), primary_key=True),  # the visitor's IP address
    Column("window_start", UtcDateTime, nullable=False),
    Column("hits", Integer, nullable=False),
    Index("ix_signup_throttle_window_start", "window_start"),
)

# --- migration 9: sign-off ----------------------------------------------------------------------

#: Who approved which exact content of an issue (newsletter.dispatch.approval): `content` is a
#: hash of the issue's sources and rendered parts, so an edit leaves earlier approvals behind.
#: `approver_key` is the name folded for comparison: one approval per person and content.
approvals = Table(
    "approvals",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("issue", String(200), nullable=False),
    Column("content", String(64), nullable=False),
    Column("approver", String(200), nullable=False),
    Column("approver_key", String(200), nullable=False),
    Column("approved_at", UtcDateTime, nullable=False),
    Index("uq_approvals_issue_content_approver", "issue", "content", "approver_key",
          unique=True),
)

# --- migration 15: the welcome message and subject tests -----------------------------------------

#: A confirmed sign-up waiting for the welcome message (newsletter.audience.welcome): written in
#: the transaction that confirms it (the sign-up page, `subscribers add --welcome`), never by an
#: import. Whether the welcome reached the person is the send ledger's answer, not this table's.
welcome_requests = Table(
    "welcome_requests",
    metadata,
    Column("subscriber_id", Id, ForeignKey("subscribers.id", ondelete="CASCADE"),
           primary_key=True, autoincrement=False),
    Column("requested_at", UtcDateTime, nullable=False),
    Column("via", String(32), nullable=False),  # web, cli
    Index("ix_welcome_requests_requested_at", "requested_at"),
)

#: states in which a subject test holds its issue (the unique partial index's condition)
TEST_OPEN = "state IN ('testing', 'waiting', 'finishing')"

#: A subject test of one send (newsletter.dispatch.subjects): its subjects, its sample, when it
#: decides and, once decided, the winner with its figures and significance note.
subject_tests = Table(
    "subject_tests",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("issue", String(200), nullable=False),
    Column("segment", String(200), nullable=False),  # the segments, joined by " + "
    Column("transport", String(16), nullable=False),
    Column("subjects", JsonDoc, nullable=False),  # [subject, ...]; the first is the fallback
    Column("sample", Integer, nullable=False),  # per cent of the segment tested
    Column("measure", String(8), nullable=False),  # clicks or opens, by people
    Column("decide_after", Integer, nullable=False),  # seconds after the last arm's start
    Column("level", Float, nullable=False),  # the significance level (0.05)
    Column("send_at", UtcDateTime, nullable=True),  # SendGrid: when the arms are released
    Column("undo_window", Integer, nullable=True),  # SendGrid: seconds
    Column("state", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("decide_at", UtcDateTime, nullable=True),  # set once every arm has gone
    Column("decided_at", UtcDateTime, nullable=True),
    Column("winner", Integer, nullable=True),  # index into subjects
    Column("figures", JsonDoc, nullable=True),  # per arm: reached, people, rate, machine
    Column("note", Text, nullable=True),  # the significance note, in words
    Column("last_error", Text, nullable=True),
    CheckConstraint("state IN ('testing', 'waiting', 'finishing', 'done', 'cancelled')",
                    name="ck_subject_tests_state"),
    CheckConstraint("measure IN ('clicks', 'opens')", name="ck_subject_tests_measure"),
    Index("uq_subject_tests_open_issue", "issue", unique=True,
          sqlite_where=text(TEST_OPEN), postgresql_where=text(TEST_OPEN)),
)


def subject_test_label(segment: str, test_id: int, part: str) -> str:
    """The ledger's segment label (sends.segment) of one send of a subject test: `part` is
    the subject's letter (A, B ...) or `rest` (the winner to the rest of the segment)."""
    return f"{segment} (subject test {test_id}: {part})"


#: Who is in a subject test's sample and which subject (arm) they get, drawn at random in the
#: transaction that creates the test, so every arm's send, however often resumed, goes to them.
subject_test_people = Table(
    "subject_test_people",
    metadata,
    Column("test_id", Id, ForeignKey("subject_tests.id", ondelete="CASCADE"),
           primary_key=True, autoincrement=False),
    Column("subscriber_id", Id, ForeignKey("subscribers.id", ondelete="CASCADE"),
           primary_key=True, autoincrement=False),
    Column("arm", Integer, nullable=False),
    Index("ix_subject_test_people_arm", "test_id", "arm", "subscriber_id"),
)
