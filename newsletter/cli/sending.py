"""How `newsletter send` shows itself: the plan, the URL check, the progress bar, the run
under Ctrl-C, the outcome, and the recipients left to settle. Imported by cli.dispatch."""

from __future__ import annotations

from rich.markup import escape

from newsletter.cli.common import console, err_console


def check_online(pub, plan, skip: bool):
    """Ask the issue's URLs now (a new send's); return what prints the result with the plan
    (and refuses)."""
    from newsletter.checks.published import check_published
    from newsletter.core.errors import FailedError

    build = plan.build
    check = None if skip or plan.send is not None else check_published(pub, build)

    def show() -> None:
        line = check.line() if check else (
            "not checked (--skip-url-check)" if skip else
            f"not checked (send #{plan.send.id} was checked when it started)")
        err_console.print(f"[bold]{'Online:':<12}[/bold] {line}", markup=True, highlight=False)
        if check and not check.ok:
            for answer in check.failures:
                err_console.print(f"  {answer.url}: {answer.problem()}", markup=False,
                                  highlight=False)
            raise FailedError(f"refusing to send: the issue is not online yet; run `newsletter "
                              f"publish {plan.slug}` (and check archive_url), or pass "
                              "--skip-url-check")

    return show


def show_plan(plan) -> None:
    show_rows(plan.summary())
    for note in plan.notes:
        err_console.print(f"[yellow]note:[/yellow] {escape(note)}", markup=True)


def show_rows(rows) -> None:
    """Label/value pairs, the labels in bold (a value is shown as it is, brackets too)."""
    for label, value in rows:
        head = f"{label}:" if label else ""
        err_console.print(f"[bold]{head:<12}[/bold] {escape(str(value))}", markup=True,
                          highlight=False)


def show_dry_run(plan) -> None:
    from newsletter.core.words import plural
    from newsletter.dispatch.service import dry_run

    result = dry_run(plan)
    for email, why in result.rejected.items():
        err_console.print(f"[yellow]would be refused:[/yellow] {email}: {why}", markup=True)
    where = _save_sample(plan, result.first) if result.first else None
    console.print(f"dry run: {plural(result.count, 'message')} personalised for "
                  f"{plan.transport.name}; nothing was handed over"
                  + (f". The first one, as {_sample_kind(plan)}: {where}" if where else ""),
                  markup=False, highlight=False, soft_wrap=True)


def _sample_kind(plan) -> str:
    return plan.transport.preview_kind[0]


def _save_sample(plan, first: str):
    """Write the dry run's first message (or API request) to dist/<slug>/, atomically."""
    import os
    import tempfile

    suffix = plan.transport.preview_kind[1]
    folder = plan.pub.dist_dir(plan.build.slug)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"dry-run{suffix}"
    handle, temp = tempfile.mkstemp(dir=folder, prefix=".dry-run-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(first)
        os.replace(temp, target)
    except BaseException:
        os.unlink(temp)
        raise
    return target


def finish_without_sending(plan) -> None:
    from newsletter.core.errors import FailedError

    send = plan.send
    if send.unknown:
        list_recipients(plan.ledger, send.id)
        raise FailedError(f"send #{send.id}: nothing left to send but {send.unknown:,} "
                          "recipients with an unknown fate; check the provider's activity log, "
                          "then pass --resend-unknown (they did not get it) or "
                          "--accept-unknown (they did)")
    err_console.print(f"send #{send.id}: nothing left to send")


def run(plan) -> None:
    import signal
    import threading

    from newsletter.dispatch.service import execute
    from newsletter.web.send_hooks import send_hooks

    stop = threading.Event()

    def warn(text: str) -> None:  # the reputation guard, at half a threshold
        err_console.print(f"[yellow]warning:[/yellow] {text} (the reputation guard pauses "
                          "the send past it; see `newsletter status`)", markup=True,
                          highlight=False)

    def on_signal(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        err_console.print("stopping after the batch in flight (press Ctrl-C again to stop now)")

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with _progress(plan.count) as progress:
            result = execute(plan, stop=stop, progress=progress, warn=warn,
                             **send_hooks(plan))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if result is None:
        err_console.print(f"nothing to send: send #{plan.send.id} was completed meanwhile by "
                          "another process" if plan.send else
                          "nothing to send: everyone was reached in the meantime")
        return
    report(plan, result)


class _progress:
    """A rich progress bar: sent / failed / remaining and the rate."""

    def __init__(self, total: int):
        import time

        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.total, self.sent, self.failed, self.unknown, self.skipped = total, 0, 0, 0, 0
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
        done = self.sent + self.failed + self.unknown + self.skipped
        text = (f"sent {self.sent:,} · failed {self.failed:,} · remaining "
                f"{max(0, self.total - done):,} · {self.sent / elapsed:,.0f}/s")
        return (text + (f" · unknown {self.unknown:,}" if self.unknown else "")
                + (f" · skipped {self.skipped:,}" if self.skipped else ""))

    def __call__(self, accepted: int, failed: int, unknown: int, skipped: int) -> None:
        self.sent += accepted
        self.failed += failed
        self.unknown += unknown
        self.skipped += skipped
        self.bar.update(self.task, completed=self.sent + self.failed + self.unknown
                        + self.skipped, line=self._line())

    def __enter__(self) -> _progress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()


def report(plan, result) -> None:
    from newsletter.core.errors import FailedError
    from newsletter.dispatch.service import utc_minute

    send = result.send
    totals = counts(send)
    for address, state in result.report.unrecorded:
        err_console.print(f"  not recorded: {address} was {state} (the ledger shows it "
                          "unknown)", markup=False, highlight=False)
    if result.ok and send.failed:
        list_recipients(plan.ledger, send.id)
        console.print(f"send #{send.id} of {send.issue} to '{send.segment}' completed via "
                      f"{send.transport} with failures: {totals}. `newsletter status "
                      f"{send.issue}` lists them; --retry-failed tries them once more")
        return
    if result.ok:
        when = f", scheduled for {utc_minute(send.send_at)}" if send.send_at else ""
        console.print(f"send #{send.id} of {send.issue} to '{send.segment}' completed via "
                      f"{send.transport}{when}: {totals}")
        if send.transport == "outbox":
            console.print(f"messages are in {result.where}")
        return
    list_recipients(plan.ledger, send.id)
    if send.paused:
        raise FailedError(f"{send.paused_message()}. {totals}")
    why = result.report.stopped or ("interrupted" if result.report.interrupted else
                                    "some recipients were not accepted")
    settle = ("record those listed as not recorded with --accept-recipient ADDRESS"
              if result.report.unrecorded else
              "check the provider's log, then add --accept-recipient ADDRESS (it took them) "
              "or --resend-recipient ADDRESS (it did not), or --accept-unknown / "
              "--resend-unknown for all")
    raise FailedError(f"send #{send.id} stopped: {why}. {totals}. Run the same command to "
                      "resume" + (f" (unknown ones: {settle})" if send.unknown else ""))


def counts(send) -> str:
    """A send's counts in words (skipped and cancelled ones only when there are any)."""
    return ", ".join(filter(None, [
        f"{send.accepted:,} of {send.total:,} accepted", f"{send.failed:,} failed",
        f"{send.unknown:,} unknown",
        f"{send.skipped:,} skipped" if send.skipped else "",
        f"{send.cancelled:,} cancelled before delivery" if send.cancelled else "",
        f"{send.pending:,} pending"]))


def list_recipients(ledger, send_id: int, limit: int = 10) -> None:
    for state in ("unknown", "failed"):
        rows = ledger.recipients.listing(send_id, state, limit)
        for row in rows:
            err_console.print(f"  {state}: {row.email}"
                              + (f" ({row.last_error})" if row.last_error else ""),
                              markup=False, highlight=False)


def show_health(entry) -> None:
    """A send's hard-bounce and complaint rates beside the guard's thresholds and the
    providers' published limits; the guard's warnings; a pause and how to go on from it."""
    from newsletter.core.reputation import limits_of, percent, setting

    s, f, t, verdict = entry.send, entry.health, entry.thresholds, entry.verdict
    out = lambda text: console.print(text, markup=False, highlight=False)  # noqa: E731
    if f.handed:
        refused = f"; {f.refused:,} refused by the server" if f.refused else ""
        out(f"  hard bounces: {percent(f.bounce_rate)} of {f.handed:,} handed over "
            f"({f.hard:,}{refused}); the guard pauses over {setting(t.bounce_pause)}; "
            f"{limits_of('bounces')}")
        out(f"  complaints: {percent(f.complaint_rate)} of {f.handed:,} handed over "
            f"({f.complaints:,}); the guard pauses over {setting(t.complaint_pause)}; "
            f"{limits_of('complaints')}")
    for warning in verdict.warnings:
        out(f"  warning: {warning}")
    if verdict.pause and not s.paused and s.state not in ("completed", "cancelled"):
        out(f"  warning: {verdict.pause}; the guard pauses the send at its next batch")
    for pause in entry.pauses:
        resumed = f"; resumed {utc(pause.resumed_at)}" if pause.resumed_at else ""
        out(f"  paused {utc(pause.paused_at)}: {pause.reason}{resumed}")
    if s.paused:
        for address, what in entry.reported:
            out(f"  {what}: {address}")
        out(f"  to go on: look at who bounced or complained (listed here), then `newsletter "
            f"send {s.issue} --resume`: the guard watches the rest of the send, by "
            "reputation: in newsletter.yaml as it is then; or give it up with `newsletter "
            f"send cancel {s.issue}`")


def utc(when) -> str:
    from newsletter.dispatch.service import utc_minute

    return utc_minute(when)
