"""Leftover placeholders: TK, TODO, FIXME, lorem ipsum and unrendered template tags, in the
sources (issue.yaml, the pieces) and in what readers get (the footer from newsletter.yaml and
the template included). Check id: `content.leftover`.

Linear in the size of the text, however many hits it holds (bench/leftovers.py): comments are
located once per file; counting is done by the regular expression engine (each pattern starts
with a literal, which it finds by a fast search) or, for the case-insensitive "lorem ipsum", by
counting in the lowercased text; only the first LEFTOVERS_SHOWN hits of each kind per file are
looked at one by one, the rest are counted in one finding.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from newsletter.checks.model import ERROR, WARNING, Context, Finding, excerpt
from newsletter.core.words import plural

LEFTOVERS_SHOWN = 10  # hits of one kind reported one by one per file; the rest are counted
LEFTOVER_FIX = "finish or remove it before sending"


@dataclass(frozen=True)
class Leftover:
    """One kind of leftover. `literal`: the pattern is this literal, any case, and is counted
    in the lowercased text (a regular expression ignoring case cannot use the fast search)."""

    label: str
    pattern: re.Pattern[str]
    literal: str | None = None

    def count(self, text: str, lowered: str) -> int:
        if self.literal is not None:
            return lowered.count(self.literal)
        return len(self.pattern.findall(text))


#: `TK(?<!\wTK)\b` is `\bTK\b` (the lookbehind, once TK has matched, checks the character
#: before it) starting with a literal, which makes it about twenty times faster on a long text.
#: No pattern looks ahead without bound: an unclosed `{{` is reported as it is.
LEFTOVERS = [
    Leftover("TK", re.compile(r"TK(?<!\wTK)\b")),
    Leftover("TODO", re.compile(r"TODO(?<!\wTODO)\b")),
    Leftover("FIXME", re.compile(r"FIXME(?<!\wFIXME)\b")),
    Leftover("lorem ipsum", re.compile(r"lorem ipsum", re.I), literal="lorem ipsum"),
    Leftover("unrendered {{ }}", re.compile(r"\{\{")),
    Leftover("unrendered {% %}", re.compile(r"\{%")),
]


def _segments(path: Path, text: str, starts: list[int]) -> list[tuple[int, int, bool]]:
    """(start, end, in a comment) spans covering `text`: runs of whole `#` lines in YAML,
    `<!-- -->` comments (an unclosed one runs to the end) and the text between in a piece."""
    spans: list[tuple[int, int, bool]] = []

    def add(start: int, end: int, hidden: bool) -> None:
        if spans and spans[-1][2] == hidden and spans[-1][1] == start:
            spans[-1] = (spans[-1][0], end, hidden)
        elif end > start:
            spans.append((start, end, hidden))

    if path.suffix in (".yaml", ".yml"):
        for number, start in enumerate(starts):
            end = starts[number + 1] if number + 1 < len(starts) else len(text)
            add(start, end, text[start:end].lstrip().startswith("#"))
        return spans
    at = 0
    while (start := text.find("<!--", at)) >= 0:
        end = text.find("-->", start + 4)
        end = len(text) if end < 0 else end + 3
        add(at, start, False)
        add(start, end, True)
        at = end
    add(at, len(text), False)
    return spans


@dataclass
class _Side:
    """The comment (or non-comment) spans of a file joined into one text by line breaks (no
    leftover pattern matches across one), with the way back to offsets in the file."""

    text: str
    joined: list[int]  # where each span starts in `text`
    original: list[int]  # ... and in the file

    @classmethod
    def of(cls, text: str, spans: list[tuple[int, int, bool]], hidden: bool) -> _Side:
        parts, joined, original, at = [], [], [], 0
        for start, end, in_comment in spans:
            if in_comment == hidden:
                parts.append(text[start:end])
                joined.append(at)
                original.append(start)
                at += end - start + 1
        return cls("\n".join(parts), joined, original)

    def in_file(self, offset: int) -> int:
        index = bisect.bisect_right(self.joined, offset) - 1
        return self.original[index] + offset - self.joined[index]


def source_leftovers(path: Path, lines: list[str], seen: set[str]) -> list[Finding]:
    """Leftovers in one source file: the first few of each kind (in comments or not) one by
    one, then one finding counting the rest. Adds the labels found to `seen`."""
    text = "\n".join(lines)
    starts, offset = [], 0
    for line in lines:
        starts.append(offset)
        offset += len(line) + 1
    spans = _segments(path, text, starts)
    findings: list[Finding] = []
    for hidden in (False, True):
        side = _Side.of(text, spans, hidden)
        lowered = side.text.lower()
        severity = WARNING if hidden else ERROR
        where = " (in a comment)" if hidden else ""
        for kind in LEFTOVERS:
            total = kind.count(side.text, lowered)
            if not total:
                continue
            seen.add(kind.label)
            rest_line = None
            for index, match in enumerate(islice(kind.pattern.finditer(side.text),
                                                 LEFTOVERS_SHOWN + 1)):
                at = side.in_file(match.start())
                number = bisect.bisect_right(starts, at)
                if index == LEFTOVERS_SHOWN:
                    rest_line = number
                    break
                column = at - starts[number - 1]
                shown = excerpt(lines[number - 1], column, column + len(match[0]))
                findings.append(Finding(severity, "content.leftover",
                                        f"leftover placeholder {kind.label}: {shown}{where}",
                                        LEFTOVER_FIX, file=str(path), line=number))
            if total > LEFTOVERS_SHOWN:
                findings.append(Finding(
                    severity, "content.leftover",
                    f"{plural(total - LEFTOVERS_SHOWN, 'more leftover placeholder')} "
                    f"{kind.label} in this file{where} ({total:,} in all)", LEFTOVER_FIX,
                    file=str(path), line=rest_line))
    return sorted(findings, key=lambda f: f.line or 0)


def output_texts(ctx: Context) -> list[tuple[str, str]]:
    """What readers get: the subject, the HTML's text and attributes, the text part."""
    chunks = []
    for el in ctx.doc.iter():
        if not isinstance(el.tag, str) or el.tag in ("style", "script"):
            continue
        chunks += [el.text or "", el.tail or ""]
        chunks += [el.get(a, "") for a in ("alt", "title", "href", "src", "aria-label")]
    return [
        ("subject", ctx.build.subject),
        ("html", "\n".join(c for c in chunks if c.strip())),
        ("text", ctx.build.text),
    ]


def check_leftovers(ctx: Context) -> list[Finding]:
    """Leftovers in issue.yaml and the pieces, each at its file and line; then, for each kind
    the sources do not hold, its first occurrence in the output (a footer, the template)."""
    findings: list[Finding] = []
    seen: set[str] = set()
    for source in ctx.sources:
        if source.path.name == "newsletter.yaml":
            continue  # only its footer reaches readers: the output scan below covers it
        findings += source_leftovers(source.path, source.lines, seen)
    for part, text in output_texts(ctx):
        for kind in LEFTOVERS:
            if kind.label in seen:
                continue
            match = kind.pattern.search(text)
            if match is None:
                continue
            seen.add(kind.label)
            findings.append(ctx.finding(
                ERROR, "content.leftover", f"leftover placeholder {kind.label} in the {part} "
                "part", LEFTOVER_FIX, needle=match[0], part=part,
                excerpt_text=excerpt(text, match.start(), match.end())))
    return findings
