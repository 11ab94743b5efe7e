"""Content: subject, preheader, every piece complete, known personalisation placeholders (and,
in newsletter.checks.leftovers, no leftover placeholders anywhere)."""

from __future__ import annotations

import re

from newsletter.checks.model import ERROR, WARNING, Context, Finding, excerpt
from newsletter.compose import markdown
from newsletter.core.personalise import KEYS, PLACEHOLDER

SUBJECT_MIN, SUBJECT_MAX = 10, 78
PREHEADER_MAX = 100  # characters inbox previews show after the subject, about


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
    return check_subject(ctx) + check_preheader(ctx) + check_pieces(ctx) + check_placeholders(ctx)
