"""CLI command: publish (an issue's web copy and images to the publication's target)."""

from __future__ import annotations

import click

from newsletter.cli.common import App, pass_app, say, warn


@click.command()
@click.argument("issue")
@pass_app
def publish(app: App, issue: str) -> None:
    """Build ISSUE and publish its web copy and images where archive_url points."""
    from newsletter.compose import build_issue
    from newsletter.web.publish import publish_issue

    pub = app.publication
    build = build_issue(pub, issue)
    warn(build.issue.warnings)
    say(publish_issue(pub, build).summary())
    say(f"web copy: {pub.config.archive_url}{build.slug}/  (index and feed: "
                  "`newsletter archive --publish`)")


COMMANDS: list[click.Command] = [publish]
