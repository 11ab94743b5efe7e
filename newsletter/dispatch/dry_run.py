"""`send --dry-run`: everything but the hand-over."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from newsletter.core.personalise import Recipient
from newsletter.core.tokens import SAMPLE_SECRET
from newsletter.dispatch.send_plan import SendPlan
from newsletter.providers.mailing import Item


@dataclass
class DryRun:
    count: int
    first: str
    rejected: dict[str, str]
    where: str


def _plan_items(plan: SendPlan, size: int) -> Iterator[list[Item]]:
    if plan.send is not None:
        states = (["failed"] if plan.retry_failed else
                  ["pending"] + (["unknown"] if plan.options.resend_unknown else []))
        yield from plan.ledger.recipients.stream(plan.send.id, states, size)
        return
    from newsletter.audience.subscribers import iter_batches

    with plan.ledger.engine.connect() as conn:
        where = plan.recipients(conn)
    for chunk in iter_batches(plan.ledger.engine, where, size):
        yield [Item(s.id, Recipient(s.email, s.name or "", s.attributes)) for s in chunk]


def dry_run(plan: SendPlan) -> DryRun:
    """Check every message of the plan as its transport would before sending (addresses, and
    each request it builds: a provider's per-recipient limits); show the first. Nothing is
    handed over or written to the ledger."""
    mailing = plan.artifact.mailing(plan.pub.config, "dry-run",
                                    secret=plan.pub.settings.secret or SAMPLE_SECRET,
                                    send_at=plan.at or (plan.send.send_at if plan.send else None))
    transport = plan.transport
    transport.open(mailing)
    first, count, rejected = "", 0, {}
    try:
        for items in _plan_items(plan, max(1, transport.batch_size)):
            if not first:
                first = transport.preview(items[0])
            refused = transport.check(items)
            emails = {i.key: i.recipient.email for i in items}
            rejected.update({emails[k]: why for k, why in list(refused.items())[:20]})
            count += len(items)
    finally:
        transport.close()
    return DryRun(count, first, rejected, transport.where)
