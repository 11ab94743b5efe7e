"""The `newsletter` command: a thin layer over the pipeline's services.

Commands live in one module per area (build, check, audience, dispatch, report, web, publish,
public), each exporting `COMMANDS`. A command's module is imported only when that command runs
or shows its help, and `newsletter --help` lists every command from the table below without
importing any of them, so start-up pays for click and little else (docs/performance.md,
"Startup"). Command modules keep their own heavy imports inside the command functions.
"""

from __future__ import annotations

import importlib
import os
from gettext import gettext as _
from pathlib import Path

import click

from newsletter import __version__
from newsletter.cli.common import App, Shown, find_root, report_unexpected
from newsletter.core.errors import NewsletterError

#: command name -> (module under newsletter.cli that defines it in its COMMANDS list, the first
#: sentence of its help). The sentence is what `newsletter --help` shows (shortened to the
#: terminal as click does); tests/cli/test_startup.py checks both against the commands.
COMMAND_TABLE: dict[str, tuple[str, str]] = {
    "init": ("build", "Create a new publication (in FOLDER, or the -C folder)."),
    "new": ("build", "Start a new issue in issues/SLUG/ with one piece to edit."),
    "build": ("build", "Build ISSUE (folder or slug) into dist/<slug>/."),
    "check": ("check", "Check ISSUE (folder or slug) before sending: every finding, with where "
                       "and how to fix."),
    "subscribers": ("audience", "Manage subscribers (stored in the database, not in YAML)."),
    "segments": ("audience", "List the segments in subscribers/segments.yaml with their live "
                             "member counts."),
    "send": ("dispatch", "Send ISSUE to one or more segments; run it again to resume an "
                         "interrupted send."),
    "send-test": ("dispatch", "Send a [TEST] copy of ISSUE to test_recipients (or --to), "
                              "outside the ledger."),
    "status": ("dispatch", "Show ISSUE's approvals and each send with its counts, its bounce and "
                           "complaint rates beside the providers' limits, and any unknown or "
                           "failed recipients."),
    "issues": ("editorial", "List every issue with its date, language, editions and state, "
                            "newest first."),
    "approve": ("editorial", "Approve ISSUE's current content for sending (sign-off; see "
                             "`approval:`)."),
    "report": ("report", "What people (and, beside them, machines) did with ISSUE: per piece, "
                         "per link."),
    "preview": ("web", "Preview ISSUE in the browser, rebuilding whenever a file changes."),
    "archive": ("web", "Write the web archive: every issue's web copy, an index page and an "
                       "Atom feed."),
    "publish": ("publish", "Build ISSUE and publish its web copy and images where archive_url "
                           "points."),
    "serve": ("public", "Serve unsubscribe links, sign-up with double opt-in, the SendGrid event "
                        "webhook and the published archive (see docs/deploy.md)."),
    "suppressions": ("public", "Provider suppression lists (SendGrid, SES, Postmark, Mailgun)."),
    "events": ("public", "SendGrid webhook events stored in the database."),
    "bounces": ("bounces", "The bounce mailbox of SMTP sends: bounces and complaints that come "
                           "back by mail."),
}

#: command name -> module under newsletter.cli that defines it
COMMAND_MODULES: dict[str, str] = {name: module for name, (module, _) in COMMAND_TABLE.items()}


class LazyGroup(click.Group):
    """A group that imports a command's module on first use (click's lazy-loading pattern) and
    lists its commands from COMMAND_TABLE without importing them."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMAND_TABLE))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        known = super().get_command(ctx, cmd_name)
        if known is not None or cmd_name not in COMMAND_TABLE:
            return known
        module = importlib.import_module(f"newsletter.cli.{COMMAND_TABLE[cmd_name][0]}")
        for command in module.COMMANDS:
            if command.name == cmd_name:
                return command
        return None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The "Commands" section, as click writes it, from the table: a stand-in command per
        name carries the help sentence, so click shortens it to the terminal's width exactly as
        it would the real command's help."""
        rows: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            if name in self.commands:
                command: click.Command = self.commands[name]
            else:
                command = click.Command(name, help=COMMAND_TABLE[name][1])
            if not command.hidden:
                rows.append((name, command))
        if not rows:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in rows)
        with formatter.section(_("Commands")):
            formatter.write_dl([(name, command.get_short_help_str(limit))
                                for name, command in rows])

    def resolve_command(self, ctx: click.Context, args: list[str]
                        ) -> tuple[str | None, click.Command | None, list[str]]:
        """As click's, but a mistyped command is offered the nearest names from the whole
        table (click only knows the commands loaded so far)."""
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as exc:
            raise click.exceptions.NoSuchCommand(
                exc.command_name, possibilities=self.list_commands(ctx), ctx=ctx) from None

    def invoke(self, ctx: click.Context) -> object:
        """Run the command; a domain error leaves as click's exception (message, exit code);
        an unexpected exception becomes one line and exit code 1, its traceback goes to
        .newsletter/last-error.log (and the terminal with --debug). A closed pipe (`newsletter
        build X | head`) ends the command quietly, as click does for its own output."""
        try:
            return super().invoke(ctx)
        except NewsletterError as exc:
            raise Shown(exc) from exc
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt,
                SystemExit, BrokenPipeError):
            raise
        except Exception as exc:  # noqa: BLE001 - the one place that catches everything
            app = ctx.obj if isinstance(ctx.obj, App) else None
            raise Shown(report_unexpected(exc, app.root if app else Path("."),
                                          debug=bool(app and app.debug))) from None


def _drop(record: object) -> bool:
    return False


#: glibc's mallopt parameters: the number of malloc arenas, the size from which memory is mapped
M_ARENA_MAX, M_MMAP_THRESHOLD = -8, -3


def share_malloc_arenas() -> None:
    """Let threads share glibc's malloc arena, and give big blocks back to the system at once.

    A send keeps eight requests in flight, each on a thread of its own; each thread that
    allocates gets an arena of its own, which keeps the request bodies it freed (a megabyte
    each) for reuse, and glibc raises its mmap threshold past that size once the first such
    block is freed, so later ones stay in the arenas too. At 1M recipients the sending
    process peaked at 144 MB without this, 122 MB with it (docs/performance.md, "Dispatch").
    The GIL serialises the allocations anyway, so one arena costs no speed. A no-op where the
    C library is not glibc.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.mallopt(M_ARENA_MAX, 1)
        libc.mallopt(M_MMAP_THRESHOLD, 256 * 1024)
    except (OSError, AttributeError):
        pass


def configure_process() -> None:
    """What the `newsletter` process sets up for itself, once, at its start (never on import:
    a program or test that imports newsletter keeps its own settings).

    cssutils, the inline stage's CSS parser, writes every declaration it cannot parse to stderr
    through a handler of its own ("CSSUTILS" logger, whose level it resets on import): a
    template's broken CSS is dropped, as email clients drop it, and the lines would only
    interleave with the command's output. And glibc's malloc is told to share one arena
    between threads (`share_malloc_arenas`): before any thread starts, so every one of them
    uses it.
    """
    import logging

    logging.getLogger("CSSUTILS").addFilter(_drop)  # the same filter once, however often called
    share_malloc_arenas()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-C",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Publication folder (default: the current folder or the nearest one above it that "
         "holds newsletter.yaml).",
)
@click.option("--debug", is_flag=True,
              help="Show the traceback of an unexpected error (also NEWSLETTER_DEBUG=1).")
@click.version_option(__version__, prog_name="newsletter")
@click.pass_context
def main(ctx: click.Context, root: Path | None, debug: bool) -> None:
    """Assemble, check, preview and dispatch an expert-commentary newsletter."""
    configure_process()
    debug = debug or os.environ.get("NEWSLETTER_DEBUG", "").strip().lower() in (
        "1", "true", "yes", "on")
    here = Path.cwd() if root is None else root
    ctx.obj = App(root=find_root(here) if root is None else root, debug=debug, here=here)
