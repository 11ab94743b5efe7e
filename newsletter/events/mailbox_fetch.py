"""`newsletter bounces fetch` (and `serve`, every few minutes): read the bounce mailbox once.

Batch by batch: read the new messages (newsletter.providers.bounces.imap), read each one
(newsletter.providers.bounces.classify), apply the batch's events in one write transaction
(newsletter.events.mailbox), and only then move the handled messages (bounces, complaints,
automatic replies, success notices) to the processed folder and set the unrecognised ones
aside. So a crash after the commit and before the move leaves messages to be read again, whose
events are then recognised as duplicates by their ids. Nothing is deleted: a message leaves the
folder only by moving.

One reader at a time (`one_reader`: a PostgreSQL advisory lock, or with SQLite a lock file
beside the database): a `bounces fetch` started while another one (or `serve`'s, in any
worker) is reading finds the mailbox busy and leaves it to that one. IMAP servers do not make
MOVE exclusive (two sessions moving one message may both copy it), so this keeps the processed
folder free of doubles; the event store's key keeps the database right even without it.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from newsletter.compose.publication import Publication
from newsletter.core.errors import NewsletterError
from newsletter.db.engine import write_connection
from newsletter.events.mailbox import Applied, apply_readings
from newsletter.events.policy import SoftBounceLimit
from newsletter.providers.bounces.classify import Context, Reading, read
from newsletter.providers.bounces.imap import BATCH, Fetched, Mailbox, MailboxUrl
from newsletter.providers.events import Bounce, Kind

_LABELS = {Kind.COMPLAINED: "complaint", Kind.DEFERRED: "deferral"}


@dataclass
class FetchReport:
    """What one read of the mailbox found and did."""

    where: str = ""
    busy: bool = False  # another reader had the mailbox: nothing was read
    read: int = 0
    formats: Counter[str] = field(default_factory=Counter)  # "DSN (RFC 3464)" -> messages
    kinds: Counter[str] = field(default_factory=Counter)  # hard, soft, complaint, deferred
    ignored: Counter[str] = field(default_factory=Counter)  # why -> messages
    unrecognised: list[str] = field(default_factory=list)  # one line per message
    duplicates: int = 0
    unattributed: int = 0
    erased: int = 0
    status_changes: int = 0
    moved: int = 0

    def add(self, applied: Applied) -> None:
        for event in applied.new:
            if event.kind == Kind.BOUNCED:
                name = "hard bounce" if event.bounce == Bounce.HARD else "soft bounce"
            else:
                name = _LABELS.get(event.kind, event.kind.value)
            self.kinds[name] += 1
        self.duplicates += applied.duplicates
        self.unattributed += applied.unattributed
        self.erased += applied.erased
        self.status_changes += applied.status_changes

    def lines(self) -> list[str]:
        """The report for people: a summary line, then one line per unrecognised message."""
        if self.busy:
            return [f"{self.where}: another reader is at work on the mailbox; nothing read"]
        kinds = ", ".join(f"{n} {k}{'s' * (n != 1)}" for k, n in sorted(self.kinds.items()))
        extra = [f"{n} {what}" for n, what in (
            (self.duplicates, "already applied"), (self.unattributed, "without a recipient"),
            (self.erased, "about erased addresses (not recorded)"),
            (sum(self.ignored.values()), "ignored"), (len(self.unrecognised), "unrecognised"))
            if n]
        head = (f"{self.where}: {self.read} message{'s' * (self.read != 1)} read; "
                f"{kinds or 'no new events'}"
                + (f"; {', '.join(extra)}" if extra else "")
                + f"; {self.status_changes} subscriber status change"
                + ("s" * (self.status_changes != 1)) + f"; {self.moved} moved")
        formats = [f"{n} {what}" for what, n in sorted(self.formats.items())]
        ignored = [f"{n} {why}" for why, n in sorted(self.ignored.items())]
        return [head,
                *([f"  recognised: {', '.join(formats)}"] if formats else []),
                *([f"  ignored: {', '.join(ignored)}"] if ignored else []),
                *(f"  left in the mailbox: {line}" for line in self.unrecognised)]


#: the PostgreSQL advisory lock key of the bounce mailbox (any fixed number; "NLbounce")
_LOCK_KEY = 0x4E4C626F756E6365


@contextlib.contextmanager
def one_reader(engine: Engine) -> Iterator[bool]:
    """True while this process is the mailbox's only reader, False when another one is."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _LOCK_KEY})
            if not got.scalar():
                yield False
                return
            try:
                yield True
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
        return
    database = engine.url.database or ""
    if not database or database == ":memory:":
        yield True
        return
    lock = Path(database).with_name(Path(database).name + ".bounces.lock")
    with lock.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _apply(engine: Engine, readings: list[Reading], secret: str | None,
           limit: SoftBounceLimit, attempts: int = 3) -> Applied:
    """One write transaction; a PostgreSQL deadlock or serialization failure is retried."""
    for attempt in range(1, attempts + 1):
        try:
            with write_connection(engine) as conn, conn.begin():
                return apply_readings(conn, readings, secret=secret, limit=limit)
        except DBAPIError as exc:
            code = getattr(exc.orig, "sqlstate", None)
            if attempt == attempts or code not in ("40P01", "40001"):
                raise
    raise AssertionError("unreachable")


def _settle(box: Mailbox, engine: Engine, batch: list[tuple[Fetched, Reading]],
            secret: str | None, limit: SoftBounceLimit, report: FetchReport) -> None:
    readings = [r for _, r in batch if r.outcome == "events"]
    if readings:
        report.add(_apply(engine, readings, secret, limit))
    handled = [f.uid for f, r in batch if r.outcome != "unrecognised"]
    box.move(handled)
    report.moved += len(handled)
    box.set_aside(f.uid for f, r in batch if r.outcome == "unrecognised")


def fetch_bounces(pub: Publication, engine: Engine, *, recheck: bool = False) -> FetchReport:
    """Read the bounce mailbox once and apply what it says (see the module's docstring).
    `recheck`: read the messages set aside as unrecognised again too."""
    config = pub.config.bounces
    if config is None:
        raise NewsletterError("newsletter.yaml has no `bounces:` section; see "
                              "docs/deliverability.md for the bounce mailbox")
    secrets = pub.settings.require_secret("signs the bounce addresses (VERP) of SMTP sends")
    ctx = Context(config, secrets, pub.config.sender.email.rsplit("@", 1)[1])
    limit = SoftBounceLimit.of(config)
    url = MailboxUrl.parse(config.imap_url)
    report = FetchReport(where=url.where)
    with one_reader(engine) as alone:
        if not alone:
            report.busy = True
            return report
        _read(Mailbox(url, pub.settings.bounces_password, config.processed_folder), engine, ctx,
              limit, recheck, report)
    return report


def _read(mailbox: Mailbox, engine: Engine, ctx: Context, limit: SoftBounceLimit,
          recheck: bool, report: FetchReport) -> None:
    secret = ctx.secrets[0]
    with mailbox as box:
        batch: list[tuple[Fetched, Reading]] = []
        for fetched in box.new_messages(recheck):
            reading = read(fetched.raw, ctx, fetched.received)
            report.read += 1
            if reading.outcome == "events":
                report.formats[reading.what] += 1
            elif reading.outcome == "ignored":
                report.ignored[reading.what] += 1
            else:
                report.unrecognised.append(
                    f"UID {fetched.uid} from {reading.sender or 'no sender'}"
                    f" ({reading.subject!r}): {reading.what}")
            batch.append((fetched, reading))
            if len(batch) >= BATCH:
                _settle(box, engine, batch, secret, limit, report)
                batch = []
        _settle(box, engine, batch, secret, limit, report)
