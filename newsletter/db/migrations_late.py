"""Migrations 9 on: the issue family's ledger, the erasure key, sign-offs, webhook tokens, the
reputation guard, the ledger at scale, the welcome and subject tests, each with its own frozen
DDL. They follow db.migrations_early in the one registry; new migrations are appended here (see
db.migrations for the rules)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from newsletter.db.migrations_early import _Id, migration


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


@migration(16, "subscribers' last human engagement")
def _last_engaged(conn: Connection) -> None:
    """subscribers gain `last_engaged_at` (no index: segments scan it with the rest of the
    row), filled from the human opens and clicks already stored, in two set-based statements
    (newsletter.audience.engaged keeps it from here on)."""
    conn.execute(text("ALTER TABLE subscribers ADD COLUMN last_engaged_at "
                      + ("TIMESTAMP WITHOUT TIME ZONE" if conn.dialect.name == "postgresql"
                         else "DATETIME")))
    conn.execute(text(
        "UPDATE subscribers SET last_engaged_at = engaged.at FROM ("
        "SELECT email_key, max(occurred_at) AS at FROM webhook_events "
        "WHERE event IN ('open', 'click') AND machine = false AND occurred_at IS NOT NULL "
        "GROUP BY email_key) AS engaged WHERE subscribers.email_key = engaged.email_key"))


@migration(17, "ledger rows on PostgreSQL: no foreign-key trigger, pages filled to a third")
def _ledger_without_row_trigger(conn: Connection) -> None:
    """PostgreSQL checks a foreign key with a trigger run for each inserted row: for a 1M-row
    snapshot, about half the server's work. send_recipients' key to sends goes there (rows
    are only ever inserted by the snapshot, in the transaction that creates their send); SQLite
    keeps it (its check is an index look-up). New pages are filled to a third, so that both
    new versions of each row (in flight, then its outcome) fit on its page without waiting for
    the old ones to be pruned."""
    if conn.dialect.name != "postgresql":
        return
    for key in inspect(conn).get_foreign_keys("send_recipients"):
        if key["referred_table"] == "sends" and key["name"]:
            conn.execute(text(f'ALTER TABLE send_recipients DROP CONSTRAINT "{key["name"]}"'))
    conn.execute(text("ALTER TABLE send_recipients SET (fillfactor = 33)"))


@migration(18, "subscriber tags and audit rows on PostgreSQL: checked once per statement")
def _subscriber_keys_per_statement(conn: Connection) -> None:
    """PostgreSQL checks a foreign key with a trigger run for each inserted row: more than half
    the server's work of an import of new people. subscriber_tags' and subscriber_history's keys
    to subscribers become statement triggers that check (locking each subscriber FOR KEY SHARE,
    as the key did) and cascade a delete (newsletter.db.subscriber_keys explains them). SQLite
    keeps the keys."""
    if conn.dialect.name != "postgresql":
        return
    for table in ("subscriber_tags", "subscriber_history"):
        for key in inspect(conn).get_foreign_keys(table):
            if key["referred_table"] == "subscribers" and key["name"]:
                conn.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{key["name"]}"'))
    conn.execute(text("""
CREATE OR REPLACE FUNCTION newsletter_rows_name_subscribers() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    missing bigint;
BEGIN
    SELECT w.subscriber_id INTO missing
      FROM (SELECT DISTINCT subscriber_id FROM written) AS w
     WHERE NOT EXISTS (SELECT FROM subscribers s WHERE s.id = w.subscriber_id FOR KEY SHARE)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME,
            MESSAGE = 'insert or update on table "' || TG_TABLE_NAME || '": subscriber '
                      || missing || ' does not exist';
    END IF;
    RETURN NULL;
END
$$"""))
    conn.execute(text("""
CREATE OR REPLACE FUNCTION newsletter_subscribers_take_their_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM subscriber_tags WHERE subscriber_id = ANY (ARRAY(SELECT id FROM gone));
    DELETE FROM subscriber_history WHERE subscriber_id = ANY (ARRAY(SELECT id FROM gone));
    RETURN NULL;
END
$$"""))
    for table in ("subscriber_tags", "subscriber_history"):
        for event in ("INSERT", "UPDATE"):
            conn.execute(text(
                f"CREATE TRIGGER {table}_{event.lower()}_names_subscribers AFTER {event} ON "
                f"{table} REFERENCING NEW TABLE AS written FOR EACH STATEMENT "
                "EXECUTE FUNCTION newsletter_rows_name_subscribers()"))
    conn.execute(text(
        "CREATE TRIGGER subscribers_delete_takes_their_rows AFTER DELETE ON subscribers "
        "REFERENCING OLD TABLE AS gone FOR EACH STATEMENT "
        "EXECUTE FUNCTION newsletter_subscribers_take_their_rows()"))


@migration(19, "a person's ledger rows indexed send first, so a snapshot does not grow with "
               "history")
def _person_rows_send_first(conn: Connection) -> None:
    """ix_send_recipients_subscriber (subscriber_id, send_id) becomes ix_send_recipients_person
    ((send_id + 0), subscriber_id): a new send's entries go after every earlier send's instead
    of beside each person's earlier entries, and only a look-up that writes `send_id + 0` can
    use it (db.ledger_tables.person_send)."""
    conn.execute(text("DROP INDEX ix_send_recipients_subscriber"))
    conn.execute(text("CREATE INDEX ix_send_recipients_person "
                      "ON send_recipients ((send_id + 0), subscriber_id)"))
