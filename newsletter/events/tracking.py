"""Our own click tracking (any transport): the links of each send, the per-recipient redirect
URLs, and recording a click when `newsletter serve` answers one.

- When a send starts, `store_links` records every link of its email with its piece in
  `send_links` (for every send: provider clicks are matched to their link by URL too), and
  `record_contents` its pieces and whether its clicks are tracked (for reports).
- With `tracking: {clicks: true}`, `LinkUrls` fills each `%%link|N%%` placeholder of the build's
  tracked HTML with `<public_url>c/<token>`: the token signs (send, link position, recipient).
  A subscriber whose attribute `tracking` is `off` gets the plain URL.
- `resolve_click` checks the token and finds the URL in `send_links`: only links of that send's
  email can be reached, so the redirect is never an open redirect. `record_click` stores the
  click in the same event store as the webhook's, through the same classification rules.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine, select

from newsletter.audience.erasure import Secrets
from newsletter.audience.model import utcnow
from newsletter.compose.links import Link
from newsletter.core.personalise import Recipient
from newsletter.core.privacy import truncate_ip
from newsletter.core.tokens import BadToken, Keys, click_url, link_token
from newsletter.db.engine import write_connection
from newsletter.db.tables import send_links
from newsletter.events.apply import apply_batch, dialect_insert
from newsletter.events.classify import Thresholds
from newsletter.events.report_sends import PieceInfo, record_contents
from newsletter.providers.events import Kind, ProviderEvent
from newsletter.providers.mailing import PlainLinks

if TYPE_CHECKING:
    from newsletter.compose import Build
    from newsletter.compose.publication import Publication

OFF_VALUES = ("off", "no", "false", "0")
M = TypeVar("M")


def link_rows(links: Sequence[Link], pieces: Sequence[tuple[str, str]]) -> list[dict]:
    """send_links rows (without send_id) for `links`; `pieces` gives (title, expert id) of
    piece 1, 2, ..."""
    rows = []
    for link in links:
        title, expert = pieces[link.piece - 1] if 0 < link.piece <= len(pieces) else ("", "")
        rows.append({"position": link.position, "piece": link.piece, "link": link.index,
                     "url": link.url, "title": title, "expert": expert})
    return rows


def store_links(engine: Engine, send_id: int, rows: Sequence[dict]) -> None:
    """Record a send's links once (a resumed send keeps the first record)."""
    if not rows:
        return
    with write_connection(engine) as conn, conn.begin():
        stmt = dialect_insert(conn, send_links).on_conflict_do_nothing()
        conn.execute(stmt, [{"send_id": send_id, **row} for row in rows])


def tracking_off(recipient: Recipient) -> bool:
    """Whether the subscriber asked not to be tracked (attribute `tracking: off`)."""
    value = recipient.attributes.get("tracking")
    return value is False or str(value).strip().lower() in OFF_VALUES


@dataclass(frozen=True)
class LinkUrls(PlainLinks):
    """Fills `%%link|N%%` for one send: a signed redirect URL per link and recipient (the
    link's own URL for a recipient who turned tracking off)."""

    public_url: str
    secret: str
    send_id: int

    def __call__(self, recipient: Recipient, position: str) -> str:
        number, original = self.link(position)
        if not original or tracking_off(recipient):
            return original
        return click_url(self.public_url, link_token(self.secret, self.send_id, number,
                                                     recipient.email))


@dataclass(frozen=True)
class Click:
    """A valid click: where to send the visitor, and whose it was."""

    send_id: int
    position: int
    email: str
    url: str


def resolve_click(conn: Connection, keys: Keys, token: str) -> Click | None:
    """The click a token stands for, or None when the token is altered or names no link of
    its send."""
    try:
        send_id, position, email = keys.read_link(token)
    except BadToken:
        return None
    url = conn.execute(select(send_links.c.url).where(
        send_links.c.send_id == send_id, send_links.c.position == position)).scalar()
    if url is None or not url.startswith(("https://", "http://")):
        return None
    return Click(send_id, position, email, url)


def record_click(engine: Engine, click: Click, user_agent: str | None, ip: str | None,
                 limits: Thresholds | None = None, secrets: Secrets = None) -> None:
    """Store one redirect click (classified like a webhook's, and like a webhook's kept only
    anonymously when the erasure list says so)."""
    event = ProviderEvent("newsletter", f"nl-{uuid.uuid4().hex}", Kind.CLICKED, click.email,
                          timestamp=int(utcnow().timestamp()), send_id=click.send_id,
                          url=click.url, position=click.position,
                          user_agent=(user_agent or "")[:300] or None, ip=truncate_ip(ip))
    apply_batch(engine, [event], limits=limits, secrets=secrets)


def track_links(pub: Publication, build: Build, engine: Engine, send_id: int, mailing: M) -> M:
    """Dispatch's hook when a send starts: record the send's links and pieces (for reports)
    and, with click tracking on, return the mailing with tracked HTML and its per-recipient
    link URLs."""
    pieces = [(p.meta.title, p.meta.expert) for p in build.issue.pieces]
    store_links(engine, send_id, link_rows(build.links, pieces))
    tracked = bool(pub.config.tracking.clicks and build.tracked_html is not None)
    record_contents(engine, send_id, [
        PieceInfo(number, p.meta.title, p.meta.expert, p.expert.name)
        for number, p in enumerate(build.issue.pieces, start=1)], click_tracking=tracked)
    if not tracked:
        return mailing
    urls = LinkUrls(urls={link.position: link.url for link in build.links if link.trackable},
                    public_url=pub.config.public_url, secret=pub.settings.secret or "",
                    send_id=send_id)
    changes: dict[str, Any] = {"html": build.tracked_html, "link_url": urls}
    return dataclasses.replace(mailing, **changes)  # type: ignore[type-var]


def track_like(pub: Publication, engine: Engine, earlier: int, send_id: int, mailing: M,
               links: dict[int, str] | None) -> M:
    """The hook for a send that carries an earlier send's frozen message without a build in
    hand (a subject test's later subjects, its rest): the earlier send's links and pieces are
    recorded for it too and, when that send tracked clicks, so does this one (`links`: the
    frozen message's tracked links)."""
    from newsletter.db.tables import send_contents

    with engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(
            select(send_links).where(send_links.c.send_id == earlier))]
        carried = conn.execute(select(send_contents).where(
            send_contents.c.send_id == earlier)).first()
    store_links(engine, send_id, [{k: v for k, v in row.items() if k != "send_id"}
                                  for row in rows])
    if carried is None:
        return mailing
    record_contents(engine, send_id, [PieceInfo(**piece) for piece in carried.pieces],
                    click_tracking=carried.click_tracking)
    if not carried.click_tracking or links is None:
        return mailing
    urls = LinkUrls(urls=dict(links), public_url=pub.config.public_url,
                    secret=pub.settings.secret or "", send_id=send_id)
    return dataclasses.replace(mailing, link_url=urls)  # type: ignore[type-var]
