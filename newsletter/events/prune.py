"""Pruning: webhook events older than NEWSLETTER_EVENTS_KEEP_DAYS (400 by default) are deleted in
batches, so `webhook_events` stops growing while each batch holds locks only briefly.

`webhook_events` only remembers which SendGrid event ids were applied (SendGrid retries a
delivery for at most 72 hours); the engagement totals per send and recipient live in the
`engagement` table, which pruning never touches, so reports stay whole.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Engine, delete, select

from newsletter.audience.model import utcnow
from newsletter.db.engine import write_connection
from newsletter.db.tables import webhook_events

BATCH = 5000


@dataclass
class PruneReport:
    deleted: int = 0
    batches: int = 0
    cutoff: dt.datetime | None = None

    def summary(self) -> str:
        when = self.cutoff.date().isoformat() if self.cutoff else "?"
        return (f"deleted {self.deleted:,} webhook event(s) received before {when} in "
                f"{self.batches} batch(es); engagement totals kept")


def prune_events(engine: Engine, keep_days: int, *, batch: int = BATCH,
                 now: dt.datetime | None = None) -> PruneReport:
    """Delete webhook events received more than `keep_days` ago, `batch` rows per
    transaction."""
    cutoff = (now or utcnow()) - dt.timedelta(days=keep_days)
    report = PruneReport(cutoff=cutoff)
    ids = webhook_events.c.sg_event_id
    while True:
        with write_connection(engine) as conn, conn.begin():
            chunk = list(conn.execute(select(ids).where(webhook_events.c.received_at < cutoff)
                                      .order_by(ids).limit(batch)).scalars())
            if chunk:
                conn.execute(delete(webhook_events).where(ids.in_(chunk)))
        if not chunk:
            return report
        report.deleted += len(chunk)
        report.batches += 1
        if len(chunk) < batch:
            return report
