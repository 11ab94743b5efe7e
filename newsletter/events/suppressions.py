"""Pull a provider's suppression lists and apply them to subscribers (`suppressions sync`, and
before a send through a provider that has them).

Each provider that declares `capabilities.suppression_lists` opens its lists as a
`SuppressionSource` (newsletter.providers.neutral): pages of neutral `Suppression`s, each list
read from the newest entry an earlier sync saw (kept in `suppression_sync` under the list's
mark, where the provider can filter by time), so a later sync fetches only what is new.
What each reason does to a subscriber is the one policy's (newsletter.events.policy), applied
through the status ladder (newsletter.audience.statuses): an address is retired whatever its
import time (an import is not consent); only a confirmed sign-up after the suppression keeps or
brings it back. Syncing twice changes nothing.

`release_address` is the other direction: after a confirmed sign-up the address is taken off
the lists of every provider that declares `capabilities.releases` and is in use here (SendGrid
with an API key; SES when it sends or its events are read; Postmark with a server token;
Mailgun with a key and a domain), so that it delivers to someone who asked again. How each
provider takes an address off (and what it keeps: Postmark a spam complaint) lives in its own
package.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine, select

from newsletter.audience.history import Source
from newsletter.audience.model import email_key, utcnow
from newsletter.compose.publication import Publication
from newsletter.core.errors import NewsletterError
from newsletter.db.engine import write_connection
from newsletter.db.tables import suppression_sync
from newsletter.events.apply import dialect_insert
from newsletter.events.policy import suppressed_status
from newsletter.events.statuses import Change, apply_changes
from newsletter.providers import TRANSPORTS, capabilities, transport_class
from newsletter.providers.neutral import Releaser, SuppressionSource

log = logging.getLogger("newsletter.public")


@dataclass
class SyncReport:
    """Per list: addresses fetched; in all: subscribers whose status changed."""

    fetched: dict[str, int] = field(default_factory=dict)
    changed: int = 0

    def summary(self) -> str:
        parts = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in self.fetched.items())
        return f"Fetched {parts or 'nothing'}; {self.changed} subscriber(s) changed status."


def provider_lists(pub: Publication, provider: str) -> SuppressionSource:
    """The suppression lists of `provider` (NewsletterError when it has none)."""
    if not capabilities(provider).suppression_lists:
        raise NewsletterError(f"the {provider} transport has no suppression lists to sync")
    return transport_class(provider).suppression_source(pub.settings, pub.config)


def sync_provider(pub: Publication, engine: Engine, provider: str, *, full: bool = False,
                  source: SuppressionSource | None = None,
                  progress: Callable[[str, int], None] | None = None) -> SyncReport:
    """Read a provider's suppression lists (each from its mark on, where the provider can
    filter by time, unless `full`) and apply them, a page per transaction."""
    source = source or provider_lists(pub, provider)
    with engine.connect() as conn:
        saved = dict(conn.execute(select(suppression_sync.c.kind,
                                         suppression_sync.c.last_created)).all())
    newest: dict[str, int] = {}

    def since(mark: str) -> int:
        start = 0 if full else int(saved.get(mark) or 0)
        newest.setdefault(mark, start)
        return start

    report = SyncReport()
    try:
        for page in source.pages(since):
            changes = [Change(email_key(e.email), status, e.at) for e in page.entries
                       if (status := suppressed_status(e.reason)) is not None]
            with write_connection(engine) as conn, conn.begin():
                report.changed += apply_changes(conn, changes, via=Source.SYNC)
            report.fetched[page.list] = report.fetched.get(page.list, 0) + len(page.entries)
            if page.mark is not None:
                newest[page.mark] = max([since(page.mark),
                                         *(e.at for e in page.entries if e.at is not None)])
            if progress:
                progress(page.list, report.fetched[page.list])
    finally:
        source.close()
    for mark, value in newest.items():
        _save_mark(engine, mark, value)
    return report


def sync_suppressions(pub: Publication, engine: Engine, *, full: bool = False,
                      progress: Callable[[str, int], None] | None = None) -> SyncReport:
    """`sync_provider` for SendGrid, the default provider of `suppressions sync`."""
    return sync_provider(pub, engine, "sendgrid", full=full, progress=progress)


def _releasers(pub: Publication) -> list[tuple[str, Releaser]]:
    """(label, lists) of each provider a confirmed sign-up is released from here."""
    found = []
    for name in TRANSPORTS:
        if capabilities(name).releases:
            cls = transport_class(name)
            releaser = cls.releaser(pub.settings, pub.config)
            if releaser is not None:
                found.append((cls.label or name, releaser))
    return found


def release_address(pub: Publication, email: str) -> list[str]:
    """Take `email` off the suppression lists of every provider in use that keeps them (see
    the module's docstring) after a confirmed sign-up; return the lists it was on. FailedError
    when a provider cannot be reached."""
    released: list[str] = []
    for _label, releaser in _releasers(pub):
        try:
            released += releaser.release(email)
        finally:
            releaser.close()
    return released


def release_quietly(pub: Publication, email: str) -> list[str]:
    """`release_address` for the web side: each provider's failure is logged, never raised."""
    released: list[str] = []
    for label, releaser in _releasers(pub):
        try:
            released += releaser.release(email)
        except NewsletterError as exc:
            log.warning("could not remove a confirmed address from %s's suppressions (%s)",
                        label, type(exc).__name__)
        finally:
            releaser.close()
    return released


def _save_mark(engine: Engine, kind: str, newest: int) -> None:
    with write_connection(engine) as conn, conn.begin():
        stmt = dialect_insert(conn, suppression_sync).values(
            kind=kind, last_created=newest, synced_at=utcnow())
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[suppression_sync.c.kind],
            set_={"last_created": stmt.excluded.last_created,
                  "synced_at": stmt.excluded.synced_at}))


def sync_before_send(pub: Publication, engine: Engine, provider: str) -> str:
    """Run the sync before a send through `provider`; a note for the user, never an exception
    (the provider keeps dropping suppressed addresses on its side even when the sync cannot
    run)."""
    label = transport_class(provider).label or provider
    try:
        return "suppressions synced: " + sync_provider(pub, engine, provider).summary()
    except NewsletterError as exc:
        return (f"could not sync {label} suppressions ({exc.format_message()}); {label} "
                "still drops addresses it suppresses")
