"""What a check produces (Finding) and what every check reads (Context).

A Finding points either at a source file and line (issue.yaml, a piece, newsletter.yaml) or at a
part of the built output (html, text, headers, message) with a short excerpt of it.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lxml import html as lxml_html

from newsletter.core.errors import Problem

if TYPE_CHECKING:
    from lxml.html import HtmlElement

    from newsletter.compose import Build
    from newsletter.compose.publication import Publication

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    """One problem found by a check, with where it is and how to fix it."""

    severity: str  # ERROR or WARNING
    check: str  # "<family>.<name>", e.g. "links.relative"
    message: str
    fix: str = ""
    file: str | None = None  # source problems: the file...
    line: int | None = None  # ...and its line
    part: str | None = None  # output problems: "html", "text", "headers", "message"
    excerpt: str | None = None

    def location(self) -> str:
        """`file:line` for source problems, `part: "excerpt"` for output problems."""
        if self.file:
            return Problem(self.file, self.line, "").location()
        if self.part:
            return self.part + (f" ({self.excerpt})" if self.excerpt else "")
        return ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "check": self.check,
            "message": self.message,
            "fix": self.fix,
            "file": self.file,
            "line": self.line,
            "part": self.part,
            "excerpt": self.excerpt,
        }


def excerpt(text: str, start: int = 0, end: int | None = None, width: int = 70) -> str:
    """A one-line excerpt of `text` around `text[start:end]`, at most about `width` chars."""
    end = len(text) if end is None else end
    pad = max(0, (width - (end - start)) // 2)
    lo, hi = max(0, start - pad), min(len(text), end + pad)
    snippet = " ".join(text[lo:hi].split())
    if len(snippet) > width:
        snippet = snippet[: width - 1] + "…"
    return ("…" if lo > 0 else "") + snippet + ("…" if hi < len(text) else "")


@dataclass
class SourceFile:
    """A source file's lines, for pointing findings at file and line."""

    path: Path
    lines: list[str]

    def find(self, needle: str, start_line: int = 1) -> int | None:
        """The 1-based line of the first occurrence of `needle` at or after `start_line`."""
        for number, line in enumerate(self.lines[start_line - 1 :], start=start_line):
            if needle in line:
                return number
        return None


@dataclass
class Context:
    """Everything a check reads: the publication, the build, and the output parsed once."""

    pub: Publication
    build: Build
    online: bool = False
    timeout: float = 10.0
    extra: dict[str, Any] = field(default_factory=dict)
    transport: str | None = None  # the transport to judge for; default NEWSLETTER_TRANSPORT

    @cached_property
    def doc(self) -> HtmlElement:
        """The email HTML part (with %%placeholders%%), parsed by lxml."""
        return lxml_html.document_fromstring(self.build.html)

    @cached_property
    def message(self) -> EmailMessage:
        """The sample message, parsed."""
        return email.message_from_bytes(self.build.message, policy=email.policy.default)

    @cached_property
    def sources(self) -> list[SourceFile]:
        """issue.yaml, the pieces in order, then newsletter.yaml."""
        issue = self.build.issue
        paths = [issue.folder / "issue.yaml", *(p.path for p in issue.pieces)]
        paths.append(self.pub.root / "newsletter.yaml")
        out = []
        for path in paths:
            try:
                out.append(SourceFile(path, path.read_text(encoding="utf-8").splitlines()))
            except OSError:
                continue
        return out

    def locate(self, needle: str) -> tuple[str, int] | None:
        """(file, line) of the first source line containing `needle`, if any."""
        for source in self.sources:
            line = source.find(needle)
            if line:
                return str(source.path), line
        return None

    def finding(
        self,
        severity: str,
        check: str,
        message: str,
        fix: str = "",
        *,
        needle: str | None = None,
        part: str = "html",
        excerpt_text: str | None = None,
    ) -> Finding:
        """A Finding at the source line holding `needle`, else at `part` with an excerpt."""
        if needle:
            found = self.locate(needle)
            if found:
                return Finding(severity, check, message, fix, file=found[0], line=found[1])
        return Finding(severity, check, message, fix, part=part, excerpt=excerpt_text or needle)
