"""CLI commands: init, new, build."""

from __future__ import annotations

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
@pass_app
def new(app: App, slug: str, subject: str) -> None:
    """Start a new issue in issues/SLUG/ with one piece to edit."""
    from newsletter.compose.scaffold import new_issue

    folder = new_issue(app.publication, slug, subject)
    say(f"created {folder}/issue.yaml and {folder}/pieces/first.md")
    say(f"Next: edit them, then `newsletter build {slug}`")


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
