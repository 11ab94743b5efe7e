"""CLI commands: init, new, build."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from newsletter.cli.common import App, pass_app, say, warn


@click.command()
@click.argument("folder", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default="My Newsletter", show_default=True, help="Publication name.")
@click.pass_context
def init(ctx: click.Context, folder: Path | None, name: str) -> None:
    """Create a new publication (in FOLDER, or the -C folder)."""
    from newsletter.compose.scaffold import init_publication

    app = ctx.find_object(App)
    root = folder or app.here or app.root  # here, not a publication found further up
    created = init_publication(root, name)
    for path in created:
        say(f"created {path}")
    say(f"Next: cd {root} && newsletter new <slug>")


@click.command()
@click.argument("slug")
@click.option("--subject", default="", help="Subject line for the new issue.")
@click.option("--from-feed", "feed_url", is_flag=False, flag_value="", default=None,
              metavar="[URL]", help="Draft the issue from the site's RSS or Atom feed (URL, or "
              "feed: url in newsletter.yaml); see docs/drafting.md.")
@click.option("--since", metavar="DATE", help="With --from-feed: entries published after DATE "
              "(2026-11-17 or 2026-11-17T09:00, local time). Default: since the last completed "
              "send, or the last 7 days (feed: days).")
@click.option("--pick", type=click.IntRange(min=1), metavar="N",
              help="With --from-feed: at most N entries, newest first.")
@click.option("--words", type=click.IntRange(20, 2000), metavar="N",
              help="With --from-feed: each piece's opening, at most N words (default 150).")
@click.option("--language", metavar="TAG",
              help="With --from-feed: the issue's language (such as ar), whatever the feed says.")
@click.option("--timeout", type=click.FloatRange(min=0.01, max=120), metavar="SECONDS",
              help="With --from-feed: seconds each request may take (default 10).")
@click.option("--force", is_flag=True, help="With --from-feed: replace issues/SLUG even if it "
              "was edited (the old folder is kept under .newsletter/drafts/replaced/).")
@pass_app
def new(app: App, slug: str, subject: str, feed_url: str | None, since: str | None,
        pick: int | None, words: int | None, language: str | None, timeout: float | None,
        force: bool) -> None:
    """Start a new issue in issues/SLUG/ with one piece to edit.

    With --from-feed, draft it from the site's feed instead: one piece per entry published
    since the last completed send, each the article's opening, its expert and a link to it.
    Nothing is sent.
    """
    if feed_url is None:
        given = [name for name, value in (("--since", since), ("--pick", pick), ("--words", words),
                                          ("--language", language), ("--timeout", timeout),
                                          ("--force", force)) if value]
        if given:
            raise click.UsageError(f"{given[0]} goes with --from-feed")
        from newsletter.compose.scaffold import new_issue

        folder = new_issue(app.publication, slug, subject)
        say(f"created {folder}/issue.yaml and {folder}/pieces/first.md")
        say(f"Next: edit them, then `newsletter build {slug}`")
        return
    _draft(app, slug, subject, feed_url, since, pick, words, language, timeout, force)


def _since(app: App, text: str | None, days: int) -> tuple[dt.datetime, str]:
    """When the entries to draft start, and why: --since, else the last completed send (the
    ledger is dispatch's), else `days` ago."""
    if text:
        try:
            when = dt.datetime.fromisoformat(text.strip())
        except ValueError:
            raise click.BadParameter(f"'{text}' is not a date like 2026-11-17 or "
                                     "2026-11-17T09:00", param_hint="--since") from None
        return when.astimezone(dt.UTC), "--since"
    from newsletter.dispatch import last_completed_send

    send = last_completed_send(app.publication)
    if send is not None:
        return send.send_at or send.created_at, f"the last completed send ({send.issue})"
    return dt.datetime.now(dt.UTC) - dt.timedelta(days=days), f"the last {days} days"


def _draft(app: App, slug: str, subject: str, feed_url: str, since_text: str | None,
           pick: int | None, words: int | None, language: str | None, timeout: float | None,
           force: bool) -> None:
    from newsletter.compose.draft import DraftRequest, draft_issue

    pub = app.publication
    config = pub.config.feed
    url = feed_url or config.url
    if not url:
        raise click.UsageError("--from-feed needs a URL (or feed: {url: ...} in newsletter.yaml)")
    if language:
        from newsletter.compose.fields import check_language

        try:
            check_language(language)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--language") from None
    since, why = _since(app, since_text, config.days)
    request = DraftRequest(
        feed_url=url, since=since, pick=pick or config.pick, words=words or config.words,
        language=language, fallback_language=config.language, subject=subject,
        timeout=timeout or config.timeout, force=force, link_text=config.link_text)
    draft = draft_issue(pub, slug, request)
    warn(draft.warnings)
    say(f"drafted {draft.folder}: {len(draft.pieces)} pieces from {draft.feed_title or url}, "
        f"entries since {since:%Y-%m-%d %H:%M} UTC ({why}); language {draft.language}")
    for piece in draft.pieces:
        who = piece.expert or "author not in the registry"
        say(f"  {piece.path}  {piece.title}  [{who}; text from {piece.source}]")
    if draft.hero:
        say(f"  hero: {draft.hero}")
    if draft.kept:
        say(f"the edited folder it replaced is kept in {draft.kept}")
    say(f"Next: write the subject in {draft.folder / 'issue.yaml'}, edit the pieces, then "
        f"`newsletter check {slug}`. Nothing has been sent.")


@click.command()
@click.argument("issue")
@pass_app
def build(app: App, issue: str) -> None:
    """Build ISSUE (folder or slug) into dist/<slug>/."""
    from newsletter.compose import build_issue, write_build
    from newsletter.core.words import plural

    result = build_issue(app.publication, issue)
    warn(result.issue.warnings)
    target = write_build(app.publication, result)
    sizes = result.report["sizes"]
    say(
        f"built {result.slug}: {plural(len(result.issue.pieces), 'piece')}, "
        f"email.html {sizes['email.html'] / 1024:.1f} KB"
    )
    for name in sorted(result.files()) + sorted(result.assets):
        say(f"  {target / name}")


COMMANDS: list[click.Command] = [init, new, build]
