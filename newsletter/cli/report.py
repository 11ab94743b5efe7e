"""`newsletter report ISSUE [--format text|json|csv]` and `newsletter report --by expert`."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.cli.common import App, console, pass_app
from newsletter.core.errors import InputError, NewsletterError, Problem

NOT_MEASURED = "not measured"
NO_LINKS = "no links"


def _slug(app: App, issue: str) -> str:
    try:
        return app.publication.issue_dir(issue).name
    except InputError:
        return Path(issue).name  # sent once, folder gone since: the ledger still knows it


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


def _text(report) -> None:
    r = report
    out = console.print
    out(f"Issue {r.issue}: {r.subject}" if r.subject else f"Issue {r.issue}", markup=False)
    reached = f"  {_plural(r.recipients, 'person', 'people')} reached"
    if r.messages != r.recipients:
        reached += f" ({_plural(r.messages, 'message')} accepted)"
    out(f"{reached} in {_plural(len(r.sends), 'send')}")
    if r.knows("opens"):
        out(f"  opens: {r.human_openers:,} people ({r.opens:,} opens); machine opens "
            f"{r.machine_opens:,}")
    else:
        out(f"  opens: {NOT_MEASURED}")
    if r.knows("clicks"):
        out(f"  clicks: {r.human_clickers:,} people ({r.clicks:,} clicks); machine clicks "
            f"{r.machine_clicks:,}")
    else:
        out(f"  clicks: {NOT_MEASURED}")
    counters = [f"{name} {getattr(r, name):,}" if r.knows(name) else f"{name} {NOT_MEASURED}"
                for name in ("bounces", "complaints", "unsubscribes")]
    out(f"  people: {', '.join(counters)}")
    for note in r.notes:
        out(f"  note: {note}", markup=False)
    _health_text(r)
    for test in r.subject_tests:
        _subject_test(test)
    out("Per piece (people who clicked, clicks, click rate | machine clicks):")
    for p in r.pieces:
        name = f"{p.piece}. {p.title} ({p.name})" if p.piece else "masthead and footer"
        if not p.links:
            figures = NO_LINKS
        elif not p.measured:
            figures = NOT_MEASURED
        else:
            figures = (f"{p.human_clickers:,}, {p.clicks:,}, {_pct(p.click_rate)} | "
                       f"{p.machine_clicks:,}")
        out(f"  {name}: {figures}", markup=False)
    out("Per link (people, clicks | machine):")
    for link in r.links:
        figures = (f"{link.human_clickers:,}, {link.clicks:,} | {link.machine_clicks:,}"
                   if link.measured else NOT_MEASURED)
        out(f"  {link.label}: {link.shown_url}: {figures}", markup=False)


def _rate(count: int | None, rate: float | None, refused: int = 0) -> str:
    from newsletter.core.reputation import percent

    if count is None or rate is None:
        return NOT_MEASURED
    return f"{percent(rate)} ({count:,}" + (f"; {refused:,} refused by the server" if refused
                                             else "") + ")"


def _health_text(r) -> None:
    """Each send's rates per message handed over, beside the guard's thresholds and the
    providers' published limits."""
    from newsletter.core.reputation import limits_of, setting
    from newsletter.events.report_health import VERDICTS

    out = console.print
    t = r.thresholds
    out("Health per send (per message handed over):")
    for h in r.health:
        out(f"  #{h.send} via {h.transport}: {h.handed:,} handed over; hard bounces "
            f"{_rate(h.hard_bounces, h.bounce_rate, h.refused)}; complaints "
            f"{_rate(h.complaints, h.complaint_rate)}: {VERDICTS[h.verdict]}"
            + (f"; reached {'; '.join(h.passed)}" if h.passed else ""), markup=False)
        if h.note:
            out(f"    note: {h.note}", markup=False)
    out(f"  limits: hard bounces: the guard pauses over {setting(t.bounce_pause)}; "
        f"{limits_of('bounces')}", markup=False)
    out(f"  limits: complaints: the guard pauses over {setting(t.complaint_pause)}; "
        f"{limits_of('complaints')}", markup=False)
def _subject_test(test: dict) -> None:
    """One subject test: each subject's people and rate (machines beside), the decision."""
    verb = "clicked" if test["measure"] == "clicks" else "opened"
    state = ("decided" if test["decided"] else
             f"decision due at {test['decide_at']}" if test["decide_at"] else "sending")
    console.print(f"Subject test {test['id']} ({test['segment']}, {test['sample']}% sample; "
                  f"{test['state']}, {state}):", markup=False)
    for row in test["subjects"]:
        console.print(f"  {row['label']}{' (winner)' if row['winner'] else ''}: "
                      f"{row['subject']}: {row['people']:,} of {row['reached']:,} people "
                      f"{verb} ({_pct(row['rate'])}) | machines only {row['machine']:,}",
                      markup=False)
    if test["note"]:
        console.print(f"  decision: {test['note']}", markup=False, soft_wrap=True)


def _csv(rows: list[dict]) -> str:
    import csv
    import io

    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def _cell(value: object, why: str = NOT_MEASURED) -> object:
    """A CSV cell: a figure, or in words why there is none."""
    return why if value is None else value


def _issue_rows(report) -> list[dict]:
    """One CSV row per piece then per link; a figure that is missing says why in words.
    The columns of earlier versions come first, in their order; newer ones follow."""
    data = report.as_dict()
    rows = []
    for p, row in zip(report.pieces, data["pieces"], strict=True):
        why = NO_LINKS if not p.links else NOT_MEASURED
        rows.append({"kind": "piece", "piece": p.piece, "link": "", "title": p.title,
                     "expert": p.expert, "url": "",
                     "human_clickers": _cell(row["human_clickers"], why),
                     "clicks": _cell(row["clicks"], why),
                     "click_rate": _cell(None if row["click_rate"] is None
                                         else round(row["click_rate"], 4), why),
                     "machine_clicks": _cell(row["machine_clicks"], why),
                     "expert_name": p.name if p.piece else "", "personal": ""})
    for link, row in zip(report.links, data["links"], strict=True):
        rows.append({"kind": "link", "piece": link.piece, "link": link.link, "title": "",
                     "expert": "", "url": row["url"],
                     "human_clickers": _cell(row["human_clickers"]),
                     "clicks": _cell(row["clicks"]), "click_rate": "",
                     "machine_clicks": _cell(row["machine_clicks"]),
                     "expert_name": "", "personal": link.personal or ""})
    blank = dict.fromkeys(rows[0] if rows else (), "")
    for h in report.health:  # one row per send, its health in columns of their own
        rows.append({**blank, "kind": "send", "send": h.send, "transport": h.transport,
                     "handed_over": h.handed, "hard_bounces": _cell(h.hard_bounces),
                     "bounce_rate": _cell(None if h.bounce_rate is None
                                          else round(h.bounce_rate, 6)),
                     "complaints": _cell(h.complaints),
                     "complaint_rate": _cell(None if h.complaint_rate is None
                                             else round(h.complaint_rate, 6)),
                     "health": h.verdict})
    extra = dict.fromkeys(("send", "transport", "handed_over", "hard_bounces", "bounce_rate",
                           "complaints", "complaint_rate", "health"), "")
    return [{**row, **{k: v for k, v in extra.items() if k not in row}} for row in rows]


def _experts_text(rows: list[dict]) -> None:
    for row in rows:
        pieces = f"{_plural(row['pieces'], 'piece')} in {_plural(row['issues'], 'issue')}"
        if not row["pieces_with_links"]:
            figures = NO_LINKS
        elif row["clicks"] is None:
            figures = f"clicks {NOT_MEASURED}"
        else:
            figures = (f"{row['human_clickers']:,} people clicked ({row['clicks']:,} clicks, "
                       f"{_pct(row['click_rate'])} of {row['recipients']:,} people reached) "
                       f"| machine clicks {row['machine_clicks']:,}")
        console.print(f"{row['name']}: {pieces}; {figures}", markup=False)


@click.command()
@click.argument("issue", required=False)
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv"]), default="text",
              show_default=True)
@click.option("--by", "by", type=click.Choice(["expert"]), default=None,
              help="Roll up every issue sent, per expert.")
@pass_app
def report(app: App, issue: str | None, fmt: str, by: str | None) -> None:
    """What people (and, beside them, machines) did with ISSUE: per piece, per link.

    Also writes dist/<slug>/report.html, a page with charts (the preview's Report tab).
    """
    import json

    from newsletter.db import open_database
    from newsletter.events.report import issue_report
    from newsletter.events.report_experts import expert_report

    if by is None and not issue:
        raise InputError(Problem("report", None, "name an ISSUE, or use --by expert"))
    pub = app.publication
    names = {key: expert.name for key, expert in pub.config.experts.items()}
    engine = open_database(pub.settings)
    try:
        with engine.connect() as conn:
            if by == "expert":
                rows = [f.as_row() for f in expert_report(conn, names)]
                if fmt == "json":
                    click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
                elif fmt == "csv":
                    click.echo(_csv([{k: _cell(v, NO_LINKS if not row["pieces_with_links"]
                                                 else NOT_MEASURED) for k, v in row.items()}
                                     for row in rows]), nl=False)
                else:
                    _experts_text(rows)
                return
            slug = _slug(app, issue or "")
            found = issue_report(conn, slug, names,
                                 thresholds=pub.config.reputation.thresholds,
                                 mailbox=pub.config.bounces is not None)
    finally:
        engine.dispose()
    if found is None:
        raise NewsletterError(f"{slug} has not been sent yet; nothing to report")
    page = _write_page(pub, found)
    if fmt == "json":
        click.echo(json.dumps(found.as_dict(), indent=2, ensure_ascii=False))
    elif fmt == "csv":
        click.echo(_csv(_issue_rows(found)), nl=False)
    else:
        _text(found)
        console.print(f"  {page}", markup=False)


def _write_page(pub, found) -> Path:
    from newsletter.web.report_page import report_html

    target = pub.dist_dir(found.issue) / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".html.part")
    partial.write_text(report_html(found), encoding="utf-8")
    partial.replace(target)
    return target


COMMANDS: list[click.Command] = [report]
