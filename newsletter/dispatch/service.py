"""Dispatch services the CLI (and the preview server) call: plan, send, dry-run, test, status.

`plan_send()` checks everything that can be checked before anything is sent and decides
whether this is a new send or the resumption of an earlier one; `execute()` runs it under the
ledger; `dry_run()` does everything but hand messages over; `send_test()` mails a [TEST]
copy outside the ledger; `cancel_scheduled()` cancels a SendGrid scheduled send.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from newsletter.build import Build, build_issue
from newsletter.build.publication import Publication
from newsletter.build.schema import check_address
from newsletter.checks import require_passing
from newsletter.core.errors import FailedError, InputError, NewsletterError
from newsletter.core.personalise import SAMPLE_RECIPIENT, Recipient
from newsletter.core.tokens import SAMPLE_SECRET
from newsletter.dispatch.engine import Engine, Progress, RunReport
from newsletter.dispatch.ledger import Ledger, RecipientRow, SendRow
from newsletter.dispatch.retry import RetryPolicy
from newsletter.providers import Transport, make_transport
from newsletter.providers.mailing import Item, Mailing

#: SendGrid cannot cancel a scheduled batch later than this before its send_at
CANCEL_DEADLINE = dt.timedelta(minutes=10)


def utc_minute(when: dt.datetime) -> str:
    """A time as the dispatch commands show it: `2026-11-24 14:00 UTC`."""
    return f"{when:%Y-%m-%d %H:%M} UTC"


def parse_at(text: str) -> dt.datetime:
    """`--at` as an aware UTC time; it must name its zone (2026-11-24T14:00Z)."""
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise NewsletterError(f"--at {text!r} is not a time like 2026-11-24T14:00Z") from None
    if when.tzinfo is None:
        raise NewsletterError(f"--at {text!r} needs a time zone, e.g. 2026-11-24T14:00Z (UTC)")
    return when.astimezone(dt.UTC)


def _list(numbers: tuple[int, ...]) -> str:
    return ", ".join(str(n) for n in numbers)


def make_mailing(pub: Publication, build: Build, send_ref: str, *, secret: str,
                 subject: str | None = None, send_at: dt.datetime | None = None,
                 batch_id: str | None = None) -> Mailing:
    settings = pub.config.sendgrid
    return Mailing(
        config=pub.config, slug=build.slug, subject=subject or build.subject, html=build.html,
        text=build.text, content_hash=build.content_hash, send_ref=send_ref, secret=secret,
        send_at=send_at, batch_id=batch_id, categories=list(settings.categories),
        asm_group_id=settings.asm_group_id,
    )


def _database(pub: Publication) -> Ledger:
    from newsletter.db import open_database

    return Ledger(open_database(pub.settings))


def _segment_condition(pub: Publication, segment: str) -> Any:
    from newsletter.audience import Segments

    return Segments.load(pub).condition(segment)


@dataclass
class SendPlan:
    """A send about to start or resume, with everything checked that can be checked."""

    pub: Publication
    build: Build
    segment: str
    transport: Transport
    ledger: Ledger
    members: Any  # the segment's WHERE clause over subscribers
    send: SendRow | None  # the send to resume, or None for a new one
    count: int  # recipients this run will hand over
    at: dt.datetime | None = None
    resend_unknown: bool = False
    accept_unknown: bool = False
    resend_batches: tuple[int, ...] = ()
    accept_batches: tuple[int, ...] = ()
    notes: list[str] = field(default_factory=list)

    @property
    def action(self) -> str:
        return f"resume send #{self.send.id}" if self.send else "new send"

    def summary(self) -> list[tuple[str, str]]:
        """What will happen, as label/value pairs."""
        rows = [
            ("Issue", self.build.slug),
            ("Subject", self.build.subject),
            ("Segment", self.segment),
            ("Recipients", f"{self.count:,}"),
            ("Transport", f"{self.transport.name} ({self.transport.where})"),
            ("Action", self.action),
        ]
        when = self.at or (self.send.send_at if self.send else None)
        if when:
            rows.append(("Scheduled", utc_minute(when)))
        return rows


def plan_send(pub: Publication, issue: str, segment: str, *, transport: str | None = None,
              again: bool = False, at: dt.datetime | None = None, resend_unknown: bool = False,
              accept_unknown: bool = False, resend_batches: tuple[int, ...] = (),
              accept_batches: tuple[int, ...] = (), dry_run: bool = False,
              before_send: Callable[[Publication, Any], str] | None = None) -> SendPlan:
    """Build the issue, resolve the segment and the ledger's history; refuse what must be.

    `before_send(pub, engine)` runs before a new SendGrid send is counted (the CLI passes the
    suppression sync, which lives on the public side); the note it returns joins the plan's.

    Unknown outcomes are settled by the operator: all of them (`resend_unknown`,
    `accept_unknown`) or batch by batch (`resend_batches`, `accept_batches`).
    """
    if resend_unknown and accept_unknown:
        raise NewsletterError("--resend-unknown and --accept-unknown exclude each other")
    if set(resend_batches) & set(accept_batches):
        raise NewsletterError("a batch cannot be both resent and accepted")
    build = build_issue(pub, issue)
    require_passing(pub, build)  # the pre-send quality gate: refuse on any check error
    chosen = transport or pub.settings.transport
    if at is not None and chosen != "sendgrid":
        raise NewsletterError(f"--at needs the sendgrid transport (SendGrid's send_at schedules "
                              f"the send); the {chosen} transport sends at once")
    if at is not None:
        from newsletter.providers.sendgrid.payload import check_send_at

        check_send_at(at)
    if not dry_run and not pub.settings.secret:
        raise NewsletterError("NEWSLETTER_SECRET is not set; it "
                              "signs each recipient's unsubscribe link")
    ledger = _database(pub)
    members = _segment_condition(pub, segment)
    history = ledger.sends_for(build.slug, segment)
    active = next((s for s in reversed(history) if s.state in ("sending", "stopped")), None)
    if active is not None:
        if transport is not None and transport != active.transport:
            raise NewsletterError(f"send #{active.id} of {build.slug} to '{segment}' was started "
                                  f"with the {active.transport} transport; resume it with "
                                  f"--transport {active.transport}")
        chosen = active.transport
        if active.content_hash != build.content_hash:
            raise NewsletterError(
                f"issue {build.slug} changed since send #{active.id} to '{segment}' started "
                f"(content {active.content_hash[:8]} -> {build.content_hash[:8]}); "
                f"{active.accepted:,} recipients already have the earlier version. Undo the "
                f"edit to finish that send")
        if at is not None:
            raise NewsletterError(f"send #{active.id} is already under way; --at only schedules a "
                                  "new send")
    else:
        done = [s for s in history if s.state == "completed"]
        if done and not again:
            last = done[-1]
            when = utc_minute(last.finished_at or last.updated_at)
            raise NewsletterError(f"{build.slug} was already sent to '{segment}' (send #{last.id}, "
                                  f"completed {when}); pass --again to send it once more")
    sender = make_transport(chosen, pub.settings)
    if active is not None and not dry_run:
        ledger.check_free(active.id)
        if active.unknown:
            # Rows a crash left in flight: transports that can tell (the outbox) settle them.
            sender.open(make_mailing(pub, build, str(active.id), secret=pub.settings.secret
                                     or "", send_at=active.send_at, batch_id=active.batch_id))
            Engine(ledger, active.id, sender).settle_unknown()
            active = ledger.get(active.id)
    sync_note = None
    if chosen == "sendgrid" and active is None and not dry_run and before_send is not None:
        sync_note = before_send(pub, ledger.engine)  # retire suppressed addresses first
    plan = SendPlan(pub=pub, build=build, segment=segment, transport=sender, ledger=ledger,
                    members=members, send=active, count=0, at=at, resend_unknown=resend_unknown,
                    accept_unknown=accept_unknown, resend_batches=tuple(resend_batches),
                    accept_batches=tuple(accept_batches))
    if sync_note:
        plan.notes.append(sync_note)
    if active is not None:
        states = ["pending", "failed"] + (["unknown"] if resend_unknown else [])
        plan.count = ledger.count(active.id, states)
        if resend_batches and not resend_unknown:
            plan.count += ledger.count_unknown(active.id, resend_batches)
        if active.unknown and (accept_unknown or accept_batches or resend_batches):
            plan.notes.append("recipients with an unknown fate: "
                              + "; ".join(filter(None, [
                                  "all recorded as accepted" if accept_unknown else "",
                                  f"batches {_list(accept_batches)} recorded as accepted"
                                  if accept_batches else "",
                                  f"batches {_list(resend_batches)} sent again"
                                  if resend_batches else ""])))
        if active.unknown and accept_unknown:
            plan.notes.append(f"{active.unknown:,} recipients with an unknown fate will be "
                              "recorded as accepted, as you checked")
        elif active.unknown and not resend_unknown:
            plan.notes.append(f"{active.unknown:,} recipients of send #{active.id} have an "
                              "unknown fate and are left alone; see `newsletter status`, and "
                              "pass --resend-unknown to send to them again")
        if plan.count == 0 and not active.unknown and not dry_run:
            plan.notes.append("nothing left to send")
    else:
        from sqlalchemy import func, select

        from newsletter.db.tables import subscribers

        with ledger.engine.connect() as conn:
            plan.count = conn.execute(select(func.count()).select_from(subscribers)
                                      .where(members)).scalar_one()
        if plan.count == 0:
            raise NewsletterError(f"segment '{segment}' has no active subscribers; nothing to send")
    return plan


@dataclass
class SendResult:
    send: SendRow
    report: RunReport
    where: str

    @property
    def ok(self) -> bool:
        return self.send.state == "completed"


def execute(plan: SendPlan, *, stop: threading.Event | None = None,
            progress: Progress | None = None, policy: RetryPolicy | None = None,
            prepare: Callable[[Mailing, int], Mailing] | None = None) -> SendResult:
    """Run the planned send under the ledger (call `plan.transport.preflight()` first).

    `prepare(mailing, send_id)`, when given, may change the mailing once the send has its id.
    """
    ledger, transport = plan.ledger, plan.transport
    send = plan.send
    if send is None:
        batch_id = None
        if plan.at is not None:
            batch_id = transport.create_batch_id()  # type: ignore[attr-defined]
        send = ledger.create(issue=plan.build.slug, segment=plan.segment,
                             transport=transport.name, content_hash=plan.build.content_hash,
                             subject=plan.build.subject, members=plan.members, send_at=plan.at,
                             batch_id=batch_id)
        if send is None:
            raise NewsletterError(f"segment '{plan.segment}' has no active subscribers; "
                                  "nothing to send")
    ledger.acquire(send.id)
    report = RunReport()
    error: str | None = None
    try:
        mailing = make_mailing(plan.pub, plan.build, str(send.id), secret=plan.pub.settings.secret
                               or "", send_at=send.send_at, batch_id=send.batch_id)
        if prepare is not None:  # e.g. click tracking (newsletter.events.tracking)
            mailing = prepare(mailing, send.id)
        transport.open(mailing)
        engine = Engine(ledger, send.id, transport, policy=policy, stop=stop, progress=progress)
        engine.settle_unknown()
        if plan.accept_batches:
            ledger.settle_unknown(send.id, "accepted", plan.accept_batches)
        if plan.resend_batches:
            ledger.settle_unknown(send.id, "pending", plan.resend_batches)
        if plan.resend_unknown:
            ledger.settle_unknown(send.id, "pending")
        elif plan.accept_unknown:
            ledger.settle_unknown(send.id, "accepted")
        report = engine.run()
        error = report.stopped or ("interrupted" if report.interrupted else None)
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise
    finally:
        final = ledger.release(send.id, error)
        transport.close()
    return SendResult(final, report, transport.where)


def send_issue(pub: Publication, issue: str, segment: str, **options: Any) -> SendResult:
    """Plan, check the transport and run a send in one call (no confirmation)."""
    plan = plan_send(pub, issue, segment, **options)
    plan.transport.preflight()
    return execute(plan)


# -- dry run ---------------------------------------------------------------------------------
@dataclass
class DryRun:
    count: int
    first: str
    rejected: dict[str, str]
    where: str


def _plan_items(plan: SendPlan, size: int) -> Iterator[list[Item]]:
    if plan.send is not None:
        states = ["pending", "failed"] + (["unknown"] if plan.resend_unknown else [])
        for batch in plan.ledger.stream(plan.send.id, states, size):
            yield batch.items
        return
    from newsletter.audience import iter_batches

    for chunk in iter_batches(plan.ledger.engine, plan.members, size):
        yield [Item(s.id, Recipient(s.email, s.name or "", s.attributes)) for s in chunk]


def dry_run(plan: SendPlan) -> DryRun:
    """Everything but the hand-over: personalise every message, show the first."""
    mailing = make_mailing(plan.pub, plan.build, "dry-run",
                           secret=plan.pub.settings.secret or SAMPLE_SECRET,
                           send_at=plan.at or (plan.send.send_at if plan.send else None))
    transport = plan.transport
    transport.open(mailing)
    first, count, rejected = "", 0, {}
    builder = getattr(transport, "builder", None)
    for items in _plan_items(plan, max(1, transport.batch_size)):
        if not first:
            first = transport.preview(items[0])
        if builder is not None:
            _, refused = builder.body(items)
            emails = {i.key: i.recipient.email for i in items}
            rejected.update({emails[k]: why for k, why in list(refused.items())[:20]})
        count += len(items)
    return DryRun(count, first, rejected, transport.where)


# -- test sends ------------------------------------------------------------------------------
@dataclass
class TestResult:
    """A test send's outcome; `summary()` is one line for people."""

    __test__ = False  # not a pytest class

    transport: str
    recipients: list[str]
    accepted: list[str]
    failed: dict[str, str]
    where: str

    def summary(self) -> str:
        line = (f"Sent a test to {', '.join(self.accepted)} via {self.transport} "
                f"({self.where})." if self.accepted else "No test message was sent.")
        if self.failed:
            line += " Not sent: " + "; ".join(f"{k}: {v}" for k, v in self.failed.items())
        return line


def send_test(pub: Publication, build: Build, to: list[str] | None = None,
              transport: str | None = None, *, policy: RetryPolicy | None = None) -> TestResult:
    """Send `build` with a [TEST] subject to `to` (or `test_recipients`), outside the ledger.

    Each copy is personalised with the sample recipient's name and attributes and the test
    address. Raises FailedError when any copy was not accepted.
    """
    require_passing(pub, build)
    addresses = list(dict.fromkeys(to or pub.config.test_recipients))
    if not addresses:
        raise NewsletterError("no test recipients: add test_recipients to newsletter.yaml or pass "
                              "--to ADDRESS")
    try:
        addresses = [check_address(a) for a in addresses]
    except ValueError as exc:
        raise NewsletterError(str(exc)) from None
    sender = make_transport(transport, pub.settings)
    sender.preflight()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    mailing = make_mailing(pub, build, f"test-{stamp}", subject=f"[TEST] {build.subject}",
                           secret=pub.settings.secret or SAMPLE_SECRET)
    sender.open(mailing)
    policy = policy or RetryPolicy.from_env()
    items = [Item(n, Recipient(a, SAMPLE_RECIPIENT.name, SAMPLE_RECIPIENT.attributes))
             for n, a in enumerate(addresses, start=1)]
    accepted, failed = [], {}
    try:
        for attempt in range(1, policy.attempts + 1):
            result = sender.send(items)
            retry = []
            for item, outcome in zip(items, result.outcomes, strict=True):
                if outcome.state == "accepted":
                    accepted.append(item.recipient.email)
                elif outcome.state == "retry" and not result.stop:
                    retry.append(item)
                    failed[item.recipient.email] = outcome.error or "not accepted"
                else:
                    failed[item.recipient.email] = outcome.error or outcome.state
            for item in items:
                if item.recipient.email in accepted:
                    failed.pop(item.recipient.email, None)
            if result.stop or not retry or attempt == policy.attempts:
                break
            threading.Event().wait(policy.delay(attempt, result.wait))
            items = retry
    finally:
        sender.close()
    outcome = TestResult(sender.name, addresses, accepted, failed, sender.where)
    if failed:
        raise FailedError(outcome.summary())
    return outcome


# -- status and cancel -----------------------------------------------------------------------
@dataclass
class SendStatus:
    send: SendRow
    unknown: list[RecipientRow]
    failed: list[RecipientRow]


def sends_for(pub: Publication, issue: str, limit: int = 50) -> list[SendStatus]:
    """Every send of `issue` with its unknown and failed recipients (up to `limit` each)."""
    slug = _slug(pub, issue)
    ledger = _database(pub)
    return [SendStatus(s, ledger.listing(s.id, "unknown", limit),
                       ledger.listing(s.id, "failed", limit))
            for s in ledger.sends_for(slug)]


def _slug(pub: Publication, issue: str) -> str:
    """The slug of ISSUE; a slug whose folder is gone still has a history in the ledger."""
    try:
        return pub.issue_dir(issue).name
    except InputError:
        return issue


def cancel_scheduled(pub: Publication, issue: str, segment: str | None = None) -> SendRow:
    """Cancel the scheduled SendGrid send of `issue` (to `segment`)."""
    slug = _slug(pub, issue)
    ledger = _database(pub)
    now = dt.datetime.now(dt.UTC)
    found = [s for s in ledger.sends_for(slug, segment)
             if s.batch_id and s.send_at and s.state != "cancelled"]
    if not found:
        where = f" to '{segment}'" if segment else ""
        raise NewsletterError(f"no scheduled send of {slug}{where} to cancel")
    send = found[-1]
    if now > send.send_at - CANCEL_DEADLINE:
        raise NewsletterError(f"send #{send.id} goes out at {utc_minute(send.send_at)}; "
                              "SendGrid cancels only until 10 minutes before")
    sender = make_transport("sendgrid", pub.settings)
    sender.cancel(send.batch_id)  # type: ignore[attr-defined]
    ledger.set_state(send.id, "cancelled", "cancelled by `newsletter send cancel`")
    return ledger.get(send.id)
