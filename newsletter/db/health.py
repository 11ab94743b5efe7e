"""Each send's reputation figures (newsletter.core.reputation.Figures), read from the stored
tables: the one home of "how many messages did this send hand over, how many of them bounced
hard, how many drew a complaint", for the reputation guard, `status` and `report`.

- handed over: the ledger's counters of the send, `accepted + failed + unknown` (every message
  a provider was given, whatever became of it; `cancelled` ones never left SendGrid);
- hard bounces: the people with a hard bounce of the send in the event store (every provider's
  webhook and the bounce mailbox store one as `bounce`, see newsletter.events.policy.STORED,
  and count it in the send's `engagement` row of that person, `bounces`), plus the recipients
  a server refused for good when they were handed over (`refused`: `failed` rows whose error
  is an SMTP 5xx reply to RCPT TO or DATA, the run's own answers);
- complaints: the people with a complaint (`spamreport`, counted in `complaints`).

People are counted from `engagement`, one row per send and person, with its two partial
indexes (the send's rows with bounces, with complaints): the cost follows a send's bounced and
complaining people, never its opens, clicks or recipients, and the counts outlive the pruning
of old events. Refusals are read from the send's ledger rows, so the guard reads them once per
run and counts the rest as its outcomes come.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import Connection, bindparam, func, or_, select, text

from newsletter.core.reputation import Figures
from newsletter.db.ledger_tables import send_recipients, sends
from newsletter.db.tables import engagement

#: the engagement counters of hard bounces and complaints (newsletter.events.policy.STORED)
BOUNCES, COMPLAINTS = "bounces", "complaints"
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
    """send id -> (people who bounced hard, people who complained), from the per-send
    counters the event store keeps (`engagement`): one statement per send, each count read
    from its partial index."""
    g = engagement.c
    send = bindparam("send", type_=g.send_id.type)
    # each condition is spelled as its partial index's, literally, so that SQLite uses it
    counts = [select(func.count()).where(g.send_id == send, text(f"engagement.{name} > 0"))
              .scalar_subquery() for name in (BOUNCES, COMPLAINTS)]
    query = select(*counts)
    found = {}
    for send_id in sorted(set(send_ids)):
        bounces, complaints = conn.execute(query, {"send": send_id}).one()
        found[send_id] = (int(bounces), int(complaints))
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
    """Up to `limit` (address, what) of the send's people who bounced hard or complained
    (erased people are kept under an anonymous key, not listed)."""
    g = engagement.c
    found: list[tuple[str, str]] = []
    for name, what in ((BOUNCES, "bounced"), (COMPLAINTS, "complained")):
        rows = conn.execute(select(g.email_key).where(
            g.send_id == send_id, text(f"engagement.{name} > 0"), g.email_key.contains("@"))
            .order_by(g.email_key).limit(limit - len(found)))
        found += [(key, what) for key in rows.scalars()]
        if len(found) >= limit:
            break
    return found
