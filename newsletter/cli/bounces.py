"""CLI command: bounces fetch (the bounce mailbox of SMTP sends; docs/deliverability.md)."""

from __future__ import annotations

import click

from newsletter.cli.common import App, pass_app, say


@click.group()
def bounces() -> None:
    """The bounce mailbox of SMTP sends: bounces and complaints that come back by mail."""


@bounces.command("fetch")
@click.option("--recheck", is_flag=True,
              help="Read again the messages set aside as unrecognised.")
@pass_app
def fetch(app: App, recheck: bool) -> None:
    """Read new messages in the bounce mailbox, apply the bounces and complaints they report,
    and move them to the processed folder (unrecognised ones stay, flagged, and are listed)."""
    from newsletter.db import database
    from newsletter.events.mailbox_fetch import fetch_bounces

    pub = app.publication
    with database(pub.settings) as engine:
        report = fetch_bounces(pub, engine, recheck=recheck)
    for line in report.lines():
        say(line)


COMMANDS: list[click.Command] = [bounces]
