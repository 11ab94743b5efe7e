"""CLI commands: send (and send cancel), send-test, status. Thin: the work is in dispatch/."""

from __future__ import annotations

import click

from newsletter.cli.common import TRANSPORT_NAMES, App, console, err_console, pass_app


class _SendCommand(click.Command):
    """`newsletter send ISSUE ...` sends; `newsletter send cancel ...` cancels a scheduled one."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] == "cancel":
            ctx.meta["newsletter.cancel"] = args[1:]
            return []
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> object:
        rest = ctx.meta.get("newsletter.cancel")
        if rest is not None:
            # parent: the `newsletter` context, so usage reads "newsletter send cancel"
            with cancel.make_context("send cancel", list(rest), parent=ctx.parent) as sub:
                return cancel.invoke(sub)
        return super().invoke(ctx)


@click.command(cls=_SendCommand, epilog="To cancel a scheduled send: newsletter send cancel "
               "ISSUE [--segment NAME].")
@click.argument("issue")
@click.option("--segment", "segments", multiple=True,
              help="Segment (from subscribers/segments.yaml); repeat it to send once to the "
                   "union of several. Required, except with --resume.")
@click.option("--transport", type=click.Choice(TRANSPORT_NAMES),
              help=f"{', '.join(TRANSPORT_NAMES)} (default: NEWSLETTER_TRANSPORT, else outbox).")
@click.option("--dry-run", is_flag=True, help="Do everything but hand messages over.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--again", is_flag=True,
              help="Also send to people who already received this issue.")
@click.option("--retry-failed", is_flag=True,
              help="Try the permanently failed recipients of the last send once more.")
@click.option("--undo-window", "undo_text", metavar="DURATION",
              help="SendGrid only: schedule the send this far ahead (e.g. 15m) so that "
                   "`newsletter send cancel` can stop it (default: sendgrid.undo_window).")
@click.option("--resend-unknown", is_flag=True,
              help="Also send to recipients whose earlier hand-over has an unknown fate.")
@click.option("--accept-unknown", is_flag=True,
              help="Record those recipients as accepted (you checked the provider's log).")
@click.option("--resend-batch", type=int, multiple=True, metavar="N",
              help="Like --resend-unknown, for batch N only (see `newsletter status`).")
@click.option("--accept-batch", type=int, multiple=True, metavar="N",
              help="Like --accept-unknown, for batch N only.")
@click.option("--resend-recipient", multiple=True, metavar="ADDRESS",
              help="Like --resend-unknown, for this recipient only (repeatable).")
@click.option("--accept-recipient", multiple=True, metavar="ADDRESS",
              help="Like --accept-unknown, for this recipient only (repeatable).")
@click.option("--at", "at_text", metavar="TIME",
              help="Schedule (SendGrid only, at most 72 h ahead), e.g. 2026-11-24T14:00Z.")
@click.option("--skip-url-check", is_flag=True, envvar="NEWSLETTER_SKIP_URL_CHECK",
              help="Send even if the web copy or an image URL does not answer.")
@click.option("--editions", is_flag=True,
              help="Send each reader the edition in their `language` attribute (one each).")
@click.option("--resume", is_flag=True,
              help="Go on with the send of ISSUE the reputation guard paused (after a look at "
                   "`newsletter status`), or any stopped one.")
@click.option("--test-subjects", "test_subjects", multiple=True, metavar="SUBJECT",
              help="A subject test: repeat it for each subject; each goes to an equal random "
                   "share of the sample, the winner to the rest.")
@click.option("--sample", "sample_text", default="20%", show_default=True, metavar="PERCENT",
              help="With --test-subjects: the share of the segment the subjects are tested on.")
@click.option("--decide-after", "decide_text", default="4h", show_default=True,
              metavar="DURATION", help="With --test-subjects: how long after the subjects went "
                                       "out the winner is picked (e.g. 4h, 90m).")
@click.option("--by", "measure", type=click.Choice(["clicks", "opens"]), default="clicks",
              show_default=True, help="With --test-subjects: what people did that picks the "
                                      "winner (opens: SendGrid only).")
@pass_app
def send(app: App, issue: str, segments: tuple[str, ...], transport: str | None, dry_run: bool,
         yes: bool, again: bool, retry_failed: bool, undo_text: str | None, resend_unknown: bool,
         accept_unknown: bool, resend_batch: tuple[int, ...], accept_batch: tuple[int, ...],
         resend_recipient: tuple[str, ...], accept_recipient: tuple[str, ...],
         at_text: str | None, skip_url_check: bool, editions: bool, resume: bool,
         test_subjects: tuple[str, ...], sample_text: str, decide_text: str,
         measure: str) -> None:
    """Send ISSUE to one or more segments; run it again to resume an interrupted send.

    With --test-subjects, a subject test; run it again to carry the test on."""
    from newsletter.cli.sending import (
        check_online,
        finish_without_sending,
        run,
        show_dry_run,
        show_plan,
    )
    from newsletter.dispatch.service import parse_at, parse_window, plan_send
    from newsletter.events.suppressions import sync_before_send

    if not segments and not resume:
        raise click.UsageError("Missing option '--segment'.")
    if resume and editions:
        raise click.UsageError("--resume takes up one send: resume an edition's send with "
                               "`newsletter send EDITION --resume`")
    at = parse_at(at_text) if at_text else None
    window = parse_window(undo_text) if undo_text else None
    options = dict(transport=transport, again=again, at=at, undo_window=window,
                   retry_failed=retry_failed, resend_unknown=resend_unknown,
                   accept_unknown=accept_unknown, resend_batches=resend_batch,
                   accept_batches=accept_batch, resend_recipients=resend_recipient,
                   accept_recipients=accept_recipient, dry_run=dry_run,
                   before_send=sync_before_send)
    _attribute_hints(app, segments)
    from newsletter.cli.subject_tests import open_test, send_subject_test
    from newsletter.dispatch.welcome import refuse_plain_send

    if not resume:  # (a welcome send the reputation guard paused is resumed like any)
        refuse_plain_send(app.publication, issue)
    if test_subjects or open_test(app.publication, issue):
        if editions:
            raise click.UsageError("--editions and a subject test exclude each other")
        send_subject_test(app, issue, segments, test_subjects, sample_text, decide_text,
                          measure, yes=yes, skip_url_check=skip_url_check,
                          options=options | {"resume": resume})
        return
    if editions:
        _send_editions(app, issue, segments, yes, options, skip_url_check)
        return
    from newsletter.dispatch.ledger.store import SendFinished

    try:
        plan = plan_send(app.publication, issue, segments, resume=resume, **options)
    except SendFinished as exc:  # --resume: another process finished it
        err_console.print(str(exc), markup=False, highlight=False)
        return
    if not dry_run:
        plan.transport.preflight()
    online = None if dry_run else check_online(app.publication, plan, skip_url_check)
    show_plan(plan)
    if online:
        online()
    if dry_run:
        show_dry_run(plan)
        return
    accepting = ((accept_unknown or accept_batch or accept_recipient) and plan.send
                 and plan.send.unknown)
    if plan.count == 0 and plan.send is None:
        err_console.print(f"nothing to send: everyone in '{plan.segment}' was left out (see "
                          "Left out above; --retry-failed tries the failed ones again, "
                          "--again sends to everyone once more)")
        return
    if plan.count == 0 and not accepting and not plan.left_out:
        finish_without_sending(plan)
        return
    if not yes and not click.confirm("Send it?", default=False, err=True):
        raise click.exceptions.Exit(1)
    run(plan)


def _attribute_hints(app: App, names: tuple[str, ...]) -> None:
    """Warn about attributes the segments test that no subscriber has (a CSV header `Role`
    and a rule `attr: {role: ...}`)."""
    from newsletter.audience import Segments
    from newsletter.audience.attributes import unheld_attributes
    from newsletter.cli.common import warn
    from newsletter.db import open_database

    segments = Segments.load(app.publication)
    known = [name for name in dict.fromkeys(names) if name in segments.names]
    if not known:
        return  # plan_send names the unknown segment
    engine = open_database(app.publication.settings)
    try:
        with engine.connect() as conn:
            warn(unheld_attributes(conn, segments, known))
    finally:
        engine.dispose()


def _send_editions(app: App, issue: str, segments: tuple[str, ...], yes: bool, options: dict,
                   skip_url_check: bool) -> None:
    """`send --editions`: one send per edition, each to its readers; one confirmation."""
    from newsletter.cli.sending import (
        check_online,
        finish_without_sending,
        run,
        show_dry_run,
        show_plan,
    )
    from newsletter.dispatch.editions import plan_editions

    planned = plan_editions(app.publication, issue, segments, **options)
    for note in planned.skipped:
        err_console.print(f"[yellow]note:[/yellow] {note}", markup=True)
    checks = []
    for plan in planned.plans:
        if not options["dry_run"]:
            plan.transport.preflight()
            checks.append(check_online(app.publication, plan, skip_url_check))
        show_plan(plan)
    for online in checks:
        online()
    if options["dry_run"]:
        for plan in planned.plans:
            show_dry_run(plan)
        return
    if not yes and not click.confirm("Send these editions?", default=False, err=True):
        raise click.exceptions.Exit(1)
    for plan in planned.plans:
        if plan.count == 0 and plan.send is not None and not plan.left_out:
            finish_without_sending(plan)
            continue
        run(plan)


@click.command()
@click.argument("issue")
@click.option("--segment", help="Only the send to this segment.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def cancel(app: App, issue: str, segment: str | None, yes: bool) -> None:
    """Cancel a send of ISSUE scheduled on SendGrid (--at, --undo-window), or give up a
    stopped send."""
    from newsletter.cli.subject_tests import cancel_subject_test
    from newsletter.dispatch.service import cancel_scheduled, utc_minute

    if not yes and not click.confirm(f"Cancel the send of {issue}?", err=True):
        raise click.exceptions.Exit(1)
    if cancel_subject_test(app.publication, issue):
        return
    send = cancel_scheduled(app.publication, issue, segment)
    when = f" (was scheduled for {utc_minute(send.send_at)})" if send.send_at else ""
    console.print(f"cancelled send #{send.id} of {send.issue} to '{send.segment}'{when}")


@click.command("send-test")
@click.argument("issue")
@click.option("--to", "to", multiple=True, metavar="ADDRESS",
              help="Send to this address instead of test_recipients (repeatable; several "
                   "separated by commas also work).")
@click.option("--transport", type=click.Choice(TRANSPORT_NAMES),
              help=f"{', '.join(TRANSPORT_NAMES)} (default: NEWSLETTER_TRANSPORT, else outbox).")
@pass_app
def send_test(app: App, issue: str, to: tuple[str, ...], transport: str | None) -> None:
    """Send a [TEST] copy of ISSUE to test_recipients (or --to), outside the ledger."""
    from newsletter.compose import build_issue
    from newsletter.compose.schema import split_addresses
    from newsletter.dispatch.service import send_test as run

    build = build_issue(app.publication, issue)
    addresses = [address for given in to for address in split_addresses(given)]
    result = run(app.publication, build, to=addresses or None, transport=transport)
    console.print(result.summary())


def _show_approvals(app: App, issue: str) -> None:
    """One line on the issue's approvals of its current content (when it still builds)."""
    from newsletter.core.errors import InputError
    from newsletter.core.words import plural
    from newsletter.db import open_database
    from newsletter.dispatch.approval import approvals_of, sign_off

    pub = app.publication
    try:
        slug = pub.issue_dir(issue).name
    except InputError:
        return  # a slug whose folder is gone: its sends only
    engine = open_database(pub.settings)
    try:
        if not pub.config.approval.required and not approvals_of(engine, slug):
            return  # nothing to say, and no need to build the issue
        from newsletter.compose import build_issue

        try:
            build = build_issue(pub, issue)
        except InputError:
            console.print("approval: the issue does not build (`newsletter check` says why)")
            return
        state = sign_off(pub, build, engine)
    finally:
        engine.dispose()
    required = (f"{plural(state.needed, 'approver')} required" if state.required
                else "not required")
    console.print(f"approval ({required}): {state.describe()}", markup=False, highlight=False)


#: `status` lists this many of an issue's latest sends one by one (the earlier ones summed)
RECENT = 20


@click.command()
@click.argument("issue")
@pass_app
def status(app: App, issue: str) -> None:
    """Show ISSUE's approvals and each send with its counts, its bounce and complaint rates
    beside the providers' limits, and any unknown or failed recipients."""
    from newsletter.cli.sending import counts, show_health
    from newsletter.cli.subject_tests import show_tests
    from newsletter.dispatch.ledger import is_alive
    from newsletter.dispatch.service import sends_for, utc_minute

    _show_approvals(app, issue)
    found = sends_for(app.publication, issue, recent=RECENT)
    if not found:
        console.print(f"no sends of {issue} yet")
        return
    show_tests(app.publication, issue)
    if len(found) > RECENT:  # a welcome: one send per round of sign-ups
        earlier, found = found[:-RECENT], found[-RECENT:]
        sums = {state: sum(getattr(e.send, state) for e in earlier)
                for state in ("total", "accepted", "failed", "unknown", "skipped")}
        console.print(f"{len(earlier):,} earlier sends, {sums['total']:,} recipients: "
                      f"{sums['accepted']:,} accepted, {sums['failed']:,} failed, "
                      f"{sums['unknown']:,} unknown, {sums['skipped']:,} skipped; the last "
                      f"{RECENT}:", markup=False, highlight=False)
    from newsletter.events.stats import engagement_lines

    engaged = engagement_lines(app.publication, [entry.send.id for entry in found])
    for entry in found:
        s = entry.send
        state = s.state
        if s.state == "completed" and s.send_at:
            state = f"scheduled for {utc_minute(s.send_at)}"
        elif s.paused:
            state = f"paused by the reputation guard (since {utc_minute(s.paused_at)})"
        elif s.state == "sending":
            alive = s.owner and is_alive(s.owner, s.heartbeat_at)
            state = (f"sending (process {s.owner})" if alive else
                     "interrupted (run the same `newsletter send` to resume)")
        console.print(
            f"#{s.id} {s.issue} -> {s.segment} via {s.transport}: {state}; started "
            f"{utc_minute(s.created_at)}; {s.total:,} recipients: "
            + counts(s).replace(f" of {s.total:,}", ""), markup=False, highlight=False)
        console.print(f"  events: {engaged[s.id]}", markup=False, highlight=False)
        show_health(entry)
        if s.last_error and s.state != "completed" and not s.paused:
            console.print(f"  last error: {s.last_error}", markup=False, highlight=False)
        for why, count in entry.skipped:
            console.print(f"  skipped: {count:,} {why}", markup=False, highlight=False)
        for label, rows, total in (("unknown", entry.unknown, s.unknown),
                                   ("failed", entry.failed, s.failed)):
            for row in rows:
                why = row.last_error or ("in flight when the send stopped: the provider may "
                                         "or may not have it" if label == "unknown" else "")
                console.print(f"  {label}: {row.email} (batch {row.batch}, attempts {row.attempts}"
                              + (f"; {why}" if why else "") + ")", markup=False, highlight=False)
            if total > len(rows):
                console.print(f"  ... and {total - len(rows):,} more {label}")
        if s.unknown and s.state != "cancelled":
            console.print(f"  settle the unknown ones: `newsletter send {s.issue} --segment "
                          f"{s.segment.replace(' + ', ' --segment ')}` with --accept-recipient "
                          "ADDRESS (the provider took it) or --resend-recipient ADDRESS (it did "
                          "not), or per batch or all at once (see docs/sending.md)",
                          markup=False, highlight=False)


COMMANDS: list[click.Command] = [send, send_test, status]
