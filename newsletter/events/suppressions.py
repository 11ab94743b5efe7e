"""Pull SendGrid's suppression lists and apply them to subscribers (SES's, Postmark's and
Mailgun's through `sync_provider`, from their neutral records).

Lists: bounces, spam reports, global unsubscribes and invalid emails (paged with limit/offset,
and from `start_time` on: each list's newest `created` seen is kept in `suppression_sync`, so
a later sync fetches only what is new), plus the unsubscribe group's suppressions when
`sendgrid.asm_group_id` is set (one list of addresses, always fetched whole).
Applying follows the status ladder (newsletter.audience.statuses): an address is retired
whatever its import time (an import is not consent); only a confirmed sign-up after the
suppression keeps or brings it back. Syncing twice changes nothing.

`release_address` is the other direction: after a confirmed sign-up it deletes the address from
SendGrid's bounce, spam report and global unsubscribe lists and from the unsubscribe group, so
that SendGrid delivers to someone who asked again (and from SES's list, when SES is in use).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

from sqlalchemy import Engine, select

from newsletter.audience.history import Source
from newsletter.audience.model import Status, email_key, utcnow
from newsletter.compose.publication import Publication
from newsletter.db.engine import write_connection
from newsletter.db.tables import suppression_sync
from newsletter.events.apply import dialect_insert
from newsletter.events.statuses import Change, apply_changes
from newsletter.providers.events import DropReason
from newsletter.providers.neutral import SuppressionSource
from newsletter.providers.sendgrid.suppressions import SendGridLists

log = logging.getLogger("newsletter.public")

#: list -> (API path under /v3, status its addresses get)
LISTS: dict[str, tuple[str, Status]] = {
    "bounces": ("suppression/bounces", Status.BOUNCED),
    "spam_reports": ("suppression/spam_reports", Status.COMPLAINED),
    "unsubscribes": ("suppression/unsubscribes", Status.UNSUBSCRIBED),
    "invalid_emails": ("suppression/invalid_emails", Status.BOUNCED),
}


@dataclass
class SyncReport:
    """Per list: addresses fetched; in all: subscribers whose status changed."""

    fetched: dict[str, int] = field(default_factory=dict)
    changed: int = 0

    def summary(self) -> str:
        parts = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in self.fetched.items())
        return f"Fetched {parts or 'nothing'}; {self.changed} subscriber(s) changed status."


def _created(entry: dict) -> int | None:
    value = entry.get("created")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def sync_suppressions(pub: Publication, engine: Engine, *, full: bool = False,
                      lists: SendGridLists | None = None,
                      progress: Callable[[str, int], None] | None = None) -> SyncReport:
    """Fetch the suppression lists (new entries only unless `full`) and apply them."""
    settings = pub.settings
    api = lists or SendGridLists(settings.sendgrid_api_key, settings.sendgrid_api_url)
    report = SyncReport()
    with engine.connect() as conn:
        marks = dict(conn.execute(select(suppression_sync.c.kind,
                                         suppression_sync.c.last_created)).all())
    for kind, (path, status) in LISTS.items():
        since = 0 if full else int(marks.get(kind, 0))
        newest, count = since, 0
        for entries in api.pages(path, since):
            changes = [Change(email_key(e["email"].strip()), status, _created(e)) for e in entries]
            with write_connection(engine) as conn, conn.begin():
                report.changed += apply_changes(conn, changes, via=Source.SYNC)
            count += len(entries)
            newest = max([newest, *(c.at for c in changes if c.at is not None)])
            if progress:
                progress(kind, count)
        report.fetched[kind] = count
        _save_mark(engine, kind, newest)
    group_id = pub.config.sendgrid.asm_group_id
    if group_id is not None:
        emails = api.group(group_id)
        changes = [Change(email_key(e.strip()), Status.UNSUBSCRIBED) for e in emails]
        with write_connection(engine) as conn, conn.begin():
            report.changed += apply_changes(conn, changes, via=Source.SYNC)
        report.fetched[f"group_{group_id}"] = len(emails)
    return report


#: Where a confirmed sign-up is deleted from: (label, API path with {email}).
RELEASE_PATHS = (
    ("bounces", "suppression/bounces/{email}"),
    ("spam_reports", "suppression/spam_reports/{email}"),
    ("global_unsubscribes", "asm/suppressions/global/{email}"),
)


def release_address(pub: Publication, email: str,
                    lists: SendGridLists | None = None) -> list[str]:
    """Delete `email` from SendGrid's suppression lists (and the unsubscribe group when
    `sendgrid.asm_group_id` is set) after a confirmed sign-up; return the lists it was on.
    Does nothing without SENDGRID_API_KEY. FailedError when SendGrid cannot be reached."""
    settings = pub.settings
    if lists is None:
        if not settings.sendgrid_api_key:
            return []
        lists = SendGridLists(settings.sendgrid_api_key, settings.sendgrid_api_url)
    segment = quote(email, safe="@")
    paths = [(label, path.format(email=segment)) for label, path in RELEASE_PATHS]
    group_id = pub.config.sendgrid.asm_group_id
    if group_id is not None:
        paths.append((f"group_{group_id}", f"asm/groups/{int(group_id)}/suppressions/{segment}"))
    return [label for label, path in paths if lists.delete(path)]


def uses_ses(pub: Publication) -> bool:
    """Whether the publication sends through SES (its default transport, or SES's events)."""
    return pub.settings.transport == "ses" or bool(pub.config.ses.topic_arns)


def release_quietly(pub: Publication, email: str) -> list[str]:
    """`release_address` (and SES's list, when SES is in use) for the web side: failures are
    logged, never raised."""
    from newsletter.core.errors import NewsletterError

    released = []
    try:
        released += release_address(pub, email)
    except NewsletterError as exc:
        log.warning("could not remove a confirmed address from SendGrid's suppressions (%s)",
                    type(exc).__name__)
    if uses_ses(pub):
        from newsletter.providers.ses.suppressions import LIST, SesSuppressions

        lists = SesSuppressions(pub.config.ses)
        try:
            if lists.release(email):
                released.append(LIST)
        except NewsletterError as exc:
            log.warning("could not remove a confirmed address from SES's suppression list "
                        "(%s)", type(exc).__name__)
        finally:
            lists.close()
    return released


def _save_mark(engine: Engine, kind: str, newest: int) -> None:
    with write_connection(engine) as conn, conn.begin():
        stmt = dialect_insert(conn, suppression_sync).values(
            kind=kind, last_created=newest, synced_at=utcnow())
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[suppression_sync.c.kind],
            set_={"last_created": stmt.excluded.last_created,
                  "synced_at": stmt.excluded.synced_at}))


def sync_before_send(pub: Publication, engine: Engine, provider: str = "sendgrid") -> str:
    """Run the sync before a send through `provider`; a note for the user, never an exception
    (the provider keeps dropping suppressed addresses on its side even when the sync cannot
    run)."""
    from newsletter.core.errors import NewsletterError

    label = {"sendgrid": "SendGrid", "ses": "SES", "postmark": "Postmark",
             "mailgun": "Mailgun"}[provider]
    try:
        report = (sync_suppressions(pub, engine) if provider == "sendgrid"
                  else sync_provider(pub, engine, provider))
        return "suppressions synced: " + report.summary()
    except NewsletterError as exc:
        return (f"could not sync {label} suppressions ({exc.format_message()}); {label} "
                "still drops addresses it suppresses")


#: what a reason on a provider's list does to a subscriber
REASON_STATUS = {DropReason.BOUNCED: Status.BOUNCED, DropReason.INVALID: Status.BOUNCED,
                 DropReason.COMPLAINED: Status.COMPLAINED,
                 DropReason.UNSUBSCRIBED: Status.UNSUBSCRIBED}


def provider_lists(pub: Publication, provider: str) -> SuppressionSource:
    """The suppression lists of SES (the account's, in its region), Postmark (the message
    stream's dump) or Mailgun (the domain's bounces, complaints and unsubscribes)."""
    settings = pub.settings
    if provider == "ses":
        from newsletter.providers.ses.suppressions import SesSuppressions

        return SesSuppressions(pub.config.ses)
    if provider == "postmark":
        from newsletter.providers.postmark.suppressions import PostmarkSuppressions

        return PostmarkSuppressions(settings.postmark.server_token, settings.postmark.api_url,
                                    pub.config.postmark.message_stream)
    from newsletter.providers.mailgun.suppressions import MailgunSuppressions
    from newsletter.providers.mailgun.transport import api_url

    return MailgunSuppressions(settings.mailgun.api_key, settings.mailgun.domain,
                               api_url(pub.config.mailgun.region, settings.mailgun.api_url))


def sync_provider(pub: Publication, engine: Engine, provider: str, *, full: bool = False,
                  source: SuppressionSource | None = None,
                  progress: Callable[[str, int], None] | None = None) -> SyncReport:
    """Read a provider's suppression lists (from the last sync on, where the provider can
    filter by time, unless `full`) and apply them, a page per transaction."""
    source = source or provider_lists(pub, provider)
    try:
        # where the list's mark is kept: SES's list is its region's, Postmark's its stream's
        mark = getattr(source, "mark", None) or (
            f"{provider}:{pub.config.postmark.message_stream}" if provider == "postmark"
            else provider)
        with engine.connect() as conn:
            since = 0 if full else int(conn.execute(select(suppression_sync.c.last_created)
                                                    .where(suppression_sync.c.kind == mark))
                                       .scalar() or 0)
        report, newest = SyncReport(), since
        for name, entries in source.pages(since):
            changes = [Change(email_key(e.email), REASON_STATUS[e.reason], e.at)
                       for e in entries if e.reason in REASON_STATUS]
            with write_connection(engine) as conn, conn.begin():
                report.changed += apply_changes(conn, changes, via=Source.SYNC)
            report.fetched[name] = report.fetched.get(name, 0) + len(entries)
            newest = max([newest, *(e.at for e in entries if e.at is not None)])
            if progress:
                progress(name, report.fetched[name])
    finally:
        source.close()
    _save_mark(engine, mark, newest)
    return report
