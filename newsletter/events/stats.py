"""Engagement per send, from the counters the webhook keeps per send and recipient."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

from sqlalchemy import Connection, case, func, select

from newsletter.compose.publication import Publication
from newsletter.db.tables import ENGAGEMENT_COUNTERS, engagement


@dataclass(frozen=True)
class Engagement:
    """Event totals of one send; `unique_opens`/`unique_clicks` count recipients."""

    delivered: int = 0
    opens: int = 0
    clicks: int = 0
    deferred: int = 0
    bounces: int = 0
    blocked: int = 0
    dropped: int = 0
    complaints: int = 0
    unsubscribes: int = 0
    unique_opens: int = 0
    unique_clicks: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def engagement_by_send(conn: Connection, send_ids: Iterable[int]) -> dict[int, Engagement]:
    """Totals for each send id (a send without events gets zeros)."""
    ids = sorted(set(send_ids))
    found = dict.fromkeys(ids, Engagement())
    if not ids:
        return found
    columns = [func.coalesce(func.sum(engagement.c[name]), 0).label(name)
               for name in ENGAGEMENT_COUNTERS]
    columns += [
        func.coalesce(func.sum(case((engagement.c.opens > 0, 1), else_=0)), 0)
        .label("unique_opens"),
        func.coalesce(func.sum(case((engagement.c.clicks > 0, 1), else_=0)), 0)
        .label("unique_clicks"),
    ]
    query = (select(engagement.c.send_id, *columns)
             .where(engagement.c.send_id.in_(ids)).group_by(engagement.c.send_id))
    for row in conn.execute(query):
        values = row._mapping
        found[row.send_id] = Engagement(**{k: int(v) for k, v in values.items()
                                           if k != "send_id"})
    return found


def engagement_lines(pub: Publication, send_ids: Iterable[int]) -> dict[int, str]:
    """One line of engagement per send id, for `newsletter status`."""
    from newsletter.db import database

    with database(pub.settings) as engine:
        with engine.connect() as conn:
            found = engagement_by_send(conn, send_ids)
    return {
        send_id: (f"{e.delivered:,} delivered, {e.opens:,} opens ({e.unique_opens:,} unique), "
                  f"{e.clicks:,} clicks ({e.unique_clicks:,} unique), {e.bounces:,} bounces, "
                  f"{e.complaints:,} complaints, {e.unsubscribes:,} unsubscribes"
                  + (f", {e.deferred:,} deferred" if e.deferred else "")
                  + (f", {e.dropped:,} dropped" if e.dropped else ""))
        for send_id, e in found.items()
    }
