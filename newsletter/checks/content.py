"""Content: subject, preheader, every piece complete, no leftover placeholders anywhere."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from newsletter.checks.model import ERROR, WARNING, Context, Finding, excerpt
from newsletter.compose import markdown
from newsletter.core.personalise import KEYS, PLACEHOLDER
from newsletter.core.words import plural

SUBJECT_MIN, SUBJECT_MAX = 10, 78
PREHEADER_MAX = 100  # characters inbox previews show after the subject, about
#: (pattern, label). Each pattern runs in time linear in the text (no unbounded lookahead: an
#: unclosed `{{` is reported as it is) and starts with a literal, which the regular expression
#: engine finds by a fast search: `TK(?<!\wTK)\b` is `\bTK\b` (the lookbehind, once TK is
#: matched, checks the character before it), about 20 times faster on a long text.
LEFTOVERS = [
    (re.compile(r"TK(?<!\wTK)\b"), "TK"),
    (re.compile(r"TODO(?<!\wTODO)\b"), "TODO"),
    (re.compile(r"FIXME(?<!\wFIXME)\b"), "FIXME"),
    (re.compile(r"lorem ipsum", re.I), "lorem ipsum"),
    (re.compile(r"\{\{"), "unrendered {{ }}"),
    (re.compile(r"\{%"), "unrendered {% %}"),
]
#: leftovers of one kind reported one by one per file; the rest are counted in one finding
LEFTOVERS_SHOWN = 10
LEFTOVER_FIX = "finish or remove it before sending"


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def first_visible_line(ctx: Context) -> str:
    """The first line of text a reader sees (what inboxes preview when there is no preheader)."""
    from newsletter.checks.clients import hidden_preheader

    body = ctx.doc.find("body")
    if body is None:
        return ""
    skip = hidden_preheader(ctx)
    for el in body.iter():
        if el is skip or not isinstance(el.tag, str) or el.tag in ("style", "script", "title"):
            continue
        if skip is not None and any(a is skip for a in el.iterancestors()):
            continue
        text = (el.text or "").strip()
        if text:
            return text
    return ""


def check_subject(ctx: Context) -> list[Finding]:
    manifest = ctx.build.issue.folder / "issue.yaml"
    line = ctx.build.issue.source.line_of(("subject",))
    subject = ctx.build.subject.strip()
    where = {"file": str(manifest), "line": line}
    if not subject:
        return [
            Finding(
                ERROR, "content.subject", "the subject is empty", "write a subject line", **where
            )
        ]
    if not SUBJECT_MIN <= len(subject) <= SUBJECT_MAX:
        side = "short" if len(subject) < SUBJECT_MIN else "long"
        return [
            Finding(
                WARNING,
                "content.subject-length",
                f"the subject is too {side}: {len(subject)} characters "
                f"(keep it between {SUBJECT_MIN} and {SUBJECT_MAX})",
                "inboxes cut long subjects and short ones say too little; rewrite it",
                **where,
            )
        ]
    return []


def check_preheader(ctx: Context) -> list[Finding]:
    manifest = ctx.build.issue.folder / "issue.yaml"
    preheader = ctx.build.issue.manifest.preheader.strip()
    if not preheader:
        return [
            Finding(
                WARNING,
                "content.preheader",
                "no preheader: inboxes will preview the first words of the email instead",
                "add `preheader:` to issue.yaml: one sentence that complements the subject",
                file=str(manifest),
                line=ctx.build.issue.source.line_of(("subject",)),
            )
        ]
    line = ctx.build.issue.source.line_of(("preheader",))
    findings = []
    shown = " ".join(markdown.to_text(preheader).split())
    if len(shown) > PREHEADER_MAX:
        findings.append(Finding(
            WARNING, "content.preheader-length",
            f"the preheader is {len(shown)} characters; inbox previews show about "
            f"{PREHEADER_MAX}, so the rest is cut off",
            f"shorten it to {PREHEADER_MAX} characters or fewer (it is preview text only: "
            "put a longer opening in `intro:`)",
            file=str(manifest), line=line,
        ))
    mine = _normal(markdown.to_text(preheader))
    candidates = [("the subject", ctx.build.subject), ("the first line", first_visible_line(ctx))]
    if ctx.build.issue.pieces:
        first_piece = markdown.to_text(ctx.build.issue.pieces[0].body).strip().splitlines()
        candidates.append(("the first line of the first piece", " ".join(first_piece[:2])))
    for what, text in candidates:
        other = _normal(text)
        if other and (mine == other or (len(mine) >= 20 and other.startswith(mine))):
            return findings + [
                Finding(
                    WARNING,
                    "content.preheader-repeat",
                    f"the preheader repeats {what} ({excerpt(text, width=50)})",
                    "the preheader shows next to the subject in the inbox: "
                    "make it add something new",
                    file=str(manifest),
                    line=line,
                )
            ]
    return findings


def check_pieces(ctx: Context) -> list[Finding]:
    findings = []
    for piece in ctx.build.issue.pieces:
        path = str(piece.path)
        if not piece.meta.title.strip():
            findings.append(
                Finding(
                    ERROR,
                    "content.piece-title",
                    "the piece has no title",
                    "set `title:` in the front matter",
                    file=path,
                    line=piece.front.line_of(("title",)),
                )
            )
        if not piece.expert.name.strip():
            findings.append(
                Finding(
                    ERROR,
                    "content.piece-expert",
                    f"expert '{piece.meta.expert}' has no name",
                    "give the expert a name under experts: in newsletter.yaml",
                    file=path,
                    line=piece.front.line_of(("expert",)),
                )
            )
        if not markdown.to_text(piece.body).strip():
            findings.append(
                Finding(
                    ERROR,
                    "content.piece-body",
                    "the piece has no body text",
                    "write the piece below its front matter",
                    file=path,
                    line=piece.body_line,
                )
            )
    return findings


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


def _source_leftovers(path: Path, lines: list[str], seen: set[str]) -> list[Finding]:
    """Leftovers in one source file: the first few of each kind (in comments or not) one by
    one, then one finding counting the rest. The regular expressions do the scanning, so
    the time is linear in the file's size and barely grows with the number of hits."""
    text = "\n".join(lines)
    starts, offset = [], 0
    for line in lines:
        starts.append(offset)
        offset += len(line) + 1
    spans = _segments(path, text, starts)
    findings: list[Finding] = []
    for hidden in (False, True):
        side = _Side.of(text, spans, hidden)
        severity = WARNING if hidden else ERROR
        where = " (in a comment)" if hidden else ""
        for pattern, label in LEFTOVERS:
            total = len(found := pattern.findall(side.text))
            seen.update(found)
            rest_line = None
            for index, match in enumerate(islice(pattern.finditer(side.text),
                                                 LEFTOVERS_SHOWN + 1)):
                at = side.in_file(match.start())
                number = bisect.bisect_right(starts, at)
                if index == LEFTOVERS_SHOWN:
                    rest_line = number
                    break
                column = at - starts[number - 1]
                shown = excerpt(lines[number - 1], column, column + len(match[0]))
                findings.append(Finding(severity, "content.leftover",
                                        f"leftover placeholder {label}: {shown}{where}",
                                        LEFTOVER_FIX, file=str(path), line=number))
            if total > LEFTOVERS_SHOWN:
                findings.append(Finding(
                    severity, "content.leftover",
                    f"{plural(total - LEFTOVERS_SHOWN, 'more leftover placeholder')} {label} "
                    f"in this file{where} ({total:,} in all)", LEFTOVER_FIX, file=str(path),
                    line=rest_line))
    return sorted(findings, key=lambda f: f.line or 0)


def check_leftovers(ctx: Context) -> list[Finding]:
    """TK, TODO, lorem ipsum and unrendered template tags in the sources and the output.

    Linear in the size of the text (bench/leftovers.py): comments are located once per file,
    and each kind of leftover is reported at most LEFTOVERS_SHOWN times per file, then
    counted."""
    findings: list[Finding] = []
    seen: set[str] = set()
    for source in ctx.sources:
        if source.path.name == "newsletter.yaml":
            continue  # only its footer reaches readers: the output scan below covers it
        findings += _source_leftovers(source.path, source.lines, seen)
    for part, text in output_texts(ctx):
        for pattern, label in LEFTOVERS:
            for found in sorted(set(pattern.findall(text)) - seen):  # once per spelling
                seen.add(found)
                at = text.find(found)
                findings.append(
                    ctx.finding(
                        ERROR,
                        "content.leftover",
                        f"leftover placeholder {label} in the {part} part",
                        LEFTOVER_FIX,
                        needle=found,
                        part=part,
                        excerpt_text=excerpt(text, at, at + len(found)),
                    )
                )
    return findings


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


def check_placeholders(ctx: Context) -> list[Finding]:
    """%%key%% placeholders the send step cannot fill (a typo leaves them blank)."""
    findings = []
    seen: set[str] = set()
    for part, text in (("html", ctx.build.html), ("text", ctx.build.text)):
        for match in PLACEHOLDER.finditer(text):
            key = match.group(1)
            if key in KEYS or key.startswith("attr.") or match.group(0) in seen:
                continue
            seen.add(match.group(0))
            findings.append(
                ctx.finding(
                    WARNING,
                    "content.placeholder",
                    f"unknown personalisation placeholder {match.group(0)} will be left blank",
                    f"use one of {', '.join(sorted(KEYS))} or attr.<name>",
                    needle=match.group(0),
                    part=part,
                )
            )
    return findings


def check_content(ctx: Context) -> list[Finding]:
    return (
        check_subject(ctx)
        + check_preheader(ctx)
        + check_pieces(ctx)
        + check_leftovers(ctx)
        + check_placeholders(ctx)
    )
