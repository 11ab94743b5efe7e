"""User-facing errors: a message, an optional location and the exit code (no click here).

Exit codes (README.md, "Commands"): 0 ok, 1 failed checks or send, 2 bad input. Only the CLI
turns these into click's output (newsletter.cli.common.Shown).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


@dataclass(frozen=True)
class Problem:
    """One finding about a source file: where it is, what is wrong, and whether it blocks."""

    file: Path | str
    line: int | None
    message: str
    severity: str = "error"  # "error" or "warning"

    def location(self) -> str:
        where = str(self.file)
        if Path(where).is_absolute():
            try:
                where = str(Path(where).relative_to(Path.cwd()))
            except ValueError:
                pass
        return f"{where}:{self.line}" if self.line else where

    def __str__(self) -> str:
        where = self.location()
        return (
            f"{where}: {self.severity}: {self.message}"
            if where
            else f"{self.severity}: {self.message}"
        )


class NewsletterError(Exception):
    """A user error: one line, no traceback; exit code 2 unless a subclass says otherwise."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, location: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.location = location
        if exit_code is not None:
            self.exit_code = exit_code

    def format_message(self) -> str:
        """The line shown to the user: `location: message`, or the message alone."""
        return f"{self.location}: {self.message}" if self.location else self.message

    def __str__(self) -> str:
        return self.format_message()


class InputError(NewsletterError):
    """Bad input: one or more problems, each with file and line."""

    def __init__(self, problems: list[Problem] | Problem | str):
        if isinstance(problems, str):
            problems = [Problem("", None, problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class FailedError(NewsletterError):
    """Checks failed or a send failed: exit code 1."""

    exit_code = EXIT_FAILED
