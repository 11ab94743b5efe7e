"""CLI commands: issues (every issue and where it stands), approve (sign-off before send)."""

from __future__ import annotations

import click

from newsletter.cli.common import App, console, pass_app


@click.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Output format.")
@pass_app
def issues(app: App, fmt: str) -> None:
    """List every issue with its date, language, editions and state, newest first."""
    import json

    from newsletter.dispatch.issues import issue_lines

    lines = issue_lines(app.publication)
    if fmt == "json":
        click.echo(json.dumps([line.as_dict() for line in lines], indent=2, ensure_ascii=False))
        return
    if not lines:
        console.print("no issues yet; start one with `newsletter new SLUG`")
        return
    width = max(len(line.slug) for line in lines)
    for line in lines:
        editions = ("editions: " + ", ".join(f"{lang} ({slug})" for slug, lang in line.editions)
                    if line.editions else "")
        fields = [line.slug.ljust(width), line.date.ljust(10), line.language.ljust(5),
                  line.text()]
        console.print("  ".join(fields) + (f"  [{editions}]" if editions else ""),
                      markup=False, highlight=False)


@click.command()
@click.argument("issue")
@click.option("--as", "name", metavar="NAME",
              help="Who approves (default: git's user.name, else your login name).")
@pass_app
def approve(app: App, issue: str, name: str | None) -> None:
    """Approve ISSUE's current content for sending (sign-off; see `approval:`)."""
    from newsletter.compose import build_issue
    from newsletter.core.errors import NewsletterError
    from newsletter.dispatch.approval import approve as record
    from newsletter.dispatch.approval import default_approver

    pub = app.publication
    approver = name if name is not None else default_approver(pub.root)
    if not approver.strip():
        raise NewsletterError("cannot tell who you are; pass --as NAME")
    build = build_issue(pub, issue)
    state = record(pub, build, approver)  # after the checks: failing content is not approved
    console.print(f"{build.slug}: {state.describe()} (content {state.content[:12]})",
                  markup=False, highlight=False)


COMMANDS: list[click.Command] = [issues, approve]
