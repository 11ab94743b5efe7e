"""Each send's reputation figures (newsletter.core.reputation.Figures), read from the stored
tables: the one home of "how many messages did this send hand over, how many of them bounced
hard, how many drew a complaint", for the reputation guard, `status` and `report`.

- handed over: the ledger's counters of the send, `accepted + failed + unknown` (every message
  a provider was given, whatever became of it; `cancelled` ones never left SendGrid);
- hard bounces: the people whose hard bounce is in the event store (`webhook_events.event =
  'bounce'`: every provider's webhook and the bounce mailbox store it so, see
  newsletter.events.policy.STORED), plus the recipients a server refused for good when they
  were handed over (`refused`: `failed` rows whose error is an SMTP 5xx reply to RCPT TO or
  DATA, the run's own answers);
- complaints: the people whose complaint is in the event store (`spamreport`).

Events are counted per person with one index range (send, event): SQLite reads it from
ix_webhook_events_report alone, which holds the address too; PostgreSQL takes that range of
either index that begins so. The cost follows a send's bounces and complaints, never its
opens, clicks or recipients. Refusals are read from the send's ledger
rows, so the guard reads them once per run and counts the rest as its outcomes come.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import Connection, distinct, func, or_, select

from newsletter.core.reputation import Figures
from newsletter.db.ledger_tables import send_recipients, sends
from newsletter.db.tables import webhook_events

#: the stored names of a hard bounce and a complaint (newsletter.events.policy.STORED)
HARD_BOUNCE, COMPLAINT = "bounce", "spamreport"
#: how the SMTP transport words a refusal: "<stage>: <code> <text>" (providers.smtp._refused)
REFUSAL_STAGES = ("RCPT TO", "DATA", "end of DATA")
_REFUSAL = re.compile(rf"^(?:{'|'.join(map(re.escape, REFUSAL_STAGES))}): 5\d\d\b")


def is_refusal(state: str, error: str | None) -> bool:
    """Whether an outcome is a server's permanent refusal of its recipient (SMTP 5xx)."""
    return state == "failed" and bool(error) and _REFUSAL.match(error or "") is not None


def handed_over(conn: Connection, send_ids: Iterable[int]) -> dict[int, int]:
    """Messages each send handed over, from its counters (a primary-key read)."""
    s = sends.c
    ids = sorted(set(send_ids))
    rows = conn.execute(select(s.id, s.accepted + s.failed + s.unknown)
                        .where(s.id.in_(ids))) if ids else []
    return {send_id: int(count or 0) for send_id, count in rows}


def event_counts(conn: Connection, send_ids: Iterable[int]) -> dict[int, tuple[int, int]]:
    """send id -> (people who bounced hard, people who complained), from the event store."""
    e = webhook_events.c
    ids = sorted(set(send_ids))
    found = dict.fromkeys(ids, (0, 0))
    if not ids:
        return found
    rows = conn.execute(select(e.send_id, e.event, func.count(distinct(e.email_key)))
                        .where(e.send_id.in_(ids), e.event.in_([HARD_BOUNCE, COMPLAINT]))
                        .group_by(e.send_id, e.event))
    for send_id, event, count in rows:
        bounces, complaints = found[send_id]
        found[send_id] = ((int(count), complaints) if event == HARD_BOUNCE
                          else (bounces, int(count)))
    return found


def refusals(conn: Connection, send_ids: Iterable[int]) -> dict[int, int]:
    """send id -> recipients a server refused for good at the hand-over."""
    r = send_recipients.c
    ids = sorted(set(send_ids))
    found = dict.fromkeys(ids, 0)
    if not ids:
        return found
    worded = or_(*(r.last_error.like(f"{stage}: 5%") for stage in REFUSAL_STAGES))
    rows = conn.execute(select(r.send_id, r.last_error).where(
        r.send_id.in_(ids), r.state == "failed", worded))
    for send_id, error in rows:  # LIKE's `5%` is wider than the rule: ask it
        if is_refusal("failed", error):
            found[send_id] += 1
    return found


def figures_of(conn: Connection, send_ids: Iterable[int]) -> dict[int, Figures]:
    """The figures of each send, whole."""
    ids = sorted(set(send_ids))
    handed = handed_over(conn, ids)
    events = event_counts(conn, ids)
    refused = refusals(conn, ids)
    return {send_id: Figures(handed.get(send_id, 0), events[send_id][0] + refused[send_id],
                             events[send_id][1], refused[send_id])
            for send_id in ids}


def reported(conn: Connection, send_id: int, limit: int = 10) -> list[tuple[str, str]]:
    """Up to `limit` (address, event) of the send's hard bounces and complaints (addresses of
    erased people are not kept, so not listed)."""
    e = webhook_events.c
    rows = conn.execute(select(e.email_key, e.event).distinct()
                        .where(e.send_id == send_id, e.event.in_([HARD_BOUNCE, COMPLAINT]),
                               e.email_key.contains("@"))
                        .order_by(e.event, e.email_key).limit(limit))
    return [(key, "complained" if event == COMPLAINT else "bounced") for key, event in rows]
