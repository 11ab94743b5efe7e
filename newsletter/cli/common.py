"""Shared CLI plumbing: the App context object, output helpers, and domain errors as click
shows them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click
from rich.console import Console

from newsletter.build.publication import Publication
from newsletter.core.errors import InputError, NewsletterError, Problem


@dataclass
class App:
    """Per-invocation state: the publication folder, loaded on first use."""

    root: Path
    _publication: Publication | None = field(default=None, repr=False)

    @property
    def publication(self) -> Publication:
        if self._publication is None:
            self._publication = Publication.load(self.root)
            warn(self._publication.warnings)
        return self._publication


pass_app = click.make_pass_decorator(App)
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


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
