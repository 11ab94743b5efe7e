"""The send ledger's tables (current schema; migrations 2, 6, 9, 13, 14 and 17 made them).

`sends`: one row per send of an issue to a segment, with its state, counts and how it treats
people another send of the issue family reached (`reach`).
`send_recipients`: the recipient list snapshotted when the send started, one row each, with
its delivery state (see RECIPIENT_STATES), attempts, provider id and last error (for `skipped`
and `cancelled` rows: why).
`send_batches`: the SendGrid batch ids of a scheduled (undo-window) send, one per run, with
their send_at and the first ledger batch number each covers.
`send_pauses`: each pause the reputation guard made, with its figures, and its resume.
`send_artifacts`: what a send sends, frozen when it starts (subject, the two parts with their
placeholders, the sender and link settings, the issue family), so every resume sends exactly
that.
The tables join the database's one MetaData (newsletter.db.tables.metadata).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    ColumnElement,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    literal_column,
    text,
)

from newsletter.db.tables import Id, JsonDoc, UtcDateTime, metadata

SEND_STATES = ("sending", "stopped", "completed", "cancelled")
#: pending: not handed over yet; accepted: the provider took it; failed: refused for good;
#: unknown: handed over, answer lost; skipped: dropped right before the hand-over (consent
#: withdrawn, or reached meanwhile by another send of the issue family); cancelled: handed
#: over, then cancelled at the provider before delivery (SendGrid's undo window)
RECIPIENT_STATES = ("pending", "accepted", "failed", "unknown", "skipped", "cancelled")
#: how a send treats people another send of the issue family reached (see dispatch.ledger.reached)
REACH_POLICIES = ("once", "unknown", "again")
#: the states in which a send holds its issue (the unique partial index's condition)
ACTIVE = "state IN ('sending', 'stopped')"
RECIPIENT_CHECK = "state IN ('pending', 'accepted', 'failed', 'unknown', 'skipped', 'cancelled')"
#: PostgreSQL: how full a page of send_recipients is filled (percent). Each row is updated
#: twice in quick succession (in flight, then its outcome), every row of a page by one
#: statement: two thirds of a page left free take both new versions of its rows even when the
#: old ones cannot be pruned yet (another transaction of the send still sees them). Such
#: updates stay on their page (HOT: no new index entries). At 100 almost none did; at 50
#: 60-90 %, varying with how soon pruning could run; at 33, 93 % at 300,000 people (a
#: table about 30 % larger: docs/performance.md).
FILLFACTOR = 33


def person_send(rows: Table | Any) -> ColumnElement[int]:
    """The first key of ix_send_recipients_person for `rows` (send_recipients or an alias of
    it): their send's id as the expression the index is built on. A look-up of a person's rows
    in given sends writes this, `IN` the sends, beside `subscriber_id`."""
    return rows.c.send_id + literal_column("0", Integer)


def _define(md: MetaData) -> tuple[Table, Table, Table, Table, Table]:
    sends = Table(
        "sends",
        md,
        Column("id", Id, primary_key=True, autoincrement=True),
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
        Column("send_at", UtcDateTime, nullable=True),
        Column("batch_id", String(100), nullable=True),
        Column("owner", String(200), nullable=True),
        Column("heartbeat_at", UtcDateTime, nullable=True),
        # fencing token: every ledger write names the lease it holds (migration 6)
        Column("lease", Integer, nullable=False, default=0, server_default=text("0")),
        Column("leased_at", UtcDateTime, nullable=True),
        Column("last_error", Text, nullable=True),
        Column("created_at", UtcDateTime, nullable=False),
        Column("updated_at", UtcDateTime, nullable=False),
        Column("finished_at", UtcDateTime, nullable=True),
        # migration 9: counts of the two new recipient states, and the send's reach policy
        Column("skipped", Integer, nullable=False, default=0, server_default=text("0")),
        Column("cancelled", Integer, nullable=False, default=0, server_default=text("0")),
        Column("reach", String(8), nullable=False, default="once",
               server_default=text("'once'")),
        # migration 13: set while the reputation guard holds the send (`send --resume` clears
        # it); the send's state stays `stopped`, so it still holds its issue
        Column("paused_at", UtcDateTime, nullable=True),
        CheckConstraint("state IN ('sending', 'stopped', 'completed', 'cancelled')",
                        name="ck_sends_state"),
        Index("ix_sends_issue_segment", "issue", "segment"),
        # one send of an issue under way (or stopped, awaiting its resume) at a time
        Index("uq_sends_active_issue", "issue", unique=True,
              sqlite_where=text(ACTIVE), postgresql_where=text(ACTIVE)),
    )
    recipients = Table(
        "send_recipients",
        md,
        Column("id", Id, primary_key=True, autoincrement=True),
        Column("send_id", Id, nullable=False),
        Column("subscriber_id", Id, nullable=True),
        Column("email", String(320), nullable=False),
        Column("name", Text, nullable=False),
        Column("attributes", JsonDoc, nullable=False),
        Column("state", String(10), nullable=False),
        Column("batch", Integer, nullable=True),
        Column("attempts", Integer, nullable=False, default=0),
        Column("provider_id", String(255), nullable=True),
        Column("last_error", Text, nullable=True),
        Column("updated_at", UtcDateTime, nullable=True),
        CheckConstraint(RECIPIENT_CHECK, name="ck_send_recipients_state"),
        # Each row belongs to its send, on SQLite by a foreign key. On PostgreSQL a foreign key
        # is a trigger run for each inserted row: half the server's work of a 1M-row snapshot
        # (migration 17 dropped it there). Rows are written by one statement only, the
        # snapshot, in the transaction that creates their send, and sends are never deleted.
        ForeignKeyConstraint(["send_id"], ["sends.id"], ondelete="CASCADE")
        .ddl_if(dialect="sqlite"),
        # A send's rows in id order (migration 10): reading a batch and updating its range
        # are index range scans whatever the planner's statistics say (none yet for a send
        # just filled). No column a state change touches is indexed, so on PostgreSQL
        # those updates stay on their page (HOT) when it has room: see FILLFACTOR.
        Index("ix_send_recipients_send", "send_id", "id"),
        postgresql_with={"fillfactor": FILLFACTOR},
    )
    # A person's row of a send (migration 19; before it (subscriber_id, send_id)): "has this
    # person been reached by the issue family?" for the people of one batch, and a click's or
    # an event's own row (found through subscribers.email_key). The send comes first, so a new
    # send's entries go after every earlier send's, and a snapshot costs the same however many
    # sends came before it (with the person first, each entry went beside that person's
    # entries of every earlier send: on PostgreSQL a 1M snapshot took 3.7-4.2 s after one
    # send and 4.3-4.5 s after five, against 3.2 s either way now; docs/performance.md). The
    # send is the expression `send_id + 0` (`person_send`), not the column:
    # only a look-up that writes it can use this index, so a batch's range (send_id, id) can
    # never be read through it, whatever the planner's statistics say.
    Index("ix_send_recipients_person", person_send(recipients), recipients.c.subscriber_id)
    batches = Table(
        "send_batches",
        md,
        Column("id", Id, primary_key=True, autoincrement=True),
        Column("send_id", Id, ForeignKey("sends.id", ondelete="CASCADE"), nullable=False),
        Column("batch_id", String(100), nullable=False),
        Column("send_at", UtcDateTime, nullable=False),
        Column("first_batch", Integer, nullable=False),
        Column("state", String(16), nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        CheckConstraint("state IN ('open', 'cancelled')", name="ck_send_batches_state"),
        Index("ix_send_batches_send", "send_id"),
    )
    artifacts = Table(
        "send_artifacts",
        md,
        Column("send_id", Id, ForeignKey("sends.id", ondelete="CASCADE"), primary_key=True,
               autoincrement=False),
        Column("format", Integer, nullable=False),  # the artifact layout's version
        Column("subject", Text, nullable=False),
        Column("html", Text, nullable=False),  # with %%placeholders%% (and %%link|N%%)
        Column("text", Text, nullable=False),
        # sender, reply-to, list name, public URL, SendGrid categories and group, the issue
        # family's slugs and the tracked links (position -> URL)
        Column("settings", JsonDoc, nullable=False),
        Column("content_hash", String(64), nullable=False),  # of subject, html and text
        Column("source_hash", String(64), nullable=True),  # of the sources it was built from
        Column("created_at", UtcDateTime, nullable=False),
    )
    pauses = Table(
        "send_pauses",
        md,
        Column("id", Id, primary_key=True, autoincrement=True),
        Column("send_id", Id, ForeignKey("sends.id", ondelete="CASCADE"), nullable=False),
        Column("paused_at", UtcDateTime, nullable=False),
        Column("reason", Text, nullable=False),
        # what was judged: since the send began or its last resume (people, not events)
        Column("handed", Integer, nullable=False),
        Column("hard", Integer, nullable=False),
        Column("complaints", Integer, nullable=False),
        # the thresholds it was judged by (reputation: in newsletter.yaml at the time)
        Column("min_sample", Integer, nullable=False),
        Column("bounce_pause", Float, nullable=False),
        Column("complaint_pause", Float, nullable=False),
        # `send --resume`: when, by which process, and the send's totals then: the baseline
        # the guard judges the rest of the send from
        Column("resumed_at", UtcDateTime, nullable=True),
        Column("resumed_by", String(200), nullable=True),
        Column("resumed_handed", Integer, nullable=True),
        Column("resumed_hard", Integer, nullable=True),
        Column("resumed_complaints", Integer, nullable=True),
        Index("ix_send_pauses_send", "send_id"),
    )
    return sends, recipients, batches, artifacts, pauses


sends, send_recipients, send_batches, send_artifacts, send_pauses = _define(metadata)
