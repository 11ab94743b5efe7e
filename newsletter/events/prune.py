"""Pruning: webhook events older than NEWSLETTER_EVENTS_KEEP_DAYS (400 by default) are deleted in
batches, so `webhook_events` stops growing while each batch holds locks only briefly; sign-up
requests never confirmed are deleted NEWSLETTER_SIGNUPS_KEEP_DAYS (7 by default) after the last
request (a confirmation link lives 3 days; a confirmed request stays as the record of consent
until the person is forgotten).

`webhook_events` only remembers which SendGrid event ids were applied (SendGrid retries a
delivery for at most 72 hours); the engagement totals per send and recipient live in the
`engagement` table, which pruning never touches, so reports stay whole. The last human
engagement of the people whose opens and clicks a batch deletes is recomputed in the same
transaction (newsletter.audience.engaged).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Engine, and_, delete, select

from newsletter.audience.engaged import ENGAGING, refresh_engaged
from newsletter.audience.model import utcnow
from newsletter.core.settings import SIGNUPS_KEEP_DAYS
from newsletter.db.engine import write_connection
from newsletter.db.tables import signups, webhook_events

BATCH = 5000


@dataclass
class PruneReport:
    deleted: int = 0
    batches: int = 0
    cutoff: dt.datetime | None = None
    signups: int = 0  # unconfirmed sign-up requests deleted

    def summary(self) -> str:
        when = self.cutoff.date().isoformat() if self.cutoff else "?"
        return (f"deleted {self.deleted:,} webhook event(s) received before {when} in "
                f"{self.batches} batch(es); engagement totals kept; deleted "
                f"{self.signups:,} unconfirmed sign-up request(s)")


def prune_signups(engine: Engine, keep_days: int = SIGNUPS_KEEP_DAYS,
                  now: dt.datetime | None = None) -> int:
    """Delete sign-up requests not confirmed within `keep_days` of the last request."""
    cutoff = (now or utcnow()) - dt.timedelta(days=keep_days)
    with write_connection(engine) as conn, conn.begin():
        return conn.execute(delete(signups).where(and_(
            signups.c.confirmed_at.is_(None), signups.c.requested_at < cutoff))).rowcount or 0


def prune_events(engine: Engine, keep_days: int, *, batch: int = BATCH,
                 now: dt.datetime | None = None,
                 signups_keep_days: int = SIGNUPS_KEEP_DAYS) -> PruneReport:
    """Delete webhook events received more than `keep_days` ago, `batch` rows per
    transaction, and the sign-up requests left unconfirmed for `signups_keep_days`."""
    cutoff = (now or utcnow()) - dt.timedelta(days=keep_days)
    report = PruneReport(cutoff=cutoff, signups=prune_signups(engine, signups_keep_days, now))
    e = webhook_events.c
    while True:
        with write_connection(engine) as conn, conn.begin():
            rows = conn.execute(select(e.sg_event_id, e.email_key, e.event, e.machine)
                                .where(e.received_at < cutoff)
                                .order_by(e.sg_event_id).limit(batch)).all()
            chunk = [row[0] for row in rows]
            if chunk:
                conn.execute(delete(webhook_events).where(e.sg_event_id.in_(chunk)))
            refresh_engaged(conn, sorted({key for _, key, event, machine in rows
                                          if event in ENGAGING and not machine}))
        if not chunk:
            return report
        report.deleted += len(chunk)
        report.batches += 1
        if len(chunk) < batch:
            return report
