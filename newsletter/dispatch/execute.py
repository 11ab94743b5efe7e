"""Running a planned send under the ledger: create (or take over) the send, settle what a
crash left unknown, then hand everything over (dispatch.run.SendRun) and release the lease."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from newsletter.core.personalise import Recipient
from newsletter.dispatch.ledger import LeaseLost, LedgerUnavailable, SendRow
from newsletter.dispatch.ledger.store import SendFinished
from newsletter.dispatch.options import DEFAULTS, SendOptions
from newsletter.dispatch.plan import plan_send
from newsletter.dispatch.retry import RetryPolicy
from newsletter.dispatch.run import Progress, RunReport, SendRun, Warn
from newsletter.dispatch.send_plan import SendPlan
from newsletter.providers.mailing import Mailing

#: `prepare(mailing, send_id)`: a new send's hook once it has its id (the CLI records its
#: links and turns click tracking on: newsletter.events.tracking.track_links)
Prepare = Callable[[Mailing, int], Mailing]
#: `link_urls(public_url, send_id, links)`: the per-recipient filler of a resumed send's
#: tracked links (newsletter.events.tracking.LinkUrls)
LinkUrls = Callable[[str, int, Mapping[int, str]], Callable[[Recipient, str], str]]


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
            prepare: Prepare | None = None, link_urls: LinkUrls | None = None,
            warn: Warn | None = None) -> SendResult | None:
    """Run the planned send under the ledger (call `plan.transport.preflight()` first).

    Returns None when, by the time the send is created, nobody is left to send to, or when
    the send to resume was completed meanwhile by another process. Every run
    sends the plan's artifact: a new send's `prepare` hook may change its mailing once the
    send has an id; a resumed send's tracked links are filled by `link_urls` (their plain
    URLs without it).
    """
    ledger, transport = plan.ledger, plan.transport
    send = plan.send
    fresh = send is None
    if send is None:
        send = ledger.sends.create(issue=plan.slug, segment=plan.segment,
                                   transport=transport.name, artifact=plan.artifact,
                                   members=plan.recipients, reach=plan.reach, send_at=plan.at)
        if send is None:
            return None
    else:
        try:
            ledger.sends.acquire(send.id, reopen=plan.retry_failed, resume=plan.options.resume)
        except SendFinished:  # two resumes raced: the other one finished it
            return None
    report = RunReport()
    error: str | None = None
    try:
        if not plan.frozen:  # begun by an earlier version: keep this copy from now on
            ledger.artifacts.freeze(send.id, plan.artifact)
        if plan.retry_failed:
            ledger.recipients.requeue_failed(send.id)
        run = SendRun(ledger, send.id, transport, check=plan.consent_check(send),
                      policy=policy, stop=stop, progress=progress,
                      guard=plan.reputation_guard(send), warn=warn)
        mailing = plan.artifact.mailing(plan.pub.config, str(send.id),
                                        secret=plan.pub.settings.secret or "",
                                        **_schedule(plan, send.id))
        if prepare is not None and (fresh or not plan.frozen):
            mailing = prepare(mailing, send.id)  # e.g. click tracking
        elif link_urls is not None and plan.artifact.links is not None:
            mailing = dataclasses.replace(mailing, link_url=link_urls(
                plan.artifact.public_url, send.id, plan.artifact.links))
        transport.open(mailing)
        run.settle_unknown()
        _settle_by_operator(plan, send.id)
        report = run.run()
        error = report.stopped or ("interrupted" if report.interrupted else None)
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise
    finally:
        try:
            final = ledger.sends.release(send.id, error)
        except (LeaseLost, LedgerUnavailable):
            final = ledger.sends.get(send.id)
        transport.close()
    return SendResult(final, report, transport.where)


def _schedule(plan: SendPlan, send_id: int) -> dict[str, Any]:
    """For a scheduled send: settle batches of unknown fate, then open this run's batch id;
    its `send_at` and `batch_id` for the mailing."""
    ledger, transport = plan.ledger, plan.transport
    scheduling = transport.capabilities.scheduling
    if scheduling is None or (plan.at is None and plan.undo_window is None
                              and not ledger.scheduled.runs(send_id)):
        return {}
    _settle_scheduled(plan, send_id, scheduling.cancel_deadline)
    send_at = plan.at or (plan.send.send_at if plan.send else None)
    if plan.undo_window is not None:
        send_at = dt.datetime.now(dt.UTC) + plan.undo_window + scheduling.cancel_deadline
    assert send_at is not None
    batch_id = transport.create_batch_id()
    ledger.scheduled.open_batch(send_id, batch_id, send_at)
    return {"send_at": send_at, "batch_id": batch_id}


def _settle_scheduled(plan: SendPlan, send_id: int, deadline: dt.timedelta) -> None:
    """Cancel at the provider exactly the batches a crash left with an unknown fate, while it
    still can (up to `deadline` before their send_at), and put their recipients back to
    pending: they go again under this run's new batch id. Past the deadline their fate stays
    unknown, for the operator."""
    scheduled, transport = plan.ledger.scheduled, plan.transport
    now = dt.datetime.now(dt.UTC)
    for run in scheduled.runs(send_id):
        if run.state != "open" or not scheduled.unknown_in(send_id, run):
            continue
        if now >= run.send_at - deadline:
            plan.notes.append(f"batch {run.batch_id} goes out at {run.send_at:%H:%M} UTC and "
                              "can no longer be cancelled; its unknown recipients are left "
                              "for you to settle")
            continue
        transport.cancel(run.batch_id)
        scheduled.cancelled(send_id, run, requeue=True)


def _settle_by_operator(plan: SendPlan, send_id: int) -> None:
    """The operator's calls on unknown rows: by batch, by recipient, or all of them."""
    recipients, options = plan.ledger.recipients, plan.options
    if options.accept_batches:
        recipients.settle_unknown(send_id, "accepted", batches=options.accept_batches)
    if options.resend_batches:
        recipients.settle_unknown(send_id, "pending", batches=options.resend_batches)
    if options.accept_recipients:
        recipients.settle_unknown(send_id, "accepted", emails=options.accept_recipients)
    if options.resend_recipients:
        recipients.settle_unknown(send_id, "pending", emails=options.resend_recipients)
    if options.resend_unknown:
        recipients.settle_unknown(send_id, "pending")
    elif options.accept_unknown:
        recipients.settle_unknown(send_id, "accepted")


def send_issue(pub: Any, issue: str, segment: str | Sequence[str],
               options: SendOptions = DEFAULTS) -> SendResult | None:
    """Plan, check the transport and run a send in one call (no confirmation)."""
    plan = plan_send(pub, issue, segment, options)
    plan.transport.preflight()
    return execute(plan)
