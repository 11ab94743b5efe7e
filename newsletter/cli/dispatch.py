"""CLI commands: send (and send cancel), send-test, status. Thin: the work is in dispatch/."""

from __future__ import annotations

import click

from newsletter.cli.common import App, console, err_console, pass_app
from newsletter.core.settings import TRANSPORTS as TRANSPORT_NAMES


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
@click.option("--segment", "segments", required=True, multiple=True,
              help="Segment (from subscribers/segments.yaml); repeat it to send once to the "
                   "union of several.")
@click.option("--transport", type=click.Choice(TRANSPORT_NAMES),
              help="outbox, smtp or sendgrid (default: NEWSLETTER_TRANSPORT, else outbox).")
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
@click.option("--at", "at_text", metavar="TIME",
              help="Schedule (SendGrid only, at most 72 h ahead), e.g. 2026-11-24T14:00Z.")
@click.option("--skip-url-check", is_flag=True, envvar="NEWSLETTER_SKIP_URL_CHECK",
              help="Send even if the web copy or an image URL does not answer.")
@click.option("--editions", is_flag=True,
              help="Send each reader the edition in their `language` attribute (one each).")
@pass_app
def send(app: App, issue: str, segments: tuple[str, ...], transport: str | None, dry_run: bool,
         yes: bool, again: bool, retry_failed: bool, undo_text: str | None, resend_unknown: bool,
         accept_unknown: bool, resend_batch: tuple[int, ...], accept_batch: tuple[int, ...],
         at_text: str | None, skip_url_check: bool, editions: bool) -> None:
    """Send ISSUE to one or more segments; run it again to resume an interrupted send."""
    from newsletter.dispatch.service import parse_at, parse_window, plan_send
    from newsletter.events.suppressions import sync_before_send

    at = parse_at(at_text) if at_text else None
    window = parse_window(undo_text) if undo_text else None
    options = dict(transport=transport, again=again, at=at, undo_window=window,
                   retry_failed=retry_failed, resend_unknown=resend_unknown,
                   accept_unknown=accept_unknown, resend_batches=resend_batch,
                   accept_batches=accept_batch, dry_run=dry_run, before_send=sync_before_send)
    if editions:
        _send_editions(app, issue, segments, yes, options, skip_url_check)
        return
    plan = plan_send(app.publication, issue, segments, **options)
    if not dry_run:
        plan.transport.preflight()
    online = None if dry_run else _check_online(app.publication, plan.build, skip_url_check)
    _show_plan(plan)
    if online:
        online()
    if dry_run:
        _dry_run(plan)
        return
    accepting = (accept_unknown or accept_batch) and plan.send and plan.send.unknown
    if plan.count == 0 and plan.send is None:
        err_console.print(f"nothing to send: all {plan.left_out:,} recipients already received "
                          f"{plan.build.slug} or failed for good (--retry-failed tries the "
                          "failed ones again, --again sends to everyone once more)")
        return
    if plan.count == 0 and not accepting:
        _finish_without_sending(plan)
        return
    if not yes and not click.confirm("Send it?", default=False, err=True):
        raise click.exceptions.Exit(1)
    _run(plan)


def _check_online(pub, build, skip: bool):
    """Ask the issue's URLs now; return what prints the result with the plan (and refuses)."""
    from newsletter.checks.published import check_published
    from newsletter.core.errors import FailedError

    check = None if skip else check_published(pub, build)

    def show() -> None:
        line = check.line() if check else "not checked (--skip-url-check)"
        err_console.print(f"[bold]{'Online:':<12}[/bold] {line}", markup=True, highlight=False)
        if check and not check.ok:
            for answer in check.failures:
                err_console.print(f"  {answer.url}: {answer.problem()}", markup=False,
                                  highlight=False)
            raise FailedError(f"refusing to send: the issue is not online yet; run `newsletter "
                              f"publish {build.slug}` (and check archive_url), or pass "
                              "--skip-url-check")

    return show


def _send_editions(app: App, issue: str, segments: tuple[str, ...], yes: bool, options: dict,
                   skip_url_check: bool) -> None:
    """`send --editions`: one send per edition, each to its readers; one confirmation."""
    from newsletter.dispatch.editions import plan_editions

    planned = plan_editions(app.publication, issue, segments, **options)
    for note in planned.skipped:
        err_console.print(f"[yellow]note:[/yellow] {note}", markup=True)
    checks = []
    for plan in planned.plans:
        if not options["dry_run"]:
            plan.transport.preflight()
            checks.append(_check_online(app.publication, plan.build, skip_url_check))
        _show_plan(plan)
    for online in checks:
        online()
    if options["dry_run"]:
        for plan in planned.plans:
            _dry_run(plan)
        return
    if not yes and not click.confirm("Send these editions?", default=False, err=True):
        raise click.exceptions.Exit(1)
    for plan in planned.plans:
        if plan.count == 0 and plan.send is not None:
            _finish_without_sending(plan)
            continue
        _run(plan)


def _show_plan(plan) -> None:
    for label, value in plan.summary():
        err_console.print(f"[bold]{label + ':':<12}[/bold] {value}", markup=True,
                          highlight=False)
    for note in plan.notes:
        err_console.print(f"[yellow]note:[/yellow] {note}", markup=True)


def _dry_run(plan) -> None:
    from newsletter.dispatch.service import dry_run

    result = dry_run(plan)
    console.print(result.first, markup=False, highlight=False, soft_wrap=True)
    for email, why in result.rejected.items():
        err_console.print(f"[yellow]would be refused:[/yellow] {email}: {why}", markup=True)
    err_console.print(f"dry run: {result.count:,} messages personalised for {plan.transport.name}"
                      "; nothing was handed over (the first one is shown above)")


def _finish_without_sending(plan) -> None:
    from newsletter.core.errors import FailedError

    send = plan.send
    if send.unknown:
        _list_recipients(plan.ledger, send.id)
        raise FailedError(f"send #{send.id}: nothing left to send but {send.unknown:,} "
                          "recipients with an unknown fate; check the provider's activity log, "
                          "then pass --resend-unknown (they did not get it) or "
                          "--accept-unknown (they did)")
    err_console.print(f"send #{send.id}: nothing left to send")


def _run(plan) -> None:
    import signal
    import threading

    from newsletter.dispatch.service import execute
    from newsletter.events.tracking import track_links

    stop = threading.Event()

    def prepare(mailing, send_id: int):  # record the send's links; click tracking if on
        return track_links(plan.pub, plan.build, plan.ledger.engine, send_id, mailing)

    def on_signal(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        err_console.print("stopping after the batch in flight (press Ctrl-C again to stop now)")

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with _progress(plan.count) as progress:
            result = execute(plan, stop=stop, progress=progress, prepare=prepare)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if result is None:
        err_console.print("nothing to send: everyone already received it in the meantime")
        return
    _report(plan, result)


class _progress:
    """A rich progress bar: sent / failed / remaining and the rate."""

    def __init__(self, total: int):
        import time

        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.total, self.sent, self.failed, self.unknown = total, 0, 0, 0
        self.started = time.monotonic()
        self.clock = time.monotonic
        self.bar = Progress(
            TextColumn("[bold]sending[/bold]"), BarColumn(),
            TextColumn("{task.fields[line]}"), TimeElapsedColumn(),
            console=err_console.rich, transient=False,
        )
        self.task = self.bar.add_task("send", total=total, line=self._line())

    def _line(self) -> str:
        elapsed = max(self.clock() - self.started, 1e-6)
        remaining = max(0, self.total - self.sent - self.failed - self.unknown)
        text = (f"sent {self.sent:,} · failed {self.failed:,} · remaining {remaining:,} · "
                f"{self.sent / elapsed:,.0f}/s")
        return text + (f" · unknown {self.unknown:,}" if self.unknown else "")

    def __call__(self, accepted: int, failed: int, unknown: int) -> None:
        self.sent += accepted
        self.failed += failed
        self.unknown += unknown
        self.bar.update(self.task, completed=self.sent + self.failed + self.unknown,
                        line=self._line())

    def __enter__(self) -> _progress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()


def _report(plan, result) -> None:
    from newsletter.core.errors import FailedError
    from newsletter.dispatch.service import utc_minute

    send = result.send
    counts = (f"{send.accepted:,} of {send.total:,} accepted, {send.failed:,} failed, "
              f"{send.unknown:,} unknown, {send.pending:,} pending")
    if result.ok and send.failed:
        _list_recipients(plan.ledger, send.id)
        console.print(f"send #{send.id} of {send.issue} to '{send.segment}' completed via "
                      f"{send.transport} with failures: {counts}. `newsletter status "
                      f"{send.issue}` lists them; --retry-failed tries them once more")
        return
    if result.ok:
        when = f", scheduled for {utc_minute(send.send_at)}" if send.send_at else ""
        console.print(f"send #{send.id} of {send.issue} to '{send.segment}' completed via "
                      f"{send.transport}{when}: {counts}")
        if send.transport == "outbox":
            console.print(f"messages are in {result.where}")
        return
    _list_recipients(plan.ledger, send.id)
    why = result.report.stopped or ("interrupted" if result.report.interrupted else
                                    "some recipients were not accepted")
    raise FailedError(f"send #{send.id} stopped: {why}. {counts}. Run the same command to "
                      "resume" + (" (unknown ones: check the provider's log, then add "
                                  "--resend-unknown or --accept-unknown)" if send.unknown else ""))


def _list_recipients(ledger, send_id: int, limit: int = 10) -> None:
    for state in ("unknown", "failed"):
        rows = ledger.listing(send_id, state, limit)
        for row in rows:
            err_console.print(f"  {state}: {row.email}"
                              + (f" ({row.last_error})" if row.last_error else ""),
                              markup=False, highlight=False)


@click.command()
@click.argument("issue")
@click.option("--segment", help="Only the send to this segment.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def cancel(app: App, issue: str, segment: str | None, yes: bool) -> None:
    """Cancel a send of ISSUE scheduled on SendGrid (--at, --undo-window), or give up a
    stopped send."""
    from newsletter.dispatch.service import cancel_scheduled, utc_minute

    if not yes and not click.confirm(f"Cancel the send of {issue}?", err=True):
        raise click.exceptions.Exit(1)
    send = cancel_scheduled(app.publication, issue, segment)
    when = f" (was scheduled for {utc_minute(send.send_at)})" if send.send_at else ""
    console.print(f"cancelled send #{send.id} of {send.issue} to '{send.segment}'{when}")


@click.command("send-test")
@click.argument("issue")
@click.option("--to", "to", multiple=True, metavar="ADDRESS",
              help="Send to this address instead of test_recipients (repeatable).")
@click.option("--transport", type=click.Choice(TRANSPORT_NAMES),
              help="outbox, smtp or sendgrid (default: NEWSLETTER_TRANSPORT, else outbox).")
@pass_app
def send_test(app: App, issue: str, to: tuple[str, ...], transport: str | None) -> None:
    """Send a [TEST] copy of ISSUE to test_recipients (or --to), outside the ledger."""
    from newsletter.compose import build_issue
    from newsletter.dispatch.service import send_test as run

    build = build_issue(app.publication, issue)
    result = run(app.publication, build, to=list(to) or None, transport=transport)
    console.print(result.summary())


@click.command()
@click.argument("issue")
@pass_app
def status(app: App, issue: str) -> None:
    """Show each send of ISSUE with its counts and any unknown or failed recipients."""
    from newsletter.dispatch.ledger import is_alive
    from newsletter.dispatch.service import sends_for, utc_minute

    found = sends_for(app.publication, issue)
    if not found:
        console.print(f"no sends of {issue} yet")
        return
    from newsletter.events.stats import engagement_lines

    engaged = engagement_lines(app.publication, [entry.send.id for entry in found])
    for entry in found:
        s = entry.send
        state = s.state
        if s.state == "completed" and s.send_at:
            state = f"scheduled for {utc_minute(s.send_at)}"
        elif s.state == "sending":
            alive = s.owner and is_alive(s.owner, s.heartbeat_at)
            state = (f"sending (process {s.owner})" if alive else
                     "interrupted (run the same `newsletter send` to resume)")
        console.print(
            f"#{s.id} {s.issue} -> {s.segment} via {s.transport}: {state}; started "
            f"{utc_minute(s.created_at)}; {s.total:,} recipients: {s.accepted:,} "
            f"accepted, {s.failed:,} failed, {s.unknown:,} unknown, {s.pending:,} pending",
            markup=False, highlight=False)
        console.print(f"  events: {engaged[s.id]}", markup=False, highlight=False)
        if s.last_error and s.state != "completed":
            console.print(f"  last error: {s.last_error}", markup=False, highlight=False)
        for label, rows, total in (("unknown", entry.unknown, s.unknown),
                                   ("failed", entry.failed, s.failed)):
            for row in rows:
                console.print(f"  {label}: {row.email} (batch {row.batch}, attempts {row.attempts}"
                              + (f"; {row.last_error}" if row.last_error else "") + ")",
                              markup=False, highlight=False)
            if total > len(rows):
                console.print(f"  ... and {total - len(rows):,} more {label}")


COMMANDS: list[click.Command] = [send, send_test, status]
