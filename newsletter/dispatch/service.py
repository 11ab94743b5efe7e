"""Dispatch services the CLI (and the preview server) call: plan, send, dry-run, test, status.

`plan_send()` checks everything that can be checked before anything is sent and decides
whether this is a new send or the resumption of an earlier one; `execute()` runs it under the
ledger; `dry_run()` does everything but hand messages over; `send_test()` mails a [TEST]
copy outside the ledger; `cancel_scheduled()` cancels a SendGrid scheduled send.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from newsletter.core.errors import FailedError, InputError, NewsletterError
from newsletter.core.personalise import SAMPLE_RECIPIENT, Recipient
from newsletter.core.tokens import SAMPLE_SECRET, signing_secrets
from newsletter.dispatch.engine import Engine, Progress, RunReport
from newsletter.dispatch.ledger import (
    LeaseLost,
    Ledger,
    RecipientRow,
    RunBatch,
    SendBusy,
    SendRow,
    is_alive,
)
from newsletter.dispatch.retry import RetryPolicy
from newsletter.providers import SCHEDULING, SUPPRESSION_LISTS, Transport, make_transport
from newsletter.providers.mailing import Item, Mailing

if TYPE_CHECKING:
    from newsletter.compose import Build
    from newsletter.compose.publication import Publication

#: SendGrid cannot cancel a scheduled batch later than this before its send_at
CANCEL_DEADLINE = dt.timedelta(minutes=10)
#: SendGrid keeps at most this many batches cancelled or paused at a time
MAX_CANCELLED_BATCHES = 10


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


def _segment_condition(pub: Publication, segments: Sequence[str]) -> Any:
    """The WHERE clause of the union of `segments` (each subscriber once)."""
    from sqlalchemy import or_

    from newsletter.audience import Segments

    loaded = Segments.load(pub)
    conditions = [loaded.condition(name) for name in segments]
    return conditions[0] if len(conditions) == 1 else or_(*conditions)


def parse_window(text: str) -> dt.timedelta:
    """An undo window like `15m`, `1h`, `90s` or `1h30m`."""
    from newsletter.compose.schema import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise NewsletterError(f"--undo-window: {exc}") from None


def _segment_topic(pub: Publication, segment: str) -> str | None:
    """The topic tag `segment` is defined by, if any (its footer then offers to stop it)."""
    from newsletter.audience import Segments

    return Segments.load(pub).topic_of(segment, pub.config.topics)


@dataclass
class SendPlan:
    """A send about to start or resume, with everything checked that can be checked."""

    pub: Publication
    build: Build
    segment: str  # the segment's name, or several joined with " + "
    transport: Transport
    ledger: Ledger
    members: Any  # the segments' WHERE clause over subscribers
    send: SendRow | None  # the send to resume, or None for a new one
    count: int  # recipients this run will hand over
    at: dt.datetime | None = None
    undo_window: dt.timedelta | None = None
    again: bool = False
    retry_failed: bool = False
    left_out: int = 0  # members who already received the issue
    resend_unknown: bool = False
    accept_unknown: bool = False
    resend_batches: tuple[int, ...] = ()
    accept_batches: tuple[int, ...] = ()
    notes: list[str] = field(default_factory=list)

    @property
    def action(self) -> str:
        if self.send and self.retry_failed:
            return f"retry the failed recipients of send #{self.send.id}"
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
        if self.left_out:
            rows.insert(4, ("Left out", f"{self.left_out:,} already received this issue (or "
                                        "failed for good: --retry-failed)"))
        when = self.at or (self.send.send_at if self.send and not self.undo_window else None)
        if when:
            rows.append(("Scheduled", utc_minute(when)))
        if self.undo_window:
            rows.append(("Undo window", f"{_minutes(self.undo_window)}: `newsletter send cancel "
                                        f"{self.build.slug}` stops it until then"))
        return rows


def _minutes(window: dt.timedelta) -> str:
    minutes = int(window.total_seconds() // 60)
    return f"{minutes} minutes" if minutes != 1 else "1 minute"


def plan_send(pub: Publication, issue: str, segment: str | Sequence[str], *,
              transport: str | None = None, again: bool = False, at: dt.datetime | None = None,
              undo_window: dt.timedelta | None = None, retry_failed: bool = False,
              resend_unknown: bool = False, accept_unknown: bool = False,
              resend_batches: tuple[int, ...] = (), accept_batches: tuple[int, ...] = (),
              dry_run: bool = False,
              before_send: Callable[[Publication, Any, str], str] | None = None,
              narrow: Any = None) -> SendPlan:
    """Build the issue, resolve the segments and the ledger's history; refuse what must be.

    One send of an issue is active at a time: while another is under way, or stopped and not
    yet resumed, this refuses (SendBusy) naming it. A new send leaves out whoever already
    received the issue, unless `again`. Unknown outcomes of sends without an undo window are
    settled by the operator: all (`resend_unknown`, `accept_unknown`) or batch by batch.
    `before_send(pub, engine, provider)` runs before a new send through a provider with
    suppression lists is counted (the CLI passes the suppression sync, which lives on the public
    side); the note it returns joins the plan's.
    `narrow`, a further WHERE clause over subscribers, keeps part of the segments (one edition's
    readers).
    """
    if resend_unknown and accept_unknown:
        raise NewsletterError("--resend-unknown and --accept-unknown exclude each other")
    if set(resend_batches) & set(accept_batches):
        raise NewsletterError("a batch cannot be both resent and accepted")
    if at is not None and undo_window is not None:
        raise NewsletterError("--at and --undo-window exclude each other")
    segments = tuple(dict.fromkeys([segment] if isinstance(segment, str) else segment))
    if not segments:
        raise NewsletterError("name at least one --segment")
    label = " + ".join(segments)
    topic = _segment_topic(pub, segments[0]) if len(segments) == 1 else None
    from newsletter.checks import require_passing
    from newsletter.compose import build_issue

    build = build_issue(pub, issue, topic)  # a one-topic segment's footer offers to stop it
    require_passing(pub, build)  # the pre-send quality gate: refuse on any check error
    if not dry_run:
        signing_secrets(pub.settings.secret, pub.settings.previous_secrets)
    ledger = _database(pub)
    members = _segment_condition(pub, segments)
    if narrow is not None:
        members = members & narrow
    active = ledger.active(build.slug)
    reopen: SendRow | None = None
    if active is not None:
        if not dry_run:
            ledger.check_free(active.id)  # a live process: refuse, naming it
        if active.segment != label:
            raise SendBusy(active.busy_message())
        if transport is not None and transport != active.transport:
            raise NewsletterError(f"send #{active.id} of {build.slug} to '{label}' was started "
                                  f"with the {active.transport} transport; resume it with "
                                  f"--transport {active.transport}")
        if active.content_hash != build.content_hash:
            raise NewsletterError(
                f"issue {build.slug} changed since send #{active.id} to '{label}' started "
                f"(content {active.content_hash[:8]} -> {build.content_hash[:8]}); "
                f"{active.accepted:,} recipients already have the earlier version. Undo the "
                f"edit to finish that send")
        if at is not None:
            raise NewsletterError(f"send #{active.id} is already under way; --at only schedules a "
                                  "new send")
    elif retry_failed:
        failed = [s for s in ledger.sends_for(build.slug, label)
                  if s.state == "completed" and s.failed]
        if not failed:
            raise NewsletterError(f"no completed send of {build.slug} to '{label}' has failed "
                                  "recipients to retry")
        reopen = failed[-1]
        if reopen.content_hash != build.content_hash:
            raise NewsletterError(f"issue {build.slug} changed since send #{reopen.id}; "
                                  "--retry-failed sends the version its recipients got")
    resumed = active or reopen
    chosen = resumed.transport if resumed else (transport or pub.settings.transport)
    if resumed is None and undo_window is None and chosen == "sendgrid" and at is None:
        configured = pub.config.sendgrid.undo_window
        undo_window = parse_window(configured) if configured else None
    if resumed is not None and undo_window is None:
        undo_window = _window_of(ledger, resumed)
    if (at is not None or undo_window is not None) and chosen != "sendgrid":
        what = "--at" if at is not None else "--undo-window"
        why = SCHEDULING.get(chosen)
        raise NewsletterError(f"{what} needs the sendgrid transport (SendGrid's send_at "
                              f"schedules the send); the {chosen} transport sends at once"
                              + (f": {why}" if why else ""))
    if at is not None:
        from newsletter.providers.sendgrid.payload import check_send_at

        check_send_at(at)
    if undo_window is not None:
        from newsletter.providers.sendgrid.payload import MAX_SCHEDULE_AHEAD

        if not dt.timedelta(minutes=1) <= undo_window <= MAX_SCHEDULE_AHEAD - CANCEL_DEADLINE:
            raise NewsletterError("the undo window must be between 1 minute and 71 hours 50 "
                                  "minutes (SendGrid schedules at most 72 hours ahead)")
    sender = make_transport(chosen, pub.settings, pub.config)
    sync_note = None
    if chosen in SUPPRESSION_LISTS and resumed is None and not dry_run and before_send:
        sync_note = before_send(pub, ledger.engine, chosen)  # retire suppressed addresses
    plan = SendPlan(pub=pub, build=build, segment=label, transport=sender, ledger=ledger,
                    members=members, send=resumed, count=0, at=at, undo_window=undo_window,
                    again=again, retry_failed=reopen is not None,
                    resend_unknown=resend_unknown, accept_unknown=accept_unknown,
                    resend_batches=tuple(resend_batches), accept_batches=tuple(accept_batches))
    if sync_note:
        plan.notes.append(sync_note)
    if reopen is not None:
        plan.count = reopen.failed
    elif active is not None:
        _plan_resume(plan, active, chosen, dry_run)
    else:
        plan.count, plan.left_out = _count_new(ledger, members, build.slug, again)
        if plan.count == 0 and not plan.left_out:
            raise NewsletterError(f"segment '{label}' has no active subscribers; nothing to send")
    return plan


def select_recipients(ledger: Ledger, members: Any, issue: str, again: bool) -> Any:
    """Who a new send of `issue` goes to: the WHERE clause over subscribers.

    The one place that decides it (editions and other filters slot in here): the members of
    the segments, less whoever already received the issue (or failed for good in an earlier
    send of it: --retry-failed is the way to try them again) unless `again`.
    """
    return members if again else members & ~ledger.received(issue)


def _count_new(ledger: Ledger, members: Any, issue: str, again: bool) -> tuple[int, int]:
    """(recipients of a new send, members left out because they already received it)."""
    from sqlalchemy import func, select

    from newsletter.db.tables import subscribers

    with ledger.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(subscribers)
                             .where(members)).scalar_one()
        if not total:
            return 0, 0
        chosen = conn.execute(select(func.count()).select_from(subscribers).where(
            select_recipients(ledger, members, issue, again))).scalar_one()
    return chosen, total - chosen


def _window_of(ledger: Ledger, send: SendRow) -> dt.timedelta | None:
    """The undo window a scheduled send was started with (from its last run's batch)."""
    runs = ledger.run_batches(send.id)
    if not runs:
        return None
    last = runs[-1]
    return max(dt.timedelta(minutes=1), last.send_at - last.created_at - CANCEL_DEADLINE)


def _plan_resume(plan: SendPlan, active: SendRow, chosen: str, dry_run: bool) -> None:
    ledger = plan.ledger
    settles = chosen == "outbox" or plan.undo_window is not None
    states = ["pending"] + (["unknown"] if plan.resend_unknown or settles else [])
    plan.count = ledger.count(active.id, states)
    if plan.resend_batches and not plan.resend_unknown:
        plan.count += ledger.count_unknown(active.id, plan.resend_batches)
    if settles and active.unknown:
        plan.notes.append(f"{active.unknown:,} recipients with an unknown fate: " + (
            "their batches are cancelled at SendGrid and sent again under new batch ids"
            if plan.undo_window else "the outbox shows whether each message was written"))
        return
    if active.unknown and (plan.accept_unknown or plan.accept_batches or plan.resend_batches):
        plan.notes.append("recipients with an unknown fate: " + "; ".join(filter(None, [
            "all recorded as accepted" if plan.accept_unknown else "",
            f"batches {_list(plan.accept_batches)} recorded as accepted"
            if plan.accept_batches else "",
            f"batches {_list(plan.resend_batches)} sent again" if plan.resend_batches else ""])))
    elif active.unknown and not plan.resend_unknown:
        plan.notes.append(f"{active.unknown:,} recipients of send #{active.id} have an "
                          "unknown fate and are left alone; see `newsletter status`, and "
                          "pass --resend-unknown to send to them again")
    if plan.count == 0 and not active.unknown and not dry_run:
        plan.notes.append("nothing left to send")


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
            prepare: Callable[[Mailing, int], Mailing] | None = None) -> SendResult | None:
    """Run the planned send under the ledger (call `plan.transport.preflight()` first).

    Returns None when, by the time the send is created, nobody is left to send to.
    `prepare(mailing, send_id)`, when given, may change the mailing once the send has its id.
    """
    ledger, transport = plan.ledger, plan.transport
    send = plan.send
    if send is None:
        send = ledger.create(issue=plan.build.slug, segment=plan.segment,
                             transport=transport.name, content_hash=plan.build.content_hash,
                             subject=plan.build.subject, send_at=plan.at,
                             members=select_recipients(ledger, plan.members, plan.build.slug,
                                                       plan.again))
        if send is None:
            return None
    else:
        ledger.acquire(send.id, reopen=plan.retry_failed)
        if plan.retry_failed:
            ledger.requeue_failed(send.id)
    report = RunReport()
    error: str | None = None
    try:
        engine = Engine(ledger, send.id, transport, policy=policy, stop=stop, progress=progress)
        send_at = batch_id = None
        if plan.at is not None or plan.undo_window is not None or ledger.run_batches(send.id):
            # a scheduled send: settle batches of unknown fate, then a batch id for this run
            _settle_scheduled(plan, send.id)
            send_at = plan.at or send.send_at
            if plan.undo_window is not None:
                send_at = dt.datetime.now(dt.UTC) + plan.undo_window + CANCEL_DEADLINE
            assert send_at is not None
            batch_id = transport.create_batch_id()  # type: ignore[attr-defined]
            ledger.open_batch(send.id, batch_id, send_at)
        mailing = make_mailing(plan.pub, plan.build, str(send.id), secret=plan.pub.settings.secret
                               or "", send_at=send_at, batch_id=batch_id)
        if prepare is not None:  # e.g. click tracking (newsletter.events.tracking)
            mailing = prepare(mailing, send.id)
        transport.open(mailing)
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
        try:
            final = ledger.release(send.id, error)
        except LeaseLost:
            final = ledger.get(send.id)
        transport.close()
    return SendResult(final, report, transport.where)


def _settle_scheduled(plan: SendPlan, send_id: int) -> None:
    """Cancel at SendGrid exactly the batches a crash left with an unknown fate, while
    SendGrid still can (up to 10 minutes before their send_at), and put their recipients
    back to pending: they go again under this run's new batch id. Past the deadline their
    fate stays unknown, for the operator."""
    ledger, transport = plan.ledger, plan.transport
    now = dt.datetime.now(dt.UTC)
    for run in ledger.run_batches(send_id):
        if run.state != "open" or not ledger.unknown_in(send_id, run):
            continue
        if now >= run.send_at - CANCEL_DEADLINE:
            plan.notes.append(f"batch {run.batch_id} goes out at {run.send_at:%H:%M} UTC and "
                              "can no longer be cancelled; its unknown recipients are left "
                              "for you to settle")
            continue
        transport.cancel(run.batch_id)  # type: ignore[attr-defined]
        ledger.cancelled_batch(send_id, run, requeue=True)


def send_issue(pub: Publication, issue: str, segment: str | Sequence[str], **options: Any
               ) -> SendResult | None:
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
        states = (["failed"] if plan.retry_failed else
                  ["pending"] + (["unknown"] if plan.resend_unknown else []))
        for batch in plan.ledger.stream(plan.send.id, states, size):
            yield batch.items
        return
    from newsletter.audience import iter_batches

    chosen = select_recipients(plan.ledger, plan.members, plan.build.slug, plan.again)
    for chunk in iter_batches(plan.ledger.engine, chosen, size):
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
              transport: str | None = None, *, policy: RetryPolicy | None = None,
              recipient: Recipient | None = None) -> TestResult:
    """Send `build` with a [TEST] subject to `to` (or `test_recipients`), outside the ledger.

    Each copy is personalised with the name and attributes of `recipient` (default: the
    sample recipient) and the test address. Raises FailedError when any copy was not accepted.
    """
    from newsletter.checks import require_passing
    from newsletter.compose.schema import check_address

    require_passing(pub, build)
    addresses = list(dict.fromkeys(to or pub.config.test_recipients))
    if not addresses:
        raise NewsletterError("no test recipients: add test_recipients to newsletter.yaml or pass "
                              "--to ADDRESS")
    try:
        addresses = [check_address(a) for a in addresses]
    except ValueError as exc:
        raise NewsletterError(str(exc)) from None
    sender = make_transport(transport, pub.settings, pub.config)
    sender.preflight()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    mailing = make_mailing(pub, build, f"test-{stamp}", subject=f"[TEST] {build.subject}",
                           secret=pub.settings.secret or SAMPLE_SECRET)
    sender.open(mailing)
    policy = policy or RetryPolicy.from_env()
    person = recipient or SAMPLE_RECIPIENT
    items = [Item(n, Recipient(a, person.name, person.attributes))
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


def last_completed_send(pub: Publication) -> SendRow | None:
    """The latest completed send of any issue (`new --from-feed` drafts the entries since)."""
    return _database(pub).last_completed()


def _slug(pub: Publication, issue: str) -> str:
    """The slug of ISSUE; a slug whose folder is gone still has a history in the ledger."""
    try:
        return pub.issue_dir(issue).name
    except InputError:
        return issue


def cancel_scheduled(pub: Publication, issue: str, segment: str | None = None) -> SendRow:
    """`newsletter send cancel`: stop the latest scheduled send of `issue` (to `segment`) at
    SendGrid while its batches can still be cancelled, or give up a stopped send.

    Every open batch id of the send is cancelled (SendGrid takes at most 10 cancelled or paused
    batches at a time: a send uses one per run). The send becomes `cancelled` and its lease is
    taken, so a process still running it stops at its next ledger write; its recipients in
    cancelled batches are recorded `failed` (not delivered), so a later send reaches them.
    """
    slug = _slug(pub, issue)
    ledger = _database(pub)
    now = dt.datetime.now(dt.UTC)
    found = [s for s in ledger.sends_for(slug, segment)
             if s.state != "cancelled" and (s.state in ("sending", "stopped") or
                                            (s.batch_id and s.send_at and s.send_at > now))]
    if not found:
        where = f" to '{segment}'" if segment else ""
        raise NewsletterError(f"no scheduled or stopped send of {slug}{where} to cancel")
    send = found[-1]
    runs = [r for r in ledger.run_batches(send.id) if r.state == "open"]
    if not runs and send.batch_id and send.send_at:  # scheduled with --at by an older version
        runs = [RunBatch(0, send.batch_id, send.send_at, 1, "open", send.created_at)]
    if not runs:
        if send.owner and is_alive(send.owner, send.heartbeat_at):
            raise SendBusy(f"{send.busy_message().split(';')[0]}; stop it (Ctrl-C) before "
                           "giving it up")
        ledger.cancel(send.id, "given up with `newsletter send cancel`")
        return ledger.get(send.id)
    late = [r for r in runs if now > r.send_at - CANCEL_DEADLINE]
    if late:
        raise NewsletterError(f"send #{send.id} goes out at {utc_minute(late[0].send_at)}; "
                              "SendGrid cancels only until 10 minutes before")
    if len(runs) > MAX_CANCELLED_BATCHES:
        raise NewsletterError(f"send #{send.id} has {len(runs)} open batches; SendGrid cancels "
                              f"at most {MAX_CANCELLED_BATCHES} at a time")
    sender = make_transport("sendgrid", pub.settings)
    for run in runs:
        sender.cancel(run.batch_id)  # type: ignore[attr-defined]
    # Take the lease first: a process still running the send writes nothing more.
    ledger.cancel(send.id, "cancelled by `newsletter send cancel`")
    for run in runs:
        if run.id:
            ledger.cancelled_batch(send.id, run, requeue=False,
                                   reason="cancelled with `newsletter send cancel` before "
                                          "delivery")
    return ledger.get(send.id)
