"""The `newsletter` command: a thin layer over the pipeline's services.

Commands live in one module per area (build, check, audience, dispatch, web, public), each
exporting `COMMANDS`. A command's module is imported only when that command runs, so the start-up
of `newsletter build` never pays for SQLAlchemy, Starlette or the SendGrid client.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import click

from newsletter import __version__
from newsletter.cli.common import App, Shown, report_unexpected
from newsletter.core.errors import NewsletterError

# command name -> module under newsletter.cli that defines it (in its COMMANDS list)
COMMAND_MODULES: dict[str, str] = {
    "init": "build",
    "new": "build",
    "build": "build",
    "check": "check",
    "subscribers": "audience",
    "segments": "audience",
    "send": "dispatch",
    "send-test": "dispatch",
    "status": "dispatch",
    "report": "report",
    "preview": "web",
    "archive": "web",
    "publish": "publish",
    "serve": "public",
    "suppressions": "public",
    "events": "public",
}


class LazyGroup(click.Group):
    """A group that imports a command's module on first use (click's lazy-loading pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMAND_MODULES))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        known = super().get_command(ctx, cmd_name)
        if known is not None or cmd_name not in COMMAND_MODULES:
            return known
        module = importlib.import_module(f"newsletter.cli.{COMMAND_MODULES[cmd_name]}")
        for command in module.COMMANDS:
            if command.name == cmd_name:
                return command
        return None

    def invoke(self, ctx: click.Context) -> object:
        """Run the command; a domain error leaves as click's exception (message, exit code);
        an unexpected exception becomes one line and exit code 1, its traceback goes to
        .newsletter/last-error.log (and the terminal with --debug)."""
        try:
            return super().invoke(ctx)
        except NewsletterError as exc:
            raise Shown(exc) from exc
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt,
                SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - the one place that catches everything
            app = ctx.obj if isinstance(ctx.obj, App) else None
            raise Shown(report_unexpected(exc, app.root if app else Path("."),
                                          debug=bool(app and app.debug))) from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-C",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    help="Publication folder (default: the current folder).",
)
@click.option("--debug", is_flag=True,
              help="Show the traceback of an unexpected error (also NEWSLETTER_DEBUG=1).")
@click.version_option(__version__, prog_name="newsletter")
@click.pass_context
def main(ctx: click.Context, root: Path, debug: bool) -> None:
    """Assemble, check, preview and dispatch an expert-commentary newsletter."""
    debug = debug or os.environ.get("NEWSLETTER_DEBUG", "").strip().lower() in (
        "1", "true", "yes", "on")
    ctx.obj = App(root=root, debug=debug)
