"""The send ledger's tables (current schema; migration 2 created them).

`sends`: one row per send of an issue to a segment, with its state and counts.
`send_recipients`: the recipient list snapshotted when the send started, one row each, with
its delivery state (pending, accepted, failed, unknown), attempts, provider id and last error.
The tables join the database's one MetaData (newsletter.db.tables.metadata).
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from newsletter.db.tables import Id, JsonDoc, UtcDateTime, metadata

SEND_STATES = ("sending", "stopped", "completed", "cancelled")
RECIPIENT_STATES = ("pending", "accepted", "failed", "unknown")


def _define(md: MetaData) -> tuple[Table, Table]:
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
        Column("last_error", Text, nullable=True),
        Column("created_at", UtcDateTime, nullable=False),
        Column("updated_at", UtcDateTime, nullable=False),
        Column("finished_at", UtcDateTime, nullable=True),
        CheckConstraint("state IN ('sending', 'stopped', 'completed', 'cancelled')",
                        name="ck_sends_state"),
        Index("ix_sends_issue_segment", "issue", "segment"),
    )
    recipients = Table(
        "send_recipients",
        md,
        Column("id", Id, primary_key=True, autoincrement=True),
        Column("send_id", Id, ForeignKey("sends.id", ondelete="CASCADE"), nullable=False),
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
        CheckConstraint("state IN ('pending', 'accepted', 'failed', 'unknown')",
                        name="ck_send_recipients_state"),
        # On send_id alone: state changes (two per recipient) then leave the index alone.
        Index("ix_send_recipients_send", "send_id"),
    )
    return sends, recipients


sends, send_recipients = _define(metadata)
