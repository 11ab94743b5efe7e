"""`newsletter report ISSUE [--format text|json|csv]` and `newsletter report --by expert`."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.cli.common import App, console, pass_app
from newsletter.core.errors import InputError, NewsletterError, Problem


def _slug(app: App, issue: str) -> str:
    try:
        return app.publication.issue_dir(issue).name
    except InputError:
        return Path(issue).name  # sent once, folder gone since: the ledger still knows it


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _text(report) -> None:
    r = report
    out = console.print
    out(f"Issue {r.issue}: {r.recipients:,} recipients in {len(r.sends)} send(s)")
    out(f"  opens: {r.human_openers:,} people ({r.opens:,} opens); machine opens "
        f"{r.machine_opens:,}")
    out(f"  clicks: {r.human_clickers:,} people ({r.clicks:,} clicks); machine clicks "
        f"{r.machine_clicks:,}")
    out(f"  bounces {r.bounces:,}, complaints {r.complaints:,}, unsubscribes {r.unsubscribes:,}")
    out("Per piece (people who clicked, clicks, click rate | machine clicks):")
    for p in r.pieces:
        name = f"{p.piece}. {p.title} ({p.expert})" if p.piece else "masthead and footer"
        out(f"  {name}: {p.human_clickers:,}, {p.clicks:,}, {_pct(p.click_rate)} | "
            f"{p.machine_clicks:,}", markup=False)
    out("Per link (people, clicks | machine):")
    for link in r.links:
        out(f"  {link.label}: {link.url}: {link.human_clickers:,}, {link.clicks:,} | "
            f"{link.machine_clicks:,}", markup=False)


def _csv(rows: list[dict]) -> str:
    import csv
    import io

    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def _issue_rows(report) -> list[dict]:
    """One CSV row per piece then per link, with the issue totals on each."""
    rows = []
    for p in report.pieces:
        rows.append({"kind": "piece", "piece": p.piece, "link": "", "title": p.title,
                     "expert": p.expert, "url": "", "human_clickers": p.human_clickers,
                     "clicks": p.clicks, "click_rate": round(p.click_rate, 4),
                     "machine_clicks": p.machine_clicks})
    for link in report.links:
        rows.append({"kind": "link", "piece": link.piece, "link": link.link, "title": "",
                     "expert": "", "url": link.url, "human_clickers": link.human_clickers,
                     "clicks": link.clicks, "click_rate": "",
                     "machine_clicks": link.machine_clicks})
    return rows


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
    from newsletter.events.report import expert_report, issue_report

    if by is None and not issue:
        raise InputError(Problem("report", None, "name an ISSUE, or use --by expert"))
    pub = app.publication
    engine = open_database(pub.settings)
    try:
        with engine.connect() as conn:
            if by == "expert":
                experts = expert_report(conn)
                rows = [{"expert": f.expert, "name": _expert_name(pub, f.expert),
                         "issues": f.issues, "pieces": f.pieces, "recipients": f.recipients,
                         "human_clickers": f.human_clickers, "clicks": f.clicks,
                         "click_rate": round(f.click_rate, 4),
                         "machine_clicks": f.machine_clicks} for f in experts]
                if fmt == "json":
                    click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
                elif fmt == "csv":
                    click.echo(_csv(rows), nl=False)
                else:
                    for row in rows:
                        console.print(f"{row['name']}: {row['pieces']} piece(s) in "
                                      f"{row['issues']} issue(s); {row['human_clickers']:,} "
                                      f"people clicked ({row['clicks']:,} clicks, "
                                      f"{_pct(row['click_rate'])}) | machine clicks "
                                      f"{row['machine_clicks']:,}", markup=False)
                return
            slug = _slug(app, issue or "")
            found = issue_report(conn, slug)
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


def _expert_name(pub, expert_id: str) -> str:
    expert = pub.config.experts.get(expert_id)
    return expert.name if expert else expert_id


def _write_page(pub, found) -> Path:
    from newsletter.web.report_page import report_html

    target = pub.dist_dir(found.issue) / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".html.part")
    partial.write_text(report_html(found), encoding="utf-8")
    partial.replace(target)
    return target


COMMANDS: list[click.Command] = [report]
