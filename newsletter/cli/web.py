"""CLI commands: preview (the local staff preview server) and archive (the static web archive).

Starlette, uvicorn and watchfiles are imported inside the commands, so `--help` and every other
command start without them.
"""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.cli.common import App, pass_app, say
from newsletter.core.errors import NewsletterError


def _check_port(port: int) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise NewsletterError(
                f"port {port} on 127.0.0.1 is not free ({exc.strerror}); try --port {port + 1}"
            ) from None


@click.command()
@click.argument("issue")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port on 127.0.0.1 to serve the preview on.",
)
@click.option("--test-subjects", "subjects", multiple=True, metavar="SUBJECT",
              help="Show and check the subjects of a subject test too (repeat for each).")
@pass_app
def preview(app: App, issue: str, port: int, subjects: tuple[str, ...]) -> None:
    """Preview ISSUE in the browser, rebuilding whenever a file changes."""
    from newsletter.web.preview import serve

    pub = app.publication
    folder = pub.issue_dir(issue)
    _check_port(port)
    say(f"Previewing {folder.name} at http://127.0.0.1:{port}/  (Ctrl-C to stop)")
    serve(pub.root, folder, port, subjects)


@click.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder (default: dist/archive/ in the publication).",
)
@click.option(
    "--skip",
    multiple=True,
    metavar="SLUG",
    help="Leave out an issue (a draft, say); repeat for more.",
)
@click.option("--publish", is_flag=True,
              help="Then publish it to the target in newsletter.yaml (`publish:`).")
@pass_app
def archive(app: App, out: Path | None, skip: tuple[str, ...], publish: bool) -> None:
    """Write the web archive: every issue's web copy, an index page and an Atom feed."""
    from newsletter.core.words import plural
    from newsletter.web.archive import build_archive

    result = build_archive(app.publication, out, skip)
    say(f"archived {plural(len(result.entries), 'issue')} in {result.folder}")
    for entry in result.entries:
        say(f"  {entry.slug}/index.html  {entry.subject}")
    say("  index.html\n  feed.xml")
    if publish:
        from newsletter.web.publish import publish_folder

        say(publish_folder(app.publication, result.folder).summary())


COMMANDS: list[click.Command] = [preview, archive]
