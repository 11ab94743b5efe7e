"""Provider events in the neutral vocabulary (newsletter.providers.events) into the event store,
through the same path as SendGrid's webhook (newsletter.events.apply).

Until the event store speaks the neutral vocabulary itself, each `ProviderEvent` becomes the
stored event whose status and counter rules (newsletter.providers.sendgrid.webhook.KINDS)
already say what it means: a hard bounce retires the address, a soft one counts as blocked, a
drop for an earlier bounce, complaint or unsubscribe retires it the same way, a drop for any
other reason only counts. Event ids keep their provider's prefix ("pm:", "mg:", "ses:"), so
they never meet SendGrid's.

A signed post that must not be replayed (Mailgun's token, an SNS message's id) names its token:
the token is stored in `webhook_tokens` in the same transaction as the events, so a replay is
refused by every `serve` worker, and a post whose events could not be stored can be retried.
Tokens older than the window they are accepted in are deleted as new ones arrive.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Connection, Engine, delete, select
from sqlalchemy.exc import DBAPIError

from newsletter.audience.erasure import Secrets
from newsletter.audience.model import email_key, utcnow
from newsletter.db.engine import write_connection
from newsletter.db.tables import webhook_tokens
from newsletter.events.apply import ApplyReport, apply_events, dialect_insert
from newsletter.events.classify import Thresholds
from newsletter.providers.events import Bounce, DropReason, Kind, ProviderEvent
from newsletter.providers.sendgrid.webhook import Event

_KINDS = {Kind.DELIVERED: "delivered", Kind.DEFERRED: "deferred", Kind.COMPLAINED: "spamreport",
          Kind.UNSUBSCRIBED: "unsubscribe", Kind.RESUBSCRIBED: "group_resubscribe",
          Kind.OPENED: "open", Kind.CLICKED: "click"}
_DROPS = {DropReason.INVALID: "dropped_invalid", DropReason.BOUNCED: "dropped_invalid",
          DropReason.COMPLAINED: "dropped_spam", DropReason.UNSUBSCRIBED: "dropped_unsubscribed",
          DropReason.OTHER: "dropped"}


def stored(event: ProviderEvent) -> Event:
    """The event store's form of a neutral event."""
    if event.kind == Kind.BOUNCED:
        kind = "bounce" if event.bounce == Bounce.HARD else "blocked"
    elif event.kind == Kind.DROPPED:
        kind = _DROPS[event.reason or DropReason.OTHER]
    else:
        kind = _KINDS[event.kind]
    return Event(event.event_id, kind, event.email, email_key(event.email), event.timestamp,
                 event.send_id, url=event.url, position=event.position,
                 user_agent=event.user_agent, ip=event.ip,
                 provider_machine=event.provider_machine)


def remember_token(conn: Connection, provider: str, token: str, window: dt.timedelta,
                   now: dt.datetime | None = None) -> bool:
    """Store a post's signature token; False when it was stored before (a replay)."""
    now = now or utcnow()
    conn.execute(delete(webhook_tokens).where(webhook_tokens.c.seen_at < now - 2 * window))
    statement = dialect_insert(conn, webhook_tokens).values(provider=provider, token=token,
                                                            seen_at=now)
    inserted = statement.on_conflict_do_nothing().returning(webhook_tokens.c.token)
    return conn.execute(inserted).first() is not None


def remember_once(engine: Engine, provider: str, token: str, window: dt.timedelta) -> bool:
    """`remember_token` in a transaction of its own (a post that carries no events)."""
    with write_connection(engine) as conn, conn.begin():
        return remember_token(conn, provider, token, window)


def token_seen(engine: Engine, provider: str, token: str) -> bool:
    """Whether `token` is stored already (a replay, or a post still being applied)."""
    with engine.connect() as conn:
        return conn.execute(select(webhook_tokens.c.token).where(
            webhook_tokens.c.provider == provider,
            webhook_tokens.c.token == token)).first() is not None


def apply_provider_events(engine: Engine, events: Sequence[ProviderEvent], *,
                          token: tuple[str, str, dt.timedelta] | None = None,
                          limits: Thresholds | None = None, secrets: Secrets = None,
                          attempts: int = 3) -> ApplyReport | None:
    """Apply `events` in one write transaction, with the post's `token` (provider, token,
    window) when it has one; None when that token was seen before. `secrets` (the rotation
    list) read the erasure list. A PostgreSQL deadlock or serialization failure between
    concurrent posts is retried."""
    rows = [stored(e) for e in events]
    for attempt in range(1, attempts + 1):
        try:
            with write_connection(engine) as conn, conn.begin():
                if token is not None and not remember_token(conn, *token):
                    return None
                return apply_events(conn, rows, limits=limits, secrets=secrets)
        except DBAPIError as exc:
            if attempt == attempts or getattr(exc.orig, "sqlstate", None) not in ("40P01",
                                                                                "40001"):
                raise
    raise AssertionError("unreachable")
