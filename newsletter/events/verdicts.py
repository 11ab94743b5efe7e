"""Apply the human-or-machine rules (newsletter.events.classify) to a batch being stored.

The rules need context from the database: when the message was delivered (a `delivered`
event, else the ledger's acceptance time), the recipient's earlier clicks of the same message
(for bursts), and the send's links (to give a provider's click its link position). All of it
is read in a few chunked queries per batch, never per event.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, select, update

from newsletter.audience.engaged import refresh_engaged
from newsletter.db.tables import send_links, webhook_events
from newsletter.events import rawsql
from newsletter.events.classify import BURST, Click, Thresholds, bursts, click_reason, open_reason
from newsletter.events.stored import Stored

_CHUNK = 900
Pair = tuple[int, str]  # (send_id, email_key)


@dataclass
class Verdicts:
    """Per event id: why it is a machine's (absent: a human's) and its resolved link."""

    reasons: dict[str, str] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)
    earlier_bursts: set[str] = field(default_factory=set)  # stored clicks now in a burst
    rejudged: set[str] = field(default_factory=set)  # their addresses (email keys)

    def mark_earlier(self, conn: Connection) -> None:
        """Re-mark stored clicks that a click of this batch turned into a burst, and recompute
        their people's last human engagement."""
        ids = sorted(self.earlier_bursts)
        for start in range(0, len(ids), _CHUNK):
            conn.execute(update(webhook_events)
                         .where(webhook_events.c.sg_event_id.in_(ids[start : start + _CHUNK]),
                                webhook_events.c.machine.is_(False))
                         .values(machine=True, reason=BURST))
        if self.rejudged:
            refresh_engaged(conn, sorted(self.rejudged))


def _link_positions(conn: Connection, send_ids: set[int]) -> dict[tuple[int, str], int]:
    """(send_id, url) -> position of the first link with that URL."""
    found: dict[tuple[int, str], int] = {}
    if not send_ids:
        return found
    query = (select(send_links.c.send_id, send_links.c.url, send_links.c.position)
             .where(send_links.c.send_id.in_(sorted(send_ids)))
             .order_by(send_links.c.send_id, send_links.c.position))
    for send_id, url, position in conn.execute(query):
        found.setdefault((send_id, url), position)
    return found


def _context(conn: Connection, pairs: set[Pair]) -> tuple[dict[Pair, int], dict[Pair, list]]:
    """Delivery time and stored clicks of each (send, recipient) pair.

    One query per send and chunk of addresses that seeks each address in
    ix_webhook_events_key_time (email_key, occurred_at), so only the pairs' own events are
    read, not every delivery and click of the send. The `+ 0` on send_id keeps the planner off
    the indexes that lead with send_id: with statistics gathered before a send's events came
    in, PostgreSQL took ix_webhook_events_timeline and read all of them for each click (40 ms a
    redirect at 100,000 events, docs/performance.md)."""
    delivered: dict[Pair, int] = {}
    clicks: dict[Pair, list] = defaultdict(list)
    by_send: dict[int, list[str]] = defaultdict(list)
    for send_id, key in sorted(pairs):
        by_send[send_id].append(key)
    for send_id, keys in by_send.items():
        for chunk in rawsql.chunks(conn, keys):
            among, values = rawsql.among(conn, chunk, "text")
            rows = conn.exec_driver_sql(
                "SELECT sg_event_id, event, email_key, occurred_at, position FROM webhook_events "
                f"WHERE send_id + 0 = {rawsql.marker(conn)} AND event IN ('delivered', 'click') "
                f"AND email_key {among}", (send_id, *values))
            for event_id, kind, key, occurred, position in rows:
                pair = (send_id, key)
                at = rawsql.unix(occurred)
                if kind == "delivered":
                    delivered[pair] = min(delivered.get(pair, at), at)
                else:
                    clicks[pair].append(Click(event_id, at, position))
    missing = pairs - set(delivered)
    if missing:
        delivered.update(_ledger_times(conn, missing))
    return delivered, clicks


def _ledger_times(conn: Connection, pairs: set[Pair]) -> dict[Pair, int]:
    """When our ledger saw the transport accept each message (SMTP and outbox sends).

    Each pair's row is found by key: the address's subscriber by subscribers.email_key
    (unique), then their row of the send by ix_send_recipients_person ((send_id + 0),
    subscriber_id: db.ledger_tables.person_send). Written `send_id + 0`, the send can only be
    looked up there, never read whole by its send index (what a planner that expects one row
    for a send it has no statistics of would choose), so a look-up costs the same however
    large the ledger grows."""
    found: dict[Pair, int] = {}
    keys = sorted({key for _, key in pairs})
    sends = sorted({send for send, _ in pairs})
    among_sends, send_values = rawsql.among(conn, sends, "bigint")
    # Each address's rows are probed by subscriber *and* send. Joined plainly, a planner
    # without statistics of the send (PostgreSQL: none yet for a new send; SQLite: none ever)
    # reads the whole send by the index's first column instead, once the batch names a few
    # dozen addresses. PostgreSQL: a LATERAL subquery kept apart (OFFSET 0); SQLite: a CROSS
    # JOIN, which keeps the subscribers as the outer loop.
    person_rows = (
        "CROSS JOIN LATERAL (SELECT send_id, updated_at FROM send_recipients AS r "
        f"WHERE r.subscriber_id = s.id AND r.send_id + 0 {among_sends} "
        "AND r.state = 'accepted' OFFSET 0) AS r" if rawsql.postgres(conn) else
        "CROSS JOIN send_recipients AS r ON r.subscriber_id = s.id "
        f"AND r.send_id + 0 {among_sends} AND r.state = 'accepted'")
    for chunk in rawsql.chunks(conn, keys):
        among_keys, key_values = rawsql.among(conn, chunk, "text")
        rows = conn.exec_driver_sql(
            f"SELECT r.send_id, s.email_key, r.updated_at FROM subscribers AS s {person_rows} "
            f"WHERE s.email_key {among_keys}", (*send_values, *key_values))
        for send_id, key, at in rows:
            if (send_id, key) in pairs and at is not None:
                found[(send_id, key)] = rawsql.unix(at)
    return found


def judge(conn: Connection, events: Sequence[Stored], limits: Thresholds) -> Verdicts:
    """The verdicts for a batch of (unique) events."""
    verdicts = Verdicts()
    click_events = []
    for event in events:
        if event.name == "open":
            reason = open_reason(event.user_agent, event.provider_machine)
            if reason:
                verdicts.reasons[event.event_id] = reason
        elif event.name == "click" and event.send_id is not None:
            click_events.append(event)
    if not click_events:
        return verdicts
    needs_position = {e.send_id for e in click_events if e.position is None and e.url}
    urls = _link_positions(conn, needs_position)  # type: ignore[arg-type]
    pairs: set[Pair] = {(e.send_id, e.email_key) for e in click_events}  # type: ignore[misc]
    delivered, stored = _context(conn, pairs)
    for event in events:  # deliveries in this very batch
        pair = (event.send_id, event.email_key)
        if event.name == "delivered" and pair in pairs and event.timestamp:
            delivered[pair] = min(delivered.get(pair, event.timestamp), event.timestamp)  # type: ignore[index]
    new: dict[Pair, list[Click]] = defaultdict(list)
    for event in click_events:
        pair = (event.send_id, event.email_key)
        position = event.position
        if position is None and event.url:
            position = urls.get((event.send_id, event.url))  # type: ignore[arg-type]
        if position is not None:
            verdicts.positions[event.event_id] = position
        reason = click_reason(event.timestamp, event.user_agent, delivered.get(pair), limits)  # type: ignore[arg-type]
        if reason:
            verdicts.reasons[event.event_id] = reason
        new[pair].append(Click(event.event_id, event.timestamp, position))  # type: ignore[index]
    for pair, fresh in new.items():
        fresh_keys = {c.key for c in fresh}
        earlier = [c for c in stored.get(pair, []) if c.key not in fresh_keys]
        for key in bursts([*earlier, *fresh], limits):
            if key not in fresh_keys:
                verdicts.earlier_bursts.add(key)
                verdicts.rejudged.add(pair[1])
            elif verdicts.reasons.get(key) is None:
                verdicts.reasons[key] = BURST
    return verdicts
