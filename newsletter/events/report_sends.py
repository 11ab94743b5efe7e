"""What the sends of an issue carried and what they could measure, for reports.

- `record_contents` (called by `events.tracking.track_links` when a send starts) stores in
  `send_contents` every piece the send carries, also the pieces without links, with its
  expert's id and name as sent, and whether our click tracking rewrote its links.
- `sends_of` reads the sends back as `SendFacts`. A send made before `send_contents` existed
  knows only the pieces that had links (from `send_links`) and not whether clicks were tracked.
- what each send's provider reports back is what its transport declares
  (`capabilities()`, newsletter.providers): through its webhook (`reports`); the outbox and SMTP
  report nothing there (no tracking pixel is ever added), but SMTP's bounces and complaints come
  back by mail (`reports_by_mail`), to the bounce mailbox when the publication has one
  (`SendFacts.mailbox`).
- `people_reached` counts people, not messages: someone mailed again (`send --again`) is one.
- `personal_link` names a link that differs per recipient (unsubscribe, preference page).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import Connection, Engine, distinct, func, select

from newsletter.core.personalise import PLACEHOLDER
from newsletter.db.engine import write_connection
from newsletter.db.ledger_tables import send_recipients, sends
from newsletter.db.tables import send_contents, send_links
from newsletter.providers import capabilities

#: What a personal placeholder in a link's URL makes of it.
PERSONAL_LINKS = {"unsubscribe_url": "unsubscribe link", "preferences_url": "preference page link"}


@dataclass(frozen=True)
class PieceInfo:
    """A piece as a send carried it."""

    piece: int  # 1-based
    title: str
    expert: str  # the expert's id
    expert_name: str = ""  # as sent ("" for sends made before names were recorded)

    def as_row(self) -> dict:
        return {"piece": self.piece, "title": self.title, "expert": self.expert,
                "expert_name": self.expert_name}


@dataclass
class SendFacts:
    """One send of an issue, as reports need it."""

    id: int
    issue: str
    transport: str
    subject: str
    started: dt.datetime
    accepted: int  # messages the transport accepted
    pieces: list[PieceInfo] = field(default_factory=list)
    click_tracking: bool | None = None  # None: an older send that did not record it
    mailbox: bool = False  # the publication reads a bounce mailbox (its SMTP sends report)

    def reports(self, event: str) -> bool:
        """Whether this send's provider reports `event` (open, click, bounce, ...)."""
        declared = capabilities(self.transport)
        return event in declared.reports or (self.mailbox and event in declared.reports_by_mail)

    @property
    def measures_clicks(self) -> bool:
        """Clicks are counted: by the provider, or by our tracking (unknown for older sends,
        which are taken to have been tracked, as their reports always assumed)."""
        return self.reports("click") or self.click_tracking is not False


def record_contents(engine: Engine, send_id: int, pieces: Sequence[PieceInfo],
                    click_tracking: bool) -> None:
    """Store what send `send_id` carries, once (a resumed send keeps the first record)."""
    from newsletter.events.apply import dialect_insert  # the webhook's stack: not for reports

    with write_connection(engine) as conn, conn.begin():
        stmt = dialect_insert(conn, send_contents).on_conflict_do_nothing()
        conn.execute(stmt, {"send_id": send_id, "pieces": [p.as_row() for p in pieces],
                            "click_tracking": click_tracking})


def _aware(value: dt.datetime | str) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def sends_of(conn: Connection, issue: str | None = None) -> list[SendFacts]:
    """Every send of `issue` (of every issue when None), by id, with its pieces."""
    s = sends.c
    query = select(s.id, s.issue, s.transport, s.subject, s.send_at, s.created_at, s.accepted)
    if issue is not None:
        query = query.where(s.issue == issue)
    found = {row.id: SendFacts(row.id, row.issue, row.transport, row.subject,
                               _aware(row.send_at or row.created_at), int(row.accepted or 0))
             for row in conn.execute(query.order_by(s.id))}
    if not found:
        return []
    ids = sorted(found)
    c = send_contents.c
    for send_id, pieces, tracking in conn.execute(
            select(c.send_id, c.pieces, c.click_tracking).where(c.send_id.in_(ids))):
        facts = found[send_id]
        facts.click_tracking = bool(tracking)
        facts.pieces = [PieceInfo(int(p["piece"]), str(p["title"]), str(p["expert"]),
                                  str(p.get("expert_name") or "")) for p in pieces]
    older = [send_id for send_id in ids if found[send_id].click_tracking is None]
    if older:  # before send_contents: the pieces that had links
        lk = send_links.c
        rows = conn.execute(select(lk.send_id, lk.piece, lk.title, lk.expert)
                            .where(lk.send_id.in_(older), lk.piece > 0).distinct()
                            .order_by(lk.send_id, lk.piece))
        for send_id, piece, title, expert in rows:
            found[send_id].pieces.append(PieceInfo(int(piece), title, expert))
    return [found[send_id] for send_id in ids]


def people_reached(conn: Connection, send_ids: Iterable[int]) -> int:
    """Distinct people (addresses, any case) whose message a transport accepted in `send_ids`."""
    ids = sorted(set(send_ids))
    if not ids:
        return 0
    r = send_recipients.c
    return int(conn.execute(select(func.count(distinct(func.lower(r.email))))
                            .where(r.send_id.in_(ids), r.state == "accepted")).scalar_one())


def personal_link(url: str) -> str | None:
    """What a link whose URL differs per recipient is ("unsubscribe link", "preference page
    link", "link to stop 'energy'"), or None for an ordinary link."""
    match = PLACEHOLDER.search(url)
    if match is None:
        return None
    kind = PERSONAL_LINKS.get(match.group(1))
    if kind is None:
        return "personal link"
    stop = parse_qs(urlsplit(url[match.end():]).query).get("stop")
    if kind == "preference page link" and stop:
        return f"link to stop '{stop[0]}'"
    return kind
