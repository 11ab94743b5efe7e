"""Shared CLI plumbing: the App context object, output helpers, and domain errors as click
shows them.

Light on purpose: every command module imports this one, and `newsletter COMMAND --help` should
cost little more than click. The publication (pydantic schemas) and rich are imported on first
use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from newsletter.core.errors import FailedError, InputError, NewsletterError, Problem

if TYPE_CHECKING:
    from rich.console import Console

    from newsletter.compose.publication import Publication


@dataclass
class App:
    """Per-invocation state: the publication folder, loaded on first use."""

    root: Path
    debug: bool = False
    here: Path | None = None  # the -C folder or the current one (`init` creates there)
    _publication: Publication | None = field(default=None, repr=False)

    @property
    def publication(self) -> Publication:
        if self._publication is None:
            from newsletter.compose.publication import Publication

            self._publication = Publication.load(self.root)
            warn(self._publication.warnings)
        return self._publication


pass_app = click.make_pass_decorator(App)

#: the --transport choices (newsletter.core.settings.TRANSPORTS, not imported: help stays light)
TRANSPORT_NAMES = ("outbox", "smtp", "sendgrid", "ses", "postmark", "mailgun")

CONFIG_FILE = "newsletter.yaml"  # as newsletter.compose.publication names it (not imported: light)


def find_root(start: Path) -> Path:
    """The publication folder for a command run in `start`: the nearest folder, `start` or one
    above it, that holds newsletter.yaml (as git finds .git); `start` itself when none does,
    so the error names where the command ran."""
    for folder in (start, *start.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    return start


class LazyConsole:
    """A rich Console (no highlighting, no wrapping) made on first use: importing rich costs
    about 30 ms that `--help` never needs."""

    def __init__(self, *, stderr: bool = False) -> None:
        self.stderr = stderr
        self._console: Console | None = None

    @property
    def rich(self) -> Console:
        """The Console itself (for rich's Progress and Live)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self.stderr, highlight=False, soft_wrap=True)
        return self._console

    def print(self, *objects: Any, **options: Any) -> None:
        """rich's Console.print."""
        self.rich.print(*objects, **options)


console = LazyConsole()
err_console = LazyConsole(stderr=True)


def say(text: str, *, err: bool = False) -> None:
    """Print a line of plain text as it is (no markup, emoji codes or wrapping), without rich:
    for the commands that print nothing else, such as `build`."""
    click.echo(text, err=err)


def warn(problems: list[Problem]) -> None:
    """Print warnings (one line each) to stderr."""
    for problem in problems:
        if problem.severity == "warning":
            err_console.print(f"[yellow]{problem}[/yellow]", markup=True, soft_wrap=True)


class Shown(click.ClickException):
    """A domain error in click's clothes: its exit code, and one line per problem on stderr
    (bad input without click's "Error:" prefix, as every problem already says where)."""

    def __init__(self, error: NewsletterError):
        super().__init__(error.format_message())
        self.exit_code = error.exit_code
        self.plain = isinstance(error, InputError)

    def show(self, file=None) -> None:  # noqa: D401 - click's signature
        if self.plain:
            click.echo(self.format_message(), err=True)
        else:
            super().show(file)


def report_unexpected(exc: BaseException, root: Path, *, debug: bool = False) -> FailedError:
    """Log `exc`'s traceback to ROOT/.newsletter/last-error.log (and show it with `debug`);
    return the one-line error to raise in its place (exit code 1)."""
    import datetime as dt
    import traceback

    text = "".join(traceback.format_exception(exc))
    log = root / ".newsletter" / "last-error.log"
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S} UTC\n{text}",
                       encoding="utf-8")
        where = f"details in {log}"
    except OSError:
        where = "the traceback could not be written to .newsletter/last-error.log"
    if debug:
        err_console.print(text, markup=False, highlight=False)
    first = " ".join(str(exc).split())[:300]
    what = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    hint = "" if debug else "; run with --debug to see the traceback"
    return FailedError(f"unexpected error: {what} ({where}{hint})")
