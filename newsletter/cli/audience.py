"""CLI: `newsletter subscribers import|add|unsubscribe|list|show|export|forget|sunset` and
`segments`."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from newsletter.cli.common import App, console, err_console, pass_app, warn
from newsletter.core.errors import EXIT_FAILED, InputError, Problem

if TYPE_CHECKING:  # SQLAlchemy, rich and the audience package load when a command runs
    from sqlalchemy import ColumnElement, Engine

    from newsletter.audience import Subscriber
    from newsletter.audience.history import Entry

PROGRESS_MIN_BYTES = 1_000_000


@contextmanager
def _database(app: App) -> Iterator[Engine]:
    from newsletter.db import open_database

    engine = open_database(app.publication.settings)
    try:
        yield engine
    finally:
        engine.dispose()


def _segment_filter(app: App, segment: str | None) -> ColumnElement[bool] | None:
    if segment is None:
        return None
    from newsletter.audience import Segments

    segments = Segments.load(app.publication)
    warn(segments.warnings)
    return segments.condition(segment)


@click.group("subscribers")
def subscribers_group() -> None:
    """Manage subscribers (stored in the database, not in YAML)."""


@subscribers_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--tag", "tags", multiple=True, help="Add this tag to every row (repeatable).")
@click.option("--strict", is_flag=True, help="Reject the whole file if any row is bad.")
@pass_app
def import_command(app: App, file: Path, tags: tuple[str, ...], strict: bool) -> None:
    """Add or update subscribers from a CSV file with an `email` column."""
    from newsletter.audience import import_csv

    size = file.stat().st_size if file.is_file() else 0
    secret = app.publication.settings.secrets  # the erasure list is read with every secret
    with _database(app) as engine:
        if size >= PROGRESS_MIN_BYTES:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            columns = (TextColumn("importing"), BarColumn(), DownloadColumn(),
                       TimeRemainingColumn())
            with Progress(*columns, console=err_console.rich, transient=True) as bar:
                task = bar.add_task("import", total=size)
                report = import_csv(engine, file, tags=tags, strict=strict, secret=secret,
                                    progress=lambda done: bar.update(task, completed=done))
        else:
            report = import_csv(engine, file, tags=tags, strict=strict, secret=secret)
    for problem in sorted([*report.problems, *report.warnings], key=lambda p: p.line or 0):
        err_console.print(str(problem), markup=False, soft_wrap=True)
    if report.cleaned > len(report.warnings):
        err_console.print(f"... and {report.cleaned - len(report.warnings)} more cleaned names",
                          markup=False)
    if report.rejected > len(report.problems):
        err_console.print(f"... and {report.rejected - len(report.problems)} more rejected rows",
                          markup=False)
    if strict and not report.committed:
        raise InputError(Problem(file, None, f"{report.rejected} bad rows; nothing imported "
                                             "(--strict)"))
    console.print(f"{file}: {report.summary()}", markup=False)
    if report.rejected:
        sys.exit(EXIT_FAILED)


@subscribers_group.command("add")
@click.argument("email")
@click.option("--name", default=None, help="The subscriber's name.")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.option("--attr", "attrs", multiple=True, metavar="KEY=VALUE",
              help="An attribute (repeatable).")
@click.option("--resubscribe", is_flag=True,
              help="Make a retired address active again (only at the person's own request).")
@click.option("--welcome", is_flag=True,
              help="A confirmed sign-up: send the welcome message (once per person, ever).")
@pass_app
def add_command(app: App, email: str, name: str | None, tags: tuple[str, ...],
                attrs: tuple[str, ...], resubscribe: bool, welcome: bool) -> None:
    """Add a subscriber, or update a known one."""
    from newsletter.audience import add_subscriber
    from newsletter.audience.model import clean_name

    attributes: dict[str, str] = {}
    for item in attrs:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(Problem("--attr", None, f"{item!r} should be KEY=VALUE"))
        attributes[key.strip()] = value.strip()
    if name is not None and clean_name(name)[1]:
        err_console.print(f"warning: name cleaned to {clean_name(name)[0]!r} (control characters "
                          "became spaces; at most 200 characters)", markup=False)
    from newsletter.db.engine import write_connection

    # Read, then write: SQLite's write lock is taken up front, or a writer that commits in
    # between (serve's webhook, its pruning) would fail this at once with "database is locked".
    if welcome:
        from newsletter.dispatch.welcome import welcome_editions

        welcome_editions(app.publication)  # refuse before anything changes: no welcome set up
    with _database(app) as engine, write_connection(engine) as conn, conn.begin():
        sub, created = add_subscriber(conn, email, name=name, tags=tags, attributes=attributes,
                                      resubscribe=resubscribe,
                                      secrets=app.publication.settings.secrets)
        if welcome and sub.active:
            from newsletter.audience.welcome import VIA_CLI, request_welcome

            request_welcome(conn, sub.id, VIA_CLI)
    console.print(f"{'added' if created else 'updated'} {sub.email} ({sub.status})", markup=False)
    if not sub.active:
        err_console.print(f"{sub.email} is {sub.status}: it stays out of every segment "
                          "(use --resubscribe only at the person's own request)", markup=False)
    elif welcome:
        _welcome_now(app)


def _welcome_now(app: App) -> None:
    """The welcome round `serve` runs, once, now: whoever is waiting is welcomed."""
    from newsletter.dispatch.welcome import welcome_round
    from newsletter.web.send_hooks import send_hooks

    done = welcome_round(app.publication, hooks=send_hooks)
    for send in done.sends:
        console.print(f"welcome send #{send.id} of {send.issue}: {send.accepted:,} of "
                      f"{send.total:,} accepted", markup=False)
    for note in [*done.notes, *done.busy]:
        err_console.print(f"welcome: {note}", markup=False)
    if not done.sends and not done.busy and not done.notes:
        console.print("welcome: nobody waiting (the welcome reached this person before)",
                      markup=False)


@subscribers_group.command("unsubscribe")
@click.argument("email")
@pass_app
def unsubscribe_command(app: App, email: str) -> None:
    """Unsubscribe an address; no import will make it active again.

    A bounced or complained address keeps that stronger status (the same ladder as the
    webhook and the suppression sync)."""
    from newsletter.audience import unsubscribe
    from newsletter.db.engine import write_connection

    with _database(app) as engine, write_connection(engine) as conn, conn.begin():
        sub = unsubscribe(conn, email)
    if sub.status == "unsubscribed":
        console.print(f"unsubscribed {sub.email}", markup=False)
    else:
        console.print(f"{sub.email} stays {sub.status} (stronger than unsubscribed)",
                      markup=False)


@subscribers_group.command("list")
@click.option("--segment", default=None, help="Only this segment's (active) members.")
@click.option("--limit", default=50, show_default=True, help="Rows to show (0: all).")
@pass_app
def list_command(app: App, segment: str | None, limit: int) -> None:
    """List subscribers (all of them, or a segment's members)."""
    from rich.table import Column, Table

    from newsletter.audience import count_subscribers, iter_subscribers

    where = _segment_filter(app, segment)
    with _database(app) as engine:
        with engine.connect() as conn:
            total = count_subscribers(conn, where)
        table = Table("name", "status", "tags", "joined")
        table.columns.insert(0, Column("email", overflow="fold", min_width=20))
        shown = 0
        for sub in iter_subscribers(engine, where):
            if limit and shown >= limit:
                break
            table.add_row(sub.email, sub.name, sub.status.value, ", ".join(sub.tags),
                          sub.created_at.date().isoformat())
            shown += 1
    if shown:
        console.print(table)
    more = f" (showing {shown}; use --limit 0 or `subscribers export`)" if shown < total else ""
    console.print(f"{total} subscribers{' in ' + segment if segment else ''}{more}", markup=False)


@subscribers_group.command("show")
@click.argument("email")
@click.option("--history", is_flag=True,
              help="Also print the audit trail: every status, tag and preference change.")
@pass_app
def show_command(app: App, email: str, history: bool) -> None:
    """Show everything known about one subscriber."""
    from newsletter.audience import require_subscriber
    from newsletter.audience.history import history_of

    with _database(app) as engine, engine.connect() as conn:
        sub = require_subscriber(conn, email)
        entries = history_of(conn, sub.id) if history else []
    _show(sub)
    if history:
        _show_history(entries)


def _show_history(entries: list[Entry]) -> None:
    from rich.table import Table

    if not entries:
        console.print("no recorded changes", markup=False)
        return
    table = Table("when (UTC)", "source", "field", "before", "after", title="history")
    for e in entries:
        table.add_row(e.at.strftime("%Y-%m-%d %H:%M:%S"), e.source, e.field, e.before or "-",
                      e.after or "-")
    console.print(table)


def _show(sub: Subscriber) -> None:
    from rich.table import Table

    from newsletter.audience.model import ascii_email

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for label, value in (
        ("email", sub.email),
        ("name", sub.name),
        ("status", sub.status.value),
        ("paused", f"until {sub.paused_until:%Y-%m-%d %H:%M} UTC (in no segment until then)"
         if sub.paused() and sub.paused_until else "no"),
        ("tags", ", ".join(sub.tags)),
        *((f"attr {k}", str(v)) for k, v in sorted(sub.attributes.items())),
        ("source", sub.source),
        ("joined", sub.created_at.isoformat(timespec="seconds")),
        ("updated", sub.updated_at.isoformat(timespec="seconds")),
        ("status changed", sub.status_changed_at.isoformat(timespec="seconds")),
        ("consented", sub.consented_at.isoformat(timespec="seconds") if sub.consented_at
         else "never (no confirmed sign-up)"),
    ):
        table.add_row(label, value)
    console.print(table)
    if ascii_email(sub.email) != sub.email:
        console.print(f"note: the domain is international; transports use {ascii_email(sub.email)}",
                      markup=False)
    if not sub.ascii_local_part:
        console.print("note: the part before @ is not ASCII; only mail servers with SMTPUTF8 "
                      "accept it, so some deliveries may fail", markup=False)


@subscribers_group.command("export")
@click.option("--segment", default=None, help="Only this segment's (active) members.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file instead of standard output.")
@pass_app
def export_command(app: App, segment: str | None, output: Path | None) -> None:
    """Write subscribers as CSV (the format `subscribers import` reads)."""
    from newsletter.audience import export_csv

    where = _segment_filter(app, segment)
    with _database(app) as engine:
        if output is None:
            count = export_csv(engine, sys.stdout, where)
        else:
            tmp = output.with_name(output.name + ".part")
            with tmp.open("w", encoding="utf-8", newline="") as out:
                count = export_csv(engine, out, where)
            tmp.replace(output)
    err_console.print(f"exported {count} subscribers", markup=False)


@subscribers_group.command("forget")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def forget_command(app: App, email: str, yes: bool) -> None:
    """Erase a person at their request (right to be forgotten).

    Works whether or not EMAIL is still a subscriber. Deletes the subscriber with tags,
    attributes, history and sign-up requests, anonymises their events and send-ledger rows
    (counts stay right), deletes their outbox message files, and lists a keyed hash of the
    address so imports, `add` and events refuse it until the person signs up again themselves.
    """
    from newsletter.audience.erasure import canonical
    from newsletter.events.forget import forget_everywhere

    settings = app.publication.settings
    if not settings.secret:
        raise InputError(Problem("NEWSLETTER_SECRET", None, "NEWSLETTER_SECRET is not set; it "
                                 "keys the list that keeps an erased address from coming back"))
    address = canonical(email)
    if "@" not in address:
        raise InputError(Problem(email, None, "not an email address"))
    if not yes:
        click.confirm(f"Erase {address} and everything held about them? This cannot be undone",
                      abort=True, err=True)
    with _database(app) as engine:
        done = forget_everywhere(app.publication, engine, email)
    db = done.database
    found = "a subscriber" if db.subscriber else "no longer a subscriber"
    console.print(f"erased {address} ({found}); {db.ledger_rows} send-ledger rows and "
                  f"{db.events} events kept without the address; {db.signups} sign-up "
                  f"requests and {done.files} outbox files deleted; imports, `add` and events "
                  "will refuse the address until the person signs up again", markup=False)
    if not db.purged:
        err_console.print("note: another process is reading the database, so SQLite's "
                          "write-ahead log keeps the erased bytes until its next checkpoint "
                          "(stop `serve` and run `subscribers forget` again to clear it now)",
                          markup=False)


@subscribers_group.command("sunset")
@click.option("--inactive", "period", required=True, metavar="PERIOD",
              help="No human open or click for this long, e.g. 365d or 52w.")
@click.option("--unsubscribe", "do_unsubscribe", is_flag=True,
              help="Unsubscribe them instead of tagging them.")
@click.option("--tag", default="inactive", show_default=True, help="The tag given to them.")
@click.option("--dry-run", is_flag=True, help="Only count them; change nothing.")
@pass_app
def sunset_command(app: App, period: str, do_unsubscribe: bool, tag: str, dry_run: bool) -> None:
    """Tag (or unsubscribe) active subscribers with no human engagement for PERIOD.

    Only subscribers who joined before PERIOD ago are considered; machine opens and scanner
    clicks do not count as engagement.
    """
    from newsletter.audience.engagement import parse_period, sunset
    from newsletter.db.engine import write_connection

    length = parse_period(period)
    if length is None:
        raise InputError(Problem("--inactive", None,
                                 f"{period!r} is not a period like 365d or 52w"))
    with _database(app) as engine, write_connection(engine) as conn, conn.begin():
        result = sunset(conn, length, unsubscribe=do_unsubscribe, tag=tag, dry_run=dry_run)
    console.print(result.summary(), markup=False)


@click.command("segments")
@pass_app
def segments_command(app: App) -> None:
    """List the segments in subscribers/segments.yaml with their live member counts."""
    from rich.table import Table

    from newsletter.audience import Segments

    segments = Segments.load(app.publication)
    warn(segments.warnings)
    if not segments.names:
        console.print(f"no segments defined in {segments.path}", markup=False)
        return
    from newsletter.audience.attributes import unheld_attributes

    table = Table("segment", "members", "defined at")
    with _database(app) as engine, engine.connect() as conn:
        warn(unheld_attributes(conn, segments))
        for name in segments.names:
            seg = segments.get(name)
            table.add_row(name, f"{segments.count(conn, name):,}", f"{segments.path.name}:"
                                                                   f"{seg.line}")
    console.print(table)


COMMANDS: list[click.Command] = [subscribers_group, segments_command]
