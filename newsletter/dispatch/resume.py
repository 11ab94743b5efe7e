"""What a send that already exists will do when it is taken up again: a resume (a plain re-run,
or `send --resume` of a send the reputation guard paused) or a --retry-failed reopen, and who
the hand-over will leave out; and why `send --resume` may find nothing to take up."""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

from newsletter.core.errors import NewsletterError
from newsletter.dispatch.ledger import Ledger, SendRow
from newsletter.dispatch.ledger.consent import preview
from newsletter.dispatch.ledger.store import SendFinished
from newsletter.dispatch.options import listed, utc_minute

if TYPE_CHECKING:
    from newsletter.dispatch.send_plan import SendPlan


def nothing_to_resume(ledger: Ledger, slug: str) -> NoReturn:
    """`send --resume` without a send to resume: SendFinished when the last send completed
    (another resume finished it, say), else a plain error naming what there is."""
    found = ledger.sends.of_issue(slug)
    last = found[-1] if found else None
    if last is not None and last.state == "completed":
        raise SendFinished(f"nothing to resume: send #{last.id} of {slug} completed at "
                           f"{utc_minute(last.finished_at or last.updated_at)}")
    raise NewsletterError(f"no paused or stopped send of {slug} to resume"
                          + (f" (send #{last.id} was {last.state})" if last else ""))


def plan_reopen(plan: SendPlan, send: SendRow) -> None:
    """A --retry-failed reopen: its failed rows, less those the hand-over will skip."""
    plan.count = send.failed
    note_withdrawn(plan, send, ["failed"])


def note_withdrawn(plan: SendPlan, send: SendRow, states: list[str]) -> None:
    """Left out: rows in `states` the hand-over will skip (consent withdrawn, reached
    elsewhere), counted now."""
    with plan.ledger.engine.connect() as conn:
        dropped = preview(conn, plan.consent_check(send), states)
    for why, count in dropped:
        plan.left_out.append((count, f"will be skipped: {why}"))
        plan.count -= count


def plan_resume(plan: SendPlan, active: SendRow, dry_run: bool) -> None:
    """A resume: its pending rows (and unknown ones the operator or the transport settles),
    less those the hand-over will skip, with notes on what stays unknown."""
    recipients, options = plan.ledger.recipients, plan.options
    knows = plan.transport.capabilities.settles_unknown
    settles = bool(knows) or plan.undo_window is not None
    states = ["pending"] + (["unknown"] if options.resend_unknown or settles else [])
    plan.count = recipients.count(active.id, states)
    picked = recipients.count_unknown(active.id, batches=options.resend_batches,
                                      emails=options.resend_recipients)
    if not options.resend_unknown:
        plan.count += picked
    note_withdrawn(plan, active, ["pending"])
    if settles and active.unknown:
        plan.notes.append(f"{active.unknown:,} recipients with an unknown fate: " + (
            f"their batches are cancelled at {plan.transport.label} and sent again under new "
            "batch ids"
            if plan.undo_window else knows))
        return
    settled = "; ".join(filter(None, [
        "all recorded as accepted" if options.accept_unknown else "",
        f"batches {listed(options.accept_batches)} recorded as accepted"
        if options.accept_batches else "",
        f"batches {listed(options.resend_batches)} sent again" if options.resend_batches else "",
        f"{', '.join(options.accept_recipients)} recorded as accepted"
        if options.accept_recipients else "",
        f"{', '.join(options.resend_recipients)} sent again" if options.resend_recipients else ""]))
    if active.unknown and settled:
        plan.notes.append(f"recipients with an unknown fate: {settled}")
    elif active.unknown and not options.resend_unknown:
        plan.notes.append(f"{active.unknown:,} recipients of send #{active.id} have an "
                          "unknown fate and are left alone; see `newsletter status`, and "
                          "pass --resend-unknown to send to them again")
    if plan.count == 0 and not active.unknown and not dry_run:
        plan.notes.append("nothing left to send")
