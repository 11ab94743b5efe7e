"""Planning a send: everything that can be checked before anything is sent, and whether this
is a new send or the resumption of an earlier one.

A new send builds the issue, passes the quality gate and freezes its message (an Artifact);
its recipients are the segments' members less whoever the issue family reached
(dispatch.ledger.reached), and the plan says how many were left out and why. A resume (or a
--retry-failed reopen) sends the artifact its send started with: nothing is built, and a change
of the issue's sources is only a note.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, select

from newsletter.core.errors import InputError, NewsletterError
from newsletter.db.tables import subscribers
from newsletter.dispatch.approval import require_signoff
from newsletter.dispatch.artifact import Artifact, source_hash
from newsletter.dispatch.ledger import Ledger, SendBusy, SendPaused, SendRow
from newsletter.dispatch.ledger.reached import family_send_ids, left_out_as_reached
from newsletter.dispatch.options import DEFAULTS, SendOptions, schedule_window
from newsletter.dispatch.resume import nothing_to_resume, plan_reopen, plan_resume
from newsletter.dispatch.send_plan import SendPlan
from newsletter.dispatch.subjects.store import refuse_beside_test
from newsletter.providers import make_transport

if TYPE_CHECKING:
    from newsletter.compose import Build
    from newsletter.compose.publication import Publication


def open_ledger(pub: Publication) -> Ledger:
    from newsletter.db import open_database

    return Ledger(open_database(pub.settings))


def segment_condition(pub: Publication, segments: Sequence[str]) -> Any:
    """The WHERE clause of the union of `segments` (each subscriber once)."""
    from sqlalchemy import or_

    from newsletter.audience.segments import Segments

    loaded = Segments.load(pub)
    conditions = [loaded.condition(name) for name in segments]
    return conditions[0] if len(conditions) == 1 else or_(*conditions)


def _segment_topic(pub: Publication, segment: str) -> str | None:
    """The topic tag `segment` is defined by, if any (its footer then offers to stop it)."""
    from newsletter.audience.segments import Segments

    if " + " in segment:
        return None
    return Segments.load(pub).topic_of(segment, pub.config.topics)


def slug_of(pub: Publication, issue: str) -> str:
    """The slug of ISSUE; a slug whose folder is gone still has a history in the ledger."""
    try:
        return pub.issue_dir(issue).name
    except InputError:
        return issue


def family_of(pub: Publication, slug: str, ledger: Ledger) -> tuple[str, ...]:
    """The slugs of the issue family of `slug`: the issue and its editions as their files say
    (`translation_of`), and as the ledger remembers them (each send's artifact names its
    family), so an edition whose manifest cannot be read now still counts."""
    from newsletter.compose.editions import edition_group

    return ledger.artifacts.families((slug, *(e.slug for e in edition_group(pub, slug))))


def plan_send(pub: Publication, issue: str, segment: str | Sequence[str],
              options: SendOptions = DEFAULTS, *,
              before_send: Callable[[Publication, Any, str], str] | None = None,
              narrow: Any = None, run_started: dt.datetime | None = None) -> SendPlan:
    """Resolve the segments and the ledger's history, build the issue for a new send (or
    take the artifact of the send to resume), and refuse what must be refused.

    One send of an issue is active at a time: while another is under way, or stopped and not
    yet resumed, this refuses (SendBusy) naming it. A new send leaves out whoever the issue
    family reached, unless `options.again`. Unknown outcomes of sends without an undo window
    are settled by the operator: all (`resend_unknown`, `accept_unknown`), batch by batch or
    recipient by recipient. `before_send(pub, engine, provider)` runs before a new send through
    a provider with suppression lists is counted (the CLI passes the suppression sync, which
    lives on the public side); the note it returns joins the plan's. `narrow`, a further WHERE
    clause over subscribers, keeps part of the segments (one edition's readers); `run_started`
    (with `again`): people reached since then are left out (one edition each in one
    `send --editions --again`). A send the reputation guard paused is resumed only with
    `options.resume` (SendPaused otherwise), which takes up the issue's active send, to its
    own segments when none are named.
    """
    transport, dry_run, at, resume = options.transport, options.dry_run, options.at, options.resume
    segments = tuple(dict.fromkeys([segment] if isinstance(segment, str) else segment))
    if not dry_run:
        pub.settings.require_secret()
    ledger = open_ledger(pub)
    slug = slug_of(pub, issue)
    active = ledger.sends.active(slug)
    if resume:
        if active is None:
            nothing_to_resume(ledger, slug)
        segments = segments or tuple(active.segment.split(" + "))
    if not segments:
        raise NewsletterError("name at least one --segment")
    label = " + ".join(segments)
    refuse_beside_test(ledger.engine, slug, label)  # a subject test's sends only, while open
    reopen: SendRow | None = None
    if active is not None:
        if not dry_run:
            ledger.sends.check_free(active.id)  # a live process: refuse, naming it
        if active.paused and not resume and not dry_run:
            raise SendPaused(active.paused_message())
        if active.segment != label:
            raise SendBusy(active.busy_message())
        if transport is not None and transport != active.transport:
            raise NewsletterError(f"send #{active.id} of {slug} to '{label}' was started "
                                  f"with the {active.transport} transport; resume it with "
                                  f"--transport {active.transport}")
        if at is not None:
            raise NewsletterError(f"send #{active.id} is already under way; --at only schedules "
                                  "a new send")
    elif options.retry_failed:
        failed = [s for s in ledger.sends.of_issue(slug, label)
                  if s.state == "completed" and s.failed]
        if not failed:
            raise NewsletterError(f"no completed send of {slug} to '{label}' has failed "
                                  "recipients to retry")
        reopen = failed[-1]
    resumed = active or reopen
    family = family_of(pub, slug, ledger)
    notes: list[str] = []
    if resumed is not None:
        artifact, build, frozen = _artifact_of(pub, ledger, resumed, family, notes)
    else:
        from newsletter.checks import require_passing
        from newsletter.compose import build_issue

        # a one-topic segment's footer offers to stop that topic
        build = build_issue(pub, issue, _segment_topic(pub, label))
        require_passing(pub, build)  # the pre-send quality gate: refuse on any check error
        slug, frozen = build.slug, True
        family = family_of(pub, slug, ledger)
        artifact = Artifact.freeze(pub, build, family)
    members = None  # a resume sends to its snapshot: its label need not name segments now
    if resumed is None:
        members = segment_condition(pub, segments)
        members = members & narrow if narrow is not None else members
    chosen = resumed.transport if resumed else (transport or pub.settings.transport)
    undo_window = schedule_window(pub, ledger, resumed, chosen, at, options.undo_window)
    sender = make_transport(chosen, pub.settings, pub.config)
    if resumed is None and build is not None:  # a resume sends what was approved at its start
        require_signoff(pub, build, transport=chosen, dry_run=dry_run)  # approvals, a real From
    if sender.capabilities.suppression_lists and resumed is None and not dry_run \
            and before_send:
        note = before_send(pub, ledger.engine, chosen)  # retire suppressed addresses first
        if note:
            notes.append(note)
    plan = SendPlan(
        pub=pub, slug=slug, artifact=artifact, build=build, segment=label, transport=sender,
        ledger=ledger, members=members, send=resumed, count=0,
        family=tuple(dict.fromkeys(family + artifact.family)),
        reach=resumed.reach if resumed else
        ("again" if options.again else "unknown" if options.resend_unknown else "once"),
        frozen=frozen, options=options, undo_window=undo_window,
        retry_failed=reopen is not None,
        run_started=run_started if options.again else None, notes=notes)
    if reopen is not None:
        plan_reopen(plan, reopen)
    elif active is not None:
        plan_resume(plan, active, dry_run)
    else:
        _count_new(plan)
        if plan.count == 0 and not plan.left_out:
            raise NewsletterError(f"segment '{label}' has no active subscribers; nothing to send")
    return plan


def _artifact_of(pub: Publication, ledger: Ledger, send: SendRow, family: tuple[str, ...],
                 notes: list[str]) -> tuple[Artifact, Build | None, bool]:
    """(artifact, build, frozen) of a send to resume: its frozen artifact, or for a send an
    earlier version started (it kept none) one made now from the issue as it is."""
    artifact = ledger.artifacts.load(send.id)
    if artifact is not None:
        now = source_hash(pub, send.issue)
        if artifact.source_hash and now and now != artifact.source_hash:
            notes.append(f"{send.issue} changed since send #{send.id} started (its files, "
                         "the template or newsletter.yaml); the send goes on with the message "
                         f"it started with (subject \"{artifact.subject}\"), so all its "
                         "recipients get the same")
        return artifact, None, True
    from newsletter.compose import build_issue

    build = build_issue(pub, send.issue, _segment_topic(pub, send.segment))
    notes.append(f"send #{send.id} was started by an earlier version of newsletter, which kept "
                 f"no copy of its message; it goes on with {send.issue} as built now, and that "
                 "copy is kept for the rest of the send")
    if build.content_hash != send.content_hash:
        notes.append("the message as built now differs from the one its first recipients got "
                     "(an edit of the issue, or this version's renderer)")
    return Artifact.freeze(pub, build, family), build, False


def _count_new(plan: SendPlan) -> None:
    """Recipients of a new send, and who of the segments was left out and why (one query)."""
    with plan.ledger.engine.connect() as conn:
        ids = family_send_ids(conn, plan.family)
        chosen = plan.recipients(conn, ids)
        gone = left_out_as_reached(conn, plan.family, plan.reach, plan.run_started, ids)
        counts = [func.count(), func.sum(case((chosen, 1), else_=0))]
        if gone is not None:
            counts.append(func.sum(case((gone, 1), else_=0)))
        row = conn.execute(select(*counts).select_from(subscribers)
                           .where(plan.members)).one()
    total, plan.count = row[0], int(row[1] or 0)
    reached_n = int(row[2] or 0) if gone is not None else 0
    if reached_n:
        why = ("reached by another edition in this run" if plan.reach == "again" else
               "already reached by this issue or one of its editions" +
               (" (accepted; --resend-unknown sends to the unknown ones)"
                if plan.reach == "unknown" else
                " (accepted, or an unknown outcome: possibly delivered; --again sends to "
                "them too)"))
        plan.left_out.append((reached_n, why))
    failed_n = total - plan.count - reached_n
    if failed_n:
        plan.left_out.append((failed_n, "failed for good in an earlier send of the issue "
                                        "(--retry-failed tries them again)"))
