"""`newsletter status` and `newsletter send cancel`: what became of each send of an issue, and
giving a send up (a scheduled send's batches cancelled at the provider before delivery)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from newsletter.core.errors import NewsletterError
from newsletter.core.reputation import Figures, Thresholds, Verdict, judge
from newsletter.db.health import figures_of, reported
from newsletter.dispatch.ledger import (
    Ledger,
    Pause,
    RecipientRow,
    RunBatch,
    SendBusy,
    SendRow,
    is_alive,
)
from newsletter.dispatch.ledger.pauses import baseline_of
from newsletter.dispatch.options import minutes, utc_minute
from newsletter.dispatch.plan import open_ledger, slug_of
from newsletter.providers import capabilities, make_transport

if TYPE_CHECKING:
    from newsletter.compose.publication import Publication


@dataclass
class SendStatus:
    send: SendRow
    unknown: list[RecipientRow]
    failed: list[RecipientRow]
    skipped: list[tuple[str, int]] = field(default_factory=list)  # (why, how many)
    health: Figures = field(default_factory=Figures)  # the whole send's
    verdict: Verdict = field(default_factory=lambda: Verdict(Figures()))  # the guard's now
    pauses: list[Pause] = field(default_factory=list)
    reported: list[tuple[str, str]] = field(default_factory=list)  # (address, what), paused
    thresholds: Thresholds = field(default_factory=Thresholds)  # reputation: now


def sends_for(pub: Publication, issue: str, limit: int = 50,
              recent: int | None = None) -> list[SendStatus]:
    """Every send of `issue` with its unknown and failed recipients (up to `limit` each), why
    recipients were skipped, its reputation figures and the guard's verdict on them (by
    newsletter.yaml's thresholds, since the send's last resume), its pauses, and for a paused
    send some of the people who bounced or complained; with `recent`, only the last `recent`
    sends have their recipients listed (a welcome makes a send each time people confirm)."""
    ledger = open_ledger(pub)
    recipients = ledger.recipients
    found = ledger.sends.of_issue(slug_of(pub, issue))
    ids = [s.id for s in found]
    listed = set(ids[-recent:] if recent else ids)
    pauses = ledger.pauses.of(ids)
    thresholds = pub.config.reputation.thresholds
    with ledger.engine.connect() as conn:
        health = figures_of(conn, ids)
        who = {s.id: reported(conn, s.id) for s in found if s.paused}
    return [SendStatus(s, recipients.listing(s.id, "unknown", limit) if s.id in listed else [],
                       recipients.listing(s.id, "failed", limit) if s.id in listed else [],
                       recipients.reasons(s.id) if s.skipped and s.id in listed else [],
                       health[s.id],
                       judge(health[s.id].since(baseline_of(pauses[s.id])), thresholds),
                       pauses[s.id], who.get(s.id, []), thresholds)
            for s in found]



def last_completed_send(pub: Publication) -> SendRow | None:
    """The latest completed send of any issue (`new --from-feed` drafts the entries since);
    a message's (the welcome's) is no issue's."""
    from sqlalchemy import select

    from newsletter.db.ledger_tables import sends

    ledger = open_ledger(pub)
    with ledger.engine.connect() as conn:
        row = conn.execute(select(sends).where(
            sends.c.state == "completed", ~sends.c.issue.startswith("_", autoescape=True))
            .order_by(sends.c.id.desc()).limit(1)).first()
    return SendRow.of(row) if row else None


def cancel_scheduled(pub: Publication, issue: str, segment: str | None = None) -> SendRow:
    """`newsletter send cancel`: stop the latest scheduled send of `issue` (to `segment`) at
    its provider while its batches can still be cancelled, or give up a stopped send.

    Every open batch id of the send is cancelled (a provider keeps a limited number of batches
    cancelled at a time, `Scheduling.max_cancelled`: a send uses one per run). The send
    becomes `cancelled` and its lease is
    taken, so a process still running it stops at its next ledger write; its recipients in
    cancelled batches are recorded `cancelled` (not delivered), so a later send reaches them.
    A stopped send through a transport that can tell what a crash left unknown (the outbox:
    its files) settles that first.
    """
    slug = slug_of(pub, issue)
    ledger = open_ledger(pub)
    now = dt.datetime.now(dt.UTC)
    found = [s for s in ledger.sends.of_issue(slug, segment)
             if s.state != "cancelled" and (s.state in ("sending", "stopped") or
                                            (s.batch_id and s.send_at and s.send_at > now))]
    if not found:
        where = f" to '{segment}'" if segment else ""
        raise NewsletterError(f"no scheduled or stopped send of {slug}{where} to cancel")
    send = found[-1]
    runs = [r for r in ledger.scheduled.runs(send.id) if r.state == "open"]
    if not runs and send.batch_id and send.send_at:  # scheduled with --at by an older version
        runs = [RunBatch(0, send.batch_id, send.send_at, 1, "open", send.created_at)]
    if not runs:
        if send.owner and is_alive(send.owner, send.heartbeat_at):
            raise SendBusy(f"{send.busy_message().split(';')[0]}; stop it (Ctrl-C) before "
                           "giving it up")
        if capabilities(send.transport).settles_unknown and send.unknown:
            _settle_unknown(pub, ledger, send)
        ledger.sends.cancel(send.id, "given up with `newsletter send cancel`")
        return ledger.sends.get(send.id)
    scheduling = capabilities(send.transport).scheduling
    if scheduling is None:
        raise NewsletterError(f"send #{send.id} went through the {send.transport} transport, "
                              "which cannot cancel scheduled batches")
    late = [r for r in runs if now > r.send_at - scheduling.cancel_deadline]
    if late:
        raise NewsletterError(f"send #{send.id} goes out at {utc_minute(late[0].send_at)}; "
                              f"{scheduling.provider} cancels only until "
                              f"{minutes(scheduling.cancel_deadline)} before")
    if len(runs) > scheduling.max_cancelled:
        raise NewsletterError(f"send #{send.id} has {len(runs)} open batches; "
                              f"{scheduling.provider} cancels at most {scheduling.max_cancelled} "
                              "at a time")
    sender = make_transport(send.transport, pub.settings, pub.config)
    for run in runs:
        sender.cancel(run.batch_id)
    # Take the lease first: a process still running the send writes nothing more.
    ledger.sends.cancel(send.id, "cancelled by `newsletter send cancel`")
    for run in runs:
        if run.id:
            ledger.scheduled.cancelled(send.id, run, requeue=False,
                                       reason="cancelled with `newsletter send cancel` before "
                                              "delivery")
    return ledger.sends.get(send.id)


def _settle_unknown(pub: Publication, ledger: Ledger, send: SendRow) -> None:
    """Before a stopped send is given up, its transport tells what left (the outbox: a written
    file was accepted, a missing one was not), so the reached rule counts exactly who got it."""
    from newsletter.dispatch.run import SendRun

    artifact = ledger.artifacts.load(send.id)
    if artifact is None:
        return
    transport = make_transport(send.transport, pub.settings, pub.config)
    ledger.sends.acquire(send.id)
    try:
        transport.open(artifact.mailing(pub.config, str(send.id),
                                        secret=pub.settings.secret or ""))
        SendRun(ledger, send.id, transport).settle_unknown()
    finally:
        ledger.sends.release(send.id, send.last_error)
        transport.close()
