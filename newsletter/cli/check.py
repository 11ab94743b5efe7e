"""CLI command: check (the pre-send quality gate)."""

from __future__ import annotations

import click

from newsletter.cli.common import TRANSPORT_NAMES, pass_app
from newsletter.core.errors import EXIT_BAD_INPUT, EXIT_FAILED


@click.command()
@click.argument("issue")
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format.",
)
@click.option("--online", is_flag=True, help="Also check that every link answers (HEAD, GET).")
@click.option(
    "--timeout",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds to wait for each link with --online.",
)
@click.option("--no-spam", is_flag=True, help="Skip the SpamAssassin score.")
@click.option("--transport", type=click.Choice(TRANSPORT_NAMES),
              help="Judge the issue for sending through this transport (default: "
                   "NEWSLETTER_TRANSPORT, else outbox).")
@click.option("--test-subjects", "subjects", multiple=True, metavar="SUBJECT",
              help="Check the subjects of a subject test too (repeat for each).")
@pass_app
@click.pass_context
def check(
    ctx: click.Context,
    app,
    issue: str,
    strict: bool,
    fmt: str,
    online: bool,
    timeout: float,
    no_spam: bool,
    transport: str | None,
    subjects: tuple[str, ...],
) -> None:
    """Check ISSUE (folder or slug) before sending: every finding, with where and how to fix.

    Exit 1 on any error (with --strict, on any warning), 2 when the issue cannot be built.
    """
    from newsletter.checks import check_issue, format_json, format_text, summary

    report = check_issue(app.publication, issue, online=online, spam=not no_spam, timeout=timeout,
                         transport=transport, subjects=subjects)
    if fmt == "json":
        click.echo(format_json(report, strict), nl=False)
        click.echo(summary(report, strict), err=True)
    else:
        click.echo(format_text(report, strict), nl=False)
    if report.facts.get("unbuilt"):
        ctx.exit(EXIT_BAD_INPUT)
    if report.failed(strict):
        ctx.exit(EXIT_FAILED)


COMMANDS: list[click.Command] = [check]
